"""Routes of the operator actions: grants, suspension, aliases, export and erasure.

read → check the caller → `CustomerOperations` → answer (the customer object, as the read API
computes it). Every action lands in the audit log with the caller and the request id.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import caller
from api.http import (
    actor_of,
    app_user_id_from,
    app_user_id_from_value,
    json_object,
    json_response,
)
from api.keys import AUTHENTICATOR, CLOCK, OPERATIONS, SERVICE
from api.reads import customer_payload
from entitlements.audit import Actor
from entitlements.errors import Forbidden, InvalidRequest, Unauthenticated, UnknownEntitlement
from entitlements.grants import grant_expiry, reason_of
from entitlements.permissions import ADMIN

routes = web.RouteTableDef()

GRANTS = "/v1/customers/{app_user_id}/entitlements/{name}/grants"


@routes.post(GRANTS)
async def post_grant(request: web.Request) -> web.Response:
    """POST /v1/customers/{app_user_id}/entitlements/{name}/grants (admin): grant the
    entitlement for a `duration`, until `expires_at` or for life; the customer object (201)."""
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
    """DELETE /v1/customers/{app_user_id}/entitlements/{name}/grants (admin): end the
    customer's running grants of the entitlement (store purchases untouched); the customer
    object."""
    app_user_id, actor = await _admin(request)
    name = _entitlement(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].end_grants(app_user_id, name, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/suspend")
async def post_suspend(request: web.Request) -> web.Response:
    """POST /v1/customers/{app_user_id}/suspend (admin): every entitlement reads inactive until
    unsuspended (store data keeps flowing); the customer object."""
    app_user_id, actor = await _admin(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].suspend(app_user_id, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/unsuspend")
async def post_unsuspend(request: web.Request) -> web.Response:
    """POST /v1/customers/{app_user_id}/unsuspend (admin): entitlements read what the stores
    say again; the customer object."""
    app_user_id, actor = await _admin(request)
    body = await _optional_body(request)
    _only(body, {"reason"})
    customer = await request.app[OPERATIONS].unsuspend(app_user_id, actor, reason_of(body))
    return json_response(await customer_payload(request, customer))


@routes.post("/v1/customers/{app_user_id}/aliases")
async def post_alias(request: web.Request) -> web.Response:
    """Merge an alias into the customer. An admin key needs nothing more; the customer's own
    user token must also carry `alias_token`, a user token whose `sub` is the alias (proof
    that the caller holds it), or nothing changes (403)."""
    app_user_id = app_user_id_from(request)
    principal = await caller(request)
    if not (principal.has(ADMIN) or principal.user_id == app_user_id):
        raise Forbidden
    body = json_object(await request.read())
    _only(body, {"alias", "alias_token"})
    alias = body.get("alias")
    if not isinstance(alias, str):
        raise InvalidRequest("alias is required")
    app_user_id_from_value(alias)
    if not principal.has(ADMIN):
        await _prove_alias(request, alias, body.get("alias_token"))
    customer = await request.app[OPERATIONS].add_alias(app_user_id, alias, actor_of(principal))
    return json_response(await customer_payload(request, customer))


async def _prove_alias(request: web.Request, alias: str, token: object) -> None:
    """A user may merge only an id it holds: `token` must be a valid user token for `alias`."""
    if not isinstance(token, str) or not token:
        raise Forbidden("alias_token is required: a user token whose subject is the alias")
    try:
        subject = await request.app[AUTHENTICATOR].user_subject(token)
    except Unauthenticated:
        raise Forbidden("alias_token is not a valid user token") from None
    if subject != alias:
        raise Forbidden("alias_token is a user token for another id than the alias")


@routes.get("/v1/customers/{app_user_id}/export")
async def get_export(request: web.Request) -> web.Response:
    """GET /v1/customers/{app_user_id}/export (admin): everything stored about the customer,
    as one JSON document (access, portability)."""
    app_user_id, actor = await _admin(request)
    return json_response(await request.app[OPERATIONS].export(app_user_id, actor))


@routes.delete("/v1/customers/{app_user_id}")
async def delete_customer(request: web.Request) -> web.Response:
    """DELETE /v1/customers/{app_user_id} (admin): erase the customer (a pseudonym stays in
    what accounting must keep); `{"erased": true}`."""
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
