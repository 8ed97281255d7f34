"""Real Google Play data for the conformance tests: the recorded session-pro-backend
lifecycles (read at test time from the `realdata` folder, never copied here), Pub/Sub push
bodies built from them, and an oracle of contract §3 computed from the recorded data alone.

The oracle (`ContractModel`) is written from shared/contract.md, not from the production
code: what the customer object must say after each recorded (notification, Play API read)
pair. Times are compared as the contract shows them: RFC 3339 UTC, second precision, `Z`.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.fake_play import FakePlay
from tests.e2e.google_helpers import AUDIENCE, PUSH_EMAIL

PACKAGE = "network.loki.messenger"
PRODUCT = "session_pro"
ENTITLEMENT = "pro"  # the base configuration's "pro" entitlement, extended with session_pro
SUBSCRIPTION = "projects/receiptd-conformance/subscriptions/play-rtdn"

# The recorded lifecycles, by file stem (the folder's listing is checked against this).
LIFECYCLES = (
    "01-purchase-cancel-uncancel-refund",
    "02-grace-then-renew-cancel-expire",
    "03-renew-renew-cancel-expire-resubscribe-grace-hold-expire",
    "04-grace-then-cancel",
    "05-grace-hold-then-cancel",
    "06-grace-hold-then-recover",
    "07-plan-change-1m-to-3m-then-renew",
    "08-plan-change-then-grace-then-renew",
    "09-plan-change-then-grace-hold-recover",
    "10-plan-change-and-back-then-renew",
    "11-developer-refund-revoke",
    "12-purchase-renew-then-developer-refund",
)
PLAN_CHANGES = LIFECYCLES[6:10]

ACK_PENDING = "ACKNOWLEDGEMENT_STATE_PENDING"
ACK_DONE = "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
SUBSCRIPTION_REVOKED = 12


def google_dir(realdata: Path) -> Path:
    return realdata / "google"


def lifecycle_dir(realdata: Path) -> Path:
    return google_dir(realdata) / "session-pro-backend"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# --- times -----------------------------------------------------------------------------


def millis(value: str | int) -> datetime:
    """eventTimeMillis (int64 sent as a string) as an aware UTC datetime."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def rfc3339(value: str) -> datetime:
    """A Play API time (`2025-10-06T04:03:10.613Z`) as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def shown(value: datetime | None) -> str | None:
    """A time as the contract shows it: UTC, second precision, `Z`."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the recorded data -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One recorded pair: the decoded RTDN and the subscriptionsv2.get answer after it."""

    index: int
    name: str  # e.g. SUBSCRIPTION_CANCELED
    comment: str
    notification: dict[str, Any]
    document: dict[str, Any]

    @property
    def token(self) -> str:
        return str(self.notification["subscriptionNotification"]["purchaseToken"])

    @property
    def code(self) -> int:
        return int(self.notification["subscriptionNotification"]["notificationType"])

    @property
    def event_time(self) -> datetime:
        return millis(self.notification["eventTimeMillis"])

    def describe(self) -> str:
        return f"step {self.index + 1} {self.name} ({self.comment or 'no comment'})"


@dataclass(frozen=True)
class Lifecycle:
    name: str
    steps: tuple[Step, ...]

    @property
    def tokens(self) -> list[str]:
        """Every purchase token, in order of first appearance."""
        return list(dict.fromkeys(step.token for step in self.steps))

    @property
    def last_event_time(self) -> datetime:
        return max(step.event_time for step in self.steps)

    def newest_documents(self) -> dict[str, dict[str, Any]]:
        """The last recorded Play API answer of each token (what a late read returns)."""
        return {step.token: step.document for step in self.steps}

    def renamed(self, suffix: str) -> tuple[Lifecycle, dict[str, str]]:
        """The same lifecycle with every purchase token (and linkedPurchaseToken) suffixed,
        so that several deliveries of one lifecycle can share a database; also the map
        renamed → original token."""
        names = {token: f"{token}{suffix}" for token in self.tokens}
        steps = []
        for step in self.steps:
            notification = copy.deepcopy(step.notification)
            sub = notification["subscriptionNotification"]
            sub["purchaseToken"] = names[sub["purchaseToken"]]
            document = copy.deepcopy(step.document)
            linked = document.get("linkedPurchaseToken")
            if linked:
                document["linkedPurchaseToken"] = names.get(linked, f"{linked}{suffix}")
            steps.append(replace(step, notification=notification, document=document))
        return Lifecycle(self.name, tuple(steps)), {v: k for k, v in names.items()}


@functools.cache
def _load(path: Path) -> Lifecycle:
    raw = read_json(path)
    steps = tuple(
        Step(
            index=i,
            name=step["rtdn_notificationType_name"],
            comment=step.get("step_comment") or "",
            notification=step["rtdn_developer_notification"],
            document=step["subscriptionsv2_get_response"],
        )
        for i, step in enumerate(raw["steps"])
    )
    return Lifecycle(path.stem, steps)


def load_lifecycle(realdata: Path, name: str) -> Lifecycle:
    """A recorded lifecycle (cached; callers get frozen steps and copy what they change)."""
    return _load(lifecycle_dir(realdata) / f"{name}.json")


def account_id(*parts: str) -> str:
    """An obfuscatedExternalAccountId as the recording app computed it: the hex of a SHA
    (64 characters, Google's limit). It is also the app_user_id it links the purchase to."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


def api_document(
    document: Mapping[str, Any], account: str | None, acknowledged: bool = False
) -> dict[str, Any]:
    """What the fake Play API answers for a recorded document.

    `account` replaces the recording's placeholder obfuscatedExternalAccountId (None drops
    the identifiers, as for an app that does not set them). `acknowledged`: receiptd has
    acknowledged the token already, so Play says so; the recorded backend did not always
    acknowledge (lifecycle 01 stays PENDING throughout), and a replay that ignored our own
    acknowledgement would make the fake disagree with what Google would answer.
    """
    doc = copy.deepcopy(dict(document))
    if account is None:
        doc.pop("externalAccountIdentifiers", None)
    elif "externalAccountIdentifiers" in doc:
        doc["externalAccountIdentifiers"]["obfuscatedExternalAccountId"] = account
    if acknowledged and doc.get("acknowledgementState") == ACK_PENDING:
        doc["acknowledgementState"] = ACK_DONE
    return doc


def acknowledged_tokens(fake: FakePlay) -> set[str]:
    return {str(a["token"]) for a in fake.acknowledgements if a["kind"] == "subscription"}


# --- push bodies -------------------------------------------------------------------------


def envelope(notification: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    """The Pub/Sub push body (wrapped format, both id spellings as real pushes carry) whose
    data is the base64 of the recorded DeveloperNotification's JSON. Published 100 ms after
    the event: a late delivery is late to arrive, not late to be published."""
    raw = json.dumps(notification, separators=(",", ":")).encode()
    published = millis(notification["eventTimeMillis"]) + timedelta(milliseconds=100)
    at = published.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message = {
        "data": base64.b64encode(raw).decode(),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": at,
        "publish_time": at,
    }
    return {"message": message, "subscription": SUBSCRIPTION}


def google_settings(config: dict[str, Any], fake: FakePlay, directory: Path) -> dict[str, Any]:
    """`config` with [google] for package network.loki.messenger, every endpoint pointed at
    `fake`, and session_pro granting the `pro` entitlement."""
    assert fake.keys is not None
    service_account = fake.keys.write_service_account_file(directory / "sa", fake.token_uri)
    config["google"] = {
        "package_names": [PACKAGE],
        "service_account_file": service_account,
        "play_api_url": fake.base_url,
        "pubsub_audience": AUDIENCE,
        "pubsub_service_account": PUSH_EMAIL,
        "pubsub_certs_url": fake.certs_url,
    }
    config["entitlements"][ENTITLEMENT]["products"].append(PRODUCT)
    return config


@dataclass(frozen=True)
class Delivery:
    step: Step
    message_id: str
    duplicate: bool = False


def delivery_plan(
    lifecycle: Lifecycle, order: str, id_base: int, duplicates: int = 2
) -> list[Delivery]:
    """Every notification of `lifecycle` once, in a fixed order (`reversed`, or `seed-N`
    for a seeded shuffle), plus `duplicates` redeliveries of already delivered messages
    (same messageId) at fixed, seeded places."""
    firsts = [Delivery(s, str(id_base + s.index)) for s in lifecycle.steps]
    if order == "reversed":
        rng = random.Random(0)
        firsts.reverse()
    else:
        rng = random.Random(int(order.removeprefix("seed-")))
        rng.shuffle(firsts)
    plan = list(firsts)
    for _ in range(duplicates):
        at = rng.randrange(1, len(plan) + 1)
        delivered = [d for d in plan[:at] if not d.duplicate]
        again = rng.choice(delivered)
        plan.insert(at, replace(again, duplicate=True))
    return plan


# --- the contract oracle -----------------------------------------------------------------

_PAID = {"SUBSCRIPTION_STATE_ACTIVE", "SUBSCRIPTION_STATE_CANCELED"}
_BILLING_ISSUE = {"SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "SUBSCRIPTION_STATE_ON_HOLD"}
_OFF = {"SUBSCRIPTION_STATE_CANCELED", "SUBSCRIPTION_STATE_EXPIRED"}
_STATUS = {
    "SUBSCRIPTION_STATE_ACTIVE": "active",
    "SUBSCRIPTION_STATE_CANCELED": "active",  # contract §3: cancelled keeps access to the end
    "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": "grace_period",
    "SUBSCRIPTION_STATE_ON_HOLD": "on_hold",
    "SUBSCRIPTION_STATE_PAUSED": "paused",
    "SUBSCRIPTION_STATE_EXPIRED": "expired",
}


def line_item(document: Mapping[str, Any]) -> dict[str, Any]:
    items = document["lineItems"]
    assert len(items) == 1, "the recorded subscriptions have one line item"
    return dict(items[0])


def auto_renew_on(document: Mapping[str, Any]) -> bool:
    plan = line_item(document).get("autoRenewingPlan") or {}
    return document["subscriptionState"] not in _OFF and plan.get("autoRenewEnabled") is True


def user_cancel_time(document: Mapping[str, Any]) -> datetime | None:
    context = document.get("canceledStateContext") or {}
    cancel = (context.get("userInitiatedCancellation") or {}).get("cancelTime")
    return rfc3339(cancel) if cancel else None


def shows_billing_issue(document: Mapping[str, Any]) -> bool:
    return document["subscriptionState"] in _BILLING_ISSUE


def period_type(item: Mapping[str, Any]) -> str:
    """Contract: trial (free trial), intro (any discounted offer period), normal."""
    phase = item.get("offerPhase") or {}
    if "freeTrial" in phase:
        return "trial"
    if "introductoryPrice" in phase or "prorationPeriod" in phase:
        return "intro"
    if phase or not (item.get("offerDetails") or {}).get("offerId"):
        return "normal"  # basePrice, or the base plan without an offer: full price
    raise AssertionError(f"no oracle for offer {item['offerDetails']}")  # not in the data


@dataclass
class _TokenFacts:
    document: dict[str, Any]
    unsubscribe: datetime | None = None
    billing_issue: datetime | None = None
    revoked: datetime | None = None


@dataclass
class ContractModel:
    """Contract §3 applied to the recorded steps, one after another (in order).

    - status/active/will_renew/expires_at/grace_period_expires_at: from the document;
      expires_at and grace_period_expires_at are the line item's expiryTime.
    - unsubscribe_detected_at: set when auto-renew is off, at the user cancellation's
      cancelTime, else at the notification's eventTimeMillis; cleared when it is back on.
    - billing_issue_detected_at: the eventTimeMillis of the notification whose read showed
      the failure (grace period, account hold); cleared when a read shows a paid period.
    - revoked_at: the SUBSCRIPTION_REVOKED notification's eventTimeMillis (sticky).
    - a token named by a newer token's linkedPurchaseToken stops granting (expired).
    """

    tokens: dict[str, _TokenFacts] = field(default_factory=dict)
    superseded: set[str] = field(default_factory=set)

    def observe(self, step: Step, document: Mapping[str, Any] | None = None) -> None:
        doc = dict(document if document is not None else step.document)
        facts = self.tokens.setdefault(step.token, _TokenFacts(doc))
        facts.document = doc
        if auto_renew_on(doc):
            facts.unsubscribe = None
        elif (cancel := user_cancel_time(doc)) is not None:
            facts.unsubscribe = cancel
        elif facts.unsubscribe is None:
            facts.unsubscribe = step.event_time
        if shows_billing_issue(doc):
            facts.billing_issue = facts.billing_issue or step.event_time
        elif doc["subscriptionState"] in _PAID:
            facts.billing_issue = None
        if step.code == SUBSCRIPTION_REVOKED:
            facts.revoked = facts.revoked or step.event_time
        if doc.get("linkedPurchaseToken"):
            self.superseded.add(str(doc["linkedPurchaseToken"]))

    def purchase(self, token: str, now: datetime) -> dict[str, Any]:
        """The contract's fields of one purchase (as listed under `subscriptions`)."""
        facts = self.tokens[token]
        doc = facts.document
        item = line_item(doc)
        expiry = rfc3339(item["expiryTime"])
        if facts.revoked is not None:
            status = "revoked"
        elif token in self.superseded:
            status = "expired"  # replaced by a plan change: it must stop granting
        else:
            status = _STATUS[doc["subscriptionState"]]
            if status == "active" and expiry <= now:
                status = "expired"
        grace = expiry if status == "grace_period" else None
        return {
            "active": (status == "active" and expiry > now) or (grace is not None and grace > now),
            "status": status,
            "period_type": period_type(item),
            "will_renew": auto_renew_on(doc) and status not in ("expired", "revoked"),
            "expires_at": shown(expiry),
            "grace_period_expires_at": shown(grace),
            "product_id": item["productId"],
            "store": "play_store",
            "is_sandbox": "testPurchase" in doc,
            "purchased_at": shown(rfc3339(doc["startTime"])),
            "unsubscribe_detected_at": shown(facts.unsubscribe),
            "billing_issue_detected_at": shown(facts.billing_issue),
            "revoked_at": shown(facts.revoked) if status == "revoked" else None,
        }

    def entitlement(self, now: datetime) -> dict[str, Any] | None:
        """The entitlement as shown: of the purchases still granting (not replaced), the one
        giving access now, then the latest expiry."""
        candidates = [self.purchase(t, now) for t in self.tokens if t not in self.superseded]
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c["active"], c["expires_at"] or "~"))


def differences(got: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (got, want)} for every field of `want` that `got` does not match."""
    return {k: (got.get(k, "<missing>"), v) for k, v in want.items() if got.get(k) != v}


def by_token(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(e.get("purchase_token")): dict(e) for e in entries}
