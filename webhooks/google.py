"""POST /webhooks/google: Pub/Sub push of Play Real-time Developer Notifications (contract §3).

Authenticate the push (OIDC) → parse the envelope (not one: 400) → poison is journaled
`rejected` → TEST and refund reviews are journaled `ignored` → cheap dedupe on messageId →
re-read the purchase from the Play API → journal, apply and record pending acknowledgements
in one transaction → acknowledge. Nothing is written before the Play API has answered, so
an outage is a 503 with nothing stored and Pub/Sub's redelivery is processed in full.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web

from entitlements.api import CLOCK, SERVICE
from entitlements.errors import StoreNotConfigured
from entitlements.model import Store
from entitlements.repository import NotificationRow
from entitlements.service import EntitlementService
from receipts.errors import PurchaseNotFound, StoreUnavailable
from receipts.google.notifications import (
    ONE_TIME_PRODUCT_CANCELED,
    ONE_TIME_PRODUCT_PURCHASED,
    REFUND_TYPE_FULL,
    REFUND_TYPE_PARTIAL,
    SUBSCRIPTION_REVOKED,
    VOIDED_PRODUCT_TYPE_SUBSCRIPTION,
)
from receipts.google.translate import Category, Notification, classify, parse_push, voided_event
from webhooks import repository as repo
from webhooks.google_play import GOOGLE_PLAY, GooglePlay, PlayRead, read_product, read_subscription
from webhooks.play_acks import purchase_ref

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

Result = Literal["processed", "ignored", "rejected"]
_ONE_TIME_NAMES = {
    ONE_TIME_PRODUCT_PURCHASED: "ONE_TIME_PRODUCT_PURCHASED",
    ONE_TIME_PRODUCT_CANCELED: "ONE_TIME_PRODUCT_CANCELED",
}
_REFUND_TYPES = {REFUND_TYPE_FULL: "FULL_REFUND", REFUND_TYPE_PARTIAL: "PARTIAL_REFUND"}


@routes.post("/webhooks/google")
async def post_google_notification(request: web.Request) -> web.Response:
    google = request.app.get(GOOGLE_PLAY)
    if google is None:
        raise StoreNotConfigured("Google Play is not configured on this service")
    line: dict[str, Any] = {}  # the one canonical log line: ids only, never tokens
    try:
        status = await _handle(request, google, line)
        line["result"] = status
    except Exception as exc:
        line["result"] = getattr(exc, "code", "error")
        raise
    finally:
        log.info("google_notification", **line)
    return web.json_response({"status": status})


async def _handle(request: web.Request, google: GooglePlay, line: dict[str, Any]) -> str:
    await google.verifier.verify(request.headers.get("Authorization"))
    body = await request.read()
    message = parse_push(body)  # not a push envelope: MalformedPayload (400)
    line["message_id"] = message.message_id
    service = request.app[SERVICE]

    def note(n: Notification | None, result: Result, reason: str | None = None) -> NotificationRow:
        kind, subtype = _type_names(n)
        token = n.purchase_token if n and n.category is not Category.PENDING_REFUND_REVIEW else None
        return NotificationRow(
            store=Store.PLAY_STORE,
            message_id=message.message_id,
            notification_type=kind,
            subtype=subtype,
            signed_at=(n.event_time if n else None) or message.publish_time,
            purchase_id=token,
            result=result,
            reason=reason,
            payload=body.decode("utf-8", errors="replace"),
        )

    if message.notification is None:  # poison: stored for inspection, never redelivered
        line["reason"] = message.poison_reason
        return await _journal(service, note(None, "rejected", message.poison_reason))
    n = classify(message.notification, google.package_names)
    # Google's time of the event: eventTimeMillis, else when Pub/Sub published it.
    n = replace(n, event_time=n.event_time or message.publish_time)
    line.update(
        category=n.category.value,
        package_name=n.package_name,
        notification_type=n.notification_type,
    )
    if n.category is Category.POISON:
        line["reason"] = n.poison_reason
        return await _journal(service, note(n, "rejected", n.poison_reason))
    if n.event_time is None and _revokes(n):
        # A revocation is shown at the store's time; with none, there is nothing to record.
        line["reason"] = "no event time"
        return await _journal(service, note(n, "rejected", "no event time"))
    if n.category is Category.TEST:
        return await _journal(service, note(n, "ignored", "test notification"))
    if n.category is Category.PENDING_REFUND_REVIEW:
        # `ignored`: a refund *review* changes no entitlement (the user keeps access while
        # Google decides) and receiptd does not answer orders.reviewrefund; if the refund
        # is granted, a voidedPurchaseNotification follows and revokes. Journaled so an
        # operator can still find and answer it within Google's 24 h window.
        return await _journal(service, note(n, "ignored", "pending refund review"))

    assert n.purchase_token is not None  # classify's promise for these categories
    assert n.package_name is not None
    token, package = n.purchase_token, n.package_name
    line["purchase_ref"] = purchase_ref(token)
    if n.product_id:
        line["product_id"] = n.product_id
    # Cheap dedupe before the Play API call; the journal's ON CONFLICT stays the real guard.
    seen = await repo.run(
        google.pool, lambda c: repo.notification_seen(c, Store.PLAY_STORE.value, message.message_id)
    )
    if seen:
        return "duplicate"
    now = request.app[CLOCK]()
    read, result, reason = await _read(google, n, now)
    line["events"] = len(read.events)
    # The pending acknowledgement commits with the state: it exists before the 200.
    outcome = await service.ingest(
        note(n, result, reason), read.events, also=google.acks.writer(read.acks)
    )
    if outcome.status == "processed" and read.acks:
        await google.acks.settle(package, token)
    return outcome.status


async def _journal(service: EntitlementService, row: NotificationRow) -> str:
    return (await service.ingest(row, [])).status


async def _read(
    google: GooglePlay, n: Notification, now: datetime
) -> tuple[PlayRead, Result, str | None]:
    """The purchase's state from the Play API (StoreUnavailable → 503, nothing stored)."""
    assert n.purchase_token is not None
    assert n.package_name is not None
    token, package = n.purchase_token, n.package_name
    try:
        if n.category is Category.SUBSCRIPTION:
            read = await read_subscription(
                google,
                package,
                token,
                now,
                notification_type=n.notification_type,
                event_time=n.event_time,
            )
            return read, "processed", None
        if n.category is Category.ONE_TIME:
            assert n.product_id is not None
            read = await read_product(
                google, package, n.product_id, token, now, notification_type=n.notification_type
            )
            return read, "processed", None
    except PurchaseNotFound:
        # Play does not know the token: redelivering will not help.
        return PlayRead([]), "rejected", "purchase not found"
    # Voided: the notification itself revokes at once, whatever the API still says.
    voided = voided_event(n, now)
    revocation = [voided] if voided is not None else []
    if n.voided_product_type == VOIDED_PRODUCT_TYPE_SUBSCRIPTION:
        try:
            read = await read_subscription(
                google,
                package,
                token,
                now,
                event_time=n.event_time,
                revoked_at=voided.revoked_at if voided is not None else None,
            )
            return PlayRead(read.events + revocation), "processed", None
        except PurchaseNotFound:
            pass
        except StoreUnavailable:
            if voided is None:
                raise  # a partial refund changes nothing we could apply without the API
    # One-time voided purchases carry no product id to re-read: the revocation is enough.
    if revocation:
        return PlayRead(revocation), "processed", None
    return PlayRead([]), "ignored", "partial refund"


def _revokes(n: Notification) -> bool:
    return n.category is Category.VOIDED or (
        n.category is Category.SUBSCRIPTION and n.notification_type == SUBSCRIPTION_REVOKED
    )


def _type_names(n: Notification | None) -> tuple[str | None, str | None]:
    if n is None or n.category is Category.POISON:
        return None, None
    code = n.notification_type
    if n.category is Category.SUBSCRIPTION:
        return n.type_name or f"SUBSCRIPTION_{code}", None
    if n.category is Category.ONE_TIME:
        return _ONE_TIME_NAMES.get(code or 0, f"ONE_TIME_PRODUCT_{code}"), None
    if n.category is Category.VOIDED:
        return "VOIDED_PURCHASE", _REFUND_TYPES.get(n.refund_type or 0)
    if n.category is Category.PENDING_REFUND_REVIEW:
        return "PENDING_REFUND_REVIEW", None
    return "TEST", None
