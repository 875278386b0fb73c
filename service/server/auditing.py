"""Recording admin actions and feedback calls in the store's audit log, whatever their answer.

A view says what it does with ``@audited(action)`` (outermost, above the blueprint's decorators) and may add
what it changed with ``note``; ``record``, called by app.py's ``after_request`` hook, records every call of
such a view, the refused ones included (a 401 of the closed-mode gate, a 403 of ``require``, a bad query
argument), with the caller's key id, the model of its URL and the answer's status. Only what the server says
goes in: the message of a refusal or failure, never a credential, a feedback token, a target or anything else
of the request's body (the messages of 400, 413, 415 and 422, which may quote the body, are left out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from flask import Flask, Request, Response, current_app, g
from flask.ctx import _AppCtxGlobals

from service.store import AuditEntry, AuditLog, InvalidNameError, StoreError, validate_name

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

_ATTRIBUTE = "_nnserve_audit"
BODY_STATUSES = frozenset({400, 413, 415, 422})  # their messages may quote the request's body


def audited(action: str) -> Callable[[F], F]:
    """Mark a view method as the admin or feedback action ``action`` (``store.audit.ACTIONS``)."""

    def mark(view: F) -> F:
        setattr(view, _ATTRIBUTE, action)
        return view

    return mark


def note(*, model: str | None = None, detail: str | None = None, actor: str | None = None) -> None:
    """What this call's audit entry says beyond its status: the model (when the URL does not name it), what
    changed, and the actor when no key was sent (``token``: feedback tokens)."""
    noted = g.setdefault("nnserve_audit", {})
    noted.update({k: v for k, v in (("model", model), ("detail", detail), ("actor", actor)) if v is not None})


_actions: dict[tuple[str, str], str | None] = {}  # (endpoint, method) -> its audited action, found once


def _action(app: Flask, req: Request) -> str | None:
    if req.url_rule is None or req.routing_exception is not None:
        return None
    key = (req.url_rule.endpoint, req.method)
    if key not in _actions:
        view = app.view_functions.get(key[0])
        handler = getattr(getattr(view, "view_class", None), key[1].lower(), view)
        _actions[key] = getattr(handler, _ATTRIBUTE, None)
    return _actions[key]


def _model(req: Request) -> str | None:
    name = (req.view_args or {}).get("name")
    try:
        return validate_name(name) if isinstance(name, str) else None
    except InvalidNameError:
        return None  # a name that cannot be a model's is not recorded (it may be anything a stranger typed)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return "refused" if status in (401, 403) else "failed"


def _message(response: Response) -> str:
    """The error's message (``{"message"}``), or its reason phrase where the message may quote the body."""
    if response.status_code in BODY_STATUSES or not response.is_json:
        return response.status.partition(" ")[2]
    try:
        body = orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return response.status.partition(" ")[2]
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def install(app: Flask, audit_log: AuditLog) -> None:
    """``audit_log`` is ``app``'s (app.py's request hooks call ``record`` with it)."""
    app.extensions["nnserve.audit"] = audit_log


def record(app: Flask, audit_log: AuditLog, state: _AppCtxGlobals, req: Request, response: Response) -> None:
    """Record the call in ``audit_log`` if its view is ``@audited`` (``state`` is its ``flask.g``); a failed write
    is logged, and the answer, whose action already happened, is sent as it is."""
    action = _action(app, req)
    if action is None:
        return
    noted = state.get("nnserve_audit", {})
    status = response.status_code
    entry = AuditEntry(
        action=action,
        outcome=_outcome(status),
        actor=noted.get("actor") or state.get("nnserve_key_id"),
        model=noted.get("model") or _model(req),
        status=status,
        detail=noted.get("detail", "") if status < 400 else _message(response),
    )
    try:
        audit_log.record(entry)
    except StoreError as exc:
        log.error("audit entry not recorded (%s %s %s): %s", action, entry.model, status, exc)


def audit_log() -> AuditLog:
    """This app's audit log."""
    return current_app.extensions["nnserve.audit"]  # type: ignore[no-any-return]
