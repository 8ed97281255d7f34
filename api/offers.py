"""Routes of offers signed for the app (contract §3, "Offers signed for the app"):

    POST /v1/customers/{id}/offers/apple               {"offer", "product_id"[, "format":
                                                        "legacy"][, "transaction_id"][, "app"]}
    POST /v1/customers/{id}/offers/apple/introductory  {"product_id", "transaction_id"[, "app"]}

Only that customer's own user token, or a `purchases:write` key (the app's backend), may ask:
a user token proves its `sub` and nothing else.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import caller
from api.http import app_user_id_from, json_fields, json_response
from api.keys import OFFERS
from entitlements.errors import Forbidden, InvalidRequest
from entitlements.permissions import WRITE

routes = web.RouteTableDef()


@routes.post("/v1/customers/{app_user_id}/offers/apple")
async def post_promotional_offer(request: web.Request) -> web.Response:
    """Apple's promotional offer signature for the customer (JWS, or the legacy form)."""
    app_user_id = await _allowed(request)
    body = json_fields(
        await request.read(), {"offer", "product_id", "format", "transaction_id", "app"}
    )
    offer, product_id = _text(body, "offer"), _text(body, "product_id")
    format_ = body.get("format", "jws")
    if format_ not in {"jws", "legacy"}:
        raise InvalidRequest('format must be "jws" (the default) or "legacy"')
    answer = await request.app[OFFERS].promotional(
        app_user_id,
        offer,
        product_id,
        legacy=format_ == "legacy",
        transaction_id=_optional_text(body, "transaction_id"),
        app=_optional_text(body, "app"),
    )
    return json_response(answer)


@routes.post("/v1/customers/{app_user_id}/offers/apple/introductory")
async def post_introductory_offer(request: web.Request) -> web.Response:
    """Apple's introductory-offer eligibility JWS, decided from both stores' history."""
    app_user_id = await _allowed(request)
    body = json_fields(await request.read(), {"product_id", "transaction_id", "app"})
    answer = await request.app[OFFERS].introductory(
        app_user_id,
        _text(body, "product_id"),
        _text(body, "transaction_id"),
        app=_optional_text(body, "app"),
    )
    return json_response(answer)


async def _allowed(request: web.Request) -> str:
    app_user_id = app_user_id_from(request)
    principal = await caller(request)
    if not (principal.has(WRITE) or principal.user_id == app_user_id):
        raise Forbidden
    return app_user_id


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidRequest(f"{name} is required (a string of 1 to 256 characters)")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else _text(body, name)
