"""A wheel built from the tree, `pip install`ed (no extras) into a fresh venv outside the repo, gives a working
nnserve.

Only what pyproject.toml declares gets installed, so an undeclared runtime dependency fails the
import; every package directory of nn/ and service/ (subpackages included) must be installed, and
nn's py.typed marker and the LICENSE with it. PostgreSQL's driver is an extra: it is not installed, the file
store works without it and a database URL is refused with the extra's name. pip's cache and --no-compile
(no .pyc for numpy's thousand files) keep it well under a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
JUNK = shutil.ignore_patterns(
    ".git", ".venv", "store", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def copy_sources(dest: Path) -> None:
    """The files a checkout would have (git's tracked and not-ignored new files), else the tree minus junk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, ignore=JUNK)
        return
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # deleted but still in the index: skip
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def run(*argv: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_pip_install_gives_importable_packages_and_the_console_script(tmp_path: Path) -> None:
    src = tmp_path / "src"
    copy_sources(src)
    version = tomllib.loads((src / "pyproject.toml").read_text())["project"]["version"]
    inits = [path for top in ("nn", "service") for path in (src / top).rglob("__init__.py")]
    data = sorted(  # templates, static files, markers: everything of the packages that is not Python source
        str(path.relative_to(src))
        for top in ("nn", "service")
        for path in (src / top).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc")
    )
    packages = sorted(".".join(path.parent.relative_to(src).parts) for path in inits)
    assert "nn" in packages and "service" in packages

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_dir = venv / "bin"
    pip = [bin_dir / "python", "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", src, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("nnserve-*.whl")
    run(*pip, "install", "--quiet", "--no-compile", wheel, cwd=tmp_path)
    shutil.rmtree(src)  # nothing may be read from the sources from here on

    run(bin_dir / "python", "-m", "pip", "check", cwd=tmp_path)
    assert version in run(bin_dir / "nnserve", "--version", cwd=tmp_path).split()

    probe = f"""
import importlib.metadata as md, importlib.util, json, pathlib, sys
import nn, service
site = pathlib.Path(nn.__file__).resolve().parents[1]
assert site.is_relative_to(pathlib.Path(sys.prefix).resolve()), site
missing = [p for p in {packages!r} if importlib.util.find_spec(p) is None]
dist = md.distribution("nnserve")
from service.server.app import create_app
def async_client():
    from service.client import AsyncClient
    try:
        AsyncClient("http://127.0.0.1:1")
    except ImportError as exc:
        return str(exc)
app = create_app({{"NNSERVE_STORE": sys.argv[1], "TESTING": True}})
page = app.test_client().get("/ui/")
print(json.dumps({{
    "missing": missing,
    "data_missing": [f for f in {data!r} if not (site / f).is_file()],
    "dashboard": [page.status_code, b"<html" in page.data.lower()],
    "py_typed": [(site / top / "py.typed").is_file() for top in ("nn", "service")],
    "license": dist.metadata["License-Expression"],
    "license_files": [str(f) for f in dist.files if f.name == "LICENSE"],
    "drivers": [m for m in ("psycopg", "psycopg_pool", "httpx") if importlib.util.find_spec(m) is not None],
    "async_client": async_client(),
}}))
"""
    found = json.loads(run(bin_dir / "python", "-c", probe, tmp_path / "store", cwd=tmp_path).splitlines()[-1])
    assert found["missing"] == [], f"packages not installed: {found['missing']}"
    assert found["data_missing"] == [], f"package files not installed: {found['data_missing']}"
    assert found["dashboard"] == [200, True], "the installed dashboard does not render"
    assert found["py_typed"] == [True, True], "nn/py.typed or service/py.typed is not installed"
    assert found["license"] == "MIT"
    assert found["license_files"], "LICENSE is not in the installed distribution"
    assert found["drivers"] == [], "PostgreSQL's driver or httpx came without their extras"
    assert found["async_client"] == "AsyncClient needs httpx: pip install 'nnserve[client-async]'"

    # a user's mypy (this venv's, pointed at the installed package) sees service.client's real types, not Any
    snippet = tmp_path / "uses_client.py"
    snippet.write_text(
        "from service.client import AsyncClient, Client\n"
        "client = Client('http://127.0.0.1:1')\n"
        "version: str = client.predict('iris', [[1.0]]).version\n"
        "reveal_type(client.infer('iris', [[1.0]]).outputs)\n"
        "reveal_type(client.rollout('iris'))\n"
        "reveal_type(client.monitoring('iris').versions[0].drift.features)\n"
        "client.predict('iris', 5)\n"
        "import numpy as np\n"
        "client.predict('iris', np.zeros((1, 4)))\n"
        "async def main() -> None:\n"
        "    async with AsyncClient('http://127.0.0.1:1') as remote:\n"
        "        reveal_type(await remote.predict('iris', [[1.0]]))\n"
        "        reveal_type((await remote.jobs()).jobs)\n"
        "        remote.models().append(1)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--python-executable", bin_dir / "python", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'expression has type "int", variable has type "str"' in checked.stdout, checked.stdout
    assert re.search(r'Revealed type is "(builtins\.)?dict\[(builtins\.)?str, numpy\.ndarray\[', checked.stdout)
    assert 'Revealed type is "service.client.results.Prediction"' in checked.stdout, checked.stdout
    assert 'Revealed type is "service.client.results.Rollout"' in checked.stdout, checked.stdout
    assert re.search(r'Revealed type is "(builtins\.)?list\[service\.client\.results\.FeatureDrift\]"', checked.stdout)
    assert re.search(r'Revealed type is "(builtins\.)?list\[service\.client\.results\.Job\]"', checked.stdout)
    assert '"Coroutine[Any, Any, list[ModelSummary]]" has no attribute "append"' in checked.stdout, checked.stdout
    assert 'Argument 2 to "predict" of "Client" has incompatible type "int"' in checked.stdout, checked.stdout
    assert "Found 3 errors" in checked.stdout, checked.stdout  # pandas' DataFrame, numpy's arrays: no error

    # the newcomer's path: `nnserve init demo && cd demo && nnserve train --all && nnserve serve` predicts
    run(bin_dir / "nnserve", "init", "demo", cwd=tmp_path)
    demo = tmp_path / "demo"
    run(bin_dir / "nnserve", "train", "--all", "--epochs", "5", cwd=demo)
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNSERVE_")}
    serve = [bin_dir / "nnserve", "serve", "--port", str(port), "--workers", "1"]  # with the retraining worker
    serve += ["--grpc-port", str(grpc_port)]

    # a database URL without the postgres extra: one line naming the extra, not a traceback
    database = {**env, "NNSERVE_DATABASE_URL": "postgresql://nnserve@127.0.0.1:1/nnserve"}
    for argv in (serve, [bin_dir / "nnserve", "models"], [bin_dir / "nnserve", "db", "status"]):
        refused = subprocess.run(argv, cwd=demo, env=database, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, (argv, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr and refused.stdout == "", (argv, refused.stderr)
        assert refused.stderr.strip() == (
            "Error: NNSERVE_DATABASE_URL names a PostgreSQL database but psycopg and psycopg_pool are not installed: "
            "pip install 'nnserve[postgres]'"
        ), (argv, refused.stderr)

    server = subprocess.Popen(serve, cwd=demo, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/readyz"), 60, "the installed nnserve serve")
        answer = requests.post(f"{url}/v1/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10)
        assert answer.status_code == 200 and answer.json()["model"] == "iris", answer.text
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # the installed gRPC modules serve too
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(autouse=True)
def _needs_venv_and_pip() -> None:
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        pytest.skip("this Python cannot make venvs with pip (no ensurepip)")
