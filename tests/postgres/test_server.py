"""The test server's binaries: what NNSERVE_TEST_PG picks, and that each is the major it claims."""

import subprocess

import psycopg
import pytest

from postgres.server import SYSTEM, NotInstalledError, PostgresServer, binaries


def test_the_fixture_serves_the_major_of_the_binaries_it_chose(pg_server: PostgresServer, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) // 10000 == pg_server.binaries.major


def _reported_major(path) -> int:
    out = subprocess.run([str(path / "postgres"), "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1].split(".")[0])  # "postgres (PostgreSQL) 16.14"


def test_the_wheel_ships_postgresql_16() -> None:
    wheel = binaries("wheel")
    assert wheel.source == "wheel" and (wheel.bin / "initdb").exists()
    assert _reported_major(wheel.bin) == wheel.major == 16


def test_system_is_debians_postgresql_15_or_a_message_naming_the_package() -> None:
    if (SYSTEM / "initdb").exists():
        system = binaries("system")
        assert system.source == "system" and _reported_major(system.bin) == system.major == 15
    else:
        with pytest.raises(NotInstalledError, match="apt-get install postgresql-15"):
            binaries("system")


def test_unset_prefers_the_system_server_and_anything_else_is_refused() -> None:
    assert binaries("").source == ("system" if (SYSTEM / "initdb").exists() else "wheel")
    with pytest.raises(NotInstalledError, match="NNSERVE_TEST_PG must be one of system, wheel"):
        binaries("debian")
