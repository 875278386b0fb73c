"""Pages that never 500 (hypothesis): manifests and job records with NaN, infinite, empty and one-point series,
missing evaluations and unknown fields, written into a real store and queue, then rendered through every page,
fragment and JSON read, and through ``nnserve report``."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ui_support import TOKEN

from nn import MLPClassifier, MLPRegressor
from service.server.app import create_app
from service.server.ui import svg
from service.server.ui.report import render_report
from service.store import FileModelStore
from service.training.jobs import JobResult, RetrainRequest, open_queue

SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
GEOMETRY = {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height", "points", "viewbox", "fill-opacity"}

# -- what a manifest or a job record may hold ---------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 0.0]),
    st.integers(-(10**6), 10**6),
)
maybe_numbers = numbers | st.none()
series = st.lists(maybe_numbers, max_size=6)  # empty and one-point series included
unknown_keys = st.text(min_size=1, max_size=8)
leaves = st.one_of(maybe_numbers, st.booleans(), st.text(max_size=6))
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(unknown_keys, inner, max_size=3), max_leaves=8
)
metrics = st.dictionaries(st.sampled_from(["accuracy", "log_loss", "r2", "rmse", "mae"]) | unknown_keys, maybe_numbers)
history = st.dictionaries(st.sampled_from(["loss", "val_loss", "val_score", "lr", "seconds"]) | unknown_keys, series)


def optional(**entries: st.SearchStrategy) -> st.SearchStrategy:
    """A dict holding any of ``entries`` (each may be missing), and unknown keys beside them."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=entries),
        st.dictionaries(unknown_keys.filter(lambda k: k not in entries), json_values, max_size=2),
    )


@st.composite
def classification_evaluations(draw: st.DrawFn) -> dict:
    labels = draw(st.lists(st.text(max_size=4) | st.integers(0, 9), max_size=3, unique_by=str))
    n = len(labels)
    matrix = draw(st.lists(st.lists(st.integers(0, 10**9), min_size=n, max_size=n), min_size=n, max_size=n))
    scores = optional(label=st.just("x"), precision=maybe_numbers, recall=maybe_numbers, f1=maybe_numbers)
    return draw(
        optional(
            n_test=st.integers(0, 10**6),
            labels=st.just(labels),
            confusion_matrix=st.just(matrix),
            per_class=st.lists(scores, max_size=3),
        )
    )


regression_evaluations = optional(
    n_test=st.integers(0, 10**6),
    residual_quantiles=st.dictionaries(st.sampled_from(["0.0", "0.5", "1.0"]) | unknown_keys, maybe_numbers),
    sample=optional(actual=series, predicted=series),
)
manifests = optional(
    metrics=metrics,
    primary_metric=st.sampled_from(["accuracy", "r2"]) | st.none(),
    epoch_history=history | st.none(),
    evaluation=classification_evaluations() | regression_evaluations | st.none(),
    lineage=optional(parent_version=st.integers(1, 9) | st.none(), trigger=st.text(max_size=8) | st.none()),
)
progress = optional(
    epoch=st.integers(0, 10**6) | st.none(),
    epochs=st.integers(0, 10**6) | st.none(),
    loss=maybe_numbers,
    losses=series,
)
jobs = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["running", "succeeded", "failed", "cancelled"]),
        "progress": progress | st.none(),
        "metrics": metrics,
        "active_metric": numbers,
        "error": st.text(max_size=20),
    }
)

# -- the site ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    """One fitted classifier and regressor to publish versions of."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    return {
        "classification": MLPClassifier((3,), max_iter=2, random_state=0).fit(X, np.where(X[:, 0] > 0, "a", "b")),
        "regression": MLPRegressor((3,), max_iter=2, random_state=0).fit(X, X[:, 1]),
    }


@pytest.fixture(scope="module")
def new_site(tmp_path_factory):
    """``new_site()``: a new real store and queue, and an app's test client on them (one per example)."""

    def make():
        root = tmp_path_factory.mktemp("site")
        app = create_app({"TESTING": True, "NNSERVE_STORE": str(root), "NNSERVE_ADMIN_TOKEN": TOKEN})
        return FileModelStore(root), open_queue(root), app.test_client()

    return make


def publish_as_written(store: FileModelStore, name: str, task: str, estimator, manifest: dict) -> int:
    """A version whose manifest holds ``manifest``'s sections as given, NaN and all (as a store written before
    publish refused such versions, or by a later nnserve, would hold them)."""
    version = store.publish(name, estimator, {"task": task})
    path = store.root / name / str(version) / "manifest.json"
    written = json.loads(path.read_text())
    written.update(manifest)
    path.write_text(json.dumps(written))  # Python's json writes NaN and Infinity, as nn.save does
    return version


class Page(HTMLParser):
    """Fails on geometry that is not a finite number; collects every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in GEOMETRY and value is not None:
                for number in re.split(r"[\s,]+", value.strip()):
                    assert number and math.isfinite(float(number)), (tag, key, value)


def well_formed(html: str) -> list[str]:
    page = Page()
    page.feed(html)
    page.close()
    return page.tags


@pytest.mark.slow  # generated manifests and jobs through every page: left out of `make test-fast`
@SETTINGS
@given(manifest=manifests, task=st.sampled_from(["classification", "regression"]), job=jobs)
def test_every_page_and_chart_renders_whatever_the_manifests_and_jobs_hold(new_site, fitted, manifest, task, job):
    store, queue, client = new_site()
    name = "model"
    version = publish_as_written(store, name, task, fitted[task], manifest)
    store.activate(name, version)
    queued = queue.enqueue(name, RetrainRequest())
    claimed = queue.claim("tests")
    assert claimed is not None and claimed.id == queued.id
    if job["progress"] is not None:
        queue.update(queued.id, job["progress"])
    if job["status"] != "running":
        result = None
        if job["status"] == "succeeded":
            result = JobResult(version, version, job["metrics"], job["active_metric"], False, "held out", 3, 0.1, 40)
        queue.finish(queued.id, job["status"], result=result, error=job["error"] or None)

    for path in ("/ui/", f"/ui/models/{name}", "/ui/jobs", "/ui/jobs/fragment"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
        assert "html" in well_formed(response.get_data(as_text=True)) or path.endswith("fragment")
    for path in (f"/v1/models/{name}", "/v1/models", "/v1/jobs", f"/v1/jobs/{queued.id}"):
        for headers in ({}, ADMIN):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
            assert response.get_json() is not None  # JSON that parses: no NaN token
    assert "main" in well_formed(render_report(store, name))  # what `nnserve report` writes


def test_a_diverged_version_reports_through_the_cli(new_site, fitted, tmp_path):
    store, _, _ = new_site()
    name = "diabetes"
    nan, inf = math.nan, math.inf
    diverged = {
        "metrics": {"r2": nan, "rmse": inf, "mae": nan},
        "epoch_history": {"loss": [2.5e30, nan, nan], "val_loss": [inf]},
        "evaluation": {"residual_quantiles": {"0.5": nan}, "sample": {"actual": [1.0], "predicted": [nan]}},
    }
    version = publish_as_written(store, name, "regression", fitted["regression"], diverged)
    out = tmp_path / "report.html"
    argv = ["report", name, "--version", str(version), "-o", str(out), "--store", str(store.root)]
    done = subprocess.run([sys.executable, "-m", "service.cli", *argv], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert well_formed(html).count("svg") == 1  # the loss curve: its one finite point; no scatter without a pair
    assert "(nan)" in html and "val_loss (inf)" in html  # the legend says what the curve cannot draw


@pytest.mark.parametrize(
    "values",
    [[], [math.nan], [math.inf, -math.inf], [1.0], [1e20], [1e20, 1e20], [-1.7e308, 1.7e308], [None, 2.0, "x", 3.0]],
)
def test_a_loss_chart_of_any_series_has_only_finite_geometry(values):
    chart = str(svg.loss_chart({"loss": values, "val_loss": values[:1]}, "t"))
    if values:
        assert well_formed(chart)[0] == "svg"
    else:
        assert chart == ""
