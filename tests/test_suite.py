"""The suite's own machinery: any subset collects alone, and a run ends with what it skipped and why."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import REPO

pytest_plugins = ["pytester"]

TESTS = REPO / "tests"


def test_no_test_module_imports_a_conftest() -> None:
    """Which conftest ``conftest`` names depends on what else was collected: shared code lives in modules."""
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from\s+[\w.]*\bconftest\s+import|import\s+[\w.]*\bconftest\b)", line)
    ]
    assert offenders == []


@pytest.mark.slow  # a second pytest that imports the suite: left out of `make test-fast`
def test_suites_collect_together_from_the_tests_folder() -> None:
    """Two suites whose conftests both define names, collected from ``tests/`` (where ``nn`` is also a folder)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "server", "ui", "nn/test_nn_optimizers.py"],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", done.stdout, re.MULTILINE), done.stdout[-500:]


def test_the_last_lines_list_the_skipped_tests_and_what_to_install(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(
        test_needs="""
        import pytest

        def test_runs():
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_browser(n):
            pytest.skip("needs Chromium: apt-get install chromium chromium-driver")

        @pytest.mark.skipif(True, reason="needs podman: apt-get install podman")
        def test_container():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, skipped=3)
    lines = [line for line in result.outlines if line.strip()]
    assert "skipped: 3 tests" in lines[-4]
    assert " ".join(lines[-3].split()) == "2 x test_needs.py: needs Chromium: apt-get install chromium chromium-driver"
    assert " ".join(lines[-2].split()) == "1 x test_needs.py: needs podman: apt-get install podman"
    assert re.search(r"1 passed, 3 skipped", lines[-1])
