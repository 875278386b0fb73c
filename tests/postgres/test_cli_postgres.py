"""``nnserve db`` and the store commands with ``--database-url``, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import REPO, service_env


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        cwd=REPO,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_status_upgrade_then_two_nodes_share_the_models(tmp_path: Path, database_url: str) -> None:
    pending = cli("db", "status", "--database-url", database_url)
    assert pending.returncode == 1 and "pending  1:" in pending.stdout and "pending  3:" in pending.stdout
    upgraded = cli("db", "upgrade", "--database-url", database_url)
    assert upgraded.returncode == 0 and "applied 1:" in upgraded.stdout, upgraded.stderr
    assert "up to date" in cli("db", "upgrade", "--database-url", database_url).stdout
    done = cli("db", "status", "--database-url", database_url)
    assert done.returncode == 0 and "pending" not in done.stdout

    trained = cli("train", "iris", "--epochs", 2, "--store", tmp_path / "a", "--database-url", database_url)
    assert trained.returncode == 0, trained.stderr
    listed = cli("models", "--store", tmp_path / "b", "--database-url", database_url)  # another node's cache
    assert listed.returncode == 0 and "iris" in listed.stdout, listed.stderr
    assert not (tmp_path / "a" / ".jobs.sqlite3").exists()  # nothing of the filesystem backend was written


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    result = cli("models", "--store", tmp_path, "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1
    assert "the database cannot be reached" in result.stderr and "Traceback" not in result.stderr
