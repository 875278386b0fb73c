"""Every third-party distribution that nn/ and service/ import is a declared runtime dependency.

A distribution that is only present because another one depends on it (webargs comes with
flask-smorest, werkzeug with flask) still has to be declared when the code imports it: the other
one may drop it, or bound it differently. Imports under `if TYPE_CHECKING:` are not runtime imports.
An import inside a function (onnx in `nn.to_onnx`, scikit-learn in `__sklearn_tags__`) runs only when
that function is called: it may come from an optional extra instead, and so may the module-level imports of
a module that only such imports reach (the PostgreSQL backends, imported once a database URL is configured:
psycopg comes with the `postgres` extra).
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


# What a user runs: the CLI, the WSGI app, the worker, the client, the packages themselves.
ENTRY_POINTS = ("nn", "service", "service.cli", "service.server.wsgi", "service.training.worker", "service.client")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, lazy: bool = False, own: bool = False) -> set[str]:
    """Top-level names of the absolute imports of one module, outside `if TYPE_CHECKING:` blocks:
    those at module level, or (``lazy``) those inside functions; with ``own``, the full dotted names instead
    (``from a.b import c``: ``a.b`` and ``a.b.c``, which may be a module)."""
    names: set[str] = set()

    def visit(node: ast.AST, in_function: bool = False) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if in_function == lazy:
            if isinstance(node, ast.Import):
                names.update(alias.name if own else alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module if own else node.module.partition(".")[0])
                if own:
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return names


def eagerly_imported() -> set[str]:
    """The modules of nn/ and service/ that importing the entry points imports (module-level imports, followed)."""
    paths = {module_name(path): path for top in sorted(OWN) for path in (ROOT / top).rglob("*.py")}
    seen: set[str] = set()
    todo = list(ENTRY_POINTS)
    while todo:
        name = todo.pop()
        if name in seen or name not in paths:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # their __init__ runs too
        todo += parents + sorted(runtime_imports(paths[name], own=True))
    return seen


def test_the_postgres_backends_are_imported_only_once_configured() -> None:
    eager = eagerly_imported()
    assert {"service.cli.main", "service.server.app", "service.store.filesystem"} <= eager, "the walk found too little"
    backends = {"service.store.postgres", "service.store.pg_monitoring", "service.training.pg_queue"}
    assert not backends & eager, f"imported with nnserve itself: {sorted(backends & eager)}"


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    optional = project["optional-dependencies"].values()
    extras = {canonicalize_name(Requirement(line).name) for lines in optional for line in lines}
    providers = importlib.metadata.packages_distributions()

    eager = eagerly_imported()
    imported: dict[str, set[str]] = {}
    lazily: dict[str, set[str]] = {}
    for top in sorted(OWN):
        for path in sorted((ROOT / top).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for name in runtime_imports(path):
                (imported if module_name(path) in eager else lazily).setdefault(name, set()).add(where)
            for name in runtime_imports(path, lazy=True):
                lazily.setdefault(name, set()).add(where)
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
            problems.append(f"{name} (imported lazily by {sorted(where)[0]}) is in no dependency or extra")
    assert not problems, "; ".join(problems)
