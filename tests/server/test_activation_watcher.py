"""The activation watcher of a shared store: NNSERVE_ACTIVATION_NOTIFY=off leaves the poll alone."""

from __future__ import annotations

import threading

import pytest

from service import config
from service.server.registry import ActivationWatcher


class _Store:
    def activations(self, timeout: float) -> list[str]:
        raise AssertionError("a poll-only watcher must not LISTEN")


class _Registry:
    def __init__(self) -> None:
        self.store = _Store()
        self.polls = 0
        self.polled_twice = threading.Event()

    def refresh_all(self) -> None:
        self.polls += 1
        if self.polls >= 2:
            self.polled_twice.set()


def test_a_poll_only_watcher_polls_every_model_and_never_listens() -> None:
    registry = _Registry()
    watcher = ActivationWatcher(registry, poll_interval=0.02, notify=False)  # type: ignore[arg-type]
    watcher.start()
    try:
        assert registry.polled_twice.wait(5)
    finally:
        watcher.stop()
        watcher.join(5)
    assert not watcher.is_alive()


def test_activation_notify_is_on_or_off() -> None:
    assert config.value("NNSERVE_ACTIVATION_NOTIFY", {}) == "on"
    assert config.value("NNSERVE_ACTIVATION_NOTIFY", {"NNSERVE_ACTIVATION_NOTIFY": "off"}) == "off"
    with pytest.raises(ValueError, match="NNSERVE_ACTIVATION_NOTIFY='no' must be one of on, off"):
        config.value("NNSERVE_ACTIVATION_NOTIFY", {"NNSERVE_ACTIVATION_NOTIFY": "no"})
