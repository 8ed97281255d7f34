"""Routes of support's store actions (contract §3, "Refund requests and store actions"; admin):

    POST /v1/customers/{id}/extend   {"days": 7, "reason": "service_outage"} → 202
    POST /v1/customers/{id}/revoke   {"purchase": "<id>", "refund": "full"} → 202

The answer says what each store accepted (`requested`), refused or could not be asked
(`failed`): `{"requested": [{"store", "purchase", "status", "detail"}]}`. The customer's state
changes only as the store confirms it (services/support_actions.py).
"""

from __future__ import annotations

from aiohttp import web

from api.auth import caller
from api.http import actor_of, app_user_id_from, json_fields, json_response
from api.keys import SUPPORT_ACTIONS
from entitlements.errors import InvalidRequest

routes = web.RouteTableDef()


@routes.post("/v1/customers/{app_user_id}/extend")
async def post_extend(request: web.Request) -> web.Response:
    """Extend every renewing subscription of the customer by `days` for `reason`."""
    principal = await caller(request)
    principal.require_admin()
    app_user_id = app_user_id_from(request)
    body = json_fields(await request.read(), {"days", "reason"})
    days, reason = body.get("days"), body.get("reason")
    if not isinstance(days, int) or isinstance(days, bool):
        raise InvalidRequest("days must be a whole number of days")
    if not isinstance(reason, str):
        raise InvalidRequest("reason is required: customer_satisfaction, service_outage or other")
    answered = await request.app[SUPPORT_ACTIONS].extend(
        app_user_id, days, reason, actor_of(principal)
    )
    return json_response({"requested": answered}, status=202)


@routes.post("/v1/customers/{app_user_id}/revoke")
async def post_revoke(request: web.Request) -> web.Response:
    """Revoke one of the customer's purchases with a refund (Google Play only)."""
    principal = await caller(request)
    principal.require_admin()
    app_user_id = app_user_id_from(request)
    body = json_fields(await request.read(), {"purchase", "refund"})
    purchase, refund = body.get("purchase"), body.get("refund")
    if not isinstance(purchase, str) or not purchase:
        raise InvalidRequest("purchase is required: an original transaction id or purchase token")
    if not isinstance(refund, str):
        raise InvalidRequest("refund is required: full, prorated or none")
    answered = await request.app[SUPPORT_ACTIONS].revoke(
        app_user_id, purchase, refund, actor_of(principal)
    )
    return json_response({"requested": answered}, status=202)
