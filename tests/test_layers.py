"""The layers contract of ``make lint`` holds on the tree, and a wrong-way import breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow  # lint-imports on a copy of the tree, once per broken layer: left out of `make test-fast`

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root)},
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """nn/, service/ and pyproject.toml copied, so a test can add an import without touching the repo."""
    for package in ("nn", "service"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_the_layers(tree_copy: Path) -> None:
    result = lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import"),
    [
        ("nn/layers.py", "import service.store"),
        ("nn/callbacks.py", "from nn.network import Network"),
        ("service/store/names.py", "import service.training.catalog"),
        ("service/training/catalog.py", "import service.server.auth"),
        ("service/server/auth.py", "import service.cli.console"),
        ("service/client/operations.py", "import service.store"),
        ("service/server/auth.py", "import service.client"),
        ("service/store/protocol.py", "import service.store.filesystem"),
        ("service/telemetry.py", "from flask import g"),
        ("service/server/dataplane.py", "import flask"),
        ("service/server/callers.py", "import service.server.current"),  # Flask through the back door
    ],
)
def test_a_wrong_way_import_breaks_the_contract(tree_copy: Path, module: str, wrong_import: str) -> None:
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # noqa\n")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_module_names_explain_themselves_once() -> None:
    """At most six modules at service/'s root, and no two modules of service/ share a base name,
    except the parallel roles of the v1/ and v2/ protocol packages."""
    service = REPO / "service"
    assert len([p for p in service.glob("*.py") if p.name != "__init__.py"]) <= 6
    seen: dict[str, Path] = {}
    for path in sorted(service.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        other = seen.get(path.name)
        parallel = other is not None and {path.parent.name, other.parent.name} == {"v1", "v2"}
        assert other is None or parallel, f"{path} and {other} share a name"
        seen[path.name] = path
