"""WSGI entry point for gunicorn: ``gunicorn service.server.wsgi:app``."""

from service.server.app import create_app

app = create_app()
