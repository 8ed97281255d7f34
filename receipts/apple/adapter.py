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
Reconciliation (`receipts.port.Reconciling`, with API credentials): Get Notification History
per accepted environment (each listed notification is received as the webhook receives it),
and Get All Subscription Statuses of a subscription we hold (`refresh`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from entitlements.model import Status, Store, StoreEvent
from receipts.apple.server_api import (
    AppStoreServerClient,
    status_events,
    transaction_id_from_receipt,
)
from receipts.apple.terms import NonRenewingTerms
from receipts.apple.translate import notification_events, transaction_event
from receipts.apple.verifier import AppleNotification, AppleVerifier, notification_bundle
from receipts.errors import (
    InvalidSubmission,
    MalformedPayload,
    PurchaseNotFound,
    SubmissionNotSupported,
    VerificationFailed,
)
from receipts.port import Inbound, Listed, ListedPage, Listing, Resolution
from receipts.recording import ReadRecorder, RecordedReads, StoreRead

log = structlog.get_logger(__name__)

PROOFS = ("signed_transaction", "transaction_id", "receipt")
# How far back Get Notification History reaches, per environment (Apple: 180 days in
# Production, 30 in Sandbox), less a margin for the clocks of Apple and this host.
HISTORY_KEPT = {"Production": timedelta(days=180), "Sandbox": timedelta(days=30)}
HISTORY_MARGIN = timedelta(minutes=10)
STATUSES = "statuses"  # the `read` of a refresh request: Get All Subscription Statuses
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
            app=notification_bundle(notification.raw),
        )

    async def resolve(self, inbound: Inbound, now: datetime) -> Resolution:
        """The notification's events, completed (grace end) and with non-renewing terms;
        `ignored` when it is about no purchase."""
        events = notification_events(inbound.verified)
        if not events:
            return Resolution([], result="ignored")
        recorder = ReadRecorder(self.reads_from)
        api = self._api(recorder, events[0].app)
        events = await self._with_grace_period_end(events, api)
        return Resolution(
            self.terms.apply(events), log={"events": len(events)}, reads=tuple(recorder.reads)
        )

    async def reread(self, payload: str) -> Inbound:
        """A journaled notification, verified again (Apple's signature is all its proof)."""
        return await self.receive(None, payload.encode("utf-8"))

    def replaying(self, reads: Sequence[StoreRead]) -> AppleStore:
        """This adapter with its App Store Server API answered from `reads`."""
        return replace(self, reads_from=RecordedReads(reads))

    def _api(self, recorder: ReadRecorder, app: object) -> AppStoreServerClient | None:
        """The API client asking about `app` (a bundle id; else the first app), recorded."""
        if self.api is None:
            return None
        bundle = app if isinstance(app, str) and app in self.verifier.bundle_ids else None
        return self.api.for_app(bundle).recording(recorder)

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

    # --- reconciliation ------------------------------------------------------------------

    def listings(self, since: datetime | None, until: datetime, now: datetime) -> list[Listing]:
        """Each app's notification history in each accepted environment (Apple keeps it per
        app); an environment whose host is another's (`api_base_url` replaces both) is asked
        once. With one app a listing is named by its environment, else `<env>/<bundle id>`."""
        if self.api is None:
            return []
        urls = self.api.environment_urls
        apps = self.verifier.bundle_ids
        out: list[Listing] = []
        for env, kept in HISTORY_KEPT.items():
            asked = {urls[_environment_of(o.name)] for o in out}
            if env not in self.verifier.environments or urls[env] in asked:
                continue
            earliest = now - kept + HISTORY_MARGIN
            start = since if since is not None and since >= earliest else earliest
            clamped = since is not None and since < earliest
            for app in apps:
                name = env if len(apps) == 1 else f"{env}/{app}"
                title = f"notification history ({env})"
                if len(apps) > 1:
                    title = f"notification history ({app}, {env})"
                out.append(Listing(name, title, start, until, clamped))
        return out

    async def list_page(self, listing: Listing, cursor: str | None) -> ListedPage:
        """One page of Get Notification History: each notification as Apple POSTs it."""
        if self.api is None:
            raise SubmissionNotSupported("App Store Server API credentials are not configured")
        env, _, app = listing.name.partition("/")
        body = await self.api.for_app(app or None).notification_history(
            env, listing.since, listing.until, cursor
        )
        items = []
        for entry in body.get("notificationHistory") or []:
            signed = entry.get("signedPayload") if isinstance(entry, dict) else None
            if not isinstance(signed, str) or not signed:
                raise MalformedPayload("Apple API notification history item has no signedPayload")
            payload = json.dumps({"signedPayload": signed}).encode()
            items.append(Listed(label=f"notification {_unverified_uuid(signed)}", body=payload))
        token = body.get("paginationToken")
        more = bool(body.get("hasMore")) and isinstance(token, str) and bool(token)
        return ListedPage(items, token if more else None)

    def reread_requests(
        self, purchase_id: str, environment: str | None, app: str | None = None
    ) -> list[dict[str, Any]]:
        """Get All Subscription Statuses of the original transaction (its environment first),
        asked of its app; of each app in turn when the purchase names none."""
        request: dict[str, Any] = {"read": STATUSES, "original_transaction_id": purchase_id}
        if environment is not None:
            request["environment"] = environment
        if len(self.verifier.bundle_ids) == 1:
            return [request]  # one app: the request as it always was (replay reads it back)
        apps = [app] if app in self.verifier.bundle_ids else list(self.verifier.bundle_ids)
        return [request | {"app": a} for a in apps]

    async def refresh(self, request: Mapping[str, Any], now: datetime) -> Resolution:
        """The current status of every subscription of the account (all its groups)."""
        original = request.get("original_transaction_id")
        hint = request.get("environment")
        if request.get("read") != STATUSES or not isinstance(original, str):
            raise MalformedPayload("not an App Store refresh request")
        recorder = ReadRecorder(self.reads_from)
        api = self._api(recorder, request.get("app"))
        if api is None:
            raise SubmissionNotSupported("App Store Server API credentials are not configured")
        statuses = await api.get_all_subscription_statuses(
            original, environment_hint=hint if isinstance(hint, str) else None
        )
        events = self.terms.apply(status_events(statuses))
        return Resolution(events, log={"events": len(events)}, reads=tuple(recorder.reads))

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
        apps: tuple[str, ...] = self.verifier.bundle_ids  # a bare id names no app: ask each
        if proof == "signed_transaction":
            try:
                verified = await self.verifier.verify_transaction(body[proof])
            except MalformedPayload as exc:
                # Present but not a verifiable Apple JWS: the proof does not verify (422).
                raise VerificationFailed(exc.message) from None
            events.append(transaction_event(verified))
            transaction_id = str(verified.raw.get("transactionId"))
            environment = verified.raw.get("environment")
            apps = (str(verified.raw.get("bundleId")),)
        elif proof == "receipt":
            transaction_id = transaction_id_from_receipt(body[proof])
        else:
            transaction_id = body[proof]
        # Only a transaction Apple signed, verified here, shows that the bearer holds it (and
        # the account whose history it pulls); a transaction id or a receipt (whose PKCS#7
        # signature is not checked) only names one (contract §3, proof of ownership).
        holds = proof == "signed_transaction"
        recorder = ReadRecorder(self.reads_from)
        if self.api is None:
            if proof != "signed_transaction":
                raise SubmissionNotSupported(
                    "App Store Server API credentials are not configured; submit signed_transaction"
                )
            return Resolution(self.terms.apply(events), proves_holding=holds)
        for index, app in enumerate(apps):
            api = self._api(recorder, app)
            assert api is not None
            try:
                events += await api.fetch_purchase_events(
                    transaction_id, environment_hint=environment
                )
                break
            except PurchaseNotFound:
                if index + 1 == len(apps):
                    raise  # no app of the team knows it
        return Resolution(
            self.terms.apply(events), reads=tuple(recorder.reads), proves_holding=holds
        )


def _environment_of(listing_name: str) -> str:
    """The environment of a listing named `<env>` or `<env>/<bundle id>`."""
    return listing_name.partition("/")[0]


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
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: too deeply nested
        raise MalformedPayload("body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")
    signed = document.get("signedPayload")
    if not isinstance(signed, str) or not signed:
        raise MalformedPayload("body has no signedPayload string")
    return signed


def _unverified_uuid(signed: str) -> str:
    """The notificationUUID of a JWS, unverified: only to name it in a report."""
    try:
        segment = signed.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        uuid = claims.get("notificationUUID")
    except (IndexError, ValueError, AttributeError, RecursionError):
        return "(unreadable)"
    readable = isinstance(uuid, str) and uuid.isascii() and uuid.isprintable() and len(uuid) <= 64
    return uuid if readable else "(unknown)"
