"""Signed Notifications V2 for one subscription lifecycle, for tests and `receiptd simulate apple`.

`AppleScenario` keeps the state of one (user, product, originalTransactionId) lifecycle —
current transaction, expiry, auto-renew, refunds — and turns an event name ("subscribe",
"renew", "cancel", "refund", …) into the signed `{"signedPayload": …}` body Apple would send,
advancing that state. Every notificationType/subtype of store-protocols A4 has an event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from simulators.apple_ca import (
    TestCA,
    ms,
    notification_payload,
    renewal_payload,
    transaction_payload,
)

DEFAULT_BUNDLE_ID = "com.example.app"
SUBSCRIPTION = "Auto-Renewable Subscription"

# event name → (notificationType, subtype)
EVENTS: dict[str, tuple[str, str | None]] = {
    "subscribe": ("SUBSCRIBED", "INITIAL_BUY"),
    "subscribe-trial": ("SUBSCRIBED", "INITIAL_BUY"),
    "subscribe-intro": ("SUBSCRIBED", "INITIAL_BUY"),
    "resubscribe": ("SUBSCRIBED", "RESUBSCRIBE"),
    "renew": ("DID_RENEW", None),
    "billing-recovery": ("DID_RENEW", "BILLING_RECOVERY"),
    "cancel": ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"),
    "uncancel": ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"),
    "fail-grace": ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"),
    "fail": ("DID_FAIL_TO_RENEW", None),
    "grace-expired": ("GRACE_PERIOD_EXPIRED", None),
    "expire-voluntary": ("EXPIRED", "VOLUNTARY"),
    "expire-billing-retry": ("EXPIRED", "BILLING_RETRY"),
    "expire-price-increase": ("EXPIRED", "PRICE_INCREASE"),
    "expire-not-for-sale": ("EXPIRED", "PRODUCT_NOT_FOR_SALE"),
    "expire": ("EXPIRED", None),
    "upgrade": ("DID_CHANGE_RENEWAL_PREF", "UPGRADE"),
    "downgrade": ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"),
    "downgrade-cancelled": ("DID_CHANGE_RENEWAL_PREF", None),
    "offer-redeemed": ("OFFER_REDEEMED", None),
    "offer-redeemed-upgrade": ("OFFER_REDEEMED", "UPGRADE"),
    "offer-redeemed-downgrade": ("OFFER_REDEEMED", "DOWNGRADE"),
    "price-increase-pending": ("PRICE_INCREASE", "PENDING"),
    "price-increase-accepted": ("PRICE_INCREASE", "ACCEPTED"),
    "refund": ("REFUND", None),
    "refund-declined": ("REFUND_DECLINED", None),
    "refund-reversed": ("REFUND_REVERSED", None),
    "revoke": ("REVOKE", None),
    "consumption-request": ("CONSUMPTION_REQUEST", None),
    "renewal-extended": ("RENEWAL_EXTENDED", None),
    "renewal-extension-summary": ("RENEWAL_EXTENSION", "SUMMARY"),
    "renewal-extension-failure": ("RENEWAL_EXTENSION", "FAILURE"),
    "one-time-consumable": ("ONE_TIME_CHARGE", None),
    "one-time-non-consumable": ("ONE_TIME_CHARGE", None),
    "one-time-non-renewing": ("ONE_TIME_CHARGE", None),
    "test": ("TEST", None),
    "external-purchase-token": ("EXTERNAL_PURCHASE_TOKEN", "UNREPORTED"),
    "external-purchase-token-created": ("EXTERNAL_PURCHASE_TOKEN", "CREATED"),
    "external-purchase-token-reminder": ("EXTERNAL_PURCHASE_TOKEN", "ACTIVE_TOKEN_REMINDER"),
    "rescind-consent": ("RESCIND_CONSENT", None),
    "metadata-update": ("METADATA_UPDATE", None),
    "migration": ("MIGRATION", None),
    "price-change": ("PRICE_CHANGE", None),
}

_EXPIRATION_INTENT = {
    "VOLUNTARY": 1,
    "BILLING_RETRY": 2,
    "PRICE_INCREASE": 3,
    "PRODUCT_NOT_FOR_SALE": 4,
    None: 5,
}
_ONE_TIME_TYPES = {
    "one-time-consumable": "Consumable",
    "one-time-non-consumable": "Non-Consumable",
    "one-time-non-renewing": "Non-Renewing Subscription",
}
_NO_TRANSACTION = {"test", "renewal-extension-summary", "rescind-consent"}


def _new_id() -> str:
    return str(2_000_000_000_000_000 + secrets.randbelow(10**15))


def account_token(user: str) -> str | None:
    """`user` as Apple's appAccountToken when it is a UUID (the only form Apple accepts)."""
    try:
        return str(uuid.UUID(user))
    except ValueError:
        return None


@dataclass
class Lifecycle:
    """The evolving state of one simulated subscription (JSON-serialisable)."""

    user: str
    product: str
    original_transaction_id: str = dataclasses.field(default_factory=_new_id)
    transaction_id: str = ""
    purchased_ms: int = 0
    original_purchased_ms: int = 0
    expires_ms: int = 0
    auto_renew: bool = True
    auto_renew_product: str = ""
    offer: dict[str, Any] = dataclasses.field(default_factory=dict)
    revoked: dict[str, Any] = dataclasses.field(default_factory=dict)
    ownership: str = "PURCHASED"


class AppleScenario:
    """Builds signed notification bodies for one lifecycle; `now` is passed per event."""

    def __init__(
        self,
        ca: TestCA,
        lifecycle: Lifecycle,
        *,
        bundle_id: str = DEFAULT_BUNDLE_ID,
        app_apple_id: int | None = 1234567890,
        environment: str = "Sandbox",
        period: dt.timedelta = dt.timedelta(days=30),
    ) -> None:
        self.ca = ca
        self.state = lifecycle
        self.bundle_id = bundle_id
        self.app_apple_id = app_apple_id
        self.environment = environment
        self.period = period

    def body(self, event: str, now: dt.datetime) -> dict[str, str]:
        """The POST body `{"signedPayload": …}` for `event` at `now`."""
        return {"signedPayload": self.ca.sign(self.payload(event, now))}

    def payload(self, event: str, now: dt.datetime) -> dict[str, Any]:
        """The decoded notification for `event` at `now` (nested items already signed)."""
        if event not in EVENTS:
            raise ValueError(f"unknown Apple event {event!r}; one of: {', '.join(EVENTS)}")
        ntype, subtype = EVENTS[event]
        common: dict[str, Any] = {
            "notification_type": ntype,
            "subtype": subtype,
            "bundle_id": self.bundle_id,
            "environment": self.environment,
            "app_apple_id": self.app_apple_id,
            "signed_date": now,
        }
        if ntype == "EXTERNAL_PURCHASE_TOKEN":
            prefix = "SANDBOX_" if self.environment != "Production" else ""
            return notification_payload(
                **common,
                block="externalPurchaseToken",
                externalPurchaseId=f"{prefix}{uuid.uuid4()}",
                tokenCreationDate=ms(now),
            )
        if event == "renewal-extension-summary":
            return notification_payload(
                **common,
                block="summary",
                productId=self.state.product,
                requestIdentifier=str(uuid.uuid4()),
                storefrontCountryCodes=["USA"],
                succeededCount=1,
                failedCount=0,
            )
        if event == "rescind-consent":
            return notification_payload(**common, block="appData")
        if event == "test":
            return notification_payload(**common)
        if event in _ONE_TIME_TYPES:
            return notification_payload(**common, signed_transaction=self._one_time(event, now))
        status, extra_renewal = self._advance(event, subtype, now)
        extra: dict[str, Any] = {}
        if event == "consumption-request":
            extra["consumptionRequestReason"] = "UNINTENDED_PURCHASE"
        return notification_payload(
            **common,
            signed_transaction=self._transaction(now),
            signed_renewal=self._renewal(now, extra_renewal),
            status=status,
            **extra,
        )

    # --- state transitions ---------------------------------------------------------------

    def _start_period(self, now: dt.datetime, length: dt.timedelta | None = None) -> None:
        s = self.state
        first = not s.transaction_id
        s.transaction_id = s.original_transaction_id if first else _new_id()
        s.purchased_ms = ms(now)
        if first:
            s.original_purchased_ms = ms(now)
        s.expires_ms = ms(now + (length or self.period))
        s.auto_renew = True
        s.offer = {}
        s.revoked = {}

    def _advance(
        self, event: str, subtype: str | None, now: dt.datetime
    ) -> tuple[int, dict[str, Any]]:
        """Apply `event` to the lifecycle; returns data.status and renewal-info extras."""
        s = self.state
        if not s.transaction_id and event not in {
            "subscribe",
            "subscribe-trial",
            "subscribe-intro",
        }:
            self._start_period(now - self.period / 2)  # an ongoing subscription to act on
        renewal: dict[str, Any] = {}
        status = 1
        if event in {"subscribe", "resubscribe", "renew", "billing-recovery"}:
            self._start_period(now)
        elif event == "subscribe-trial":
            self._start_period(now, dt.timedelta(days=7))
            s.offer = {"offerType": 1, "offerDiscountType": "FREE_TRIAL", "offerPeriod": "P1W"}
        elif event == "subscribe-intro":
            self._start_period(now)
            s.offer = {"offerType": 1, "offerDiscountType": "PAY_AS_YOU_GO", "offerPeriod": "P1M"}
        elif event in {"cancel", "uncancel"}:
            s.auto_renew = event == "uncancel"
        elif event in {"fail-grace", "fail", "grace-expired"}:
            s.expires_ms = min(s.expires_ms, ms(now))
            renewal = {"isInBillingRetryPeriod": True, "expirationIntent": 2}
            if event == "fail-grace":
                renewal["gracePeriodExpiresDate"] = ms(now + dt.timedelta(days=16))
                status = 4
            else:
                status = 3
            if event == "grace-expired":
                renewal["gracePeriodExpiresDate"] = ms(now)
        elif event.startswith("expire"):
            s.expires_ms = min(s.expires_ms, ms(now))
            s.auto_renew = False
            renewal = {"expirationIntent": _EXPIRATION_INTENT[subtype]}
            status = 2
        elif event in {"upgrade", "offer-redeemed-upgrade"}:
            s.product = f"{s.product.removesuffix('.upgrade')}.upgrade"
            self._start_period(now)
            if event == "offer-redeemed-upgrade":
                s.offer = {
                    "offerType": 2,
                    "offerDiscountType": "PAY_UP_FRONT",
                    "offerIdentifier": "promo",
                }
        elif event in {"downgrade", "offer-redeemed-downgrade"}:
            s.auto_renew_product = f"{s.product}.lite"
        elif event == "downgrade-cancelled":
            s.auto_renew_product = ""
        elif event == "offer-redeemed":
            renewal = {
                "offerType": 3,
                "offerIdentifier": "code",
                "offerDiscountType": "PAY_AS_YOU_GO",
            }
        elif event.startswith("price-increase"):
            renewal = {"priceIncreaseStatus": 1 if event.endswith("accepted") else 0}
        elif event == "refund":
            s.revoked = {
                "revocationDate": ms(now),
                "revocationReason": 0,
                "revocationType": "REFUND_FULL",
                "revocationPercentage": 100000,
            }
            status = 5
        elif event == "refund-reversed":
            s.revoked = {}
        elif event == "revoke":
            s.ownership = "FAMILY_SHARED"
            s.revoked = {
                "revocationDate": ms(now),
                "revocationReason": 0,
                "revocationType": "FAMILY_REVOKE",
            }
            status = 5
        elif event == "renewal-extended":
            s.expires_ms += 7 * 86_400_000
        if s.revoked and event not in {"refund", "revoke"}:
            status = 5
        if status == 1 and s.expires_ms <= ms(now):
            status = 2
        return status, renewal

    def _transaction(self, now: dt.datetime) -> str:
        s = self.state
        return self.ca.sign(
            transaction_payload(
                bundle_id=self.bundle_id,
                environment=self.environment,
                transaction_id=s.transaction_id,
                original_transaction_id=s.original_transaction_id,
                product_id=s.product,
                purchase_date=dt.datetime.fromtimestamp(s.purchased_ms / 1000, tz=dt.UTC),
                original_purchase_date=dt.datetime.fromtimestamp(
                    s.original_purchased_ms / 1000, tz=dt.UTC
                ),
                expires_date=dt.datetime.fromtimestamp(s.expires_ms / 1000, tz=dt.UTC),
                signed_date=now,
                app_account_token=account_token(s.user),
                ownership=s.ownership,
                transaction_reason="PURCHASE"
                if s.transaction_id == s.original_transaction_id
                else "RENEWAL",
                **s.offer,
                **s.revoked,
            )
        )

    def _renewal(self, now: dt.datetime, extra: dict[str, Any]) -> str:
        s = self.state
        return self.ca.sign(
            renewal_payload(
                environment=self.environment,
                original_transaction_id=s.original_transaction_id,
                product_id=s.product,
                signed_date=now,
                auto_renew=s.auto_renew,
                auto_renew_product_id=s.auto_renew_product or s.product,
                renewal_date=dt.datetime.fromtimestamp(s.expires_ms / 1000, tz=dt.UTC),
                **({"appAccountToken": token} if (token := account_token(s.user)) else {}),
                **extra,
            )
        )

    def _one_time(self, event: str, now: dt.datetime) -> str:
        transaction_id = _new_id()
        return self.ca.sign(
            transaction_payload(
                bundle_id=self.bundle_id,
                environment=self.environment,
                transaction_id=transaction_id,
                original_transaction_id=transaction_id,
                product_id=self.state.product,
                purchase_date=now,
                signed_date=now,
                product_type=_ONE_TIME_TYPES[event],
                app_account_token=account_token(self.state.user),
            )
        )


def load_lifecycle(state_file: Path | None, user: str, product: str) -> Lifecycle:
    """The lifecycle of (user, product) from the JSON state file, or a new one."""
    if state_file is not None and state_file.exists():
        stored = json.loads(state_file.read_text()).get(f"{user}|{product}")
        if stored is not None:
            return Lifecycle(**stored)
    return Lifecycle(user=user, product=product)


def save_lifecycle(state_file: Path | None, lifecycle: Lifecycle, product: str) -> None:
    """Store the lifecycle under its (user, original product) key."""
    if state_file is None:
        return
    data = json.loads(state_file.read_text()) if state_file.exists() else {}
    data[f"{lifecycle.user}|{product}"] = dataclasses.asdict(lifecycle)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(data, indent=2))


async def simulate(  # noqa: PLR0917 - the CLI contract names these six positionally
    event: str,
    user: str,
    product: str,
    url: str,
    ca_dir: Path,
    state_file: Path | None,
    *,
    bundle_id: str = DEFAULT_BUNDLE_ID,
    app_apple_id: int | None = 1234567890,
    environment: str = "Sandbox",
    now: dt.datetime,
) -> dict[str, Any]:
    """Build the notification for `event` at `now`, POST it to `<url>/webhooks/apple`, return
    the answer.

    `now` dates the signed data: the CLI passes the wall clock (it drives a service running
    in real time), tests pass their injected clock.

    The answer is `{"http_status", "response", "original_transaction_id", "hint"?}`; `hint`
    explains that a non-UUID user cannot be carried as appAccountToken.
    """
    ca = TestCA.load_or_create(ca_dir)
    lifecycle = load_lifecycle(state_file, user, product)
    scenario = AppleScenario(
        ca, lifecycle, bundle_id=bundle_id, app_apple_id=app_apple_id, environment=environment
    )
    body = scenario.body(event, now)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"{url.rstrip('/')}/webhooks/apple", json=body) as resp,
    ):
        try:
            answer: Any = await resp.json(content_type=None)
        except ValueError:
            answer = await resp.text()
        status = resp.status
    save_lifecycle(state_file, lifecycle, product)
    result: dict[str, Any] = {
        "http_status": status,
        "response": answer,
        "original_transaction_id": lifecycle.original_transaction_id,
    }
    if account_token(user) is None:
        result["hint"] = (
            "--user is not a UUID, so it was not sent as appAccountToken: the purchase is not "
            "linked to any user until the app submits it (POST /v1/purchases). Use a UUID "
            "user id to see the entitlement under that user."
        )
    return result
