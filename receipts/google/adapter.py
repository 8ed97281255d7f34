"""Google Play as a store port (`receipts.port`): Pub/Sub pushes of Real-time Developer
Notifications and Play purchase submissions, answered in our words.

receive: authenticate the push (OIDC) → parse the envelope (not one: MalformedPayload, 400) →
poison is settled `rejected` (stored for inspection, never redelivered) → TEST and refund
reviews are settled `ignored`. resolve: re-read the purchase from the Play Developer API (the
notification is not trusted for state, except the revocations it states) → events, plus the
pending acknowledgement to commit with them and to try right after the commit. Nothing is
written before the Play API has answered, so an outage is a 503 with nothing stored.
Every Play document a resolve or submit used is recorded raw in its Resolution (for the
journal); `replaying` serves them back, and `reread` parses a journaled push again (its
OIDC token is not journaled: authentication is not repeated).
Reconciliation (`receipts.port.Reconciling`): the Voided Purchases API per package (each item
a `refresh` request that revokes at `voidedTimeMillis`), and subscriptionsv2 re-reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from entitlements.model import Store
from receipts.errors import (
    InvalidSubmission,
    MalformedPayload,
    ProductNotOurs,
    PurchaseNotFound,
    StoreUnavailable,
)
from receipts.google.acknowledgements import PlayAcknowledgements, purchase_ref
from receipts.google.notifications import VOIDED_PRODUCT_TYPE_SUBSCRIPTION, parse_millis
from receipts.google.push_auth import PushTokenVerifier
from receipts.google.reads import (
    PlayApi,
    PlayRead,
    PlayReader,
    RecordingPlay,
    read_product,
    read_submitted,
    read_subscription,
)
from receipts.google.translate import (
    Category,
    Notification,
    classify,
    parse_push,
    voided_event,
    voided_purchase_event,
)
from receipts.port import Inbound, Listed, ListedPage, Listing, Resolution, Result, no_follow_up
from receipts.recording import ReadRecorder, RecordedReads, StoreRead

SUBMISSION_FIELDS = ("package_name", "product_id", "purchase_token")
PRODUCT_TYPES = ("subscription", "one_time")
_MAX_LENGTH = {"package_name": 255, "product_id": 255, "purchase_token": 4096}
# The Voided Purchases API reaches 30 days back; less a margin for the clocks of Google and
# this host.
VOIDED_KEPT = timedelta(days=30)
VOIDED_MARGIN = timedelta(minutes=10)
VOIDED, SUBSCRIPTION = "voided", "subscription"  # the `read` of a refresh request


@dataclass(frozen=True, slots=True)
class GooglePlayStore:
    """The Play adapter, built once by the composition root from `[google]`."""

    verifier: PushTokenVerifier
    play: PlayApi
    acks: PlayAcknowledgements
    package_names: frozenset[str]
    consumable_products: frozenset[str]
    known_products: frozenset[str]  # every product some entitlement names
    store: Store = Store.PLAY_STORE
    reads_from: RecordedReads | None = None  # replay: Play answers come from the journal
    voided_page_size: int = 1000  # Google's maximum

    # --- pushes --------------------------------------------------------------------------

    async def receive(self, authorization: str | None, body: bytes) -> Inbound:
        """Authenticate and parse one push; no Play API call yet."""
        await self.verifier.verify(authorization)
        return self._parse(body)

    async def reread(self, payload: str) -> Inbound:
        """A journaled push, parsed again (its OIDC token was checked when it arrived)."""
        return self._parse(payload.encode("utf-8"))

    def replaying(self, reads: Sequence[StoreRead]) -> GooglePlayStore:
        """This adapter with its Play Developer API reads answered from `reads`."""
        return replace(self, reads_from=RecordedReads(reads))

    def _parse(self, body: bytes) -> Inbound:
        message = parse_push(body)  # not a push envelope: MalformedPayload (400)
        payload = body.decode("utf-8", errors="replace")
        log: dict[str, Any] = {"message_id": message.message_id}
        if message.notification is None:  # poison: stored for inspection, never redelivered
            log["reason"] = message.poison_reason
            return Inbound(
                store=self.store,
                message_id=message.message_id,
                type_name=None,
                subtype=None,
                stated_at=message.publish_time,
                purchase_id=None,
                payload=payload,
                log=log,
                settled="rejected",
                reason=message.poison_reason,
            )
        n = classify(message.notification, self.package_names)
        # Google's time of the event: eventTimeMillis, else when Pub/Sub published it.
        n = replace(n, event_time=n.event_time or message.publish_time)
        log.update(
            category=n.category.value,
            package_name=n.package_name,
            notification_type=n.notification_type,
        )
        settled, reason = _settled(n)
        if reason is not None:
            log["reason"] = reason
        if settled is None and n.purchase_token is not None:
            log["purchase_ref"] = purchase_ref(n.purchase_token)
            if n.product_id:
                log["product_id"] = n.product_id
        type_name, subtype = n.journal_names
        return Inbound(
            store=self.store,
            message_id=message.message_id,
            type_name=type_name,
            subtype=subtype,
            stated_at=n.event_time,
            purchase_id=None if n.category is Category.PENDING_REFUND_REVIEW else n.purchase_token,
            payload=payload,
            log=log,
            settled=settled,
            reason=reason,
            verified=n,
            app=n.package_name if n.package_name in self.package_names else None,
        )

    async def resolve(self, inbound: Inbound, now: datetime) -> Resolution:
        """The purchase's state from the Play API (StoreUnavailable → 503, nothing stored)."""
        n: Notification = inbound.verified
        assert n.purchase_token is not None  # classify's promise for unsettled categories
        assert n.package_name is not None
        recorder = ReadRecorder(self.reads_from)
        play = RecordingPlay(self.play, recorder)
        read, result, reason = await self._read(play, n, n.package_name, n.purchase_token, now)
        resolution = self._resolution(read, n.package_name, n.purchase_token, result, reason)
        return replace(resolution, reads=tuple(recorder.reads))

    async def _read(
        self, play: PlayReader, n: Notification, package: str, token: str, now: datetime
    ) -> tuple[PlayRead, Result, str | None]:
        try:
            if n.category is Category.SUBSCRIPTION:
                read = await read_subscription(
                    play,
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
                    play,
                    package,
                    n.product_id,
                    token,
                    now,
                    consumable_products=self.consumable_products,
                    notification_type=n.notification_type,
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
                    play,
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

    # --- reconciliation ------------------------------------------------------------------

    def listings(self, since: datetime | None, until: datetime, now: datetime) -> list[Listing]:
        """Each package's voided purchases (subscriptions included)."""
        earliest = now - VOIDED_KEPT + VOIDED_MARGIN
        start = since if since is not None and since >= earliest else earliest
        clamped = since is not None and since < earliest
        return [
            Listing(package, f"voided purchases ({package})", start, until, clamped)
            for package in sorted(self.package_names)
        ]

    async def list_page(self, listing: Listing, cursor: str | None) -> ListedPage:
        """One page of voidedpurchases.list: each item a `refresh` request of its own, under
        a message id derived from the order and its void time (a second run finds it)."""
        body = await self.play.list_voided_purchases(
            listing.name,
            start=listing.since,
            end=listing.until,
            page_token=cursor,
            max_results=self.voided_page_size,
        )
        items = []
        for item in body.get("voidedPurchases") or []:
            if not isinstance(item, dict):
                raise MalformedPayload("Play voided purchases page item is not an object")
            token = item.get("purchaseToken")
            token = token if isinstance(token, str) and token else None
            ref = purchase_ref(token) if token is not None else "(no token)"
            order = item.get("orderId")
            voided_at = item.get("voidedTimeMillis")
            request = {"read": VOIDED, "package_name": listing.name, "voided_purchase": item}
            items.append(
                Listed(
                    label=f"{ref} order {order}",
                    request=request,
                    message_id=f"voided:{order or ref}:{voided_at}",
                    purchase_id=token,
                    stated_at=parse_millis(voided_at),
                )
            )
        pagination = body.get("tokenPagination")
        token = pagination.get("nextPageToken") if isinstance(pagination, dict) else None
        return ListedPage(items, token if isinstance(token, str) and token else None)

    def reread_requests(
        self, purchase_id: str, environment: str | None, app: str | None = None
    ) -> list[dict[str, Any]]:
        """subscriptionsv2.get of the token (an add-on line item's row `token|product` is
        its token's), in its package (`app`); in each configured package when it names none."""
        token = purchase_id.split("|", 1)[0]
        packages = [app] if app in self.package_names else sorted(self.package_names)
        return [
            {"read": SUBSCRIPTION, "package_name": package, "purchase_token": token}
            for package in packages
        ]

    async def refresh(self, request: Mapping[str, Any], now: datetime) -> Resolution:
        """A voided purchase (the revocation at its void time; none for a partial refund),
        or a subscription read again (PurchaseNotFound: not in this package)."""
        package = request.get("package_name")
        if not isinstance(package, str) or package not in self.package_names:
            raise ProductNotOurs("this package is not configured on this service")
        if request.get("read") == VOIDED and isinstance(request.get("voided_purchase"), dict):
            event = voided_purchase_event(request["voided_purchase"], package, now)
            return Resolution([event] if event is not None else [])
        token = request.get("purchase_token")
        if request.get("read") != SUBSCRIPTION or not isinstance(token, str) or not token:
            raise MalformedPayload("not a Play refresh request")
        recorder = ReadRecorder(self.reads_from)
        read = await read_subscription(RecordingPlay(self.play, recorder), package, token, now)
        resolution = self._resolution(read, package, token, "processed", None)
        return replace(resolution, reads=tuple(recorder.reads))

    # --- submissions ---------------------------------------------------------------------

    async def submit(self, body: Mapping[str, Any], now: datetime) -> Resolution:
        """A Play purchase an app hands over: package, product and token (400 otherwise),
        validated with the Play API; its acknowledgement commits with it."""
        package, product_id, token, product_type = _submission(body)
        if package not in self.package_names:
            raise ProductNotOurs("this package is not configured on this service")
        if product_id not in self.consumable_products | self.known_products:
            raise ProductNotOurs("this product is not configured on this service")
        recorder = ReadRecorder(self.reads_from)
        read = await read_submitted(
            RecordingPlay(self.play, recorder),
            package,
            product_id,
            token,
            now,
            consumable_products=self.consumable_products,
            product_type=product_type,
        )
        # The 3-day rule: settle whatever is pending for the token, even an earlier row.
        resolution = self._resolution(read, package, token, "processed", None, always_settle=True)
        # A purchase token is a secret of the device that bought: whoever holds it holds the
        # purchase (contract §3, proof of ownership).
        return replace(resolution, reads=tuple(recorder.reads), proves_holding=True)

    def _resolution(
        self,
        read: PlayRead,
        package: str,
        token: str,
        result: Result,
        reason: str | None,
        *,
        always_settle: bool = False,
    ) -> Resolution:
        async def settle() -> None:
            await self.acks.settle(package, token)

        return Resolution(
            events=read.events,
            result=result,
            reason=reason,
            # The pending acknowledgement commits with the state: it exists before the 200.
            write=self.acks.writer(read.acks),
            after_commit=settle if read.acks or always_settle else no_follow_up,
            log={"events": len(read.events)},
        )


def _settled(n: Notification) -> tuple[Result | None, str | None]:
    """A verdict for notifications with nothing to read from the Play API."""
    if n.category is Category.POISON:
        return "rejected", n.poison_reason
    if n.event_time is None and n.revokes:
        # A revocation is shown at the store's time; with none, there is nothing to record.
        return "rejected", "no event time"
    if n.category is Category.TEST:
        return "ignored", "test notification"
    if n.category is Category.PENDING_REFUND_REVIEW:
        # `ignored`: a refund *review* changes no entitlement (the user keeps access while
        # Google decides) and receiptd does not answer orders.reviewrefund; if the refund
        # is granted, a voidedPurchaseNotification follows and revokes. Journaled so an
        # operator can still find and answer it within Google's 24 h window.
        return "ignored", "pending refund review"
    return None, None


def _submission(body: Mapping[str, Any]) -> tuple[str, str, str, str | None]:
    """package_name, product_id, purchase_token and product_type of a submission."""
    values = []
    for name in SUBMISSION_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_LENGTH[name]:
            raise InvalidSubmission(f"{name} must be a non-empty string for play_store")
        values.append(value)
    product_type = body.get("product_type")
    if product_type is not None and product_type not in PRODUCT_TYPES:
        raise InvalidSubmission("product_type must be subscription or one_time")
    return values[0], values[1], values[2], product_type
