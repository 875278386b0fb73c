"""Fixtures of the v1 HTTP suite, in the style of Flask's tutorial.

One store is trained per session (tiny models: accuracy does not matter
here, only that real estimators go through the store and the API). Tests
that change a store (activate, corrupt a file, publish) work on a
function-scoped copy with an app of their own.

Helpers are fixtures (``assert_error``, ``corrupt``) rather than an imported
module, so the suite does not depend on pytest's import mode.
"""

import shutil
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
from helpers import flip_byte, read_catalog_csv

from nn import MLPClassifier, MLPRegressor
from service import create_app
from service.store import FileModelStore

ADMIN_TOKEN = "test-admin-token-5f3c9a"
CLASSIFIERS = ("breast_cancer", "digits", "iris")
MODELS = ("breast_cancer", "diabetes", "digits", "iris")
ERROR_KEYS = {"code", "status", "message", "errors"}


@dataclass(frozen=True)
class Model:
    """What the session store holds for one model, and rows to send it."""

    name: str
    task: str
    feature_names: list[str]
    rows: np.ndarray  # a few rows of the training data, spread over the file
    metrics: dict[int, dict[str, float]]  # per version, as published
    active_version: int


@dataclass(frozen=True)
class TrainedStore:
    root: Path
    models: dict[str, Model]

    def estimator(self, name, version=None):
        """The estimator as the store gives it back (what the service must agree with)."""
        return FileModelStore(self.root).load(name, version).estimator


def _tiny(kind, seed, width=8):
    return kind((width,), max_iter=4, batch_size=32, random_state=seed)


@pytest.fixture(scope="session")
def tiny_catalog_store(tmp_path_factory):
    """A store with iris (versions 1 and 2, 1 active), digits, breast_cancer and diabetes."""
    root = tmp_path_factory.mktemp("store")
    store = FileModelStore(root)
    specs = {
        # name: (label type, task, rows used for training, estimators -> one version each)
        "iris": (str, "classification", None, [_tiny(MLPClassifier, 0), _tiny(MLPClassifier, 1)]),
        "digits": (int, "classification", 300, [_tiny(MLPClassifier, 0, width=16)]),
        "breast_cancer": (str, "classification", None, [_tiny(MLPClassifier, 0)]),
        "diabetes": (float, "regression", None, [_tiny(MLPRegressor, 0)]),
    }
    models = {}
    for name, (label, task, n_rows, estimators) in specs.items():
        X, y, names = read_catalog_csv(name)
        y = y.astype(label)
        if n_rows is not None:
            X, y = X[:n_rows], y[:n_rows]
        metrics = {}
        for i, est in enumerate(estimators):
            est.fit(X, y, feature_names=names)
            published = {"score": round(0.5 + 0.125 * i, 3), "n_train": float(len(X))}
            version = store.publish(name, est, {"task": task, "metrics": published})
            metrics[version] = published
        store.activate(name, 1)
        models[name] = Model(name, task, names, X[:: max(1, len(X) // 6)][:6].copy(), metrics, 1)
    return TrainedStore(root, models)


@pytest.fixture
def tiny_catalog_copy(tiny_catalog_store, tmp_path):
    """A private copy of the session store, for tests that change it."""
    root = tmp_path / "store"
    shutil.copytree(tiny_catalog_store.root, root)
    return root


@pytest.fixture
def make_app(tiny_catalog_store):
    """``make_app(store=None, **config)``: a fresh app on ``store`` (default: the session store)."""

    def make(store=None, **overrides):
        config = {
            "NNSERVE_STORE": str(store or tiny_catalog_store.root),
            "NNSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
            "NNSERVE_MAX_BODY_BYTES": 16 * 1024 * 1024,
            "NNSERVE_MAX_ROWS": 10_000,
            "NNSERVE_RELOAD_INTERVAL": 0.25,
            "NNSERVE_CACHE_VERSIONS": 8,
            "TESTING": True,
        }
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def app(make_app):
    """The app on the (read-only) session store."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin_token():
    return ADMIN_TOKEN


def check_error(response, code, *fragments):
    """``response`` is error ``code`` of the common shape and its message contains every fragment."""
    text = response.get_data(as_text=True)
    assert response.status_code == code, text
    assert response.mimetype == "application/json", text
    body = response.get_json()
    assert {"code", "status", "message"} <= set(body) <= ERROR_KEYS, body
    assert body["code"] == code
    assert body["status"] == HTTPStatus(code).phrase
    message = body["message"]
    assert isinstance(message, str), body
    assert len(message.split()) >= 3, f"not a sentence: {message!r}"
    assert "\n" not in message
    assert "Traceback" not in text and 'File "' not in text
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if "errors" in body:
        assert isinstance(body["errors"], dict) and body["errors"], body
        for field, messages in body["errors"].items():
            assert isinstance(field, str)
            assert isinstance(messages, list) and messages, body
            assert all(isinstance(m, str) and m for m in messages), body
    return body


@pytest.fixture
def assert_error():
    """``assert_error(response, code, *fragments) -> body``; see ``check_error``."""
    return check_error


@pytest.fixture
def corrupt():
    """``corrupt(store_root, name, version)``: flip a byte of that version's weights.npz."""

    def run(root, name, version):
        flip_byte(Path(root) / name / str(version) / "weights.npz")

    return run
