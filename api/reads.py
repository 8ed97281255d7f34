"""The read API of contract §3: customer object, single-entitlement check, change feed."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import caller
from api.http import app_user_id_from, json_response
from api.keys import CLOCK, CONSOLE_READS, LOCAL_READS, SERVICE
from cache.render import body_of, entitlements_in
from entitlements.access import customer_object, entitlement_summary, rfc3339
from entitlements.errors import Forbidden, UnknownEntitlement
from entitlements.permissions import READ

routes = web.RouteTableDef()


async def customer_payload(request: web.Request, app_user_id: str) -> dict[str, Any]:
    """The contract's customer object for `app_user_id`, computed now."""
    service = request.app[SERVICE]
    now = request.app[CLOCK]()
    record = await service.customer_record(app_user_id)
    body = customer_object(record, service.catalog, now)
    return {"app_user_id": body.pop("app_user_id"), "as_of": rfc3339(now), **body}


@routes.get("/v1/customers/{app_user_id}")
async def get_customer(request: web.Request) -> web.StreamResponse:
    """GET /v1/customers/{app_user_id} (customers:read, or the user's own token): the
    customer object with its ETag (from the process cache when fresh); 304 when
    `If-None-Match` matches."""
    app_user_id = app_user_id_from(request)
    (await caller(request)).require_read(app_user_id)
    now = request.app[CLOCK]()
    local = request.app[LOCAL_READS]
    rendered = local.get(app_user_id, now) if local is not None else None
    if rendered is None:
        token = local.token() if local is not None else 0
        rendered = await request.app[SERVICE].customer_answer(app_user_id, now)
        if local is not None:
            local.put(app_user_id, rendered, token)
    if _matches(request.headers.get("If-None-Match"), rendered.etag):
        return web.Response(status=304, headers={"ETag": rendered.etag})
    return web.Response(
        body=body_of(rendered, now),
        headers={
            "Content-Type": "application/json",
            "ETag": rendered.etag,
            "Cache-Control": "private, no-cache",
        },
    )


@routes.get("/v1/customers/{app_user_id}/entitlements/{name}")
async def get_entitlement(request: web.Request) -> web.StreamResponse:
    """GET /v1/customers/{app_user_id}/entitlements/{name} (customers:read, or the user's own
    token): whether the customer has that entitlement now, its status and expiry; 404 for a
    name not configured."""
    app_user_id = app_user_id_from(request)
    name = request.match_info["name"]
    (await caller(request)).require_read(app_user_id)
    service = request.app[SERVICE]
    if not service.catalog.defines(name):
        raise UnknownEntitlement(f"no entitlement named {name!r} is configured")
    now = request.app[CLOCK]()
    local = request.app[LOCAL_READS]
    rendered = local.get(app_user_id, now) if local is not None else None
    if rendered is None:
        rendered = await service.customer_answer(app_user_id, now)
    entitlements = entitlements_in(rendered)
    return json_response(entitlement_summary(app_user_id, name, entitlements))


@routes.get("/v1/events")
async def get_events(request: web.Request) -> web.Response:
    """The change feed, in commit order (customers:read)."""
    principal = await caller(request)
    if not principal.has(READ):
        raise Forbidden
    query = request.query
    body = await request.app[CONSOLE_READS].feed_page(query.get("after"), query.get("limit"))
    return json_response(body)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates
