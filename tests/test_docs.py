"""The documents say what the code does: generated tables match, named paths exist, nothing cites outside the repo."""

from __future__ import annotations

import itertools
import re
import subprocess

import click
import pytest
from helpers import REPO
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import MapAdapter

from service import config
from service.cli.main import main

DOCS = sorted(
    {"README.md", "ARCHITECTURE.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md", "models/README.md"}
    | {str(page.relative_to(REPO)) for page in (REPO / "docs").glob("*.md")}
)
PATH = re.compile(r"(?<![\w/.-])((?:nn|service|tests|bench|scripts)/[\w/.-]+\.(?:py|toml|sql|csv|sh))")


def test_the_configuration_page_is_generated_from_the_code() -> None:
    """Nothing to paste: the site renders ``config.markdown_table()`` (what ``python -m service.config`` prints)
    when it is built, and tests/test_docs_site.py finds every setting there."""
    page = (REPO / "docs" / "configuration.md").read_text()
    assert "<!-- generated: configuration -->" in page.splitlines()
    assert "NNSERVE_" not in page.replace("NNSERVE_*", ""), "a hand-written setting beside the generated table"


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 150, "the README links into docs/; the manual is the site"
    for command in ("make run", "make test"):
        assert command in readme
    linked = re.findall(r"\]\((docs/[\w.-]+\.md)", readme)
    assert len(linked) > 5 and all((REPO / page).exists() for page in linked), linked


def test_env_example_shows_the_defaults_of_the_code() -> None:
    shown = re.findall(r"^# (NNSERVE_\w+)=(\S+)$", (REPO / ".env.example").read_text(), re.M)
    assert shown, "no defaults found in .env.example"
    for name, value in shown:
        assert str(config.DEFAULTS[name]) == value, (
            f".env.example: {name}={value}, the code says {config.DEFAULTS[name]}"
        )


def test_every_setting_the_code_reads_is_documented() -> None:
    read = set(re.findall(r"\"(NNSERVE_[A-Z_]+)\"", "\n".join(p.read_text() for p in (REPO / "service").rglob("*.py"))))
    internal = {"NNSERVE_RETRAIN_WORKER"}  # set by `nnserve serve` for its gunicorn master, not by users
    assert read - internal <= set(config.DEFAULTS), read - internal - set(config.DEFAULTS)


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_document_names_exists(doc: str) -> None:
    missing = [p for p in PATH.findall((REPO / doc).read_text()) if not (REPO / p).exists()]
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_no_source_file_cites_a_document_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.sh", "*.toml"], cwd=REPO, capture_output=True, text=True)
    for name in tracked.stdout.split():
        if name == "tests/test_docs.py":  # this test names what it looks for
            continue
        text = (REPO / name).read_text(errors="replace")
        assert "DESIGN.md" not in text and "../shared" not in text, name


def test_every_page_is_in_the_sites_nav() -> None:
    """mkdocs only mentions a page left out of ``nav`` (strict mode passes): a page nobody can reach."""
    nav = (REPO / "mkdocs.yml").read_text().split("\nnav:", 1)[1]
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", nav, re.M))
    pages = {str(page.relative_to(REPO / "docs")) for page in (REPO / "docs").rglob("*.md")}
    assert pages <= listed, f"add them to nav in mkdocs.yml: {sorted(pages - listed)}"
    assert listed <= pages, f"nav names pages that do not exist: {sorted(listed - pages)}"


def shown_command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command ``nnserve WORDS...`` runs (the group's own resolution: ``monitoring NAME`` is ``monitoring
    show NAME``) and the words it is given; a UsageError when there is none."""
    command: click.Command = main
    ctx = click.Context(main)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        _, found, words = command.resolve_command(ctx, words)
        assert found is not None
        command = found
    return command, words


@pytest.mark.parametrize("doc", [d for d in DOCS if d != "CHANGELOG.md"])  # the changelog keeps old names
def test_every_nnserve_command_a_document_shows_exists_with_its_options(doc: str) -> None:
    wrong = []
    for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", (REPO / doc).read_text(), re.S):
        for line in block.splitlines():
            for shown in re.findall(r"(?:^|&&|\||;)\s*nnserve\s+([^#|&;]*)", line):
                words = shown.replace("[", " ").replace("]", " ").split()
                try:
                    command, given = shown_command(words)
                except click.UsageError:
                    wrong.append(f"no such command: {line.strip()}")
                    continue
                flags = {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}
                flags |= {"--help", "-h"}
                wrong += [
                    f"no option {w}: {line.strip()}"
                    for w in given
                    if w.startswith("--") and w.split("=")[0] not in flags
                ]
    assert not wrong, wrong


def test_the_command_check_finds_a_renamed_command() -> None:
    with pytest.raises(click.UsageError):
        shown_command(["modles"])
    command, given = shown_command(["monitoring", "iris", "--window", "5"])
    assert command.name == "show" and given == ["iris", "--window", "5"]


SHOWN_PATH = re.compile(r"(?<![\w.:/])(/(?:v1|v2|ui|healthz|readyz|metrics|docs|openapi\.json)[\w{}\[\]/:.<>-]*)")
NOT_OURS = {"/v1/traces"}  # the OTLP collector's path (docs/tracing.md)


def shown_paths(text: str) -> set[str]:
    """Every path of the service a text names, placeholders (``{name}``, ``<name>``) as ``1``, each optional
    ``[part]`` with and without it."""
    found = set()
    for shown in SHOWN_PATH.findall(text.replace("<br/>", " ")):
        shown = shown.rstrip(".:")
        if shown in NOT_OURS or shown in {"/v1", "/v2"}:  # the APIs by name
            continue
        pieces = [[p[1:-1], ""] if p.startswith("[") else [p] for p in re.split(r"(\[[^\]]*\])", shown)]
        for variant in itertools.product(*pieces):
            found.add(re.sub(r"\{[^}]*\}|<[^>]*>", "1", "".join(variant)).rstrip("/") or "/")
    return found


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> MapAdapter:
    from service.server.app import create_app

    app = create_app({"TESTING": True, "NNSERVE_STORE": str(tmp_path_factory.mktemp("store"))})
    return app.url_map.bind("localhost")


@pytest.mark.parametrize("doc", [d for d in DOCS if d != "CHANGELOG.md"])
def test_every_path_a_document_names_is_a_route(doc: str, routes: MapAdapter) -> None:
    unknown = []
    for path in sorted(shown_paths((REPO / doc).read_text())):
        try:
            routes.match(path, method="GET")
        except MethodNotAllowed:
            pass  # a POST or DELETE route
        except NotFound:
            unknown.append(path)
    assert not unknown, f"{doc} names paths the app does not answer: {unknown}"


def test_the_path_check_reads_placeholders_and_optional_parts() -> None:
    shown = shown_paths("`POST /v2/models/{name}[/versions/{v}]/infer`, then /ui/models/<name>. and /v1")
    assert shown == {"/v2/models/1/infer", "/v2/models/1/versions/1/infer", "/ui/models/1"}
