"""The monitoring snapshots' contract, written against ``MonitoringSnapshots`` only and run against every backend."""

from __future__ import annotations

import math

import pytest
from backends import Backend

from service.store.snapshots import MonitoringSnapshots, Snapshot

FIGURES = {
    "versions": [{"version": 2, "rows": 3, "labelled": 1, "metrics": {"accuracy": 1.0}, "drift": {"rows": 3}}],
    "rollout": None,
}


@pytest.fixture
def snapshots(snapshot_backend: Backend) -> MonitoringSnapshots:
    return snapshot_backend.snapshots()


def test_nothing_is_known_until_written_or_asked(snapshots: MonitoringSnapshots) -> None:
    assert snapshots.read("iris", 1000) is None
    assert snapshots.windows("iris") == []


def test_a_written_snapshot_reads_back_and_a_new_one_replaces_it(snapshots: MonitoringSnapshots) -> None:
    snapshots.write(Snapshot("iris", 1000, 1_700_000_000.5, FIGURES))
    snapshots.write(Snapshot("wine", 1000, 1.0, {"versions": [], "rollout": None}))
    assert snapshots.read("iris", 1000) == Snapshot("iris", 1000, 1_700_000_000.5, FIGURES)
    assert snapshots.read("iris", 500) is None
    later = {"versions": [], "rollout": {"candidate": 3, "started_at": 5.0, "evidence": {}}}
    snapshots.write(Snapshot("iris", 1000, 1_700_000_030.0, later))
    assert snapshots.read("iris", 1000) == Snapshot("iris", 1000, 1_700_000_030.0, later)
    assert snapshots.read("wine", 1000) == Snapshot("wine", 1000, 1.0, {"versions": [], "rollout": None})


def test_an_asked_window_is_known_without_figures_until_a_pass_writes_it(snapshots: MonitoringSnapshots) -> None:
    assert snapshots.ask("iris", 250, most=3) is True
    assert snapshots.read("iris", 250) == Snapshot("iris", 250)  # computed_at and figures None
    assert snapshots.ask("iris", 250, most=3) is True  # asking again changes nothing
    snapshots.write(Snapshot("iris", 250, 7.0, FIGURES))
    assert snapshots.ask("iris", 250, most=1) is True  # known: kept, not cleared
    assert snapshots.read("iris", 250) == Snapshot("iris", 250, 7.0, FIGURES)
    assert snapshots.windows("wine") == []


def test_asking_stops_at_most_windows_per_model(snapshots: MonitoringSnapshots) -> None:
    snapshots.write(Snapshot("iris", 1000, 1.0, FIGURES))
    assert snapshots.ask("iris", 20, most=3) and snapshots.ask("iris", 300, most=3)
    assert snapshots.ask("iris", 4000, most=3) is False
    assert snapshots.read("iris", 4000) is None
    assert snapshots.windows("iris") == [20, 300, 1000]
    assert snapshots.ask("wine", 4000, most=3) is True  # per model


def test_figures_keep_their_json_values(snapshots: MonitoringSnapshots) -> None:
    figures = {"versions": [{"metrics": {"r2": -0.25, "mae": 1e-300}, "drift": {"predictions": None}}], "rollout": None}
    snapshots.write(Snapshot("diabetes", 1, 0.0, figures))
    found = snapshots.read("diabetes", 1)
    assert found is not None and found.figures == figures and math.isclose(found.computed_at or 0.0, 0.0)
