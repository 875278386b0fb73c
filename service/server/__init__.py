"""The HTTP server: the Flask app factory, the v1 and v2 protocols, loaded models, gunicorn settings.

``create_app`` is imported lazily: the gunicorn master imports this package
for its worker class (``buffering_worker``) before the config file has set
``PROMETHEUS_MULTIPROC_DIR``, and prometheus-client must not be imported until then.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
