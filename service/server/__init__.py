"""The HTTP server: the Flask app factory, the v1 and v2 protocols, loaded models, gunicorn settings."""

from service.server.app import create_app

__all__ = ["create_app"]
