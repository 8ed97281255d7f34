"""Apple → StoreEvent translation: every A4 type/subtype, period types, facts, and the scenarios."""

from __future__ import annotations

import datetime as dt

import pytest

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    Ownership,
    PeriodType,
    Price,
    PurchaseKind,
    RenewalFacts,
    Status,
    Store,
    TransactionFacts,
)
from entitlements.state import apply, view
from receipts.apple.translate import (
    event_kind,
    from_ms,
    notification_events,
    period_type,
    purchase_event,
    renewal_facts,
    transaction_event,
    transaction_facts,
    transaction_price,
)
from receipts.apple.verifier import (
    AppleNotification,
    AppleVerifier,
    VerifiedRenewalInfo,
    VerifiedTransaction,
)
from receipts.errors import MalformedPayload
from simulators.apple_ca import (
    TestCA,
    ms,
    notification_payload,
    renewal_payload,
    transaction_payload,
)
from simulators.apple_scenarios import EVENTS, AppleScenario, Lifecycle

BUNDLE = "com.example.app"
USER = "6f1c3a2e-8a59-4c4f-9a55-0c3f6b1b2d7e"
NOW = dt.datetime(2026, 5, 10, 9, 30, tzinfo=dt.UTC)

# Independently written expectations: (type, subtype) → kind, or None (no purchase event).
EXPECTED_KINDS: dict[tuple[str, str | None], EventKind | None] = {
    ("SUBSCRIBED", "INITIAL_BUY"): EventKind.PURCHASED,
    ("SUBSCRIBED", "RESUBSCRIBE"): EventKind.PURCHASED,
    ("DID_RENEW", None): EventKind.RENEWED,
    ("DID_RENEW", "BILLING_RECOVERY"): EventKind.BILLING_RECOVERED,
    ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"): EventKind.BILLING_FAILED,
    ("DID_FAIL_TO_RENEW", None): EventKind.BILLING_FAILED,
    ("GRACE_PERIOD_EXPIRED", None): EventKind.GRACE_PERIOD_EXPIRED,
    ("EXPIRED", "VOLUNTARY"): EventKind.EXPIRED,
    ("EXPIRED", "BILLING_RETRY"): EventKind.EXPIRED,
    ("EXPIRED", "PRICE_INCREASE"): EventKind.EXPIRED,
    ("EXPIRED", "PRODUCT_NOT_FOR_SALE"): EventKind.EXPIRED,
    ("EXPIRED", None): EventKind.EXPIRED,
    ("DID_CHANGE_RENEWAL_PREF", "UPGRADE"): EventKind.PRODUCT_CHANGED,
    ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"): EventKind.PRODUCT_CHANGED,
    ("DID_CHANGE_RENEWAL_PREF", None): EventKind.PRODUCT_CHANGED,
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"): EventKind.RENEWAL_ENABLED,
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"): EventKind.RENEWAL_DISABLED,
    ("OFFER_REDEEMED", "UPGRADE"): EventKind.OFFER_REDEEMED,
    ("OFFER_REDEEMED", "DOWNGRADE"): EventKind.OFFER_REDEEMED,
    ("OFFER_REDEEMED", None): EventKind.OFFER_REDEEMED,
    ("PRICE_INCREASE", "PENDING"): EventKind.PRICE_INCREASE,
    ("PRICE_INCREASE", "ACCEPTED"): EventKind.PRICE_INCREASE,
    ("REFUND", None): EventKind.REFUNDED,
    ("REFUND_DECLINED", None): EventKind.REFUND_DECLINED,
    ("REFUND_REVERSED", None): EventKind.REFUND_REVERSED,
    ("REVOKE", None): EventKind.REVOKED,
    ("CONSUMPTION_REQUEST", None): EventKind.CONSUMPTION_REQUEST,
    ("RENEWAL_EXTENDED", None): EventKind.RENEWAL_EXTENDED,
    ("RENEWAL_EXTENSION", "SUMMARY"): EventKind.INFORMATIONAL,
    ("RENEWAL_EXTENSION", "FAILURE"): EventKind.INFORMATIONAL,
    ("ONE_TIME_CHARGE", None): EventKind.PURCHASED,
    ("TEST", None): None,
    ("EXTERNAL_PURCHASE_TOKEN", "UNREPORTED"): None,
    ("EXTERNAL_PURCHASE_TOKEN", "CREATED"): None,
    ("EXTERNAL_PURCHASE_TOKEN", "ACTIVE_TOKEN_REMINDER"): None,
    ("RESCIND_CONSENT", None): None,
    ("METADATA_UPDATE", None): EventKind.INFORMATIONAL,
    ("MIGRATION", None): EventKind.INFORMATIONAL,
    ("PRICE_CHANGE", None): EventKind.INFORMATIONAL,
}

# Scenario events whose notification carries no purchase (no StoreEvent).
NO_EVENT = {
    "test",
    "renewal-extension-summary",
    "rescind-consent",
    "external-purchase-token",
    "external-purchase-token-created",
    "external-purchase-token-reminder",
}

EXPECTED_STATUS = {
    "subscribe": Status.ACTIVE,
    "renew": Status.ACTIVE,
    "fail-grace": Status.GRACE_PERIOD,
    "fail": Status.BILLING_RETRY,
    "grace-expired": Status.BILLING_RETRY,
    "expire-voluntary": Status.EXPIRED,
    "refund": Status.REVOKED,
    "revoke": Status.REVOKED,
    "refund-reversed": Status.ACTIVE,
}


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.generate()


@pytest.fixture(scope="module")
def verifier(ca: TestCA) -> AppleVerifier:
    return AppleVerifier(BUNDLE, 1234567890, ["Production", "Sandbox"], [ca.root_der], False)


def _notify(
    ca: TestCA, verifier: AppleVerifier, scenario: AppleScenario, event: str, now: dt.datetime
) -> AppleNotification:
    return verifier.verify_notification_sync(scenario.body(event, now)["signedPayload"])


def test_every_a4_row_has_a_kind_and_a_scenario() -> None:
    for (ntype, subtype), expected in EXPECTED_KINDS.items():
        assert event_kind(ntype, subtype) == expected, (ntype, subtype)
    assert set(EVENTS.values()) == set(EXPECTED_KINDS)
    assert event_kind("SOMETHING_NEW", None) is EventKind.INFORMATIONAL
    assert event_kind(None, None) is None


@pytest.mark.parametrize("event", list(EVENTS))
def test_scenario_event_translates(ca: TestCA, verifier: AppleVerifier, event: str) -> None:
    scenario = AppleScenario(ca, Lifecycle(user=USER, product="premium.monthly"))
    note = _notify(ca, verifier, scenario, event, NOW)
    assert (note.notification_type, note.subtype) == EVENTS[event]
    events = notification_events(note)
    if event in NO_EVENT:
        assert events == []
        return
    [ev] = events
    assert ev.kind == EXPECTED_KINDS[EVENTS[event]]
    assert ev.store is Store.APP_STORE
    assert ev.occurred_at == NOW
    assert ev.is_sandbox is True
    assert ev.environment == "Sandbox"
    assert ev.app_user_id == USER
    assert ev.app == BUNDLE  # the notification's bundleId: the app it was bought in
    assert ev.details["notification_uuid"] == note.notification_uuid
    assert ev.transaction is not None
    if event.startswith("one-time"):
        assert ev.purchase_id == ev.transaction.transaction_id
        assert ev.renewal is None
        assert ev.status is None
    else:
        assert ev.purchase_id == scenario.state.original_transaction_id
        assert ev.transaction.kind is PurchaseKind.SUBSCRIPTION
        assert ev.renewal is not None
    if event in EXPECTED_STATUS:
        assert ev.status is EXPECTED_STATUS[event]


async def test_lifecycle_facts(ca: TestCA, verifier: AppleVerifier) -> None:
    scenario = AppleScenario(ca, Lifecycle(user="not-a-uuid", product="premium.monthly"))
    t0 = NOW
    [trial] = notification_events(_notify(ca, verifier, scenario, "subscribe-trial", t0))
    assert trial.app_user_id is None
    assert trial.transaction is not None
    assert trial.renewal is not None
    assert trial.transaction.period_type is PeriodType.TRIAL
    assert trial.transaction.expires_at == t0 + dt.timedelta(days=7)
    assert trial.renewal.will_renew is True

    t1 = t0 + dt.timedelta(days=7)
    [renew] = notification_events(_notify(ca, verifier, scenario, "renew", t1))
    assert renew.transaction is not None
    assert renew.transaction.period_type is PeriodType.NORMAL
    assert renew.transaction.transaction_id != trial.transaction.transaction_id
    assert renew.purchase_id == trial.purchase_id
    assert renew.transaction.expires_at == t1 + dt.timedelta(days=30)

    [cancel] = notification_events(_notify(ca, verifier, scenario, "cancel", t1 + dt.timedelta(1)))
    assert cancel.renewal is not None
    assert cancel.renewal.will_renew is False
    # Apple's times are both the statement clock and the facts: the renewal info's signedDate
    assert FlagStatement(Flag.UNSUBSCRIBE, True, t1 + dt.timedelta(1)) in cancel.flags
    assert FlagStatement(Flag.UNSUBSCRIBE, False, t1) in renew.flags
    assert FlagStatement(Flag.BILLING_ISSUE, False, t1) in renew.flags

    t2 = t1 + dt.timedelta(days=30)
    [grace] = notification_events(_notify(ca, verifier, scenario, "fail-grace", t2))
    assert grace.renewal is not None
    assert grace.renewal.in_billing_retry is True
    assert grace.renewal.grace_period_expires_at == t2 + dt.timedelta(days=16)
    assert grace.renewal.expiration_reason == "billing_error"
    assert FlagStatement(Flag.BILLING_ISSUE, True, t2) in grace.flags

    [refund] = notification_events(_notify(ca, verifier, scenario, "refund", t2 + dt.timedelta(1)))
    assert refund.transaction is not None
    assert refund.transaction.revoked_at == t2 + dt.timedelta(1)
    assert refund.transaction.revocation_reason == "refund_full:other"
    assert refund.details["revocation_percentage"] == 100000

    [pending] = notification_events(
        _notify(ca, verifier, scenario, "price-increase-pending", t2 + dt.timedelta(2))
    )
    assert pending.renewal is not None
    assert pending.renewal.price_increase_accepted is False

    state = None
    for ev in (trial, renew, cancel, grace, refund, pending):
        state = apply(state, ev)
    assert state is not None
    shown = view(state)
    assert shown.status is Status.REVOKED
    assert shown.revoked_at == t2 + dt.timedelta(1)
    assert shown.unsubscribe_detected_at == t1 + dt.timedelta(1)
    assert shown.billing_issue_detected_at == t2


def test_revoked_status_without_revocation_date_uses_the_signed_date(
    ca: TestCA, verifier: AppleVerifier
) -> None:
    scenario = AppleScenario(ca, Lifecycle(user=USER, product="premium.monthly"))
    note = _notify(ca, verifier, scenario, "subscribe", NOW)
    assert note.transaction is not None
    signed = NOW + dt.timedelta(hours=5)
    event = purchase_event(
        note.transaction, None, kind=EventKind.REVOKED, occurred_at=signed, status=5
    )
    assert event.transaction is not None
    assert event.transaction.revoked_at == signed
    assert view(apply(None, event)).revoked_at == signed


async def test_upgrade_switches_product_and_revoke_is_family(
    ca: TestCA, verifier: AppleVerifier
) -> None:
    scenario = AppleScenario(ca, Lifecycle(user=USER, product="premium.monthly"))
    [up] = notification_events(_notify(ca, verifier, scenario, "upgrade", NOW))
    assert up.transaction is not None
    assert up.transaction.product_id == "premium.monthly.upgrade"
    [down] = notification_events(_notify(ca, verifier, scenario, "downgrade", NOW))
    assert down.renewal is not None
    assert down.renewal.auto_renew_product_id == "premium.monthly.upgrade.lite"
    [revoke] = notification_events(_notify(ca, verifier, scenario, "revoke", NOW))
    assert revoke.transaction is not None
    assert revoke.transaction.ownership is Ownership.FAMILY_SHARED
    assert revoke.transaction.revocation_reason == "family_revoke:other"


@pytest.mark.parametrize(
    ("offer_type", "discount", "expected"),
    [
        (None, None, PeriodType.NORMAL),
        (1, "FREE_TRIAL", PeriodType.TRIAL),
        (1, "PAY_AS_YOU_GO", PeriodType.INTRO),
        (1, "PAY_UP_FRONT", PeriodType.INTRO),
        (2, "PAY_AS_YOU_GO", PeriodType.INTRO),
        (3, "FREE_TRIAL", PeriodType.TRIAL),
        (3, "ONE_TIME", PeriodType.INTRO),
        (4, "PAY_UP_FRONT", PeriodType.INTRO),
        (2, None, PeriodType.INTRO),
    ],
)
def test_period_types(offer_type: int | None, discount: str | None, expected: PeriodType) -> None:
    assert period_type(offer_type, discount) is expected


@pytest.mark.parametrize(
    ("product_type", "kind"),
    [
        ("Consumable", PurchaseKind.CONSUMABLE),
        ("Non-Consumable", PurchaseKind.NON_CONSUMABLE),
        ("Non-Renewing Subscription", PurchaseKind.NON_RENEWING),
        ("Auto-Renewable Subscription", PurchaseKind.SUBSCRIPTION),
    ],
)
def test_bare_transaction(
    ca: TestCA, verifier: AppleVerifier, product_type: str, kind: PurchaseKind
) -> None:
    signed = NOW - dt.timedelta(minutes=5)
    payload = transaction_payload(
        bundle_id=BUNDLE,
        environment="Production",
        transaction_id="77",
        original_transaction_id="70",
        product_id="coins",
        purchase_date=NOW - dt.timedelta(days=1),
        signed_date=signed,
        product_type=product_type,
        offerType=2,
        offerDiscountType="PAY_UP_FRONT",
    )
    ev = transaction_event(verifier.verify_transaction_sync(ca.sign(payload)))
    assert ev.kind is EventKind.STATE_REFRESHED
    assert ev.purchase_id == "70"
    assert ev.occurred_at == signed
    assert ev.is_sandbox is False
    assert ev.environment == "Production"
    assert ev.transaction is not None
    assert ev.transaction.kind is kind
    assert ev.transaction.period_type is PeriodType.INTRO
    assert ev.transaction.purchased_at == NOW - dt.timedelta(days=1)
    assert ev.status is None


def test_from_ms_is_utc() -> None:
    when = from_ms(ms(NOW) + 123)
    assert when == NOW + dt.timedelta(milliseconds=123)
    assert when is not None
    assert when.tzinfo is dt.UTC
    assert from_ms(None) is None


# --- signed payloads field by field -----------------------------------------------------

ORIGINAL_ID = "2000000001"


def _transaction(ca: TestCA, verifier: AppleVerifier, **fields: object) -> VerifiedTransaction:
    """A signed transaction of the second period of a subscription; `fields` override or
    (with None) blank Apple's fields, e.g. productId=None."""
    payload = transaction_payload(
        bundle_id=BUNDLE,
        environment="Sandbox",
        transaction_id="2000000002",
        original_transaction_id=ORIGINAL_ID,
        product_id="premium.monthly",
        purchase_date=NOW - dt.timedelta(days=1),
        original_purchase_date=NOW - dt.timedelta(days=31),
        expires_date=NOW + dt.timedelta(days=29),
        signed_date=NOW,
    )
    payload.update(fields)
    return verifier.verify_transaction_sync(ca.sign(payload))


def _renewal(ca: TestCA, verifier: AppleVerifier, **fields: object) -> VerifiedRenewalInfo:
    payload = renewal_payload(
        environment="Sandbox",
        original_transaction_id=ORIGINAL_ID,
        product_id="premium.monthly",
        signed_date=NOW,
    )
    payload.update(fields)
    return verifier.verify_renewal_info_sync(ca.sign(payload))


def test_transaction_facts_field_by_field(ca: TestCA, verifier: AppleVerifier) -> None:
    t = _transaction(ca, verifier, offerType=2, price=12990, currency="EUR")  # a promotional offer
    assert transaction_facts(t) == TransactionFacts(
        transaction_id="2000000002",
        product_id="premium.monthly",
        kind=PurchaseKind.SUBSCRIPTION,
        purchased_at=NOW - dt.timedelta(days=1),
        signed_at=NOW,
        expires_at=NOW + dt.timedelta(days=29),
        original_purchased_at=NOW - dt.timedelta(days=31),
        revoked_at=None,
        revocation_reason=None,
        period_type=PeriodType.INTRO,
        ownership=Ownership.PURCHASED,
        price=Price("12.99", "EUR"),
        order_id="2000000002",
    )


@pytest.mark.parametrize(
    ("milliunits", "currency", "price"),
    [
        (9990, "USD", Price("9.99", "USD")),
        (0, "USD", Price("0", "USD")),  # a free trial
        (10000, "EUR", Price("10", "EUR")),
        (1200000, "JPY", Price("1200", "JPY")),
        (1, "USD", Price("0.001", "USD")),
        (None, "USD", None),
        (9990, None, None),
        (9990, "", None),
    ],
)
def test_apple_prices_are_exact_decimals(milliunits, currency, price) -> None:
    assert transaction_price(milliunits, currency) == price


@pytest.mark.parametrize(
    ("revocation", "reason"),
    [
        ({}, None),
        ({"revocationReason": 1, "revocationType": "REFUND_PRORATED"}, "refund_prorated:app_issue"),
        ({"revocationReason": 0}, "other"),
        ({"revocationReason": 7}, "7"),  # a reason code Apple adds later is kept as is
        ({"revocationType": "FAMILY_REVOKE"}, "family_revoke"),
        ({"revocationReason": None}, "revoked"),  # a revocation date and nothing else
    ],
)
def test_revocation_reasons(
    ca: TestCA, verifier: AppleVerifier, revocation: dict[str, object], reason: str | None
) -> None:
    fields = dict(revocation)
    if revocation:
        fields["revocationDate"] = ms(NOW)
    facts = transaction_facts(_transaction(ca, verifier, **fields))
    assert facts.revocation_reason == reason
    assert facts.revoked_at == (NOW if revocation else None)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"productId": None}, r"\bproductId\b"),
        ({"transactionId": None}, r"\btransactionId\b"),
        ({"purchaseDate": None}, r"\bpurchaseDate\b"),
        ({"signedDate": None}, r"\bsignedDate\b"),
        ({"type": "Bundle"}, r"\bproduct type\b"),
    ],
)
def test_unusable_transactions_are_malformed_and_say_why(
    ca: TestCA, verifier: AppleVerifier, fields: dict[str, object], named: str
) -> None:
    """MalformedPayload is answered 400 with its message: it names what is missing."""
    with pytest.raises(MalformedPayload, match=named):
        transaction_facts(_transaction(ca, verifier, **fields))


def test_a_purchase_without_an_original_transaction_id_is_malformed(
    ca: TestCA, verifier: AppleVerifier
) -> None:
    t = _transaction(ca, verifier, originalTransactionId=None)
    with pytest.raises(MalformedPayload, match=r"\boriginalTransactionId\b"):
        transaction_event(t)
    r = _renewal(ca, verifier, signedDate=None)
    with pytest.raises(MalformedPayload, match=r"\bsignedDate\b"):
        renewal_facts(r)


@pytest.mark.parametrize(
    ("fields", "accepted", "reason"),
    [
        ({}, None, None),
        ({"priceIncreaseStatus": 0, "expirationIntent": 1}, False, "cancelled"),
        ({"priceIncreaseStatus": 1, "expirationIntent": 2}, True, "billing_error"),
        ({"expirationIntent": 3}, None, "price_increase_not_accepted"),
        ({"expirationIntent": 4}, None, "product_unavailable"),
        ({"expirationIntent": 9}, None, "other"),  # a reason Apple adds later
    ],
)
def test_renewal_facts(
    ca: TestCA,
    verifier: AppleVerifier,
    fields: dict[str, object],
    accepted: bool | None,
    reason: str | None,
) -> None:
    """Contract §4: whether the user accepted a price increase is recorded."""
    facts = renewal_facts(_renewal(ca, verifier, **fields))
    assert (facts.price_increase_accepted, facts.expiration_reason) == (accepted, reason)


def test_renewal_facts_field_by_field(ca: TestCA, verifier: AppleVerifier) -> None:
    grace_end = NOW + dt.timedelta(days=16)
    r = _renewal(
        ca,
        verifier,
        autoRenewStatus=0,
        autoRenewProductId="premium.monthly.lite",
        isInBillingRetryPeriod=True,
        gracePeriodExpiresDate=ms(grace_end),
    )
    assert renewal_facts(r) == RenewalFacts(
        signed_at=NOW,
        will_renew=False,
        auto_renew_product_id="premium.monthly.lite",
        in_billing_retry=True,
        grace_period_expires_at=grace_end,
    )


def test_renewal_info_alone_states_the_purchase(ca: TestCA, verifier: AppleVerifier) -> None:
    """Get All Subscription Statuses may return renewal info without a transaction: the
    purchase, its environment and its user's link come from the renewal info."""
    signed = NOW + dt.timedelta(hours=2)
    r = _renewal(ca, verifier, appAccountToken=USER, signedDate=ms(signed))
    event = purchase_event(None, r, kind=EventKind.STATE_REFRESHED, status=3)
    assert (event.purchase_id, event.app_user_id, event.occurred_at) == (ORIGINAL_ID, USER, signed)
    assert (event.environment, event.is_sandbox, event.transaction) == ("Sandbox", True, None)
    assert event.status is Status.BILLING_RETRY
    assert event.renewal == renewal_facts(r)


def test_the_link_and_the_id_may_come_from_either_item(ca: TestCA, verifier: AppleVerifier) -> None:
    t = _transaction(ca, verifier)  # no appAccountToken
    r = _renewal(ca, verifier, appAccountToken=USER, originalTransactionId=None)
    event = purchase_event(t, r, kind=EventKind.RENEWED)
    assert (event.purchase_id, event.app_user_id) == (ORIGINAL_ID, USER)


@pytest.mark.parametrize(
    ("status", "in_retry", "billing"),
    [
        (None, False, None),
        (1, False, False),  # active: the billing issue is over
        (2, False, None),  # expired: says nothing about billing
        (3, False, True),
        (4, False, True),
        (None, True, True),  # the renewal info alone says the charge failed
    ],
)
def test_billing_issue_statements(
    ca: TestCA, verifier: AppleVerifier, status: int | None, in_retry: bool, billing: bool | None
) -> None:
    t = _transaction(ca, verifier)
    r = _renewal(ca, verifier, isInBillingRetryPeriod=in_retry)
    event = purchase_event(t, r, kind=EventKind.STATE_REFRESHED, status=status)
    stated = [f.is_set for f in event.flags if f.flag is Flag.BILLING_ISSUE]
    assert stated == ([] if billing is None else [billing])
    assert all(f.at == NOW for f in event.flags)


def test_notification_time_details_and_consumption_reason(
    ca: TestCA, verifier: AppleVerifier
) -> None:
    """The notification's signedDate orders it, not the older transaction it carries."""
    signed = NOW + dt.timedelta(hours=3)
    transaction = ca.sign(
        transaction_payload(
            bundle_id=BUNDLE,
            environment="Sandbox",
            transaction_id="2000000002",
            original_transaction_id=ORIGINAL_ID,
            product_id="premium.monthly",
            purchase_date=NOW - dt.timedelta(days=1),
            expires_date=NOW + dt.timedelta(days=29),
            signed_date=NOW,
            offerIdentifier="spring",
            isUpgraded=True,
        )
    )
    body = notification_payload(
        notification_type="CONSUMPTION_REQUEST",
        subtype=None,
        bundle_id=BUNDLE,
        environment="Sandbox",
        signed_date=signed,
        signed_transaction=transaction,
        notification_uuid="0b6a2f2e-3d5c-4a63-9d8e-1f2a3b4c5d6e",
        consumptionRequestReason="UNINTENDED_PURCHASE",
    )
    [event] = notification_events(verifier.verify_notification_sync(ca.sign(body)))
    assert event.occurred_at == signed
    assert event.details == {
        "notification_type": "CONSUMPTION_REQUEST",
        "subtype": None,
        "notification_uuid": "0b6a2f2e-3d5c-4a63-9d8e-1f2a3b4c5d6e",
        "consumption_request_reason": "UNINTENDED_PURCHASE",
        "transaction_id": "2000000002",
        "offer_identifier": "spring",
        "is_upgraded": True,
        "transaction_reason": "PURCHASE",
    }
    body["signedDate"] = None
    with pytest.raises(MalformedPayload, match=r"\bsignedDate\b"):
        notification_events(verifier.verify_notification_sync(ca.sign(body)))


def test_details_of_a_plain_notification(ca: TestCA, verifier: AppleVerifier) -> None:
    scenario = AppleScenario(ca, Lifecycle(user=USER, product="premium.monthly"))
    note = _notify(ca, verifier, scenario, "subscribe", NOW)
    [event] = notification_events(note)
    assert event.transaction is not None
    assert event.details == {
        "notification_type": "SUBSCRIBED",
        "subtype": "INITIAL_BUY",
        "notification_uuid": note.notification_uuid,
        "transaction_id": event.transaction.transaction_id,
        "transaction_reason": "PURCHASE",
    }
