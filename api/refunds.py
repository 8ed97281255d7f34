"""Routes of refund requests and consent (contract §3, "Refund requests and store actions").

PUT   /v1/customers/{id}/consent     that user's token, or admin: consent to share
                                     consumption data with the store
GET   /v1/refund-requests            admin: `?status=` (comma-separated), `?limit=`
PATCH /v1/refund-requests/{id}       admin: `{"preference": …}` of a pending request
"""

from __future__ import annotations

from aiohttp import web

from api.auth import caller
from api.http import actor_of, app_user_id_from, json_fields, json_response
from api.keys import REFUND_REQUESTS
from entitlements.errors import Forbidden, InvalidRequest
from entitlements.permissions import ADMIN
from entitlements.refunds import PREFERENCES, STATUSES

routes = web.RouteTableDef()

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


@routes.put("/v1/customers/{app_user_id}/consent")
async def put_consent(request: web.Request) -> web.Response:
    """Record (or withdraw) the customer's consent to share consumption data with the store
    when it asks about a refund request. Only that customer's own token or an admin key."""
    app_user_id = app_user_id_from(request)
    principal = await caller(request)
    if not (principal.has(ADMIN) or principal.user_id == app_user_id):
        raise Forbidden
    body = json_fields(await request.read(), {"consumption_data"})
    consent = body.get("consumption_data")
    if not isinstance(consent, bool):
        raise InvalidRequest("consumption_data must be true or false")
    answer = await request.app[REFUND_REQUESTS].set_consent(
        app_user_id, consent, actor_of(principal)
    )
    return json_response(answer)


@routes.get("/v1/refund-requests")
async def get_refund_requests(request: web.Request) -> web.Response:
    """The refund requests in the statuses asked for (all by default): pending first, the
    nearest deadline first, then the newest."""
    principal = await caller(request)
    principal.require_admin()
    statuses = _statuses(request.query.get("status"))
    limit = _limit(request.query.get("limit"))
    found = await request.app[REFUND_REQUESTS].listing(statuses, limit)
    return json_response({"refund_requests": found})


@routes.get("/v1/refund-requests/{id}")
async def get_refund_request(request: web.Request) -> web.Response:
    """One refund request: what it asks, what was sent, how it ended."""
    principal = await caller(request)
    principal.require_admin()
    return json_response(await request.app[REFUND_REQUESTS].one(request.match_info["id"]))


@routes.patch("/v1/refund-requests/{id}")
async def patch_refund_request(request: web.Request) -> web.Response:
    """Change a pending request's refund preference (409 once sent or decided)."""
    principal = await caller(request)
    principal.require_admin()
    body = json_fields(await request.read(), {"preference"})
    preference = body.get("preference")
    if preference not in PREFERENCES:
        raise InvalidRequest(f"preference must be one of {', '.join(PREFERENCES)}")
    answer = await request.app[REFUND_REQUESTS].change_preference(
        request.match_info["id"], str(preference), actor_of(principal)
    )
    return json_response(answer)


def _statuses(value: str | None) -> tuple[str, ...]:
    if not value:
        return STATUSES
    asked = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in asked if v not in STATUSES]
    if unknown or not asked:
        raise InvalidRequest(f"status must be among {', '.join(STATUSES)}")
    return asked


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(value)
