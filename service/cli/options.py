"""What every ``nnserve`` command shares: the user error, the store and models-dir options, store access."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from service import config
from service.store import (
    EXPLAIN_METHODS,
    AuditEntry,
    ModelStore,
    NotFoundError,
    StoreError,
    configured_audit_log,
    open_store,
)
from service.store.audit import CLI

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """Exit code 1 with ``Error: <one line>`` on stderr."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


def _directory_option(flag: str, dest: str, envvar: str, default: str, help_text: str) -> Callable[[F], F]:
    """A directory option read from ``envvar`` when not given, shown with its default and variable."""
    decorator: Callable[[F], F] = click.option(
        flag,
        dest,
        type=click.Path(path_type=Path),
        envvar=envvar,
        default=default,
        show_default=True,
        show_envvar=True,
        help=help_text,
    )
    return decorator


def _export_database_url(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # The environment carries it to what the command starts: gunicorn's workers, the retraining worker.
    if value:
        os.environ["NNSERVE_DATABASE_URL"] = value


_database_url_option = click.option(
    "--database-url",
    envvar="NNSERVE_DATABASE_URL",
    expose_value=False,
    is_eager=True,
    callback=_export_database_url,
    show_envvar=True,
    help="postgresql:// URL: keep models and jobs in PostgreSQL (--store is then this node's cache).",
)
_store_dir_option = _directory_option("--store", "store_root", "NNSERVE_STORE", "./store", "Model store directory.")


def store_option(command: F) -> F:
    """``--store`` (NNSERVE_STORE, default ./store), passed as ``store_root``, and ``--database-url``."""
    return _database_url_option(_store_dir_option(command))


def store_exists(root: Path) -> bool:
    """Whether there is a store to read: the directory, or the database when one is configured."""
    return root.is_dir() or bool(config.value("NNSERVE_DATABASE_URL"))


def store_at(root: Path) -> ModelStore:
    """The store at ``root``, or in the database of ``--database-url`` / NNSERVE_DATABASE_URL when one is set."""
    return open_store(root, config.value("NNSERVE_DATABASE_URL"))


# ``--models-dir`` (NNSERVE_MODELS, default ./models), passed as ``models_dir``.
models_dir_option = _directory_option(
    "--models-dir", "models_dir", "NNSERVE_MODELS", "./models", "Where --all and bare model names look for specs."
)


def existing_store(root: Path) -> ModelStore:
    """The store at ``root``; reading commands refuse a missing one instead of creating it."""
    if not store_exists(root):
        raise UserError(f"no model store at {root}: train a model first, or point --store / NNSERVE_STORE at one")
    return store_at(root)


@contextmanager
def naming_store(root: Path) -> Iterator[None]:
    """Add the store's path to "unknown model/version" errors: the usual cause is the wrong store."""
    try:
        yield
    except NotFoundError as exc:
        raise UserError(f"{exc} (store: {root})") from None


@contextmanager
def audited(root: Path, action: str, model: str | None = None) -> Iterator[dict[str, str]]:
    """Record the admin action the block performs in the store's audit log, as actor ``cli``: ``ok`` with the
    ``detail`` the block puts in the yielded dict, or ``failed`` with the error that ends it (then raised).
    An entry that cannot be written is a warning: the action itself already happened, or failed."""
    noted = {"detail": ""}
    try:
        yield noted
    except Exception as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        _record(root, AuditEntry(action, "failed", CLI, model, None, message))
        raise
    _record(root, AuditEntry(action, "ok", CLI, model, None, noted["detail"]))


def _record(root: Path, entry: AuditEntry) -> None:
    try:
        configured_audit_log(root, config.from_environ()).record(entry)
    except StoreError as exc:
        click.echo(f"Warning: the audit log did not record this {entry.action}: {exc}", err=True)


def _baseline(ctx: click.Context, param: click.Parameter, value: str) -> str | list[float]:
    """``mean``, ``zeros`` or a row of comma-separated numbers."""
    if value in ("mean", "zeros"):
        return value
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter("give 'mean', 'zeros' or a row of comma-separated numbers") from None


def explain_options(command: F) -> F:
    """``--method``, ``--target``, ``--steps``, ``--baseline`` and ``--top``: what ``explain`` and ``remote
    explain`` take."""
    for option in reversed(
        (
            click.option(
                "--method",
                type=click.Choice(EXPLAIN_METHODS),
                default=EXPLAIN_METHODS[0],
                show_default=True,
                help="Attribution method.",
            ),
            click.option("--target", default=None, help="Class to explain (default: each row's predicted class)."),
            click.option(
                "--steps",
                type=click.IntRange(min=1),
                default=None,
                help="Integrated gradients' steps [default: 32, or NNSERVE_EXPLAIN_MAX_STEPS when lower].",
            ),
            click.option(
                "--baseline",
                default="mean",
                show_default=True,
                callback=_baseline,
                help="'mean' (the training rows' means), 'zeros', or a row of comma-separated numbers.",
            ),
            click.option(
                "--top",
                type=click.IntRange(min=0),
                default=10,
                show_default=True,
                help="Features shown per row, largest attribution first (0: every one).",
            ),
        )
    ):
        command = option(command)
    return command
