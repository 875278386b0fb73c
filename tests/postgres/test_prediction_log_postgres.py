"""The PostgreSQL prediction log beyond the shared contract: a log from before migration 7 keeps its labels,
without a source, which no spec trusts."""

from __future__ import annotations

import psycopg
import pytest

from service.store import migrations
from service.store.monitoring import Label, LabelCount, Labelled
from service.store.pg_monitoring import PostgresPredictionLog


def test_labels_from_before_migration_7_are_kept_without_a_source(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch, psycopg.connect(database_url, autocommit=True) as conn:
        patch.setattr(migrations, "MIGRATIONS", tuple(m for m in migrations.MIGRATIONS if m.version <= 6))
        migrations.upgrade(conn)
        conn.execute(
            "INSERT INTO predictions (model, request_id, row_index, version, logged_at, inputs, output, target, "
            "labelled_at) VALUES ('iris', 'old', 0, 1, 1.0, '[5.1]', '\"setosa\"', '\"virginica\"', 2.0)"
        )
    log = PostgresPredictionLog(database_url)  # applies migration 7
    (kept,) = log.recent("iris", 10, labelled=True)
    assert (kept.target, kept.label_source, kept.label_key, kept.labelled_at) == ("virginica", None, None, 2.0)
    assert log.recent("iris", 10, labelled=True, sources=["key", "token"]) == []
    assert log.label_counts("iris") == [LabelCount(None, None, 1)]
    assert log.label("iris", [Label("old", "setosa")], source="key", key="k") == Labelled(
        0, [], [Label("old", "setosa")]
    )
    assert len(log.secret("feedback_token")) == 32
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE predictions SET label_source = 'anyone'")
