"""Every third-party distribution that nn/ and service/ import is a declared runtime dependency.

A distribution that is only present because another one depends on it (webargs comes with
flask-smorest, werkzeug with flask) still has to be declared when the code imports it: the other
one may drop it, or bound it differently. Imports under `if TYPE_CHECKING:` are not runtime imports.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
OWN = {"nn", "service"}


def runtime_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of one module, outside `if TYPE_CHECKING:` blocks."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return names


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    providers = importlib.metadata.packages_distributions()

    imported: dict[str, set[str]] = {}
    for top in sorted(OWN):
        for path in sorted((ROOT / top).rglob("*.py")):
            for name in runtime_imports(path):
                imported.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert "numpy" in imported, "the scan found none of the imports it must find"

    problems = []
    for name, where in sorted(imported.items()):
        if name in OWN or name in sys.stdlib_module_names or name == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(name, [])}
        if not dists:
            problems.append(f"{name} (imported by {sorted(where)[0]}) is installed by no distribution here")
        elif not dists & declared:
            problems.append(f"{name} (imported by {sorted(where)[0]}) comes from {sorted(dists)}, not declared")
    assert not problems, "; ".join(problems)
