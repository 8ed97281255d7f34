"""The App Store as a store port (`receipts.port`): Notifications V2 and App Store submissions,
answered in our words.

receive: the body's `signedPayload` (not there: MalformedPayload, 400) verified with its nested
signed items (anything that does not verify: 422) and identified (its UUID, its purchase); TEST
is settled `ignored`. resolve: translate into our events (a notification about no purchase is
`ignored`), complete a grace period Apple sent without its end date from Get All Subscription
Statuses (with API credentials), and apply the configured non-renewing durations. Translation
is in resolve, after verification, so that a payload it cannot read is the webhook's poison
(journaled `rejected`), not a refusal Apple would retry for days.
submit: a StoreKit 2 signed transaction, a transaction id or a legacy receipt, validated
(and, with API credentials, completed with statuses and history).
Every API answer a resolve or submit used is recorded raw in its Resolution (for the journal);
`replaying` serves them back, and `reread` verifies a journaled notification again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from entitlements.model import Status, Store, StoreEvent
from receipts.apple.api import AppStoreServerClient, status_events, transaction_id_from_receipt
from receipts.apple.terms import NonRenewingTerms
from receipts.apple.translate import notification_events, transaction_event
from receipts.apple.verifier import AppleNotification, AppleVerifier
from receipts.errors import (
    InvalidSubmission,
    MalformedPayload,
    SubmissionNotSupported,
    VerificationFailed,
)
from receipts.port import Inbound, Resolution
from receipts.recording import ReadRecorder, RecordedReads, StoreRead

log = structlog.get_logger(__name__)

PROOFS = ("signed_transaction", "transaction_id", "receipt")
# Notification types that say nothing about a purchase of this app's customers.
_IGNORED_TYPES = frozenset({"TEST"})


@dataclass(frozen=True, slots=True)
class AppleStore:
    """The App Store adapter, built once by the composition root from `[apple]`."""

    verifier: AppleVerifier
    api: AppStoreServerClient | None  # None: no App Store Server API credentials
    terms: NonRenewingTerms
    store: Store = Store.APP_STORE
    reads_from: RecordedReads | None = None  # replay: API answers come from the journal

    # --- notifications -------------------------------------------------------------------

    async def receive(self, authorization: str | None, body: bytes) -> Inbound:
        """Verify a notification (Apple authenticates by signature: no credentials)."""
        signed = signed_payload_of(body)
        try:
            notification = await self.verifier.verify_notification(signed)
        except MalformedPayload as exc:
            # The envelope was fine; what is inside is not a verifiable Apple JWS: 422, not 400.
            raise VerificationFailed(exc.message) from None
        uuid = notification.notification_uuid
        if not uuid:
            raise MalformedPayload("notification has no notificationUUID")
        ignored = notification.notification_type in _IGNORED_TYPES
        purchase_id = None if ignored else _original_transaction_id(notification)
        return Inbound(
            store=self.store,
            message_id=uuid,
            type_name=notification.notification_type,
            subtype=notification.subtype,
            stated_at=notification.signed_at,
            purchase_id=purchase_id,
            payload=body.decode("utf-8", errors="replace"),
            log={
                "notification_uuid": uuid,
                "notification_type": notification.notification_type,
                "subtype": notification.subtype,
                "environment": notification.environment,
                "original_transaction_id": purchase_id,
            },
            settled="ignored" if ignored else None,
            verified=notification,
        )

    async def resolve(self, inbound: Inbound, now: datetime) -> Resolution:
        """The notification's events, completed (grace end) and with non-renewing terms;
        `ignored` when it is about no purchase."""
        events = notification_events(inbound.verified)
        if not events:
            return Resolution([], result="ignored")
        recorder = ReadRecorder(self.reads_from)
        events = await self._with_grace_period_end(events, self._api(recorder))
        return Resolution(
            self.terms.apply(events), log={"events": len(events)}, reads=tuple(recorder.reads)
        )

    async def reread(self, payload: str) -> Inbound:
        """A journaled notification, verified again (Apple's signature is all its proof)."""
        return await self.receive(None, payload.encode("utf-8"))

    def replaying(self, reads: Sequence[StoreRead]) -> AppleStore:
        """This adapter with its App Store Server API answered from `reads`."""
        return replace(self, reads_from=RecordedReads(reads))

    def _api(self, recorder: ReadRecorder) -> AppStoreServerClient | None:
        return self.api.recording(recorder) if self.api is not None else None

    async def _with_grace_period_end(
        self, events: list[StoreEvent], api: AppStoreServerClient | None
    ) -> list[StoreEvent]:
        """DID_FAIL_TO_RENEW/GRACE_PERIOD has been seen with a null gracePeriodExpiresDate;
        without it the grace period grants nothing. With API credentials, add the
        subscription's current status (its renewal info carries the date). Apple retries on
        our 503 if the API is down."""
        missing = [
            e
            for e in events
            if e.status is Status.GRACE_PERIOD
            and (e.renewal is None or e.renewal.grace_period_expires_at is None)
        ]
        if api is None or not missing:
            return events
        event = missing[0]
        statuses = await api.get_all_subscription_statuses(
            event.purchase_id, environment_hint=event.environment
        )
        refreshed = status_events(statuses)
        log.info("apple_grace_period_refreshed", original_transaction_id=event.purchase_id)
        return events + [e for e in refreshed if e.purchase_id == event.purchase_id]

    # --- submissions ---------------------------------------------------------------------

    async def submit(self, body: Mapping[str, Any], now: datetime) -> Resolution:
        """An App Store submission: exactly one of a signed transaction, a transaction id or
        a receipt. With API credentials, the transaction's subscription statuses and the
        account's whole history are pulled too, so the stored state is complete and every
        purchase in it is linked to the submitting user (restore semantics)."""
        given = [p for p in PROOFS if body.get(p) is not None]
        if len(given) != 1 or not isinstance(body[given[0]], str) or not body[given[0]]:
            raise InvalidSubmission(
                "give exactly one of signed_transaction, transaction_id or receipt"
            )
        proof = given[0]
        events: list[StoreEvent] = []
        environment = None
        if proof == "signed_transaction":
            try:
                verified = await self.verifier.verify_transaction(body[proof])
            except MalformedPayload as exc:
                # Present but not a verifiable Apple JWS: the proof does not verify (422).
                raise VerificationFailed(exc.message) from None
            events.append(transaction_event(verified))
            transaction_id = str(verified.raw.get("transactionId"))
            environment = verified.raw.get("environment")
        elif proof == "receipt":
            transaction_id = transaction_id_from_receipt(body[proof])
        else:
            transaction_id = body[proof]
        recorder = ReadRecorder(self.reads_from)
        api = self._api(recorder)
        if api is None:
            if proof != "signed_transaction":
                raise SubmissionNotSupported(
                    "App Store Server API credentials are not configured; submit signed_transaction"
                )
            return Resolution(self.terms.apply(events))
        events += await api.fetch_purchase_events(transaction_id, environment_hint=environment)
        return Resolution(self.terms.apply(events), reads=tuple(recorder.reads))


def _original_transaction_id(notification: AppleNotification) -> str | None:
    """The purchase a verified notification is about, read from its signed items (for the
    journal and the log line, before translation)."""
    for item in (notification.transaction, notification.renewal):
        if item is not None:
            value = item.raw.get("originalTransactionId")
            if isinstance(value, str) and value:
                return value
    return None


def signed_payload_of(body: bytes) -> str:
    """The `signedPayload` string of an Apple notification body (MalformedPayload otherwise)."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")
    signed = document.get("signedPayload")
    if not isinstance(signed, str) or not signed:
        raise MalformedPayload("body has no signedPayload string")
    return signed
