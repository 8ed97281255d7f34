"""POST /v1/purchases: the app hands over a purchase; we validate it with the store, link it
to the user (under the transfer policy) and answer with the customer object."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from entitlements.api import (
    SERVICE,
    app_user_id_from_value,
    customer_payload,
    json_object,
    json_response,
)
from entitlements.errors import InvalidRequest
from entitlements.permissions import caller
from purchases.apple import apple_purchase_events
from purchases.google import acknowledge_submitted, google_purchase_events
from receipts.errors import ProductNotOurs

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

STORES = ("app_store", "play_store")


def parse_submission(body: bytes) -> dict[str, Any]:
    """The JSON object of a submission with a valid app_user_id and store (400 otherwise)."""
    document = json_object(body)
    app_user_id = document.get("app_user_id")
    if not isinstance(app_user_id, str):
        raise InvalidRequest("app_user_id is required")
    app_user_id_from_value(app_user_id)
    if document.get("store") not in STORES:
        raise InvalidRequest("store must be app_store or play_store")
    return document


@routes.post("/v1/purchases")
async def post_purchase(request: web.Request) -> web.Response:
    principal = await caller(request)
    submission = parse_submission(await request.read())
    app_user_id: str = submission["app_user_id"]
    principal.require_write(app_user_id)
    if submission["store"] == "app_store":
        events, also = await apple_purchase_events(request.app, submission)
    else:
        events, also = await google_purchase_events(request.app, submission)
    if not events:
        raise ProductNotOurs("the store returned no purchase for this proof")
    service = request.app[SERVICE]
    outcome = await service.ingest(None, events, submitted_by=app_user_id, also=also)
    if submission["store"] == "play_store":
        await acknowledge_submitted(request.app, submission)  # the 3-day rule, after commit
    log.info(
        "purchase_submitted",
        store=submission["store"],
        app_user_id=app_user_id,
        purchases=len(outcome.purchase_users),
    )
    return json_response(await customer_payload(request, app_user_id))
