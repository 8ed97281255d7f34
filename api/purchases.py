"""POST /v1/purchases: the app hands over a purchase; the store's adapter validates it with the
store, we link it to the user (under the transfer policy) and answer with the customer object.

read → store adapter → ingest → follow-up after the commit (a Play acknowledgement) → answer.
The submission is journaled like a store notification (type SUBMISSION, a message id of its
own): its store fields and every store API answer it was validated with, read at the service
clock's `now`, so `receiptd replay` can re-derive what it stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from api.auth import caller
from api.http import actor_of, app_user_id_from_value, json_object, json_response
from api.keys import APPLE, CLOCK, GOOGLE, SERVICE
from api.reads import customer_payload
from entitlements.errors import InvalidRequest
from entitlements.permissions import WRITE
from receipts.errors import ProductNotOurs, SubmissionNotSupported
from receipts.port import SUBMISSION, SUBMISSION_FIELDS, Resolution, StoreAdapter
from receipts.recording import reads_document
from storage.purchases import NotificationRow

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
    principal = await caller(request)
    submission = parse_submission(await request.read())
    app_user_id: str = submission["app_user_id"]
    principal.require_write(app_user_id)
    adapter = _adapter(request.app, submission["store"])
    now = request.app[CLOCK]()
    resolution = await adapter.submit(submission, now)
    if not resolution.events:
        raise ProductNotOurs("the store returned no purchase for this proof")
    outcome = await request.app[SERVICE].ingest(
        journal_row(adapter, submission, resolution, now),
        resolution.events,
        submitted_by=app_user_id,
        # A backend key vouches for its users; a user token needs the store's proof.
        proven=resolution.proves_holding or principal.has(WRITE),
        also=resolution.write,
        actor=actor_of(principal),
    )
    await resolution.after_commit()
    log.info(
        "purchase_submitted",
        store=submission["store"],
        app_user_id=app_user_id,
        purchases=len(outcome.purchase_users),
    )
    return json_response(await customer_payload(request, app_user_id))


def journal_row(
    adapter: StoreAdapter, submission: dict[str, Any], resolution: Resolution, now: datetime
) -> NotificationRow:
    """The journal's record of a submission: what the adapter validated and the store's
    answers. Not the submitter's id: the journal is about purchases, and a body naming the
    person would outlive an erasure once the purchase moved to another user."""
    body = {k: submission[k] for k in SUBMISSION_FIELDS if k in submission}
    return NotificationRow(
        store=adapter.store,
        message_id=f"submission:{uuid.uuid4()}",
        notification_type=SUBMISSION,
        subtype=None,
        signed_at=None,
        purchase_id=resolution.events[0].purchase_id,
        result="processed",
        reason=None,
        payload=json.dumps(body, sort_keys=True),
        reads=reads_document(now, resolution.reads),
    )
