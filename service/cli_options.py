"""What every ``nnserve`` command shares: the user error, the store and models-dir options, store access."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from .store import ModelStore, NotFoundError

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """Exit code 1 with ``Error: <one line>`` on stderr."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


def store_option(func: F) -> F:
    """``--store`` (``NNSERVE_STORE``, default ``./store``), passed as ``store_root``."""
    option: F = click.option(
        "--store",
        "store_root",
        type=click.Path(path_type=Path),
        envvar="NNSERVE_STORE",
        default="./store",
        show_default=True,
        show_envvar=True,
        help="Model store directory.",
    )(func)
    return option


def models_dir_option(func: F) -> F:
    """``--models-dir`` (``NNSERVE_MODELS``, default ``./models``), passed as ``models_dir``."""
    option: F = click.option(
        "--models-dir",
        type=click.Path(path_type=Path),
        envvar="NNSERVE_MODELS",
        default="./models",
        show_default=True,
        show_envvar=True,
        help="Where --all and bare model names look for specs.",
    )(func)
    return option


def open_store(root: Path) -> ModelStore:
    """The store at ``root``; reading commands refuse a missing one instead of creating it."""
    if not root.is_dir():
        raise UserError(f"no model store at {root}: train a model first, or point --store / NNSERVE_STORE at one")
    return ModelStore(root)


@contextmanager
def naming_store(root: Path) -> Iterator[None]:
    """Add the store's path to "unknown model/version" errors: the usual cause is the wrong store."""
    try:
        yield
    except NotFoundError as exc:
        raise UserError(f"{exc} (store: {root})") from None
