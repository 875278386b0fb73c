"""``nnserve report``: one self-contained HTML file with the curves and the matrix, loading no URL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

from helpers import REPO


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "report", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_report_is_self_contained_html_with_curves_and_matrix(ui_store, tmp_path):
    out = tmp_path / "iris.html"
    done = run_report("iris", "--version", "1", "-o", str(out), "--store", str(ui_store))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    parser = Collect()
    parser.feed(html)
    parser.close()
    names = [t for t, _ in parser.tags]
    # loss curve, confusion matrix, feature importance: 9 cells and 4 bars
    assert names.count("svg") == 3 and "polyline" in names and names.count("rect") == 9 + 4
    assert "script" not in names and "link" not in names
    for _, attrs in parser.tags:
        for key in ("src", "href"):
            assert not re.match(r"^\s*(https?:)?//", attrs.get(key) or ""), attrs
    assert not re.search(r"url\(|@import", html)
    assert "Version 1" in html and "setosa" in html
    manifest = json.loads((ui_store / "iris" / "1" / "manifest.json").read_text())
    assert manifest["lineage"]["dataset_sha256"] in html  # the report has the full lineage


def test_report_escapes_labels_and_defaults_to_the_active_version(ui_store, tmp_path):
    out = tmp_path / "labels.html"
    assert run_report("labels", "-o", str(out), "--store", str(ui_store)).returncode == 0
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_report_of_an_unknown_version_is_a_one_line_error(ui_store, tmp_path):
    done = run_report("iris", "--version", "9", "-o", str(tmp_path / "x.html"), "--store", str(ui_store))
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: model 'iris' has no version 9 (store: {ui_store})"
    assert not (tmp_path / "x.html").exists()
