"""nnserve's HTTP service, model store, catalog, training and CLI.

``service.create_app`` is imported lazily so the CLI and the store do not pay
for Flask when they do not serve.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.server.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
