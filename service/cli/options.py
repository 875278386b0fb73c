"""What every ``nnserve`` command shares: the user error, the store and models-dir options, store access."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from service.store import ModelStore, NotFoundError, open_store

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


# ``--store`` (NNSERVE_STORE, default ./store), passed as ``store_root``.
store_option = _directory_option("--store", "store_root", "NNSERVE_STORE", "./store", "Model store directory.")
# ``--models-dir`` (NNSERVE_MODELS, default ./models), passed as ``models_dir``.
models_dir_option = _directory_option(
    "--models-dir", "models_dir", "NNSERVE_MODELS", "./models", "Where --all and bare model names look for specs."
)


def existing_store(root: Path) -> ModelStore:
    """The store at ``root``; reading commands refuse a missing one instead of creating it."""
    if not root.is_dir():
        raise UserError(f"no model store at {root}: train a model first, or point --store / NNSERVE_STORE at one")
    return open_store(root)


@contextmanager
def naming_store(root: Path) -> Iterator[None]:
    """Add the store's path to "unknown model/version" errors: the usual cause is the wrong store."""
    try:
        yield
    except NotFoundError as exc:
        raise UserError(f"{exc} (store: {root})") from None
