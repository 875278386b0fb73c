"""Every third-party distribution that nn/ and service/ import is a declared runtime dependency.

A distribution that is only present because another one depends on it (webargs comes with
flask-smorest, werkzeug with flask) still has to be declared when the code imports it: the other
one may drop it, or bound it differently. Imports under `if TYPE_CHECKING:` are not runtime imports.
An import inside a function (onnx in `nn.to_onnx`, scikit-learn in `__sklearn_tags__`) runs only when
that function is called: it may come from an optional extra instead.
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


def runtime_imports(path: Path, lazy: bool = False) -> set[str]:
    """Top-level names of the absolute imports of one module, outside `if TYPE_CHECKING:` blocks:
    those at module level, or (``lazy``) those inside functions."""
    names: set[str] = set()

    def visit(node: ast.AST, in_function: bool = False) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if in_function == lazy:
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return names


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    optional = project["optional-dependencies"].values()
    extras = {canonicalize_name(Requirement(line).name) for lines in optional for line in lines}
    providers = importlib.metadata.packages_distributions()

    imported: dict[str, set[str]] = {}
    lazily: dict[str, set[str]] = {}
    for top in sorted(OWN):
        for path in sorted((ROOT / top).rglob("*.py")):
            for name in runtime_imports(path):
                imported.setdefault(name, set()).add(str(path.relative_to(ROOT)))
            for name in runtime_imports(path, lazy=True):
                lazily.setdefault(name, set()).add(str(path.relative_to(ROOT)))
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
    for name, where in sorted(lazily.items()):
        if name in OWN or name in sys.stdlib_module_names or name in imported:
            continue
        dists = {canonicalize_name(d) for d in providers.get(name, [])}
        if not dists & (declared | extras):
            problems.append(f"{name} (imported in a function of {sorted(where)[0]}) is in no dependency or extra")
    assert not problems, "; ".join(problems)
