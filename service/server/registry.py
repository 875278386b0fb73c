"""Loaded models of one web worker: the active version of each model, hot-reloaded, and an LRU of pinned versions.

A request costs at most one ``stat`` of the model's ``ACTIVE`` file per reload
interval. When the stamp changes, the new version is loaded, verified and
warmed up with one prediction *before* the reference is swapped, so requests
in flight keep the old model and none fails. A version that fails to load is
logged, remembered as the model's error, and the old one keeps serving.

One thread loads a model at a time, under that model's own lock: requests for
other models never wait for it, and requests for the same model keep getting
the version already loaded meanwhile (only a model with nothing loaded yet, or
an explicit ``refresh``, waits for the load).

A running rollout (``service.store.rollouts``) is part of the same stamp: its candidate is loaded and
warmed up beside the active version, and ``route`` sends an unpinned request to one or both of them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from service import telemetry
from service.store import (
    KEYS_CHANGED,
    AnnouncesActivations,
    KeyRing,
    LoadedModel,
    ModelStore,
    NotFoundError,
    Rollout,
    StoreError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """Who answers one request, and who else sees it.

    ``model`` answers; ``fallback`` (the active version) answers instead when ``model`` is a canary
    candidate that fails; ``shadow`` is a candidate that gets a copy, its answer logged, never returned;
    ``missed`` is (version, why) of a canary candidate the request was routed to that is not loaded here.
    ``logged``: part of a running rollout, so every prediction goes to the log (its evidence).
    """

    model: LoadedModel
    fallback: LoadedModel | None = None
    shadow: LoadedModel | None = None
    missed: tuple[int, str] | None = None
    logged: bool = False


@dataclass(frozen=True)
class _Trial:
    """A running rollout as one worker serves it: the record, and its candidate loaded (or why not)."""

    rollout: Rollout
    candidate: LoadedModel | None
    error: str | None = None


def share(key: str) -> float:
    """Where ``key`` falls in [0, 1): the same for every worker and replica (a canary's split is sticky)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) / 2**32


@dataclass
class _Slot:
    """What a worker knows of one model's active version and its running rollout."""

    model: LoadedModel | None = None
    trial: _Trial | None = None
    stamp: Hashable | None = None
    checked: float = 0.0
    error: str | None = None
    failure: type[StoreError] = NotFoundError  # raised with ``error`` while nothing is loaded
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while this model is checked or loaded


class ModelRegistry:
    """Per-process cache of loaded models in front of a ``ModelStore``."""

    def __init__(self, store: ModelStore, reload_interval: float = 0.25, cache_size: int = 8) -> None:
        self.store = store
        self.reload_interval = reload_interval
        self.cache_size = cache_size
        self._slots: dict[str, _Slot] = {}
        # (name, version) -> (the loaded version, when the store last had it)
        self._pinned: OrderedDict[tuple[str, int], tuple[LoadedModel, float]] = OrderedDict()
        self._lock = threading.Lock()  # guards the two dicts only, never held during a load

    def load_all(self) -> None:
        """Load every model's active version (at start, so the first request is fast).

        A model with no active version, or a broken one, must not stop the
        worker from starting: its slot keeps the error and /readyz reports it.
        """
        try:
            names = self.store.model_names()
        except StoreError as exc:  # an unreadable store: start anyway, /readyz says why
            log.error("no model loaded: %s", exc)
            return
        for name in names:
            with contextlib.suppress(StoreError):
                self.active(name, refresh=True)

    def active(self, name: str, refresh: bool = False) -> LoadedModel:
        """The active version of ``name``, reloaded if ``ACTIVE`` changed.

        Raises ``NotFoundError`` when the model has no active version and none
        was loaded before; ``CorruptVersionError`` or ``StoreUnavailableError``
        when the active version could not be loaded (broken, missing, unreadable).
        """
        slot = self._slots.get(name)
        now = time.monotonic()
        if slot is None or refresh or now - slot.checked >= self.reload_interval:
            slot = self._refresh(name, now, wait=refresh)
        if slot.model is None:
            raise slot.failure(slot.error) if slot.error else NotFoundError(self._missing(name))
        return slot.model

    def _refresh(self, name: str, now: float, wait: bool = False, known: tuple[Hashable | None] | None = None) -> _Slot:
        """Check ``name``'s activation (its stamp ``known[0]`` when the caller read it already) and load a change."""
        try:
            stamp = known[0] if known is not None else self.store.active_stamp(name)
        except StoreError as exc:  # ACTIVE cannot even be stat'ed: keep what is loaded, remember why
            slot = self._slots.get(name)
            if slot is None:
                raise
            with slot.lock:
                if slot.error != str(exc):
                    kept = slot.model.version if slot.model else None
                    log.error("model %s: store unreadable, still serving version %s: %s", name, kept, exc)
                slot.checked, slot.stamp, slot.error, slot.failure = now, None, str(exc), type(exc)
            return slot
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                if stamp is None:  # no slot for names that serve nothing: requests cannot grow this dict
                    raise NotFoundError(self._missing(name))
                slot = self._slots[name] = _Slot()
        # Another thread is loading this model: serve what is loaded meanwhile, wait only if there is nothing.
        if not slot.lock.acquire(blocking=wait or slot.model is None):
            return slot
        try:
            return self._update(slot, name, stamp, now)
        finally:
            slot.lock.release()

    def _update(self, slot: _Slot, name: str, stamp: Hashable | None, now: float) -> _Slot:
        """Load the version ACTIVE now names into ``slot`` if its stamp changed (called holding ``slot.lock``)."""
        slot.checked = now
        if stamp == slot.stamp:
            return slot
        slot.stamp = stamp
        if stamp is None:
            return slot
        try:
            loaded = slot.model
            if loaded is None or loaded.version != self.store.active_version(name):  # not a rollout's change
                loaded = self.store.load(name)
                warm_up(loaded)
            rollout = self.store.rollout(name)
        except StoreError as exc:
            slot.error, slot.failure = str(exc), type(exc)
            telemetry.load_failed()
            kept = slot.model.version if slot.model else None
            log.error("model %s: active version not loaded, still serving version %s: %s", name, kept, exc)
            return slot
        if slot.model is None or slot.model.version != loaded.version:
            log.info("model %s: serving version %s", name, loaded.version)
        slot.model, slot.error = loaded, None
        slot.trial = self._trial(name, rollout, loaded, slot.trial)
        telemetry.active_version(name, loaded.version)
        telemetry.log_dropped_known(name)
        running = slot.trial.rollout if slot.trial is not None else None
        telemetry.rollout_candidate(name, running.mode if running else None, running.candidate if running else 0)
        return slot

    def _trial(self, name: str, rollout: Rollout | None, active: LoadedModel, before: _Trial | None) -> _Trial | None:
        """The running rollout of ``active`` with its candidate loaded and warmed up (kept if already loaded)."""
        if rollout is None or not rollout.running or rollout.baseline != active.version:
            return None
        if before is not None and before.candidate is not None and before.candidate.version == rollout.candidate:
            return _Trial(rollout, before.candidate)
        try:
            candidate = self.store.load(name, rollout.candidate)
            warm_up(candidate)
        except StoreError as exc:
            telemetry.load_failed()
            log.error("model %s: %s candidate %s not loaded: %s", name, rollout.mode, rollout.candidate, exc)
            return _Trial(rollout, None, str(exc))
        log.info("model %s: %s of version %s against %s", name, rollout.mode, candidate.version, active.version)
        return _Trial(rollout, candidate)

    def route(self, name: str, key: str) -> Route:
        """Who answers an unpinned request of ``name`` whose routing key is ``key`` (see ``Route``).

        A canary answers the requests whose key falls below its fraction (``share``); a shadow sees them all.
        """
        active = self.active(name)
        trial = self._slots[name].trial
        if trial is None or trial.rollout.baseline != active.version:  # a swap in progress: the active alone
            return Route(active)
        rollout = trial.rollout
        if rollout.mode == "shadow":
            return Route(active, shadow=trial.candidate, logged=True)
        if share(key) >= rollout.fraction:
            return Route(active, logged=True)
        if trial.candidate is None:
            return Route(active, missed=(rollout.candidate, trial.error or "not loaded"), logged=True)
        return Route(trial.candidate, fallback=active, logged=True)

    def refresh(self, name: str) -> None:
        """Reload ``name`` now if its activation changed, and drop its pinned versions gc removed; failures are
        logged and remembered, never raised."""
        with contextlib.suppress(StoreError):
            self.active(name, refresh=True)
        self._forget_removed(name)

    def refresh_all(self) -> None:
        """``refresh`` every model of the store (new ones included), from one read of every activation."""
        try:
            stamps = self.store.active_stamps()
        except StoreError:
            return
        for name, stamp in stamps.items():
            with contextlib.suppress(StoreError):
                self._refresh(name, time.monotonic(), wait=True, known=(stamp,))
            self._forget_removed(name)

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a model this worker has seen with an active version (no filesystem access)."""
        return name in self._slots

    def _missing(self, name: str) -> str:
        if self.store.versions(name):
            return f"model {name!r} has no active version"
        return f"model {name!r} not found"

    def version(self, name: str, version: int) -> LoadedModel:
        """A pinned version of ``name``; the active one is shared, others are LRU-cached.

        A cached version is served only while the store still has it: checked again once per reload
        interval (and on every miss, before a node's cached copy is loaded), and at once for a shared store
        whose gc announces it (``refresh``), so a version gc removed answers 404 on every worker.
        """
        try:
            active = self.active(name)
            if active.version == version:
                return active
        except StoreError:  # a broken or unreadable active version does not stop pinned ones
            pass
        key = (name, version)
        now = time.monotonic()
        with self._lock:
            cached = self._pinned.get(key)
            if cached is not None and now - cached[1] < self.reload_interval:
                self._pinned.move_to_end(key)
                return cached[0]
        if not self._still_stored(name, version):
            with self._lock:
                self._pinned.pop(key, None)
            raise NotFoundError(f"model {name!r} has no version {version}")
        loaded = cached[0] if cached is not None else self.store.load(name, version)
        with self._lock:
            self._pinned[key] = (loaded, now)
            self._pinned.move_to_end(key)
            while len(self._pinned) > self.cache_size:
                self._pinned.popitem(last=False)
        return loaded

    def _still_stored(self, name: str, version: int) -> bool:
        """Whether the store still has ``version`` (gc may have removed it since this worker loaded it).

        A store that cannot answer does not take a version this worker holds away (outages spare predictions).
        """
        try:
            return version in self.store.versions(name)
        except StoreUnavailableError:
            return True

    def _forget_removed(self, name: str) -> None:
        """Drop the cached pinned versions of ``name`` that the store no longer has (one read of its versions)."""
        with self._lock:
            cached = [v for (model, v) in self._pinned if model == name]
        if not cached:
            return
        try:
            stored = set(self.store.versions(name))
        except NotFoundError:
            stored = set()
        except StoreError:  # cannot tell now: the next refresh asks again
            return
        with self._lock:
            for v in set(cached) - stored:
                self._pinned.pop((name, v), None)

    def status(self) -> dict[str, dict[str, object]]:
        """Per model: the active version on disk, the version loaded here, and any load error."""
        report: dict[str, dict[str, object]] = {}
        for name in self.store.model_names():
            with contextlib.suppress(StoreError):
                self.active(name)
            slot = self._slots.get(name, _Slot())
            try:
                on_disk: int | None = self.store.active_version(name)
            except StoreError as exc:
                on_disk, slot.error = None, str(exc)
            report[name] = {
                "active_version": on_disk,
                "loaded_version": slot.model.version if slot.model else None,
                "error": slot.error,
            }
        return report


class ActivationWatcher(threading.Thread):
    """Keeps one web worker's registry current with a shared store that announces activations.

    Every notification refreshes that model (load and warm up, then swap), or for ``KEYS_CHANGED`` the
    worker's ``KeyRing``; a slow poll of every model and the keys (every ``poll_interval`` s) covers lost
    notifications and models published elsewhere; a lost database connection is retried with backoff while
    the loaded models keep serving. Requests then never wait on the database. With ``notify`` False
    (NNSERVE_ACTIVATION_NOTIFY=off) nothing listens: the poll alone finds activations and key changes.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        poll_interval: float = 5.0,
        notify: bool = True,
        keyring: KeyRing | None = None,
        announcer: AnnouncesActivations | None = None,
    ) -> None:
        super().__init__(name="nnserve-activations", daemon=True)
        self.registry = registry
        self.poll_interval = poll_interval
        self.notify = notify
        self.keyring = keyring
        self.announcer = announcer
        self.stopping = threading.Event()

    def _refresh_keys(self) -> None:
        if self.keyring is not None:
            self.keyring.refresh()

    def run(self) -> None:
        if not self.notify or self.announcer is None:
            while not self.stopping.wait(self.poll_interval):
                self.registry.refresh_all()  # a store error is remembered per model, never raised
                self._refresh_keys()
            return
        activations = self.announcer.activations
        backoff = 0.5
        next_poll = time.monotonic() + self.poll_interval
        while not self.stopping.is_set():
            try:
                names = activations(max(0.05, min(1.0, next_poll - time.monotonic())))
                backoff = 0.5
            except StoreError as exc:
                log.warning("activation listener: %s; retrying in %.1f s", exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if "" in names or KEYS_CHANGED in names or time.monotonic() >= next_poll:
                self._refresh_keys()  # a key's creation or revocation, or anything after a reconnect
            if "" in names or time.monotonic() >= next_poll:
                self.registry.refresh_all()
                next_poll = time.monotonic() + self.poll_interval
            for name in set(names) - {"", KEYS_CHANGED}:
                self.registry.refresh(name)

    def stop(self) -> None:
        self.stopping.set()


def warm_up(loaded: LoadedModel) -> None:
    """One prediction on a zero row, so a broken model fails here and not on a request."""
    row = np.zeros((1, loaded.estimator.n_features_in_))
    try:
        loaded.estimator.predict(row)
    except Exception as exc:  # any failure at all means: do not serve this version
        raise StoreError(
            f"model {loaded.name!r} version {loaded.version} failed its warm-up prediction: {exc}"
        ) from exc
