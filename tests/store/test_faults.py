"""Faults a machine causes, injected at the OS boundary; nothing of nnserve is mocked.

How each fault is made, and why that way (CI runs as root: ``.ci/run``):

- Disk full half-way through a publish: the store lives on a tmpfs mounted with
  ``size=`` too small for the new weights, so the kernel itself answers ENOSPC
  after part of ``weights.npz`` was written. Unmounted at teardown.
- A write that fails half-way inside the retraining worker: the worker runs in
  a subprocess under ``RLIMIT_FSIZE`` (Python ignores SIGXFSZ, so the write past
  the limit fails with EFBIG). The limit sits above what the job queue's SQLite
  files need and below the size of the new weights, so only the publish fails.
- A flipped byte in the active weights, ``ACTIVE`` naming a missing version:
  the files are edited on disk, as a bad disk or a careless operator would.
- An unreadable store: root ignores permission bits (CAP_DAC_OVERRIDE), so
  ``chmod 000`` alone proves nothing as root. The service runs in a subprocess
  started by ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: it is
  still uid 0 (owner of the files, so it can chmod them, and the interpreter
  under /root stays readable), but permission bits now deny it like any user.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import REPO, flip_byte

import nn
from service import create_app
from service.store import FileModelStore, StoreError
from service.training.sqlite_queue import SqliteJobQueue
from service.training.worker import Worker

pytestmark = pytest.mark.slow  # faults injected into real processes and retraining runs: left out of `make test-fast`

TOKEN = "faults-admin-token-0c7e"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
INTERVAL = 0.05
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
DIABETES = {"instances": [[0.0] * 10]}
V2_IRIS = {
    "inputs": [
        {"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [v for row in IRIS["instances"] for v in row]}
    ]
}
FSIZE_LIMIT = 256 * 1024  # bytes: the queue's SQLite files stay far below, weights of [4096, 64] are ~1 MiB
BIG_NETWORK = {"hidden_sizes": [4096, 64], "epochs": 1}


@pytest.fixture
def base_store(trained_store):
    """iris and diabetes trained by the CLI (full manifests, datasets), version 1 active. Shared: copy it."""
    return trained_store("iris", "diabetes", epochs=5)


@pytest.fixture
def store_root(base_store, store_copy):
    return store_copy(base_store)


def make_client(root):
    config = {"NNSERVE_STORE": str(root), "NNSERVE_ADMIN_TOKEN": TOKEN, "NNSERVE_RELOAD_INTERVAL": INTERVAL}
    return create_app({**config, "TESTING": True}).test_client()


def tree(root):
    """Every path in the store but the job queue's and the audit log's databases (the retrain call is audited)
    and the publisher locks."""
    return sorted(
        str(p.relative_to(root))
        for p in Path(root).rglob("*")
        if not p.name.startswith((".jobs.sqlite3", ".audit.sqlite3")) and p.name != ".lock"
    )


def predict(client, name="iris", body=IRIS):
    response = client.post(f"/v1/models/{name}/predict", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_not_ready(client, *fragments):
    """/readyz and /v2/health/ready both answer 503 with a reason containing every fragment."""
    for path in ("/readyz", "/v2/health/ready"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        reasons = response.get_json()["reasons"]
        assert any(all(f in r for f in fragments) for r in reasons), (path, fragments, reasons)


def assert_error(response, code, *fragments):
    """A JSON error (v1 shape or v2 ``{"error"}``) with ``code`` whose message contains every fragment."""
    text = response.get_data(as_text=True)
    assert response.status_code == code, text
    body = response.get_json()
    message = body.get("message") or body.get("error")
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def retrain(client, name="iris", **request):
    response = client.post(f"/v1/models/{name}/retrain", json=request, headers=ADMIN)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


# -- (a) a publish that fails half-way -----------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs: room for the trained store, not for a network of [4096, 64] (about 1 MiB of weights)."""
    mount = tmp_path / "small-fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "nnserve-faults", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)  # a process still holds it: detach it


def test_disk_full_half_way_through_a_publish_publishes_nothing(base_store, small_fs, dataset):
    root = small_fs / "store"
    shutil.copytree(base_store, root)
    client = make_client(root)
    before_predictions = predict(client)
    assert before_predictions["version"] == 1
    store = FileModelStore(root)
    before = tree(root)

    X, y, names = dataset("iris")
    big = nn.MLPClassifier((4096, 64), max_iter=1, random_state=0).fit(X, y, feature_names=names)
    with pytest.raises(StoreError) as caught:
        store.publish("iris", big, {"task": "classification"})
    message = str(caught.value)
    assert message == "model 'iris': writing version 2 failed (No space left on device); nothing was published"
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC

    # no partial version, no temporary left behind, ACTIVE untouched
    assert store.versions("iris") == [1]
    assert tree(root) == before
    assert store.clean_temporary(max_age=0) == 0
    assert store.active_version("iris") == 1
    # the running app keeps serving, a fresh one starts ready on the same store
    time.sleep(INTERVAL * 3)
    assert predict(client) == before_predictions
    assert client.get("/readyz").status_code == 200
    fresh = make_client(root)
    assert fresh.get("/readyz").status_code == 200 and predict(fresh) == before_predictions
    # the failed attempt used no version number and left the filesystem usable
    small = nn.MLPClassifier((4,), max_iter=1, random_state=0).fit(X, y, feature_names=names)
    assert store.publish("iris", small, {"task": "classification"}) == 2


def _run_worker(root, limit=None):
    """``Worker(root).run_once()`` in a subprocess, under ``RLIMIT_FSIZE=limit`` if given; returns its stdout."""
    code = textwrap.dedent(
        """
        import resource, sys
        limit = int(sys.argv[2])
        if limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        from service.training.worker import Worker
        print(Worker(sys.argv[1], 0.1).run_once())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), str(limit or 0)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_retraining_job_whose_publish_fails_half_way_fails_and_publishes_nothing(store_root):
    client = make_client(store_root)
    served = predict(client)
    before = tree(store_root)
    job_id = retrain(client, hyperparameters=BIG_NETWORK, promote="always")

    assert _run_worker(store_root, FSIZE_LIMIT) == "True"

    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "failed", job
    assert job["error"] == "model 'iris': writing version 2 failed (File too large); nothing was published"
    assert job["result"] is None
    store = FileModelStore(store_root)
    assert store.versions("iris") == [1] and store.active_version("iris") == 1
    assert tree(store_root) == before
    time.sleep(INTERVAL * 3)
    assert predict(client) == served
    assert client.get("/readyz").status_code == 200

    # the store and the queue are healthy: the next job, without the limit, publishes version 2
    job_id = retrain(client, hyperparameters={"epochs": 2}, promote="never")
    assert _run_worker(store_root) == "True"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["result"]["version"] == 2, job


# -- (b) a flipped byte in the active version's weights ------------------------------------------------------------


def assert_fresh_start_refuses_iris(root, *fragments, detail=200):
    """A new app cannot load iris: not ready, predictions answer a clear error, diabetes serves.

    ``detail`` is the status of ``GET /v1/models/iris``: 200 (versions flagged) or 404 once no version is left.
    """
    fresh = make_client(root)
    assert_not_ready(fresh, "'iris'", *fragments)
    ready = fresh.get("/readyz").get_json()
    assert ready["models"]["iris"]["loaded_version"] is None
    assert ready["models"]["diabetes"] == {"active_version": 1, "loaded_version": 1, "error": None}
    assert_error(fresh.post("/v1/models/iris/predict", json=IRIS), 409, "'iris'", *fragments)
    assert_error(fresh.post("/v2/models/iris/infer", json=V2_IRIS), 409, "'iris'", *fragments)
    assert fresh.get("/v2/models/iris/ready").status_code == 503
    assert predict(fresh, "diabetes", DIABETES)["version"] == 1
    listed = fresh.get("/v1/models")
    assert listed.status_code == 200 and [m["name"] for m in listed.get_json()["models"]] == ["diabetes"]
    assert fresh.get("/v1/models/iris").status_code == detail


def test_a_flipped_byte_in_the_active_weights(store_root):
    running = make_client(store_root)
    served = predict(running)
    job_id = retrain(running, promote="always")  # queued by the app that still has iris loaded

    flip_byte(store_root / "iris" / "1" / "weights.npz")
    time.sleep(INTERVAL * 3)

    assert predict(running) == served  # the loaded, verified copy keeps serving
    assert_fresh_start_refuses_iris(store_root, "version 1", "checksum")
    # a fresh worker cannot train from it either: the job fails with the reason, nothing is published
    assert Worker(store_root).run_once()
    job = SqliteJobQueue(store_root).get(job_id).to_json()
    assert job["status"] == "failed" and "checksum mismatch for weights.npz" in job["error"], job
    assert FileModelStore(store_root).versions("iris") == [1]


# -- (c) ACTIVE naming a missing version ---------------------------------------------------------------------------


def test_active_naming_a_missing_version(store_root):
    running = make_client(store_root)
    served = predict(running)

    (store_root / "iris" / "ACTIVE").write_text("7\n")  # the running app sees ACTIVE change and tries to load 7
    time.sleep(INTERVAL * 3)

    assert predict(running) == served  # version 1 keeps serving
    ready = running.get("/readyz")
    assert ready.status_code == 200, ready.get_json()  # it serves; the reason is reported all the same
    body = ready.get_json()
    assert body["models"]["iris"] == {
        "active_version": 7,
        "loaded_version": 1,
        "error": "model 'iris': ACTIVE names version 7, which is missing",
    }
    assert any("ACTIVE names version 7, which is missing" in r for r in body["reasons"]), body
    assert_fresh_start_refuses_iris(store_root, "ACTIVE names version 7, which is missing")

    # the version ACTIVE names vanished from under it (the stamp of ACTIVE does not change)
    (store_root / "iris" / "ACTIVE").write_text("1\n")
    time.sleep(INTERVAL * 3)
    assert predict(running) == served
    shutil.rmtree(store_root / "iris" / "1")
    time.sleep(INTERVAL * 3)
    assert predict(running) == served
    assert_fresh_start_refuses_iris(store_root, "ACTIVE names version 1, which is missing", detail=404)


# -- (d) an unreadable store ---------------------------------------------------------------------------------------

UNREADABLE = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from service import create_app

    root = Path(sys.argv[1])
    config = {"NNSERVE_STORE": str(root), "NNSERVE_RELOAD_INTERVAL": 0.05, "TESTING": True}
    iris, diabetes = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    v2_iris = json.loads(sys.argv[4])

    def probe(client):
        time.sleep(0.15)
        out = {}
        for path in ("/readyz", "/v2/health/ready", "/v1/models", "/v1/models/iris", "/v2/models/iris/ready"):
            r = client.get(path)
            out["GET " + path] = [r.status_code, r.get_json()]
        for name, body in (("iris", iris), ("diabetes", diabetes)):
            r = client.post(f"/v1/models/{name}/predict", json=body)
            out["POST " + name] = [r.status_code, r.get_json()]
        r = client.post("/v2/models/iris/infer", json=v2_iris)
        out["POST v2 iris"] = [r.status_code, r.get_json()]
        return out

    report = {}
    running = create_app(config).test_client()
    report["healthy"] = probe(running)
    os.chmod(root / "iris", 0)
    report["model dir, running"] = probe(running)
    report["model dir, fresh"] = probe(create_app(config).test_client())
    os.chmod(root, 0)
    report["store root, running"] = probe(running)
    os.chmod(root, 0o755)
    os.chmod(root / "iris", 0o755)
    report["restored, running"] = probe(running)
    print(json.dumps(report))
    """
)


def test_an_unreadable_store(store_root):
    # tmp_path lies under /tmp/pytest-of-root (0700): fine, the child is still uid 0, only without DAC overrides
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            "-dac_override,-dac_read_search",
            sys.executable,
            "-c",
            UNREADABLE,
            str(store_root),
            json.dumps(IRIS),
            json.dumps(DIABETES),
            json.dumps(V2_IRIS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    with contextlib.suppress(OSError):  # whatever happened in the child, leave the store removable
        os.chmod(store_root, 0o755)
        os.chmod(store_root / "iris", 0o755)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for phase, answers in report.items():
        for request, (status, _) in answers.items():
            assert status < 500 or status == 503, (phase, request, answers[request])

    healthy = report["healthy"]
    assert healthy["GET /readyz"][0] == 200 and healthy["POST iris"][0] == 200
    served = healthy["POST iris"][1]

    # a model directory that cannot be read: the loaded version keeps serving, readiness names the model and why
    running = report["model dir, running"]
    assert running["POST iris"] == [200, served]
    assert running["POST diabetes"][0] == 200
    assert running["POST v2 iris"][0] == 200
    status, body = running["GET /readyz"]
    assert status == 200 and body["models"]["iris"]["loaded_version"] == 1, body
    assert any("'iris'" in r and "Permission denied" in r for r in body["reasons"]), body

    # a fresh start on it: not ready, iris answers 503 with the reason, diabetes serves
    fresh = report["model dir, fresh"]
    for path in ("GET /readyz", "GET /v2/health/ready"):
        status, body = fresh[path]
        assert status == 503 and any("'iris'" in r and "Permission denied" in r for r in body["reasons"]), body
    assert fresh["POST iris"][0] == 503
    assert fresh["POST iris"][1]["message"] == "model 'iris' cannot be read from the store (Permission denied)"
    assert fresh["POST v2 iris"] == [503, {"error": "model 'iris' cannot be read from the store (Permission denied)"}]
    assert fresh["GET /v2/models/iris/ready"][0] == 503
    assert fresh["POST diabetes"][0] == 200
    assert fresh["GET /v1/models"][0] == 200
    assert [m["name"] for m in fresh["GET /v1/models"][1]["models"]] == ["diabetes"]

    # the whole store unreadable: not ready (nothing new can be seen), but loaded models keep serving
    root_gone = report["store root, running"]
    status, body = root_gone["GET /readyz"]
    assert status == 503 and "is not readable: Permission denied" in body["reasons"][0], body
    assert root_gone["GET /v2/health/ready"][0] == 503
    assert root_gone["POST iris"] == [200, served]
    assert root_gone["POST diabetes"][0] == 200

    # permissions back: ready again without a restart
    restored = report["restored, running"]
    assert restored["GET /readyz"][0] == 200 and restored["GET /readyz"][1]["reasons"] == []
    assert restored["POST iris"] == [200, served]


def test_the_fault_fixtures_inject_what_they_claim(tmp_path):
    """The mechanisms themselves: a capability-less root is denied by permission bits, RLIMIT_FSIZE gives EFBIG."""
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    read = [sys.executable, "-c", f"open({str(secret)!r}).read()"]
    assert subprocess.run(read, check=False, capture_output=True).returncode == 0  # plain root reads it anyway
    denied = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *read], capture_output=True)
    assert b"PermissionError" in denied.stderr
    big = tmp_path / "big"
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        f"f = open({str(big)!r}, 'wb'); f.write(bytes(8192)); f.close()"
    )
    efbig = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert b"[Errno 27] File too large" in efbig.stderr
    assert big.stat().st_size == 4096  # the part below the limit was written: the write failed half-way
