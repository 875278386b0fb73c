"""The documentation site builds strictly and offline, and its generated pages name every setting, command and route.

The site is built once per run, as ``make docs`` builds it (``mkdocs build --strict``), with every proxy variable
pointing at a closed port so that a build reaching for the network fails instead of passing here and not in CI.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import click
import pytest
from helpers import REPO

import nn
from service import config
from service.cli.main import main

pytestmark = pytest.mark.slow  # a subprocess building every page

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env.update({name: CLOSED for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")})
    env["NO_PROXY"] = env["no_proxy"] = ""
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """The page's article, tags removed and entities decoded: what a reader sees."""
    raw = (site / page / "index.html").read_text()
    article = raw[raw.index("<article") : raw.rindex("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


class AssetRefs(HTMLParser):
    """Every URL a page loads by itself (scripts, styles, icons, images, frames), not the links a reader follows."""

    LOADED: ClassVar = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
                        "video": "src", "embed": "src", "object": "data", "link": "href"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in self.LOADED and found.get(self.LOADED[tag]):
            self.urls.append(str(found[self.LOADED[tag]]))
        if found.get("srcset"):
            self.urls += [part.split()[0] for part in str(found["srcset"]).split(",") if part.strip()]
        if found.get("style"):
            self.urls += re.findall(r"url\(['\"]?([^'\")]+)", str(found["style"]))


def remote(url: str) -> bool:
    return re.match(r"(?i)(https?:)?//", url.strip()) is not None


def test_the_built_site_loads_nothing_from_elsewhere(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) > 15, pages
    for page in pages:
        refs = AssetRefs()
        refs.feed(page.read_text())
        assert refs.urls, f"{page}: no asset found; the parser misses them"
        assert not [u for u in refs.urls if remote(u)], f"{page.relative_to(site)} loads {refs.urls}"
    for sheet in site.rglob("*.css"):
        text = sheet.read_text(errors="replace")
        loaded = re.findall(r"url\(\s*['\"]?([^'\")]+)", text) + re.findall(r"@import\s+['\"]([^'\"]+)", text)
        assert not [u for u in loaded if remote(u)], f"{sheet.relative_to(site)} loads {loaded}"


def test_the_asset_check_sees_a_remote_asset() -> None:
    refs = AssetRefs()
    refs.feed('<link rel="stylesheet" href="https://fonts.googleapis.com/css"><a href="https://example.org">x</a>')
    refs.feed('<script src="//cdn.example.org/x.js"></script><img src="assets/logo.png">')
    assert [u for u in refs.urls if remote(u)] == ["https://fonts.googleapis.com/css", "//cdn.example.org/x.js"]


def test_every_setting_is_on_the_configuration_page(site: Path) -> None:
    text = page_text(site, "configuration")
    for setting in config.SETTINGS:
        assert setting.name in text, f"{setting.name} is not on the configuration page"
        meaning = " ".join(setting.meaning.replace("`", "").split())
        assert meaning in " ".join(text.split()), f"{setting.name}: its meaning is not on the configuration page"


Commands = Iterator[tuple[tuple[str, ...], click.Command]]


def commands(group: click.Group, path: tuple[str, ...] = ("nnserve",)) -> Commands:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if command.hidden:
            continue
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def test_every_command_and_option_is_on_the_command_line_page(site: Path) -> None:
    text = page_text(site, "cli")
    found = list(commands(main))
    assert len(found) > 20 and (("nnserve", "store", "copy") in [path for path, _ in found])
    for path, command in found:
        assert re.search(rf"^\s*{re.escape(' '.join(path))}¶?\s*$", text, re.M), f"no section for {' '.join(path)}"
        for param in command.params:
            for flag in param.opts if isinstance(param, click.Option) else []:
                assert flag in text, f"{' '.join(path)} {flag} is not on the command line page"


def openapi_operations() -> list[tuple[str, str]]:
    paths = json.loads((REPO / "openapi.json").read_text())["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item if method != "parameters"]


def app_routes() -> list[tuple[str, str]]:
    from service.server.app import create_app

    with tempfile.TemporaryDirectory() as store:
        app = create_app({"TESTING": True, "NNSERVE_STORE": store})
        return [
            (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
            for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        ]


def test_every_route_is_on_the_http_api_page(site: Path) -> None:
    text = page_text(site, "http-api")
    rows = set(re.findall(r"^\s*(GET|POST|PUT|PATCH|DELETE)\s*\n\s*(/\S*)\s*$", text, re.M))
    routes = app_routes()
    assert ("POST", "/v2/models/{name}/infer") in routes and ("GET", "/metrics") in routes
    assert set(routes) <= rows, f"routes missing from the table of every route: {set(routes) - rows}"
    for method, path in openapi_operations():  # each with its own section
        assert re.search(rf"^\s*{method} {re.escape(path)}¶\s*$", text, re.M), f"no section for {method} {path}"


def test_every_public_name_of_nn_has_its_api_entry(site: Path) -> None:
    raw = (site / "nn-api" / "index.html").read_text()
    for name in nn.__all__:
        assert f'id="nn.{name}"' in raw, f"nn.{name} is not on the nn API page"
    assert "Parameters" in page_text(site, "nn-api")  # numpydoc sections were parsed


def test_the_included_documents_are_pages_of_the_site(site: Path) -> None:
    for page, source in [("threat-model", "SECURITY.md"), ("architecture", "ARCHITECTURE.md"),
                         ("contributing", "CONTRIBUTING.md"), ("models", "models/README.md"),
                         ("benchmarks", "bench/RESULTS.md")]:  # fmt: skip
        headings = re.findall(r"^#+ (.+)$", (REPO / source).read_text(), re.M)
        text = page_text(site, page)
        for heading in headings[:3]:
            assert re.sub(r"[`*]", "", heading) in text, f"{source}'s {heading!r} is not on {page}"
