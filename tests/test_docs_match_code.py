"""ARCHITECTURE.md and CONTRIBUTING.md state facts about the code; where a fact can be read from the code, it is.

The layer chain is the import-linter contract, the module tree names every module that exists and only those,
the seams table names protocols and backends that exist, and every command CONTRIBUTING tells a contributor
to run is one the project ships.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import keyword
import re
import tomllib
from typing import Any, Protocol

import pytest
from helpers import REPO
from packaging.requirements import Requirement

ARCHITECTURE = (REPO / "ARCHITECTURE.md").read_text()
CONTRIBUTING = (REPO / "CONTRIBUTING.md").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def layers_contract() -> list[list[str]]:
    """The layers of the import-linter contract, top first; siblings (``a : b``) in one layer."""
    (contract,) = [c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[module.strip() for module in layer.split(":")] for layer in contract["layers"]]


def test_contributing_states_the_layer_chain_of_the_contract() -> None:
    (chain,) = [p for p in CONTRIBUTING.split("\n\n") if p.count("→") >= 3]
    stated = [re.findall(r"`([\w.]+)`", layer) for layer in chain.split("→")]
    assert stated == layers_contract(), f"CONTRIBUTING.md's chain {stated}; pyproject.toml's {layers_contract()}"


def test_the_diagram_shows_every_layer() -> None:
    diagram = ARCHITECTURE.split("```mermaid", 1)[1].split("```", 1)[0]
    missing = [m for layer in layers_contract() for m in layer if m.removeprefix("service.") not in diagram]
    assert not missing, f"ARCHITECTURE.md's diagram leaves out layers of the contract: {missing}"


def tree_entries(text: str) -> set[str]:
    """The paths ARCHITECTURE.md's tree names: its folders, and every ``*.py`` of a line, relative to that line's
    folder (a folder's own line names files inside it). ``*`` in a name is a pattern."""
    block = text.split("## The tree", 1)[1].split("```", 2)[1]
    folders: list[tuple[int, str]] = []
    named: set[str] = set()
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        folders = [(i, name) for i, name in folders if i < indent]
        first = line.split()[0]
        if first.endswith("/"):
            folders.append((indent, first.rstrip("/")))
        here = "/".join(name for _, name in folders)
        named.add(here)
        named.update(f"{here}/{token}" for token in re.findall(r"(?<![\w/.*])([\w*]+\.py)\b", line))
    return named


def test_every_module_the_tree_names_exists() -> None:
    missing = sorted(entry for entry in tree_entries(ARCHITECTURE) if not list(REPO.glob(entry)))
    assert not missing, f"ARCHITECTURE.md's tree names what does not exist: {missing}"


@pytest.mark.parametrize("package", ["service", "nn"])
def test_the_tree_names_every_module(package: str) -> None:
    covered = {path for entry in tree_entries(ARCHITECTURE) for path in REPO.glob(entry)}
    modules = [p for p in (REPO / package).rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}]
    unnamed = sorted(str(p.relative_to(REPO)) for p in modules if p not in covered)
    assert not unnamed, f"add them to ARCHITECTURE.md's tree, each with what it is: {unnamed}"


def test_the_tree_check_reads_folders_and_patterns() -> None:
    tree = "## The tree\n\n```\npkg/  top\n  a.py b.py   two\n  sub/        c.py (and *_x.py)\n    d.py\n```\n"
    assert tree_entries(tree) == {"pkg", "pkg/a.py", "pkg/b.py", "pkg/sub", "pkg/sub/c.py", "pkg/sub/*_x.py",
                                  "pkg/sub/d.py"}  # fmt: skip


def resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def seams() -> list[dict[str, str]]:
    table = ARCHITECTURE.split("## Seams", 1)[1].split("\n\n")
    (rows,) = [block for block in table if block.startswith("| interface |")]
    lines = rows.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)) for line in lines[2:]]


def test_the_seams_table_names_protocols_and_backends_that_exist() -> None:
    rows = seams()
    assert len(rows) >= 6
    for row in rows:
        protocol = resolve(re.findall(r"`([\w.]+)`", row["interface"])[0])
        assert isinstance(protocol, type) and Protocol in protocol.__mro__, f"{protocol} is not a typing.Protocol"
        members = {n for n in vars(protocol) if not n.startswith("_")} | set(vars(protocol).get("__annotations__", {}))
        assert members, protocol
        for column in ("embedded backend", "PostgreSQL backend"):
            backend = resolve(re.findall(r"`([\w.]+)`", row[column])[0])
            missing = [m for m in members if not hasattr(backend, m)]
            assert not missing, f"{backend.__name__} lacks {missing} of {protocol.__name__}"
        assert callable(resolve(re.findall(r"`([\w.]+)`", row["chosen by"])[0]))
        for suite in re.findall(r"`(tests/[\w/]+\.py)`", row["contract suite"]):
            assert (REPO / suite).exists(), suite


SYSTEM = {"apt-get"}  # named only for what pip cannot bring (the browser tests' chromium)


def shipped_scripts() -> set[str]:
    """Console scripts of nnserve and of the distributions its test extra installs."""
    names = set(PYPROJECT["project"]["scripts"])
    for line in PYPROJECT["project"]["optional-dependencies"]["test"]:
        dist = importlib.metadata.distribution(Requirement(line).name)
        names.update(ep.name for ep in dist.entry_points if ep.group == "console_scripts")
    return names


def commands(text: str) -> list[str]:
    """Every shell command of a text: the lines of its ``sh`` blocks, and inline code that starts with a word."""
    found = [
        line.split("#")[0].strip()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        first = span.split()[0]
        if " " in span and re.fullmatch(r"[a-z][a-z0-9-]*", first) and not keyword.iskeyword(first):
            found.append(span)
    return [command for command in found if command]


def unshipped(command: str) -> str | None:
    words = [w for w in command.split() if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # VAR=value prefixes
    program = words[0].removeprefix(".venv/bin/")
    if program == "make":
        targets = re.findall(r"^([\w.-]+):", (REPO / "Makefile").read_text(), re.M)
        return None if words[1] in targets else f"make has no target {words[1]}"
    if program == "python" and words[1] == "-m":
        return None if importlib.util.find_spec(words[2]) else f"no module {words[2]}"
    if program in shipped_scripts() or program in SYSTEM:
        return None
    return f"{program} is not installed by the project (not a script of it or of its test extra)"


def test_contributing_recommends_only_what_the_project_ships() -> None:
    found = commands(CONTRIBUTING)
    assert any(c.startswith("make test-fast") for c in found) and any("pytest" in c for c in found), found
    problems = {command: unshipped(command) for command in found if unshipped(command)}
    assert not problems, problems


def test_the_command_check_refuses_a_tool_not_shipped() -> None:
    assert unshipped("pre-commit install") is not None
    assert unshipped("make no-such-target") is not None
    assert unshipped("NNSERVE_TEST_PG=wheel make test-postgres") is None
    assert commands("run `some-tool --fix` first, or `from x import`") == ["some-tool --fix"]
