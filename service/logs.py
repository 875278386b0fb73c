"""JSON logs: one line per event on stderr, for the web workers, gunicorn's own log and ``nnserve worker``.

Every line is a JSON object with ``timestamp`` (ISO 8601, UTC), ``level``,
``logger``, ``process`` and ``message``, plus the event's own fields. The
web app writes one line per request on the ``nnserve.access`` logger::

    {"timestamp": "2025-01-01T12:00:00.123456+00:00", "level": "INFO", "logger": "nnserve.access",
     "process": 4242, "message": "POST /v1/models/iris/predict 200", "request_id": "3f2a...",
     "method": "POST", "path": "/v1/models/iris/predict", "endpoint": "/v1/models/<name>/predict",
     "model": "iris", "version": 3, "status": 200, "duration_ms": 0.41}

While tracing is on (``service/tracing.py``), a line written inside a span also carries its ``trace_id`` and
``span_id`` (hex, as OpenTelemetry shows them), so a log line leads to its trace.

Request headers are never logged (the admin token travels in one), and
neither are query strings or bodies.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from gunicorn import glogging

from service import tracing

ACCESS = logging.getLogger("nnserve.access")
# Attributes every LogRecord has: what is not among them came from ``extra`` and is logged as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, serialised by orjson: the access log writes one per request."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key] = value
        current = tracing.ids()
        if current is not None:
            line["trace_id"], line["span_id"] = current
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        line["timestamp"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        return orjson.dumps(line, default=str).decode()


def formatter() -> logging.Formatter:
    """The formatter of every nnserve log line."""
    return JsonLineFormatter()


def configure(level: str | int = "info", stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines, at ``level`` and above.

    Calling it again replaces the handler it installed instead of adding a
    second one; handlers installed by others (pytest's capture) are kept.
    Returns the handler, so a caller can remove it.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_nnserve", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._nnserve = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


class GunicornLogger(glogging.Logger):
    """gunicorn's logger (``logger_class``) with JSON lines: same handlers and files, nnserve's formatter.

    Its access log stays off unless ``accesslog`` is set: the app logs each request itself.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(formatter())
