"""``nnserve db``: the PostgreSQL schema (``upgrade``, ``status``) and ``nnserve store copy`` between backends."""

from __future__ import annotations

import click

from service.cli.options import UserError
from service.store import StoreError, migrations, require_postgres

_url_option = click.option(
    "--database-url",
    envvar="NNSERVE_DATABASE_URL",
    required=True,
    show_envvar=True,
    help="postgresql:// URL of the database.",
)


@click.group(short_help="The PostgreSQL schema: upgrade, status.")
def db() -> None:
    """Manage the schema of the PostgreSQL database (serve and worker also upgrade it at start)."""


@db.command()
@_url_option
def upgrade(database_url: str) -> None:
    """Apply the pending migrations (once, even with many replicas starting at the same time)."""
    try:
        require_postgres()  # psycopg comes with the postgres extra
        from service.store.postgres import upgrade as upgrade_schema

        applied = upgrade_schema(database_url)
    except StoreError as exc:
        raise UserError(exc) from None
    for migration in applied:
        click.echo(f"applied {migration.version}: {migration.name}")
    click.echo("the schema is up to date" if not applied else f"{len(applied)} migration(s) applied")


@db.command()
@_url_option
def status(database_url: str) -> None:
    """Print the applied and the pending migrations; exit 1 when some are pending."""
    try:
        require_postgres()
        from service.store.postgres import connect

        with connect(database_url) as conn:
            state = migrations.status(conn)
    except StoreError as exc:
        raise UserError(exc) from None
    names = {m.version: m.name for m in migrations.MIGRATIONS}
    for version in state.applied:
        click.echo(f"applied  {version}: {names.get(version, '(unknown to this nnserve)')}")
    for migration in state.pending:
        click.echo(f"pending  {migration.version}: {migration.name}")
    if state.pending:
        raise SystemExit(1)
