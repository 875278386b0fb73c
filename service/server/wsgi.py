"""WSGI entry point for gunicorn: ``gunicorn service.server.wsgi:app``."""

import sys

from gunicorn.arbiter import Arbiter

from service.config import ConfigError
from service.server.app import create_app
from service.store import StoreError

try:
    app = create_app()
except (StoreError, ConfigError) as exc:  # the operator's to fix: one line, as the CLI says it, no traceback
    print(f"Error: {exc}", file=sys.stderr, flush=True)
    # gunicorn then stops (not respawns) on the worker's exit, as it does with --preload where this runs in the master
    raise SystemExit(Arbiter.APP_LOAD_ERROR) from None
