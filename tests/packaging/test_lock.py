"""requirements.lock pins exactly the runtime closure of pyproject.toml's `dependencies` and of the extras the
image installs (the Makefile's IMAGE_EXTRAS: OpenTelemetry's exporter, PostgreSQL's driver), with hashes.

The image installs the lock with `pip install --require-hashes --no-deps`, so a dependency the lock
misses is missing from the image, and a pin that does not satisfy pyproject.toml ships a version the
project does not claim to support. `make lock` regenerates the lock.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

# The image's platform: Debian bookworm, CPython 3.11, x86_64 (see the Dockerfile and `make lock`).
IMAGE_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def applies(req: Requirement, extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**IMAGE_ENV, "extra": extra})


def image_extras() -> list[str]:
    """The extras `make lock` adds to the lock: the Makefile's ``IMAGE_EXTRAS := ...``."""
    found = re.search(r"^IMAGE_EXTRAS\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found is not None, "the Makefile names no IMAGE_EXTRAS"
    return found.group(1).split()


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in image_extras():
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_the_image_installs_the_otel_extra() -> None:
    """Traces are one variable away in the image (docs/tracing.md): the lock has the OpenTelemetry exporter."""
    assert "otel" in image_extras()
    assert "opentelemetry-exporter-otlp-proto-http" in lock_entries()


def test_the_image_installs_the_postgres_extra() -> None:
    """The image serves PostgreSQL (docker-compose.scale.yml): its driver is an extra, which the lock must carry."""
    assert "postgres" in image_extras()
    assert {"psycopg", "psycopg-binary", "psycopg-pool"} <= set(lock_entries())


def lock_entries() -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes), from the lock's logical lines (backslash continuations joined)."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    entries: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, options = line.partition(" ")
        assert not spec.startswith("-"), f"unexpected option line in the lock: {line!r}"
        req = Requirement(spec)
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"not an exact pin: {spec!r}"
        name = canonicalize_name(req.name)
        assert name not in entries, f"{name} pinned twice"
        entries[name] = (Version(pins[0].version), HASH.findall(options))
    return entries


def test_every_pin_has_sha256_hashes() -> None:
    entries = lock_entries()
    assert entries, "the lock pins nothing"
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert not unhashed, f"pins without --hash=sha256: entries: {unhashed}"


def test_every_runtime_dependency_is_pinned_within_its_specifier() -> None:
    entries = lock_entries()
    problems = []
    for req in runtime_requirements():
        if not applies(req):
            continue
        name = canonicalize_name(req.name)
        if name not in entries:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(entries[name][0], prereleases=True):
            problems.append(f"{req} but the lock pins {entries[name][0]}")
    assert not problems, "; ".join(problems)


def test_lock_is_exactly_the_closure_of_the_runtime_dependencies() -> None:
    """Walks the dependency metadata from pyproject's entries: every pin is needed, none is missing,
    and every pin satisfies what its dependents require. The metadata is read from this venv, whose
    versions must be the lock's for that (`make test` installs the same resolution)."""
    entries = lock_entries()
    todo = [(req, "") for req in runtime_requirements()]
    closure: set[str] = set()
    problems = []
    while todo:
        req, extra = todo.pop()
        if not applies(req, extra):
            continue
        name = canonicalize_name(req.name)
        if name not in entries:
            problems.append(f"{req} (needed) is not pinned")
            continue
        pinned = entries[name][0]
        if not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req} is required but the lock pins {pinned}")
        # Extras only add requirements: each requested extra walks the requirements again.
        for wanted in ["", *sorted(req.extras)]:
            key = f"{name}[{wanted}]"
            if key in closure:
                continue
            closure.add(key)
            try:
                installed = Version(importlib.metadata.version(name))
            except importlib.metadata.PackageNotFoundError:
                pytest.skip(f"{name} is not installed here: cannot read its dependencies")
            if installed != pinned:
                pytest.skip(f"this venv has {name} {installed}, the lock pins {pinned}: metadata may differ")
            for line in importlib.metadata.requires(name) or []:
                todo.append((Requirement(line), wanted))
    needed = {key.partition("[")[0] for key in closure}
    unneeded = sorted(set(entries) - needed)
    assert not problems, "; ".join(problems)
    assert not unneeded, f"pinned but required by nothing: {unneeded}"
