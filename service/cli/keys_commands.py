"""``nnserve keys``: create, list and revoke the API keys of a store (filesystem or PostgreSQL).

A key is printed once, at creation; the store keeps only the SHA-256 of its secret.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from service import config
from service.cli.console import table
from service.cli.options import UserError, audited, store_option
from service.store import SCOPES, InvalidNameError, KeyStore, NotFoundError, open_key_store


def _keys(root: Path) -> KeyStore:
    return open_key_store(root, config.value("NNSERVE_DATABASE_URL"))


@click.group(short_help="API keys: create, list, revoke.")
def keys() -> None:
    """API keys with scopes (predict, feedback, admin; admin implies the others), optionally limited to models.

    \b
    Examples:
      nnserve keys create shop-frontend --scope predict --scope feedback --model iris
      nnserve keys create ops --scope admin --expires-days 90 --json
      nnserve keys list
      nnserve keys revoke 3f2a9c01b7de
    """


@keys.command()
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES), help="Repeatable.")
@click.option("--model", "models", multiple=True, help="Limit the key to this model (repeatable; default: every one).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), help="Days until the key expires.")
@click.option("--json", "as_json", is_flag=True, help="Print id, key, name, scopes, models, expires as JSON.")
@store_option
def create(
    name: str,
    scopes: tuple[str, ...],
    models: tuple[str, ...],
    expires_days: float | None,
    as_json: bool,
    store_root: Path,
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    try:
        with audited(store_root, "key-create") as noted:
            record, key = _keys(store_root).create(name, scopes, models, expires_days)
            noted["detail"] = f"key {record.id} ({record.name}): {', '.join(record.scopes)}"
    except InvalidNameError as exc:
        raise UserError(exc) from None
    shown = record.public()
    if as_json:
        click.echo(
            json.dumps(
                {"id": record.id, "key": key, **{k: shown[k] for k in ("name", "scopes", "models", "expires")}},
                indent=2,
            )
        )
        return
    click.echo(key)
    click.echo(
        f"key {record.id} ({', '.join(record.scopes)}; models: {', '.join(record.models) or 'every one'}; "
        f"expires: {shown['expires'] or 'never'}): keep it now, it is not shown again",
        err=True,
    )


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
@store_option
def list_keys(as_json: bool, store_root: Path) -> None:
    """Every key: id, name, scopes, models, created, expires, last used, revoked (never the secret)."""
    records = [r.public() for r in _keys(store_root).records()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no keys: create one with `nnserve keys create NAME --scope ...`")
        return
    columns = ("id", "name", "scopes", "models", "created", "expires", "last_used", "revoked")
    rows = [[", ".join(v) if isinstance(v, list) else (v or "-") for v in (r[c] for c in columns)] for r in records]
    click.echo(table([c.replace("_", " ") for c in columns], rows))


@keys.command()
@click.argument("key_id", metavar="ID")
@store_option
def revoke(key_id: str, store_root: Path) -> None:
    """Revoke a key: every web worker and replica answers it 401 within a second."""
    try:
        with audited(store_root, "key-revoke") as noted:
            record = _keys(store_root).revoke(key_id)
            noted["detail"] = f"key {record.id} ({record.name})"
    except NotFoundError as exc:
        raise UserError(exc) from None
    click.echo(f"revoked key {record.id} ({record.name})")
