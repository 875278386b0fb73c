"""``GET /v1/audit`` (admin): the store's audit log of admin actions and feedback calls, newest first."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from service.server.auditing import audit_log
from service.server.auth import authorize, require_admin
from service.server.blueprint import ADMIN, Blueprint
from service.server.callers import limited_to
from service.server.v1.schemas import AuditArgsSchema, AuditSchema
from service.store import ADMIN as ADMIN_SCOPE

blp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Who did what: admin actions and feedback")


@blp.route("")
class Audit(MethodView):
    @blp.doc(security=ADMIN)
    @blp.errors(401, 403, 503)
    @require_admin
    @blp.arguments(AuditArgsSchema, location="query")
    @blp.response(200, AuditSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The newest entries (admin): every admin action and feedback call, refused ones too, with the key id,
        time, model and outcome of each (an admin key limited to models: those models' entries only)."""
        since = args["since"].timestamp() if "since" in args else None
        model = args.get("model")
        caller = authorize(ADMIN_SCOPE, model)  # naming a model the key is not limited to: 403
        entries = audit_log().entries(model=model, since=since, limit=args["limit"], models=limited_to(caller))
        return {"entries": [e.to_json() for e in entries]}
