"""``nnserve audit``: who did what to which model, read from the store's audit log (where the store is)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from service import config
from service.cli.console import table
from service.cli.options import UserError, store_exists, store_option
from service.store import InvalidNameError, configured_audit_log, validate_name


def parse_since(text: str) -> float:
    """Unix time of an ISO 8601 time (UTC unless it names a zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--since wants an ISO 8601 time such as 2026-01-31T12:00:00Z, not {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@click.command(short_help="Admin actions and feedback calls: who, when, which model, how it ended.")
@click.option("--model", help="Only this model's entries.")
@click.option("--since", help="Only entries at or after this ISO 8601 time (UTC unless it says).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Newest N entries.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON (as GET /v1/audit does).")
@store_option
def audit(model: str | None, since: str | None, limit: int, as_json: bool, store_root: Path) -> None:
    """Print the store's audit log, newest first: every admin action (activate, retrain, cancel, rollout stop,
    key create and revoke, feedback purge, secret rotation, gc) and every feedback call, refused ones too, with
    the key id that made it (`bootstrap`: NNSERVE_ADMIN_TOKEN; `token`: feedback tokens; `cli`: a command run
    where the store is; `-`: no credential), the time (UTC), the model and the outcome.

    \b
    Examples:
      nnserve audit --model iris --since 2026-01-31T00:00:00Z
      nnserve audit --json
    """
    try:
        name = None if model is None else validate_name(model)
    except InvalidNameError as exc:
        raise UserError(exc) from None
    start = None if since is None else parse_since(since)
    if not store_exists(store_root):
        raise UserError(f"no model store at {store_root}: point --store / NNSERVE_STORE at one")
    entries = configured_audit_log(store_root, config.from_environ()).entries(name, start, limit)
    shown = [e.to_json() for e in entries]
    click.echo(json.dumps({"entries": shown}, indent=2) if as_json else audit_table(shown))


def audit_table(entries: list[dict[str, Any]]) -> str:
    """Entries (as ``GET /v1/audit`` shows them) as a table; ``-`` where a field is empty."""
    columns = ("at", "actor", "action", "model", "outcome", "status", "detail")
    return table(list(columns), [[str(e[c]) if e[c] is not None else "-" for c in columns] for e in entries])
