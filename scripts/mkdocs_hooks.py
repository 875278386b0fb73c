"""MkDocs hooks: the reference pages are generated from the code at every build, so they cannot drift.

A page asks for a generated part with a line of its own, ``<!-- generated: NAME -->``, where NAME is one of
``GENERATORS``: the configuration table (``service/config.py``), the CLI reference (the click group
``service.cli.main``), every route of the app and the HTTP reference (``openapi.json``, which
tests/client keeps equal to the app's). Nothing generated is committed; tests/test_docs_site.py builds the
site and checks that every setting, command and route is on its page.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)
Json = dict[str, Any]


def configuration() -> str:
    """Every ``NNSERVE_*`` setting: the table ``python -m service.config`` prints."""
    from service import config

    return config.markdown_table()


def cli_reference() -> str:
    """Every command of ``nnserve``, each with its ``--help`` as the terminal shows it."""
    from service.cli.main import main

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> Iterator[str]:
        settings = {"terminal_width": 100, **command.context_settings}  # the same page on any terminal
        ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
        yield f"{'#' * (len(path) + 1)} `{' '.join(path)}`\n\n```text\n{command.get_help(ctx)}\n```\n"
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, [*path, name], ctx)

    return "\n".join(walk(main, ["nnserve"], None))


def _openapi() -> Json:
    document: Json = json.loads((REPO / "openapi.json").read_text())
    return document


def _routes() -> list[tuple[str, str, Callable[..., Any]]]:
    """(method, path with ``{arg}``, view) for every rule of the app, as ``nnserve serve`` builds it."""
    from service.server.app import create_app

    with tempfile.TemporaryDirectory() as store:
        app = create_app({"TESTING": True, "NNSERVE_STORE": store})
        found = []
        for rule in app.url_map.iter_rules():
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, path, app.view_functions[rule.endpoint]))
    return sorted(found, key=lambda route: (route[1], route[0]))


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0].replace("\n", " ")


def routes() -> str:
    """One row per route the app answers, the OpenAPI document's and the others (v2, dashboard, metrics)."""
    documented = {(m.upper(), p): op for p, item in _openapi()["paths"].items() for m, op in item.items()}
    lines = ["| method | path | what |", "|---|---|---|"]
    for method, path, view in _routes():
        operation = documented.get((method, path))
        if operation is not None:
            what = f"{_cell(operation.get('summary', ''))} ([reference](#{_operation_id(method, path)}))"
        elif "{filename}" in path:
            what = "static files"
        else:
            view_class = getattr(view, "view_class", None)
            handler = getattr(view_class, method.lower(), None) if view_class else view
            doc = getattr(handler, "__doc__", None) or getattr(view_class, "__doc__", None)
            what = _cell(_first_line(doc)) or f"`{view.__name__}`"
        lines.append(f"| `{method}` | `{path}` | {what} |")
    return "\n".join(lines) + "\n"


def _operation_id(method: str, path: str) -> str:
    return "op-" + re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def _type(schema: Json) -> str:
    """A schema in a few words, ``$ref``s as links to their section."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#schema-{name.lower()})"
    for key in ("allOf", "oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(part) for part in schema[key])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        kind = f"array of {_type(schema.get('items', {}))}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict) and schema["additionalProperties"]:
        kind = f"object of {_type(schema['additionalProperties'])}"
    if schema.get("nullable"):
        kind += " or null"
    return kind


def _constraints(schema: Json) -> str:
    shown = []
    if "enum" in schema:
        shown.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    for key in ("default", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        if key in schema:
            shown.append(f"{key} `{json.dumps(schema[key])}`")
    return "; ".join(shown)


def _operation(method: str, path: str, operation: Json, shared: list[Json], responses: Json) -> list[str]:
    lines = [f"### `{method.upper()} {path}` {{#{_operation_id(method.upper(), path)}}}", ""]
    lines += [text for text in (operation.get("summary"), operation.get("description")) if text]
    if operation.get("security"):
        lines += ["", "Takes a key: `Authorization: Bearer <key>` (who needs one: [Security model](security.md))."]
    parameters = shared + operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | type | required | constraints, meaning |", "|---|---|---|---|---|"]
        for p in parameters:
            schema = p.get("schema", {})
            meaning = "; ".join(t for t in (_constraints(schema), _cell(p.get("description", ""))) if t)
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_type(schema)} | {'yes' if p.get('required') else 'no'} | {meaning} |"
            )
    body = operation.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            lines += ["", f"Request body (`{media}`): {_type(content.get('schema', {}))}"]
    lines += ["", "| status | meaning | body |", "|---|---|---|"]
    for status, answer in operation.get("responses", {}).items():
        if "$ref" in answer:
            answer = responses[_ref_name(answer["$ref"])]
        schemas = [_type(c.get("schema", {})) for c in answer.get("content", {}).values()]
        lines.append(f"| {status} | {_cell(answer.get('description', ''))} | {', '.join(schemas)} |")
    return [*lines, ""]


def http_reference() -> str:
    """Every operation of openapi.json by tag (parameters, body, answers), then every schema it names."""
    document = _openapi()
    components = document.get("components", {})
    tags = [tag["name"] for tag in document.get("tags", [])]
    descriptions = {tag["name"]: tag.get("description", tag["name"]) for tag in document.get("tags", [])}
    operations = [
        (method, path, op, item.get("parameters", []))
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]
    tags += sorted({t for *_, op, _ in operations for t in op.get("tags", ["other"])} - set(tags))
    lines = []
    for tag in tags:
        lines += [f"## {descriptions.get(tag, tag)} (`{tag}`)", ""]
        for method, path, op, shared in operations:
            if op.get("tags", ["other"])[0] == tag:
                lines += _operation(method, path, op, shared, components.get("responses", {}))
    lines += ["## Schemas", ""]
    for name, schema in sorted(components.get("schemas", {}).items()):
        lines += [f"### {name} {{#schema-{name.lower()}}}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        if not properties:
            lines += [f"{_type(schema)}.", ""]
            continue
        lines += ["| field | type | required | constraints, meaning |", "|---|---|---|---|"]
        for field, spec in properties.items():
            meaning = "; ".join(t for t in (_constraints(spec), _cell(spec.get("description", ""))) if t)
            lines.append(f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration,
    "cli": cli_reference,
    "routes": routes,
    "openapi": http_reference,
}


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replaces each ``<!-- generated: NAME -->`` line by what ``GENERATORS[NAME]`` makes now."""

    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"unknown generated part {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generate, markdown)
