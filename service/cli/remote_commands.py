"""``nnserve remote ...``: a running nnserve over HTTP, through :mod:`service.client`; and ``nnserve openapi``.

Errors the server answers (or a server that does not answer) end with the
server's message on stderr and exit code 1, never a traceback. The key is read from
``NNSERVE_KEY`` (or the admin token from ``NNSERVE_ADMIN_TOKEN``) and is never printed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click
from marshmallow import ValidationError

from service.cli.audit_commands import audit_table
from service.cli.console import explanation_tables, table
from service.cli.options import UserError, explain_options
from service.client import DEFAULT_URL, Client, Job, NnserveError
from service.training.jobs import PROMOTE_CHOICES
from service.training.retrain import ROLLOUT_RANGES

WATCH_LIMIT = 3600.0  # seconds `jobs --watch` refreshes at most


@contextmanager
def server_errors() -> Iterator[None]:
    """The server's refusals, and the client's own of what it cannot send (``ValueError``: NaN in rows), as
    one-line errors."""
    try:
        yield
    except (NnserveError, ValueError) as exc:
        raise UserError(exc) from None


def emit(as_json: bool, value: Any, text: Callable[[], str]) -> None:
    if as_json:
        plain = dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
        click.echo(json.dumps(plain, indent=2))
    else:
        click.echo(text())


json_option = click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")


url_option = click.option(
    "--url", envvar="NNSERVE_URL", default=DEFAULT_URL, show_default=True, show_envvar=True, help="The server."
)
timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds per request."
)


key_option = click.option(
    "--key",
    envvar="NNSERVE_KEY",
    show_envvar=True,
    help="API key to send (sent instead of --token). Prefer the environment variable: a flag is visible in `ps`.",
)


def make_client(url: str, timeout: float, token: str | None = None, key: str | None = None) -> Client:
    """The client of ``--url``; a malformed URL is a usage error naming the option."""
    try:
        return Client(url, token=token or None, timeout=timeout, key=key or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None


@click.group()
@url_option
@click.option(
    "--token",
    envvar="NNSERVE_ADMIN_TOKEN",
    show_envvar=True,
    help="Admin token for activate and retrain. Prefer the environment variable: a flag is visible in `ps`.",
)
@key_option
@timeout_option
@click.pass_context
def remote(ctx: click.Context, url: str, token: str | None, key: str | None, timeout: float) -> None:
    """Talk to a running nnserve (NNSERVE_URL) over its HTTP API.

    \b
    Examples:
      nnserve remote models
      nnserve remote predict iris flowers.csv
      echo '[[5.1, 3.5, 1.4, 0.2]]' | nnserve remote predict iris - --json
      NNSERVE_KEY=nns_... nnserve remote retrain iris -p epochs=20 --wait
      nnserve remote jobs --watch
    """
    ctx.obj = make_client(url, timeout, token, key)


def _read_rows(source: TextIO) -> list[Any]:
    """Rows from JSON (a list of rows, or ``{"instances": [...]}``) or CSV (a header of feature names, or none)."""
    text = source.read()
    if text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError(f"input is not valid JSON: {exc}") from None
        rows = data.get("instances") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise UserError('JSON input must be a list of rows or {"instances": [...]}')
        return rows
    records = [r for r in csv.reader(io.StringIO(text)) if r]
    if not records:
        raise UserError("no rows in the input")
    try:
        return [[float(v) for v in row] for row in records]
    except ValueError:
        pass
    header, *body = records
    try:
        return [dict(zip(header, (float(v) for v in row), strict=True)) for row in body]
    except ValueError as exc:
        raise UserError(f"a CSV row is not numbers matching the header {header}: {exc}") from None


@remote.command("predict")
@click.argument("name")
@click.argument("source", type=click.File("r"), default="-")
@click.option("--version", type=click.IntRange(min=1), help="A pinned version instead of the active one.")
@json_option
@click.pass_obj
def predict_remote(client: Client, name: str, source: TextIO, version: int | None, as_json: bool) -> None:
    """Predict rows from SOURCE (CSV or JSON; - is stdin) with model NAME."""
    rows = _read_rows(source)
    with server_errors():
        result = client.predict(name, rows, version)

    def text() -> str:
        headers = ["row", "prediction"] + (["probability"] if result.probabilities else [])
        lines = []
        for i, value in enumerate(result.predictions):
            line = [str(i), json.dumps(value) if isinstance(value, list) else str(value)]
            if result.probabilities:
                line.append(f"{max(result.probabilities[i]):.4f}")
            lines.append(line)
        return f"{result.model} version {result.version}\n" + table(headers, lines)

    emit(as_json, result, text)


@remote.command("explain")
@click.argument("name")
@click.argument("source", type=click.File("r"), default="-")
@click.option("--version", type=click.IntRange(min=1), help="A pinned version instead of the active one.")
@explain_options
@json_option
@click.pass_obj
def explain_remote(
    client: Client,
    name: str,
    source: TextIO,
    version: int | None,
    method: str,
    target: str | None,
    steps: int | None,
    baseline: str | list[float],
    top: int,
    as_json: bool,
) -> None:
    """Explain model NAME's predictions for rows from SOURCE (CSV or JSON; - is stdin): each feature's
    attribution, largest first. A --target that reads as an integer is sent as one (integer class labels)."""
    rows = _read_rows(source)
    wanted: Any = int(target) if target is not None and target.lstrip("-").isdigit() else target
    with server_errors():
        result = client.explain(
            name, rows, target=wanted, method=method, steps=steps, baseline=baseline, version=version
        )
    emit(as_json, result, lambda: explanation_tables(dataclasses.asdict(result), top))


@remote.command("models")
@click.argument("name", required=False)
@json_option
@click.pass_obj
def models_remote(client: Client, name: str | None, as_json: bool) -> None:
    """The served models, or one model's versions with NAME."""
    with server_errors():
        if name is None:
            found = client.models()
            rows = [[m.name, str(m.version), m.task, str(m.n_features)] for m in found]
            emit(
                as_json,
                [dataclasses.asdict(m) for m in found],
                lambda: table(["model", "active", "task", "features"], rows),
            )
            return
        detail = client.model(name)
    rows = [
        [str(v.version), "*" if v.active else "", "ok" if v.ok else f"broken: {v.error}", v.created_at or ""]
        for v in detail.versions
    ]
    emit(
        as_json,
        detail,
        lambda: f"{detail.name} ({detail.task})\n" + table(["version", "active", "state", "created"], rows),
    )


@remote.command("activate")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@json_option
@click.pass_obj
def activate_remote(client: Client, name: str, version: int, as_json: bool) -> None:
    """Make VERSION of NAME the active one on the server (admin)."""
    with server_errors():
        done = client.activate(name, version)
    emit(as_json, done, lambda: f"{done.model}: version {done.version} active (was {done.previous_version})")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _rollout_range(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """The server's rule for a rollout option (``ROLLOUT_RANGES``), checked before anything is sent."""
    if value is not None and param.name is not None:
        try:
            ROLLOUT_RANGES[param.name](value)
        except ValidationError as exc:
            raise click.BadParameter(str(exc.messages[0])) from None
    return value


@remote.command("retrain")
@click.argument("name")
@click.option("--data", type=click.File("r"), help="CSV of new rows with a header; the last column is the target.")
@click.option("--mode", type=click.Choice(["append", "replace"]), default="append", show_default=True)
@click.option(
    "--feedback",
    type=click.Choice(["train", "evaluate"]),
    help="Instead of --data: train on the labelled predictions (evaluate: and be scored on a held-out share).",
)
@click.option(
    "--promote",
    type=click.Choice(PROMOTE_CHOICES),
    default="if_better",
    show_default=True,
    help="canary and shadow try the new version on live traffic first; the retraining worker decides.",
)
@click.option("--canary-fraction", type=float, callback=_rollout_range, help="Share a canary answers.")
@click.option(
    "--min-requests", type=int, callback=_rollout_range, help="Requests a canary or shadow needs for its verdict."
)
@click.option("--max-duration", type=float, callback=_rollout_range, help="Seconds a canary or shadow runs at most.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A hyperparameter, e.g. epochs=20.")
@click.option("--wait", "wait_s", type=float, is_flag=False, flag_value=600.0, help="Wait (up to SECONDS) for the job.")
@json_option
@click.pass_obj
def retrain_remote(
    client: Client,
    name: str,
    data: TextIO | None,
    mode: str,
    feedback: str | None,
    promote: str,
    canary_fraction: float | None,
    min_requests: int | None,
    max_duration: float | None,
    params: tuple[str, ...],
    wait_s: float | None,
    as_json: bool,
) -> None:
    """Queue a retraining of NAME on the server (admin); --wait follows it to the end (for a canary or shadow,
    the end of the job that starts it: `nnserve monitoring NAME` follows the rollout)."""
    options = {"canary_fraction": canary_fraction, "min_requests": min_requests, "max_duration": max_duration}
    hyper = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        hyper[key] = _parse_value(value)
    instances = targets = None
    if data is not None:
        records = [r for r in csv.reader(data) if r]
        if len(records) < 2:
            raise UserError("--data needs a header and at least one row")
        header, body = records[0][:-1], records[1:]
        try:
            instances = [dict(zip(header, (float(v) for v in r[:-1]), strict=True)) for r in body]
        except ValueError as exc:
            raise UserError(f"a --data row is not numbers matching the header: {exc}") from None
        targets = [_parse_value(r[-1]) for r in body]
    with server_errors():
        rollout = {k: v for k, v in options.items() if v is not None}
        job = client.retrain(
            name,
            instances,
            targets,
            mode=mode,
            promote=promote,
            hyperparameters=hyper or None,
            rollout=rollout,
            feedback=feedback,
        )
        if wait_s is not None:
            job = client.wait(job, timeout=wait_s)
    emit(as_json, job, lambda: _job_line(job))
    if wait_s is not None and job.status != "succeeded":
        sys.exit(1)


def _job_row(job: Job) -> list[str]:
    """id, model, status, and what it did: the version it made, its progress or its error."""
    detail = job.error or ""
    if job.result:
        detail = f"version {job.result.get('version')} {'promoted' if job.result.get('promoted') else 'not promoted'}"
    elif job.progress:
        detail = f"epoch {job.progress.get('epoch')}/{job.progress.get('epochs')}"
    return [job.id, job.model, job.status, detail]


def _job_line(job: Job) -> str:
    return "  ".join(_job_row(job)).rstrip()


@remote.command("jobs")
@click.option("--model", help="Only this model's jobs.")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--watch", is_flag=True, help="Refresh until every shown job is final (at most an hour).")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="Seconds between refreshes."
)
@json_option
@click.pass_obj
def jobs_remote(
    client: Client, model: str | None, status: str | None, limit: int, watch: bool, interval: float, as_json: bool
) -> None:
    """Retraining jobs, newest first."""
    deadline = time.monotonic() + WATCH_LIMIT
    with server_errors():
        page = client.jobs(model, status, limit)
        while watch and not all(j.final for j in page.jobs) and time.monotonic() < deadline:
            if not as_json:
                click.echo(table(["id", "model", "status", "detail"], [_job_row(j) for j in page.jobs]) + "\n")
            time.sleep(interval)
            page = client.jobs(model, status, limit)
    emit(as_json, page, lambda: table(["id", "model", "status", "detail"], [_job_row(j) for j in page.jobs]))


@remote.command("cancel")
@click.argument("job_id")
@json_option
@click.pass_obj
def cancel_remote(client: Client, job_id: str, as_json: bool) -> None:
    """Cancel job JOB_ID (admin): a queued job never runs; a running one stops at its next epoch, publishing nothing."""
    with server_errors():
        job = client.cancel(job_id)
    emit(as_json, job, lambda: _job_line(job))


@remote.command("audit")
@click.option("--model", help="Only this model's entries.")
@click.option("--since", help="Only entries at or after this ISO 8601 time (UTC unless it says).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@click.pass_obj
def audit_remote(client: Client, model: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """The server's audit log (admin), newest first: admin actions and feedback calls, refused ones too."""
    with server_errors():
        found = [dataclasses.asdict(e) for e in client.audit(model, since, limit)]
    emit(as_json, {"entries": found}, lambda: audit_table(found))


@click.command("openapi")
def openapi() -> None:
    """Print the server's OpenAPI document (pretty, sorted keys): `nnserve openapi > openapi.json`."""
    from service.server.app import create_app  # the server only for this command: `remote` needs none of it

    with tempfile.TemporaryDirectory() as store:
        app = create_app({"TESTING": True, "NNSERVE_STORE": store})
        document = app.test_client().get("/openapi.json").get_json()
    click.echo(json.dumps(document, indent=2, sort_keys=True))
