"""POST /webhooks/apple: App Store Server Notifications V2 (contract §3).

Verify the signed payload (never trusting anything before verification), journal it and
apply it in one transaction, answer 200 only after commit. Rejected input changes nothing.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from entitlements.api import SERVICE, json_object
from entitlements.errors import StoreNotConfigured
from entitlements.model import Status, Store, StoreEvent
from entitlements.repository import NotificationRow
from receipts.apple import AppleVerifier, AppStoreServerClient, notification_events
from receipts.apple.api import status_events
from receipts.apple.terms import NonRenewingTerms
from receipts.errors import MalformedPayload, VerificationFailed

log = structlog.get_logger(__name__)

APPLE_VERIFIER = web.AppKey("apple_verifier", AppleVerifier)
APPLE_API = web.AppKey("apple_api_client", AppStoreServerClient)
APPLE_TERMS = web.AppKey("apple_non_renewing_terms", NonRenewingTerms)

routes = web.RouteTableDef()

# Notification types that say nothing about a purchase of this app's customers.
_IGNORED_TYPES = frozenset({"TEST"})


def signed_payload_of(body: bytes) -> str:
    """The `signedPayload` string of an Apple notification body (400 otherwise)."""
    signed = json_object(body, MalformedPayload).get("signedPayload")
    if not isinstance(signed, str) or not signed:
        raise MalformedPayload("body has no signedPayload string")
    return signed


@routes.post("/webhooks/apple")
async def post_apple_notification(request: web.Request) -> web.Response:
    verifier = request.app.get(APPLE_VERIFIER)
    if verifier is None:
        raise StoreNotConfigured("the App Store is not configured on this service")
    body = await request.read()
    signed = signed_payload_of(body)
    try:
        notification = await verifier.verify_notification(signed)
    except MalformedPayload as exc:
        # The envelope was fine; what is inside is not a verifiable Apple JWS: 422, not 400.
        raise VerificationFailed(exc.message) from None
    events = await with_grace_period_end(
        request.app.get(APPLE_API), notification_events(notification)
    )
    events = request.app[APPLE_TERMS].apply(events)
    uuid = notification.notification_uuid
    if not uuid:
        raise MalformedPayload("notification has no notificationUUID")
    ignored = notification.notification_type in _IGNORED_TYPES or not events
    purchase_id = events[0].purchase_id if events else None
    note = NotificationRow(
        store=Store.APP_STORE,
        message_id=uuid,
        notification_type=notification.notification_type,
        subtype=notification.subtype,
        signed_at=notification.signed_at,
        purchase_id=purchase_id,
        result="ignored" if ignored else "processed",
        reason=None,
        payload=body.decode("utf-8"),
    )
    outcome = await request.app[SERVICE].ingest(note, events)
    log.info(
        "apple_notification",
        notification_uuid=uuid,
        notification_type=notification.notification_type,
        subtype=notification.subtype,
        environment=notification.environment,
        original_transaction_id=purchase_id,
        result=outcome.status,
    )
    return web.json_response({"status": outcome.status})


async def with_grace_period_end(
    client: AppStoreServerClient | None, events: list[StoreEvent]
) -> list[StoreEvent]:
    """DID_FAIL_TO_RENEW/GRACE_PERIOD has been seen with a null gracePeriodExpiresDate; without
    it the grace period grants nothing. With API credentials, add the subscription's current
    status (its renewal info carries the date). Apple retries on our 503 if the API is down."""
    missing = [
        e
        for e in events
        if e.status is Status.GRACE_PERIOD
        and (e.renewal is None or e.renewal.grace_period_expires_at is None)
    ]
    if client is None or not missing:
        return events
    event = missing[0]
    statuses = await client.get_all_subscription_statuses(
        event.purchase_id, environment_hint=event.environment
    )
    refreshed = status_events(statuses)
    log.info("apple_grace_period_refreshed", original_transaction_id=event.purchase_id)
    return events + [e for e in refreshed if e.purchase_id == event.purchase_id]
