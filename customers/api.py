"""Routes of the operator actions: grants, suspension, aliases, export and erasure.

read → check the caller → `CustomerOperations` → answer (the customer object, as the read API
computes it). Every action lands in the audit log with the caller and the request id.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from entitlements.api import customer_payload
from entitlements.customer_repository import Actor
from entitlements.errors import InvalidRequest, UnknownEntitlement
from entitlements.grants import grant_expiry, reason_of
from entitlements.permissions import caller
from server.http import (
    actor_of,
    app_user_id_from,
    app_user_id_from_value,
    json_object,
    json_response,
)
from server.keys import CLOCK, OPERATIONS, SERVICE

routes = web.RouteTableDef()

GRANTS = "/v1/customers/{app_user_id}/entitlements/{name}/grants"


@routes.post(GRANTS)
async def post_grant(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    name = _entitlement(request)
    body = await _optional_body(request)
    expires_at = grant_expiry(body, request.app[CLOCK]())
    customer = await request.app[OPERATIONS].grant(
        app_user_id, name, expires_at, actor, reason_of(body)
    )
    return json_response(await customer_payload(request, customer), status=201)


@routes.delete(GRANTS)
async def delete_grants(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    name = _entitlement(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].end_grants(app_user_id, name, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/suspend")
async def post_suspend(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].suspend(app_user_id, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/unsuspend")
async def post_unsuspend(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].unsuspend(app_user_id, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/aliases")
async def post_alias(request: web.Request) -> web.Response:
    app_user_id = app_user_id_from(request)
    principal = await caller(request)
    if not (principal.has("admin") or principal.user_id == app_user_id):
        principal.require_admin()  # raises Forbidden
    body = json_object(await request.read())
    _only(body, {"alias"})
    alias = body.get("alias")
    if not isinstance(alias, str):
        raise InvalidRequest("alias is required")
    app_user_id_from_value(alias)
    customer = await request.app[OPERATIONS].add_alias(app_user_id, alias, actor_of(principal))
    return json_response(await customer_payload(request, customer))


@routes.get("/v1/customers/{app_user_id}/export")
async def get_export(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    return json_response(await request.app[OPERATIONS].export(app_user_id, actor))


@routes.delete("/v1/customers/{app_user_id}")
async def delete_customer(request: web.Request) -> web.Response:
    app_user_id, actor = await _admin(request)
    await request.app[OPERATIONS].erase(app_user_id, actor)
    return json_response({"erased": True})


async def _admin(request: web.Request) -> tuple[str, Actor]:
    principal = await caller(request)
    principal.require_admin()
    return app_user_id_from(request), actor_of(principal)


def _entitlement(request: web.Request) -> str:
    name = request.match_info["name"]
    if not request.app[SERVICE].catalog.defines(name):
        raise UnknownEntitlement(f"no entitlement named {name!r} is configured")
    return name


async def _optional_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    return json_object(raw) if raw.strip() else {}


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
