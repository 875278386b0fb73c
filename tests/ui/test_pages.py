"""Every dashboard page and fragment through the Flask test client: content, status, headers, escaping."""

from __future__ import annotations

import re
import threading
import time
from html.parser import HTMLParser

import pytest
from helpers import flip_byte, monitoring_pass
from ui_support import HOSTILE, TOKEN

from nn.attribution import integrated_gradients
from service.server.app import create_app
from service.server.ui.pages import CSP
from service.store import Rollout, open_store
from service.training.drift import psi_band
from service.training.jobs import INTERNAL_ERROR, RetrainRequest, open_queue
from service.training.worker import LOSS_POINTS, JobProgress

PAGES = ["/ui/", "/ui/models/iris", "/ui/models/diabetes", "/ui/models/labels", "/ui/jobs", "/ui/jobs/fragment"]


class Tags(HTMLParser):
    """Collects every start tag with its attributes; fails on nothing, so tests assert what they need."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_with_strict_csp_and_nothing_inline(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    for tag, attrs in tags(html):
        assert "style" not in attrs, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith("/ui/static/"), attrs
        if tag == "style":
            pytest.fail("inline <style> element")
        for ref in (attrs.get("src"), attrs.get("href")):
            assert not ref or not re.match(r"^(https?:)?//", ref), ref


def test_static_assets_are_served_with_the_csp(client):
    for asset, kind in (("ui.css", "text/css"), ("admin.js", "text/javascript"), ("jobs.js", "text/javascript")):
        response = client.get(f"/ui/static/{asset}")
        assert response.status_code == 200
        assert response.content_type.startswith(kind)
        assert response.headers["Content-Security-Policy"] == CSP


def test_index_lists_models_with_active_version_task_and_metrics(client, ui_store):
    html = client.get("/ui/").get_data(as_text=True)
    store = open_store(ui_store)
    for name in ("iris", "diabetes", "labels"):
        assert f'href="/ui/models/{name}"' in html
    iris = store.manifest("iris", store.active_version("iris"))
    assert f"{iris['metrics']['accuracy']:.4f}" in html
    assert "regression" in html and "classification" in html


def test_model_page_has_versions_lineage_curves_matrix_and_scores(client, ui_store):
    html = client.get("/ui/models/iris").get_data(as_text=True)
    manifest = open_store(ui_store).manifest("iris", 1)
    polyline = re.search(r'<polyline class="series s0" data-series="loss" points="([^"]*)"', html)
    assert polyline, "no loss curve"
    assert len(polyline.group(1).split()) == len(manifest["epoch_history"]["loss"]) == 12
    assert html.count('<rect class="cell"') == 9  # 3 x 3 confusion matrix
    for c in manifest["evaluation"]["per_class"]:
        assert f">{c['label']}</th><td>{c['precision']:.3f}</td>" in html
    assert 'data-version="2"' in html and 'data-version="1"' not in html  # only an inactive version has the button
    assert "not recorded" in html  # version 2 has no history, evaluation or lineage
    assert "Per-epoch history not recorded." in html and "Evaluation not recorded." in html


def test_model_page_draws_each_versions_importance_and_nothing_for_older_versions(client, ui_store):
    html = client.get("/ui/models/iris").get_data(as_text=True)
    importance = open_store(ui_store).manifest("iris", 1)["explanations"]["importance"]
    assert html.count('<svg class="chart bars"') == 1  # version 1; version 2 was published before importance
    bars = re.findall(r'<g><title>([^<]*): ([^<]*)</title>[^/]*/text><rect class="bar"', html)
    ranked = sorted(importance["features"], key=lambda f: -f["mean_abs_attribution"])
    assert [name for name, _ in bars] == [f["name"] for f in ranked]
    assert [float(v) for _, v in bars] == pytest.approx([f["mean_abs_attribution"] for f in ranked], rel=1e-3)
    assert f"over {importance['rows']} held-out rows" in html
    version_2 = html[html.index('id="v2"') : html.index('id="v1"')]  # newest first
    assert "Feature importance" not in version_2


def test_model_page_shows_the_rollout_and_its_verdict(client, ui_store):
    store = open_store(ui_store)
    assert 'id="rollout-h"' not in client.get("/ui/models/iris").get_data(as_text=True)
    canary = Rollout("canary", 2, 1, 0.25, 100, 600.0, time.time())
    store.start_rollout("iris", canary)
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert "Canary of version 2 against version 1, on 25% of requests:\n<strong>running</strong>." in html
    assert 'href="/v1/models/iris/rollout"' in html
    store.end_rollout("iris", canary.ended("rolled_back", "live accuracy 0.300 vs active 0.950 is worse", time.time()))
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert "<strong>rolled back</strong>: live accuracy 0.300 vs active 0.950 is worse." in html


def test_regressor_page_has_scatter_and_residual_quantiles(client):
    html = client.get("/ui/models/diabetes").get_data(as_text=True)
    assert html.count('<circle class="point"') == 111
    assert "Residual (predicted − actual) quantiles" in html
    assert re.search(r'data-series="val_loss"', html)


def test_class_labels_are_escaped_everywhere(client):
    html = client.get("/ui/models/labels").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html
    assert all(attrs.get("src", "").startswith("/ui/static/") for tag, attrs in tags(html) if tag == "script")
    assert HOSTILE


def test_unknown_and_invalid_models_are_json_errors(client):
    response = client.get("/ui/models/nope")
    assert response.status_code == 404
    assert response.get_json() == {"code": 404, "status": "Not Found", "message": "unknown model 'nope'"}
    assert response.headers["Content-Security-Policy"] == CSP
    bad = client.get("/ui/models/Bad%3Cname%3E")
    assert bad.status_code == 400
    assert bad.get_json()["code"] == 400


def test_jobs_page_shows_progress_and_running_loss_curve(client, ui_store):
    queue = open_queue(ui_store)
    job = queue.enqueue("iris", RetrainRequest(promote="always"))
    queued = client.get("/ui/jobs").get_data(as_text=True)
    assert job.id in queued and 'data-status="queued"' in queued and f'data-job="{job.id}"' in queued
    claimed = queue.claim("test-worker")
    assert claimed is not None and claimed.id == job.id
    queue.update(job.id, {"epoch": 3, "epochs": 10, "loss": 0.5, "losses": [0.9, 0.7, 0.5]})
    html = client.get("/ui/jobs/fragment").get_data(as_text=True)
    assert 'data-status="running"' in html
    assert 'value="3"' in html and "epoch 3/10" in html
    points = re.search(r'data-series="loss" points="([^"]*)"', html)
    assert points and len(points.group(1).split()) == 3


def test_pages_never_carry_the_admin_token(client):
    for url in PAGES:
        assert TOKEN not in client.get(url).get_data(as_text=True)


def test_admin_endpoints_the_page_calls_answer_json_errors_for_a_wrong_token(client):
    response = client.post("/v1/models/iris/versions/2/activate", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.get_json()["message"] == "missing or invalid bearer token"
    ok = client.post("/v1/models/iris/versions/2/activate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert '<tr class="active">\n  <th scope="row"><a href="#v2">2</a>' in html
    assert 'data-version="1"' in html and 'data-version="2"' not in html


def test_a_broken_version_is_shown_as_broken_not_hidden(client, ui_store):
    flip_byte(ui_store / "iris" / "2" / "weights.npz")
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert "broken:" in html
    assert 'data-version="2"' not in html  # no activate button for it


def test_pages_show_what_v1_shows_without_the_token(client, ui_store):
    manifest = open_store(ui_store).manifest("iris", 1)
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert manifest["dataset_sha256"] not in html  # the report has it; a public page does not
    queue = open_queue(ui_store)
    job = queue.enqueue("iris", RetrainRequest())
    assert queue.claim("host-1234") is not None
    queue.finish(job.id, "failed", error=f"{INTERNAL_ERROR}KeyError: secret detail")
    jobs_html = client.get("/ui/jobs").get_data(as_text=True)
    assert "secret detail" not in jobs_html and "host-1234" not in jobs_html
    assert "the job failed on an internal error" in jobs_html


@pytest.mark.slow  # a thousand progress writes: left out of `make test-fast`
def test_a_long_running_jobs_progress_carries_a_bounded_loss_curve(ui_store):
    queue = open_queue(ui_store)
    job = queue.enqueue("iris", RetrainRequest())
    assert queue.claim("w") is not None
    progress = JobProgress(queue, job.id, 1000, threading.Event(), max_runtime=3600.0)
    for epoch in range(1000):
        progress.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    stored = queue.get(job.id).progress
    assert stored is not None and stored["epoch"] == 1000
    assert len(stored["losses"]) == LOSS_POINTS and stored["losses"][0] == 1.0
    assert stored["losses"][1] == 1.0 / 11  # every 10th epoch


def test_model_page_shows_drift_per_feature_or_not_enough_rows(ui_store):
    app = create_app(
        {"TESTING": True, "NNSERVE_STORE": str(ui_store), "NNSERVE_LOG_SAMPLE_RATE": 1.0, "NNSERVE_ADMIN_TOKEN": TOKEN}
    )
    client = app.test_client()
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    assert client.post("/v1/models/iris/predict", json={"instances": rows}).status_code == 200
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert 'id="drift-h"' in html and "not computed yet: the retraining worker computes" in html

    monitoring_pass(app, "iris")
    html = client.get("/ui/models/iris").get_data(as_text=True)
    assert "Version 1 (active): <span" in html
    assert "not enough rows: 3 logged, drift needs 100 (NNSERVE_DRIFT_MIN_ROWS)" in html
    assert 'class="psi-' not in html  # no PSI on 3 rows

    app.config["NNSERVE_DRIFT_MIN_ROWS"] = 3
    monitoring_pass(app, "iris")
    html = client.get("/ui/models/iris").get_data(as_text=True)
    shown = client.get("/v1/models/iris/monitoring").get_json()
    (version,) = shown["versions"]
    assert "Drift of version 1 (active) over 3 rows" in html
    psis = [(f["name"], f["psi"]) for f in version["drift"]["features"]] + [
        ("(predictions)", version["drift"]["predictions"])
    ]
    assert [name for name, _ in psis] == ["sepal_length", "sepal_width", "petal_length", "petal_width", "(predictions)"]
    for name, value in psis:  # every PSI the API shows, with its reading
        assert f'<tr class="psi-{psi_band(value)}"><th scope="row">{name}</th><td>{value:.4f}</td>' in html
    assert "not enough rows" not in html


def test_psi_bands_read_as_the_common_thresholds():
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 7.0)] == [
        "stable", "stable", "moderate", "moderate", "major", "major"
    ]  # fmt: skip


def test_the_model_page_has_an_explain_a_row_form_posting_to_the_ui(client):
    html = client.get("/ui/models/iris").get_data(as_text=True)
    form = re.search(r'<form class="explain" method="post" action="/ui/models/iris/explain">(.*?)</form>', html, re.S)
    assert form, "no explain form"
    fields = dict(
        re.findall(r'<(?:input|select) id="[^"]*" name="([^"]*)"[^>]*?(?:value="([^"]*)")?[ >]', form.group(1))
    )
    assert set(fields) == {"row", "target", "method", "baseline"}
    assert '<option value="mean">training means</option>' in form.group(1)
    assert '<option value="virginica">virginica</option>' in form.group(1)


def test_explaining_a_row_from_the_form_shows_each_features_attribution(client, ui_store):
    row = "5.1, 3.5, 1.4, 0.2"
    response = client.post("/ui/models/iris/explain", data={"row": row, "method": "integrated_gradients",
                                                             "baseline": "mean", "target": ""})  # fmt: skip
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    loaded = open_store(ui_store).load("iris")
    means = loaded.manifest["explanations"]["baseline_mean"]
    values = integrated_gradients(loaded.estimator, [[5.1, 3.5, 1.4, 0.2]], means, steps=32).values[0]
    shown = re.findall(r'<tr class="(?:up|down)"><th scope="row">([^<]*)</th><td>([^<]*)</td></tr>', html)
    by_name = dict(zip(loaded.manifest["feature_names"], values, strict=True))
    assert [name for name, _ in shown] == sorted(by_name, key=lambda n: -abs(by_name[n]))
    assert [float(v) for _, v in shown] == pytest.approx([by_name[n] for n, _ in shown], rel=1e-5)
    label = loaded.estimator.predict([[5.1, 3.5, 1.4, 0.2]])[0]
    assert f"Prediction <strong>{label}</strong>. Explained: the probability of <strong>{label}</strong>" in html
    other = client.post("/ui/models/iris/explain", data={"row": row, "method": "saliency", "baseline": "zeros",
                                                          "target": "virginica"})  # fmt: skip
    assert "the probability of <strong>virginica</strong>" in other.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"row": "5.1, x"}, "the row must be numbers separated by commas"),
        ({"row": "5.1, 3.5"}, "row: rows have 2 values, model &#39;iris&#39; expects 4"),
        ({"row": "nan, 3.5, 1.4, 0.2"}, "row: the input holds nan at index [0, 0]; every value must be a finite"),
        ({"row": "5.1, 3.5, 1.4, -inf"}, "row: the input holds -inf at index [0, 3]; every value must be a finite"),
        ({"row": "5.1, 3.5, 1.4, 0.2", "target": "rose"}, "target: unknown class"),
        ({"row": "5.1, 3.5, 1.4, 0.2", "method": "shap"}, "method: method must be one of"),
        ({"row": "5.1, 3.5, 1.4, 0.2", "baseline": "median"}, "baseline: baseline must be one of"),
    ],
)
def test_a_row_the_model_cannot_explain_is_a_page_saying_why(client, data, fragment):
    response = client.post("/ui/models/iris/explain", data=data)
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert fragment in response.get_data(as_text=True)


def test_the_explanation_page_escapes_labels_and_unknown_models_are_json_errors(client):
    html = client.post("/ui/models/labels/explain", data={"row": "1, 2, 3"}).get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert client.post("/ui/models/nope/explain", data={"row": "1"}).status_code == 404
    assert client.post("/ui/models/..bad/explain", data={"row": "1"}).status_code == 400


def test_explaining_from_the_dashboard_needs_a_key_when_closed(ui_store):
    closed = create_app({"TESTING": True, "NNSERVE_STORE": str(ui_store), "NNSERVE_AUTH": "closed"}).test_client()
    assert closed.post("/ui/models/iris/explain", data={"row": "5.1, 3.5, 1.4, 0.2"}).status_code == 401
