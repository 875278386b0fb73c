"""``nnserve monitoring NAME`` (live metrics and drift of a running server), ``nnserve feedback NAME FILE.csv``
(ground truth for logged predictions), and, where the store is, ``nnserve monitoring prune`` (the prediction log's
retention), ``nnserve feedback purge`` (a key's labels) and ``nnserve feedback rotate-secret`` (feedback tokens)."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from service import config
from service.cli.console import table
from service.cli.options import UserError, audited, store_exists, store_option
from service.cli.remote_commands import (
    emit,
    json_option,
    key_option,
    make_client,
    server_errors,
    timeout_option,
    url_option,
)
from service.client import Monitoring, Rollout, VersionMonitoring
from service.store import InvalidNameError, validate_name
from service.store.monitoring import FEEDBACK_SECRET, PredictionLog, open_prediction_log
from service.training.drift import psi_band


class _NameOrCommand(click.Group):
    """``nnserve monitoring NAME`` shows model NAME (``nnserve feedback NAME FILE`` sends labels); ``nnserve
    monitoring prune`` is the command."""

    default = "show"

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return self.default, self.commands[self.default], args
        return super().resolve_command(ctx, args)


class _SendOrCommand(_NameOrCommand):
    default = "send"


@click.group(cls=_NameOrCommand)
def monitoring() -> None:
    """Live metrics and drift of a model on a running server; the prediction log's retention.

    \b
    Examples:
      nnserve monitoring iris                       live metrics and the drift table (NNSERVE_URL)
      nnserve monitoring iris --window 500 --json
      nnserve monitoring prune                      keep NNSERVE_LOG_KEEP_ROWS rows and NNSERVE_LOG_KEEP_DAYS days
    """


def _report(found: Monitoring) -> str:
    metrics = sorted({m for v in found.versions for m in v.metrics})
    rows = [
        [
            str(v.version),
            "*" if v.active else "",
            str(v.rows),
            str(v.labelled),
            *(f"{v.metrics[m]:.4f}" if m in v.metrics else "-" for m in metrics),
        ]
        for v in found.versions
    ]
    if found.computed_at is None:
        out = [f"{found.model}: no figures over the newest {found.window} logged rows per version: {found.reason}"]
    else:
        out = [
            f"{found.model}: newest {found.window} logged rows per version, computed {_ago(found.computed_at)}",
            table(["version", "active", "rows", "labelled", *metrics], rows),
        ]
    for version in found.versions:
        out += ["", _drift(version)]
    if found.labels:
        given = [f"{c.key or c.source or 'no source'} {c.rows}" for c in found.labels]
        out += ["", "labelled rows by who gave them: " + ", ".join(given)]
    dropped = [f"{reason} {rows}" for reason, rows in found.dropped.items() if rows]
    if dropped:
        out += ["", "rows not logged (since the server started): " + ", ".join(dropped)]
    if found.rollout is not None:
        out += ["", _rollout(found.rollout)]
    return "\n".join(out)


def _ago(stamp: str) -> str:
    """A snapshot's time (ISO 8601 UTC) as the retraining worker's clock gave it, and its age on this one."""
    at = datetime.fromisoformat(stamp)
    shown = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"at {shown} ({max(time.time() - at.timestamp(), 0.0):.0f} s ago) by the retraining worker"


def _rollout(rollout: Rollout) -> str:
    """The rollout in a few lines: what runs against what, how it stands (or ended, and why)."""
    share = f"{rollout.fraction:.0%} of requests" if rollout.mode == "canary" else "a copy of every request"
    head = f"{rollout.mode} of version {rollout.candidate} against {rollout.baseline} ({share}): "
    if not rollout.running:
        return head + f"{rollout.state}: {rollout.reason}"
    figures = rollout.figures
    sides = [figures.get(k) or {} for k in ("candidate", "active")]
    lines = [head + f"running, {sides[0].get('requests', 0)} of {rollout.min_requests} requests"]
    rows = [
        [str(s.get("version", "")), str(s.get("requests", 0)), str(s.get("errors", 0)), str(s.get("labelled", 0)),
         ", ".join(f"{k} {v:.4f}" for k, v in (s.get("metrics") or {}).items())]
        for s in sides
    ]  # fmt: skip
    lines.append(table(["version", "requests", "errors", "labelled", "live metrics"], rows))
    if figures.get("agreement") is not None:
        lines.append(f"agreement with the active version: {figures['agreement']:.1%}")
    return "\n".join(lines)


def _drift(version: VersionMonitoring) -> str:
    drift = version.drift
    if not drift.available:
        return f"drift of version {version.version}: unavailable ({drift.reason})"
    rows = [[f.name, f"{f.psi:.4f}", psi_band(f.psi)] for f in drift.features]
    if drift.predictions is not None:
        rows.append(["(predictions)", f"{drift.predictions:.4f}", psi_band(drift.predictions)])
    head = f"drift of version {version.version} over {drift.rows} rows (PSI: < 0.1 stable, 0.1-0.25 moderate)"
    return head + "\n" + table(["feature", "psi", ""], rows)


@monitoring.command(short_help="Live metrics and drift of model NAME (the default: `nnserve monitoring NAME`).")
@click.argument("name")
@click.option(
    "--window",
    type=click.IntRange(min=1),
    help="Newest logged rows per version (server default; at most its NNSERVE_MONITOR_MAX_WINDOW).",
)
@json_option
@url_option
@key_option
@timeout_option
def show(name: str, window: int | None, as_json: bool, url: str, key: str | None, timeout: float) -> None:
    """Live metrics (accuracy, log loss; or MAE, RMSE, R2) per version, with the rows they rest on, each
    version's drift table: PSI of every feature and of the predictions against its training data, and the
    model's canary or shadow rollout, as the server's retraining worker last computed them (each policy pass;
    a window other than the server's default and maximum is computed from its next pass on)."""
    with server_errors():
        found = make_client(url, timeout, key=key).monitoring(name, window)
    emit(as_json, found, lambda: _report(found))


@monitoring.command(short_help="Remove old rows of the prediction log.")
@click.option(
    "--keep-rows", type=click.IntRange(min=1), help="Keep the newest N rows per model (default NNSERVE_LOG_KEEP_ROWS)."
)
@click.option(
    "--keep-days", type=click.FloatRange(min=0), help="Remove rows older than D days (default NNSERVE_LOG_KEEP_DAYS)."
)
@store_option
def prune(keep_rows: int | None, keep_days: float | None, store_root: Path) -> None:
    """Remove the prediction log's rows beyond the newest N of each model and those older than D days.

    The retraining worker applies the same rule (from the settings) at each of its policy passes.
    """
    settings = config.from_environ()
    rows = keep_rows if keep_rows is not None else int(settings["NNSERVE_LOG_KEEP_ROWS"])
    days = keep_days if keep_days is not None else float(settings["NNSERVE_LOG_KEEP_DAYS"])
    removed = _local_log(store_root).prune(rows, days)
    for name, count in sorted(removed.items()):
        click.echo(f"{name}: {count} rows removed")
    click.echo(f"kept at most {rows} rows per model, none older than {days:g} days; {sum(removed.values())} removed")


def _local_log(store_root: Path) -> PredictionLog:
    """The prediction log of the store here (NNSERVE_DATABASE_URL's, if set)."""
    if not store_exists(store_root):
        raise UserError(f"{store_root}: no such store")
    return open_prediction_log(store_root, config.from_environ()["NNSERVE_DATABASE_URL"])


def _target(text: str, task: str, classes: list[Any] | None) -> Any:
    """A CSV cell as the model's target type: an integer class, a string class, or a number."""
    if task == "classification" and not all(isinstance(c, int) for c in classes or []):
        return text
    try:
        return int(text) if task == "classification" else float(text)
    except ValueError:
        return text  # the server names the row and why


@click.group(cls=_SendOrCommand)
def feedback() -> None:
    """Ground truth for logged predictions; a key's labels and the feedback tokens' secret, where the store is.

    \b
    Examples:
      nnserve feedback iris labels.csv          send labels (request_id,target[,row][,feedback_token]; NNSERVE_URL)
      nnserve feedback purge iris --key k_1f2e  remove every label key k_1f2e gave to iris
      nnserve feedback rotate-secret            every feedback token issued so far stops working
    """


@feedback.command(short_help="Remove every label one key gave to model NAME (where the store is).")
@click.argument("name")
@click.option("--key", "key", required=True, help="The key id (`bootstrap`: the admin token).")
@store_option
def purge(name: str, key: str, store_root: Path) -> None:
    """Remove every label key ID gave to model NAME's logged predictions: they count for nothing and may be
    labelled again. Run it where the store is (its files or NNSERVE_DATABASE_URL): an operator's command."""
    try:
        name = validate_name(name)
    except InvalidNameError as exc:
        raise UserError(str(exc)) from None
    with audited(store_root, "feedback-purge", name) as noted:
        removed = _local_log(store_root).purge_labels(name, key)
        noted["detail"] = f"{removed} labels of key {key} removed"
    click.echo(f"{name}: {removed} logged rows lost the label key {key} gave")


@feedback.command("rotate-secret", short_help="Replace the feedback tokens' secret (where the store is).")
@store_option
def rotate_secret(store_root: Path) -> None:
    """Replace the secret feedback tokens are signed with: every token issued before stops working (every web
    worker picks up the new one within seconds). Run it where the store is."""
    with audited(store_root, "rotate-secret"):
        _local_log(store_root).secret(FEEDBACK_SECRET, rotate=True)
    click.echo("feedback token secret rotated: tokens issued before no longer authorize feedback")


@feedback.command(short_help="Send ground truth for logged predictions from a CSV (request_id,target[,row]).")
@click.argument("name")
@click.argument("source", type=click.File("r"), metavar="FILE.csv")
@json_option
@url_option
@key_option
@timeout_option
def send(name: str, source: TextIO, as_json: bool, url: str, key: str | None, timeout: float) -> None:
    """Send the true targets of predictions model NAME logged, from FILE.csv (- is stdin) with the header
    request_id,target (and row, for requests that predicted several rows; feedback_token, to send without a
    key). Labels whose prediction is not in the log, and rows already labelled, are listed; a target the
    model cannot take fails the whole file with the row it is on. A key (--key / NNSERVE_KEY) needs the
    ``feedback`` scope."""
    reader = csv.DictReader(source)
    if not {"request_id", "target"} <= set(reader.fieldnames or []):
        raise UserError(f"{source.name}: the header must name request_id and target (got {reader.fieldnames})")
    client = make_client(url, timeout, key=key)
    with server_errors():
        model = client.model(name)
        labels = []
        for line in reader:
            label: dict[str, Any] = {
                "request_id": line["request_id"],
                "target": _target(line["target"], model.task, model.classes),
            }
            if line.get("row"):
                label["row"] = int(line["row"])
            if line.get("feedback_token"):
                label["feedback_token"] = line["feedback_token"]
            labels.append(label)
        if not labels:
            raise UserError(f"{source.name}: no rows")
        result = client.feedback(name, labels)

    def text() -> str:
        lines = [f"{result.model}: {result.accepted} labels joined to logged predictions"]
        lines += [f"not in the log: {u['request_id']} (row {u['row']})" for u in result.unlogged]
        lines += [f"already labelled, kept: {c['request_id']} (row {c['row']})" for c in result.conflicts]
        return "\n".join(lines)

    emit(as_json, result, text)
