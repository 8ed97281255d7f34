"""The read API of contract §3: customer object, single-entitlement check, change feed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from entitlements import feed
from entitlements.access import customer_object, entitlement_summary, entitlements_of, rfc3339
from entitlements.database import run
from entitlements.errors import Forbidden, UnknownEntitlement
from entitlements.permissions import READ, caller
from server.http import app_user_id_from, json_response
from server.keys import CLOCK, POOL, SERVICE

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
    app_user_id = app_user_id_from(request)
    (await caller(request)).require_read(app_user_id)
    body = await customer_payload(request, app_user_id)
    return _with_etag(request, body)


@routes.get("/v1/customers/{app_user_id}/entitlements/{name}")
async def get_entitlement(request: web.Request) -> web.StreamResponse:
    app_user_id = app_user_id_from(request)
    name = request.match_info["name"]
    (await caller(request)).require_read(app_user_id)
    service = request.app[SERVICE]
    if not service.catalog.defines(name):
        raise UnknownEntitlement(f"no entitlement named {name!r} is configured")
    record = await service.customer_record(app_user_id)
    now = request.app[CLOCK]()
    entitlements = entitlements_of(record, service.catalog, now)
    return json_response(entitlement_summary(app_user_id, name, entitlements))


@routes.get("/v1/events")
async def get_events(request: web.Request) -> web.Response:
    """The change feed, in commit order (customers:read)."""
    principal = await caller(request)
    if not principal.has(READ):
        raise Forbidden
    after = feed.decode_cursor(request.query.get("after"))
    limit = feed.parse_limit(request.query.get("limit"))
    body = await run(request.app[POOL], lambda conn: feed.page(conn, after, limit))
    return json_response(body)


def _with_etag(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """ETag over everything but `as_of`, so polling apps get 304 until something changes
    (including `active` flipping when a period ends)."""
    stable = {k: v for k, v in body.items() if k != "as_of"}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:32]
    etag = f'"{digest}"'
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    response = json_response(body)
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates
