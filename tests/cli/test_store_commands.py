"""``nnserve activate`` under a race, and ``nnserve gc``, ``pin``, ``unpin`` over a real store."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import tiny_classifier

from service.cli.main import main
from service.store import FileModelStore

ROUNDS = 8


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = FileModelStore(tmp_path / "store")
    for seed in range(6):
        store.publish("m", tiny_classifier(seed))
    return store.root


def invoke(*args: object) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _activate_rounds(root: Path, offset: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    """Each round the two processes activate two versions, neither of them the one the last round left active."""
    for r in range(ROUNDS):
        version = (2 * r) % 6 + offset
        barrier.wait(timeout=60)
        printed = invoke("activate", "m", version, "--store", root)
        was = re.search(r"\(was (\d+)\)", printed)
        out.put((r, version, int(was.group(1)) if was else None))
        barrier.wait(timeout=60)  # both done before the next round starts


def test_concurrent_activations_report_a_chain_never_the_same_was(root: Path) -> None:
    invoke("activate", "m", 5, "--store", root)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_activate_rounds, args=(root, v, barrier, out)) for v in (1, 2)]  # offsets
    for p in procs:
        p.start()
    # by round: a Queue's feeder thread may deliver one process's round after the other's next one
    results = [(v, was) for _, v, was in sorted((out.get(timeout=120) for _ in range(2 * ROUNDS)), key=lambda x: x[0])]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    active = 5
    for r in range(ROUNDS):
        (va, wa), (vb, wb) = results[2 * r], results[2 * r + 1]
        assert wa != wb, results  # two "was N" with the same N: one activation went unseen
        first, second = ((va, wa), (vb, wb)) if wa == active else ((vb, wb), (va, wa))
        assert first[1] == active and second[1] == first[0], results  # a chain from the last round's active
        active = second[0]
    assert FileModelStore(root).active_version("m") == active


def test_gc_dry_run_then_gc_then_pins(root: Path) -> None:
    invoke("activate", "m", 2, "--store", root)
    invoke("activate", "m", 5, "--store", root)  # active 5, previous 2
    assert "m: version 1 is pinned" in invoke("pin", "m", 1, "--store", root)
    dry = invoke("gc", "--keep-versions", 1, "--dry-run", "--store", root)
    assert "would remove m version 3" in dry and "would remove m version 4" in dry and "dry run" in dry
    assert "version 1" not in dry and "version 2" not in dry and "version 6" not in dry
    assert FileModelStore(root).versions("m") == [1, 2, 3, 4, 5, 6]
    done = invoke("gc", "m", "--keep-versions", 1, "--store", root)
    assert "removed m version 3" in done and "removed 2 versions" in done
    assert FileModelStore(root).versions("m") == [1, 2, 5, 6]
    invoke("unpin", "m", 1, "--store", root)
    assert "removed m version 1" in invoke("gc", "--keep-versions", 1, "--store", root)
    assert FileModelStore(root).versions("m") == [2, 5, 6]


def test_gc_needs_a_rule_and_pin_a_version_that_exists(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NNSERVE_KEEP_VERSIONS", raising=False)
    monkeypatch.delenv("NNSERVE_KEEP_DAYS", raising=False)
    result = CliRunner().invoke(main, ["gc", "--store", str(root)])
    assert result.exit_code == 1 and "no retention rule is on" in result.output
    result = CliRunner().invoke(main, ["pin", "m", "9", "--store", str(root)])
    assert result.exit_code == 1 and "has no version 9" in result.output
    monkeypatch.setenv("NNSERVE_KEEP_VERSIONS", "5")
    assert "removed m version 1" in invoke("gc", "--store", root)


def test_keep_settings_take_0_for_off_and_refuse_negatives_in_one_line(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("NNSERVE_KEEP_VERSIONS", "0")
    monkeypatch.setenv("NNSERVE_KEEP_DAYS", "0")
    assert "removed 4 versions" in invoke("gc", "--store", root, "--keep-versions", 2)  # 0 in the env is no error
    off = CliRunner().invoke(main, ["gc", "--store", str(root)])
    assert off.exit_code == 1 and "no retention rule is on" in off.output
    monkeypatch.setenv("NNSERVE_KEEP_VERSIONS", "-1")
    bad = CliRunner().invoke(main, ["gc", "--store", str(root)])
    assert bad.exit_code == 1 and "NNSERVE_KEEP_VERSIONS='-1' must be 0 or more" in bad.output
    assert bad.exception is None or isinstance(bad.exception, SystemExit)
