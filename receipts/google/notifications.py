"""Google Pub/Sub push envelopes and Real-time Developer Notifications: parsing and classifying.

Pure functions, no I/O. A body that is not a push envelope at all raises `MalformedPayload`
(the webhook answers 400); an envelope whose `data` cannot be used is *poison*: it is
returned with a `poison_reason` so that the caller stores it and answers 200 `rejected`
(Pub/Sub would otherwise redeliver it forever).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from receipts.errors import MalformedPayload

# Subscription notificationType codes (RTDN reference); 14-16 and 21 are unused.
SUBSCRIPTION_NOTIFICATION_NAMES: dict[int, str] = {
    1: "SUBSCRIPTION_RECOVERED",
    2: "SUBSCRIPTION_RENEWED",
    3: "SUBSCRIPTION_CANCELED",
    4: "SUBSCRIPTION_PURCHASED",
    5: "SUBSCRIPTION_ON_HOLD",
    6: "SUBSCRIPTION_IN_GRACE_PERIOD",
    7: "SUBSCRIPTION_RESTARTED",
    8: "SUBSCRIPTION_PRICE_CHANGE_CONFIRMED",
    9: "SUBSCRIPTION_DEFERRED",
    10: "SUBSCRIPTION_PAUSED",
    11: "SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED",
    12: "SUBSCRIPTION_REVOKED",
    13: "SUBSCRIPTION_EXPIRED",
    17: "SUBSCRIPTION_ITEMS_CHANGED",
    18: "SUBSCRIPTION_CANCELLATION_SCHEDULED",
    19: "SUBSCRIPTION_PRICE_CHANGE_UPDATED",
    20: "SUBSCRIPTION_PENDING_PURCHASE_CANCELED",
    22: "SUBSCRIPTION_PRICE_STEP_UP_CONSENT_UPDATED",
}
SUBSCRIPTION_PURCHASED = 4
SUBSCRIPTION_REVOKED = 12
ONE_TIME_PRODUCT_PURCHASED = 1
ONE_TIME_PRODUCT_CANCELED = 2
VOIDED_PRODUCT_TYPE_SUBSCRIPTION = 1
VOIDED_PRODUCT_TYPE_ONE_TIME = 2
REFUND_TYPE_FULL = 1
REFUND_TYPE_PARTIAL = 2
_ONE_TIME_NAMES = {
    ONE_TIME_PRODUCT_PURCHASED: "ONE_TIME_PRODUCT_PURCHASED",
    ONE_TIME_PRODUCT_CANCELED: "ONE_TIME_PRODUCT_CANCELED",
}
_REFUND_TYPE_NAMES = {REFUND_TYPE_FULL: "FULL_REFUND", REFUND_TYPE_PARTIAL: "PARTIAL_REFUND"}


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One Pub/Sub push delivery: the envelope's ids plus the decoded notification or why
    it could not be decoded (`poison_reason`). Exactly one of the two is set."""

    message_id: str
    publish_time: datetime | None
    subscription: str | None
    notification: dict[str, Any] | None
    poison_reason: str | None = None
    delivery_attempt: int | None = None


class Category(StrEnum):
    """Which of the DeveloperNotification's blocks a notification carries."""

    SUBSCRIPTION = "subscription"
    ONE_TIME = "one_time"
    VOIDED = "voided"
    PENDING_REFUND_REVIEW = "pending_refund_review"
    TEST = "test"
    POISON = "poison"


@dataclass(frozen=True, slots=True)
class Notification:
    """A classified DeveloperNotification, in the few fields the webhook needs.

    `purchase_token` is the token to re-read from the Play Developer API (or the
    `pendingRefundToken` for a refund review); `product_id` is the one-time product's
    `sku` or a legacy subscription notification's `subscriptionId`.
    """

    category: Category
    package_name: str | None = None
    event_time: datetime | None = None
    notification_type: int | None = None
    purchase_token: str | None = None
    product_id: str | None = None
    order_id: str | None = None
    voided_product_type: int | None = None
    refund_type: int | None = None
    poison_reason: str | None = None

    @property
    def type_name(self) -> str | None:
        """The Google name of a subscription notification code, when it has one."""
        if self.category is Category.SUBSCRIPTION and self.notification_type is not None:
            return SUBSCRIPTION_NOTIFICATION_NAMES.get(self.notification_type)
        return None

    @property
    def journal_names(self) -> tuple[str | None, str | None]:
        """Google's names of the message's type and subtype, as the journal shows them."""
        code = self.notification_type
        if self.category is Category.POISON:
            return None, None
        if self.category is Category.SUBSCRIPTION:
            return self.type_name or f"SUBSCRIPTION_{code}", None
        if self.category is Category.ONE_TIME:
            return _ONE_TIME_NAMES.get(code or 0, f"ONE_TIME_PRODUCT_{code}"), None
        if self.category is Category.VOIDED:
            return "VOIDED_PURCHASE", _REFUND_TYPE_NAMES.get(self.refund_type or 0)
        if self.category is Category.PENDING_REFUND_REVIEW:
            return "PENDING_REFUND_REVIEW", None
        return "TEST", None

    @property
    def revokes(self) -> bool:
        """Whether the notification itself states a revocation (voided, SUBSCRIPTION_REVOKED)."""
        return self.category is Category.VOIDED or (
            self.category is Category.SUBSCRIPTION
            and self.notification_type == SUBSCRIPTION_REVOKED
        )


def parse_push(body: bytes) -> PushMessage:
    """Read a Pub/Sub push body (the default wrapped format).

    Raises `MalformedPayload` when the body is not a push envelope (not JSON, no `message`
    object, no message id). Undecodable `data` is returned as poison, not raised.
    """
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # Recursion: too deep
        raise MalformedPayload("The push body is not JSON.") from exc
    if not isinstance(envelope, dict):
        raise MalformedPayload("The push body is not a JSON object.")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise MalformedPayload("The push body has no `message` object.")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise MalformedPayload("The push message has no messageId.")
    subscription = envelope.get("subscription")
    attempt = envelope.get("deliveryAttempt", message.get("deliveryAttempt"))
    common: dict[str, Any] = {
        "message_id": message_id,
        "publish_time": parse_rfc3339(message.get("publishTime", message.get("publish_time"))),
        "subscription": subscription if isinstance(subscription, str) else None,
        "delivery_attempt": attempt if isinstance(attempt, int) else None,
    }
    data = message.get("data")
    if not isinstance(data, str) or not data:
        return PushMessage(notification=None, poison_reason="no data", **common)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # some publishers use the URL-safe alphabet
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return PushMessage(notification=None, poison_reason="bad base64", **common)
    try:
        decoded = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return PushMessage(notification=None, poison_reason="bad JSON", **common)
    except RecursionError:
        return PushMessage(notification=None, poison_reason="JSON nested too deeply", **common)
    if not isinstance(decoded, dict):
        return PushMessage(notification=None, poison_reason="not a JSON object", **common)
    return PushMessage(notification=decoded, **common)


def classify(notification: Mapping[str, Any], package_names: Collection[str]) -> Notification:
    """Say which kind of DeveloperNotification this is and pull out its identifiers.

    Anything unusable (unknown package, no known block, missing token) is a POISON
    Notification with a reason; nothing here raises.
    """
    package = notification.get("packageName")
    if not isinstance(package, str) or not package:
        return _poison("no packageName")
    if package not in package_names:
        return _poison("unknown package", package)
    base: dict[str, Any] = {
        "package_name": package,
        "event_time": parse_millis(notification.get("eventTimeMillis")),
    }
    sub = notification.get("subscriptionNotification")
    if isinstance(sub, dict):
        token = _token(sub.get("purchaseToken"))
        code = _int(sub.get("notificationType"))
        if token is None:
            return _poison("no purchaseToken", package)
        return Notification(
            Category.SUBSCRIPTION,
            notification_type=code,
            purchase_token=token,
            product_id=_str(sub.get("subscriptionId")),
            **base,
        )
    one_time = notification.get("oneTimeProductNotification")
    if isinstance(one_time, dict):
        token = _token(one_time.get("purchaseToken"))
        sku = _str(one_time.get("sku"))
        if token is None or sku is None:
            return _poison("no purchaseToken or sku", package)
        return Notification(
            Category.ONE_TIME,
            notification_type=_int(one_time.get("notificationType")),
            purchase_token=token,
            product_id=sku,
            **base,
        )
    voided = notification.get("voidedPurchaseNotification")
    if isinstance(voided, dict):
        token = _token(voided.get("purchaseToken"))
        if token is None:
            return _poison("no purchaseToken", package)
        return Notification(
            Category.VOIDED,
            purchase_token=token,
            order_id=_str(voided.get("orderId")),
            voided_product_type=_int(voided.get("productType")),
            refund_type=_int(voided.get("refundType")),
            **base,
        )
    review = notification.get("pendingRefundReviewNotification")
    if isinstance(review, dict):
        return Notification(
            Category.PENDING_REFUND_REVIEW,
            purchase_token=_token(review.get("pendingRefundToken")),
            order_id=_str(review.get("orderId")),
            **base,
        )
    if isinstance(notification.get("testNotification"), dict):
        return Notification(Category.TEST, **base)
    return _poison("no known notification block", package)


def _poison(reason: str, package: str | None = None) -> Notification:
    return Notification(Category.POISON, package_name=package, poison_reason=reason)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _token(value: Any) -> str | None:
    # Real tokens are a few hundred characters; a megabyte "token" is an attack, not a token.
    token = _str(value)
    return token if token is not None and len(token) <= 4096 else None


def _int(value: Any) -> int | None:
    """RTDN integers may arrive as JSON numbers or strings (int64 is sent as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_millis(value: Any) -> datetime | None:
    """Milliseconds since the epoch (a number or a string) as an aware UTC datetime; None
    when absent or not a valid instant."""
    millis = _int(value)
    if millis is None:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_rfc3339(value: Any) -> datetime | None:
    """Parse Google's RFC 3339 times (`Z` suffix, 0-9 fractional digits) as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python <3.11.? accepts at most 6 fractional digits; Google sends up to 9
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
