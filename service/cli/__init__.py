"""The ``nnserve`` command line: the click group and its commands."""

from service.cli.main import main

__all__ = ["main"]
