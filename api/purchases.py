"""POST /v1/purchases: the app hands over a purchase; the store's adapter validates it with the
store, we link it to the user (under the transfer policy) and answer with the customer object.

Parse and authorize here; validate, journal (type SUBMISSION), link and acknowledge in the
store message use case (services/store_messages.py); answer with the customer object.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from api.auth import caller
from api.http import actor_of, app_user_id_from_value, json_object, json_response
from api.keys import APPLE, GOOGLE, STORE_MESSAGES
from api.reads import customer_payload
from entitlements.errors import InvalidRequest
from entitlements.permissions import WRITE
from receipts.errors import SubmissionNotSupported
from receipts.port import StoreAdapter

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


def _adapter(app: web.Application, store: str) -> StoreAdapter:
    adapter: StoreAdapter | None = app.get(APPLE) if store == "app_store" else app.get(GOOGLE)
    if adapter is None:
        name = "the App Store" if store == "app_store" else "Google Play"
        raise SubmissionNotSupported(f"{name} is not configured on this service")
    return adapter


@routes.post("/v1/purchases")
async def post_purchase(request: web.Request) -> web.Response:
    """POST /v1/purchases (purchases:write, or the user's own token): submit a purchase for
    the store to validate and link to `app_user_id`; the customer object."""
    principal = await caller(request)
    submission = parse_submission(await request.read())
    app_user_id: str = submission["app_user_id"]
    principal.require_write(app_user_id)
    adapter = _adapter(request.app, submission["store"])
    outcome = await request.app[STORE_MESSAGES].submission(
        adapter,
        submission,
        submitted_by=app_user_id,
        # A backend key vouches for its users; a user token needs the store's proof.
        vouched=principal.has(WRITE),
        actor=actor_of(principal),
    )
    log.info(
        "purchase_submitted",
        store=submission["store"],
        app_user_id=app_user_id,
        purchases=len(outcome.purchase_users),
    )
    return json_response(await customer_payload(request, app_user_id))
