"""Conformance with REAL Google Play data (../shared/realdata/google, read at test time).

1. The 12 session-pro-backend lifecycles (60 real RTDN + subscriptionsv2.get pairs) are
   replayed in order through the real service over HTTP: the fake Play API answers the
   recorded document, the recorded notification is pushed in a signed Pub/Sub envelope, the
   injected clock stands one second after the notification's eventTimeMillis, and after
   every step the customer object is compared with what contract §3 promises
   (`ContractModel`, written from the contract, not from the code).
   Linking: the obfuscatedExternalAccountId (the recording's placeholder replaced by a hex
   id like the original), and, for the plan changes, POST /v1/purchases of the first token
   followed by linkedPurchaseToken; the placeholder itself is checked on its own.
2. The same lifecycles delivered late and shuffled (the API answers each token's newest
   document; some messages are redelivered) must end in the in-order final state, up to
   the differences `explained` documents; `test_late_delivery_yields_the_same_record`
   holds the contract's letter (no allowance).
3. The real push envelopes, decoded RTDNs and products.get documents parse, classify and
   translate (pure functions, fixed `now`).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from config.settings import Settings
from entitlements.model import PurchaseKind, Status
from entitlements.state import apply, view
from receipts.google.notifications import Category, classify, parse_push
from receipts.google.products import product_events, voided_event
from tests.conformance.google_realdata import (
    ACK_PENDING,
    ENTITLEMENT,
    LIFECYCLES,
    PACKAGE,
    PLAN_CHANGES,
    PRODUCT,
    ContractModel,
    Lifecycle,
    Step,
    account_id,
    acknowledged_tokens,
    api_document,
    by_token,
    delivery_plan,
    differences,
    envelope,
    google_dir,
    google_settings,
    lifecycle_dir,
    load_lifecycle,
    millis,
    read_json,
    shown,
)
from tests.conftest import READER_KEY, WRITER_KEY, auth
from tests.contract import ENTITLEMENT_FIELDS
from tests.e2e import google_helpers
from tests.e2e.google_helpers import push_headers, rows
from tests.e2e.replay_helpers import replay_database

google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play

# Late deliveries start a minute after the lifecycle's last event, one second apart; every
# final state is read three minutes after it (before any recorded renewal is due).
LATE_START = timedelta(minutes=1)
READ_AFTER = timedelta(minutes=3)
ORDERS = ("reversed", "seed-7", "seed-2025")
STRICT_ORDER = "seed-7"


@pytest.fixture
async def client(fake_play, make_client, config, tmp_path):
    # fake_play first: it is torn down after the app, so the app never outlives it.
    return await make_client(google_settings(config, fake_play, tmp_path))


async def get_customer(client, app_user_id: str) -> dict[str, Any]:
    resp = await client.get(
        f"/v1/customers/{quote(app_user_id, safe='')}", headers=auth(READER_KEY)
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def push(client, headers, notification: dict[str, Any], message_id: str) -> Any:
    resp = await client.post(
        "/webhooks/google", json=envelope(notification, message_id), headers=headers
    )
    return resp.status, await resp.json()


async def replay_in_order(
    client,
    fake,
    headers,
    clock,
    lifecycle: Lifecycle,
    account: str | None,
    *,
    id_base: int,
) -> None:
    """Push every step in recorded order, the clock one second after each event."""
    for step in lifecycle.steps:
        await play_step(client, fake, headers, clock, step, account, id_base)


async def play_step(client, fake, headers, clock, step: Step, account, id_base, submit_as=None):
    """One recorded step: the fake API answers the step's document (with `account` as the
    obfuscated id, and acknowledged if receiptd acknowledged the token before); optionally
    the app submits the first purchase; then the notification is pushed, the clock one
    second after its eventTimeMillis."""
    acked = step.token in acknowledged_tokens(fake)
    fake.set_subscription(PACKAGE, step.token, api_document(step.document, account, acked))
    if submit_as is not None and step.index == 0:
        # The app hands the purchase over right after Play returned it (POST /v1/purchases).
        clock.now = step.event_time + timedelta(milliseconds=500)
        body = {
            "app_user_id": submit_as,
            "store": "play_store",
            "package_name": PACKAGE,
            "product_id": PRODUCT,
            "purchase_token": step.token,
        }
        resp = await client.post("/v1/purchases", json=body, headers=auth(WRITER_KEY))
        assert resp.status == 200, await resp.json()
    clock.now = step.event_time + timedelta(seconds=1)
    result = await push(client, headers, step.notification, str(id_base + step.index))
    assert result == (200, {"status": "processed"}), step.describe()


def check_customer(got: dict[str, Any], model: ContractModel, now: datetime) -> dict[str, Any]:
    """Mismatches between the customer object and the oracle: the entitlement, and every
    purchase listed in `subscriptions` (by purchase token); no one-time `purchases`."""
    problems: dict[str, Any] = {}
    want = model.entitlement(now)
    entitlements = got["entitlements"]
    if set(entitlements) != {ENTITLEMENT}:
        problems["entitlements"] = sorted(entitlements)
    else:
        if set(entitlements[ENTITLEMENT]) != ENTITLEMENT_FIELDS:
            problems["fields"] = sorted(set(entitlements[ENTITLEMENT]) ^ ENTITLEMENT_FIELDS)
        assert want is not None
        if diff := differences(entitlements[ENTITLEMENT], want):
            problems["entitlement"] = diff
    if got["purchases"]:
        problems["purchases"] = got["purchases"]
    listed = by_token(got["subscriptions"])
    if set(listed) != set(model.tokens):
        problems["subscriptions"] = sorted(t[:12] for t in listed)
    for token in model.tokens:
        entry = listed.get(token)
        if entry is None:
            continue
        if diff := differences(entry, model.purchase(token, now)):
            problems[f"subscription {token[:12]}…"] = diff
    return problems


def report(name: str, failures: list[tuple[str, Any]]) -> str:
    lines = [f"{name}: {len(failures)} case(s) differ from contract §3 (got, want):"]
    for where, problems in failures:
        lines.append(f"  {where}:")
        for key, value in problems.items():
            lines.append(f"    {key}: {value}")
    return "\n".join(lines)


# --- the data is there ---------------------------------------------------------------------


def test_the_recorded_lifecycles_are_the_ones_these_tests_know(realdata: Path) -> None:
    found = sorted(p.stem for p in lifecycle_dir(realdata).glob("*.json"))
    assert found == sorted(LIFECYCLES)
    steps = [load_lifecycle(realdata, name).steps for name in LIFECYCLES]
    assert sum(len(s) for s in steps) == 60
    packages = {s.notification["packageName"] for lc in steps for s in lc}
    products = {i["productId"] for lc in steps for s in lc for i in s.document["lineItems"]}
    assert (packages, products) == ({PACKAGE}, {PRODUCT})


# --- 1. in order ---------------------------------------------------------------------------


async def replays_intact(config: dict[str, Any], database_url: str, clock, purchases: int) -> None:
    """The journal of real Play traffic replays to exactly what is stored."""
    summary, reported = await replay_database(Settings(**config), database_url, clock)
    assert reported == []
    assert (summary.checked, summary.differing, summary.not_rederivable) == (purchases, 0, 0)


@pytest.mark.parametrize("name", LIFECYCLES)
async def test_lifecycle_in_order(
    name, realdata, client, fake_play, google_keys, clock, config, database_url
) -> None:
    """Every step: entitlement and every listed purchase as contract §3 says; each new token
    acknowledged once, right after its first read; replaced tokens stop granting. Then the
    journal replays to exactly what is stored."""
    lifecycle = load_lifecycle(realdata, name)
    # The recording's obfuscatedExternalAccountId is a placeholder for the hex of a SHA
    # (see README); the same kind of value is used here, and is the app_user_id read back.
    user = account_id(name)
    headers = push_headers(google_keys)
    model = ContractModel()
    failures: list[tuple[str, Any]] = []
    for step in lifecycle.steps:
        new_token = step.token not in model.tokens
        await play_step(client, fake_play, headers, clock, step, user, 10_000)
        model.observe(step)
        got = await get_customer(client, user)
        if problems := check_customer(got, model, clock.now):
            failures.append((step.describe(), problems))
        acks = [a for a in fake_play.acknowledgements if a["token"] == step.token]
        if new_token and step.document.get("acknowledgementState") == ACK_PENDING:
            assert [(a["package"], a["product_id"]) for a in acks] == [(PACKAGE, PRODUCT)], (
                f"{step.describe()}: a new purchase is acknowledged once, at its first read"
            )
    assert len(fake_play.acknowledgements) == len(lifecycle.tokens), "each token acked once"
    assert not failures, report(name, failures)
    await replays_intact(config, database_url, clock, len(lifecycle.tokens))


@pytest.mark.parametrize("name", PLAN_CHANGES)
async def test_plan_change_replacements_follow_the_submitted_purchase(
    name, realdata, client, fake_play, google_keys, clock, config, database_url
) -> None:
    """The other linking route: the app submits the first purchase (POST /v1/purchases) and
    sets no obfuscated account id; every replacement token (linkedPurchaseToken) must then
    grant to the same user, and the replaced token must stop granting. The journal, with
    the submission, replays to exactly what is stored."""
    lifecycle = load_lifecycle(realdata, name)
    user = "session-user-" + name[:2]
    headers = push_headers(google_keys)
    model = ContractModel()
    failures: list[tuple[str, Any]] = []
    for step in lifecycle.steps:
        await play_step(client, fake_play, headers, clock, step, None, 20_000, submit_as=user)
        model.observe(step)
        got = await get_customer(client, user)
        if problems := check_customer(got, model, clock.now):
            failures.append((step.describe(), problems))
    listed = by_token(got["subscriptions"])
    assert set(listed) == set(lifecycle.tokens), "every replacement token is the user's"
    *replaced, current = lifecycle.tokens
    assert [listed[t]["active"] for t in replaced] == [False] * len(replaced)
    assert listed[current]["active"] is True
    assert len(fake_play.acknowledgements) == len(lifecycle.tokens), "each token acked once"
    assert not failures, report(name, failures)
    await replays_intact(config, database_url, clock, len(lifecycle.tokens))


async def test_placeholder_account_id_is_never_an_unreachable_owner(
    realdata, client, fake_play, google_keys, clock, database_url
) -> None:
    """The recorded documents as they are: obfuscatedExternalAccountId is the placeholder
    string `<obfuscatedExternalAccountId set by test: hex(SHA of user master key)>`.
    Contract §3 links a purchase to the obfuscatedExternalAccountId, and the app reads it
    with GET /v1/customers/{app_user_id}: either that id reads back (URL-quoted) with the
    entitlement, or, if the read API refuses such an id, the purchase must not be linked
    to it (an owner nobody can read, who under transfer_policy "keep" would also make the
    real user's POST /v1/purchases a 409)."""
    step = load_lifecycle(realdata, "11-developer-refund-revoke").steps[0]
    placeholder = step.document["externalAccountIdentifiers"]["obfuscatedExternalAccountId"]
    fake_play.set_subscription(PACKAGE, step.token, step.document)
    clock.now = step.event_time + timedelta(seconds=1)
    assert await push(client, push_headers(google_keys), step.notification, "30000") == (
        200,
        {"status": "processed"},
    )
    resp = await client.get(
        f"/v1/customers/{quote(placeholder, safe='')}", headers=auth(READER_KEY)
    )
    body = await resp.json()
    if resp.status == 200:
        assert body["entitlements"][ENTITLEMENT]["active"] is True
        return
    assert resp.status == 400, body
    owners = [
        r["app_user_id"] for r in await rows(database_url, "SELECT app_user_id FROM purchases")
    ]
    assert placeholder not in owners, (
        f"the purchase is linked to {placeholder!r}, an app_user_id the read API refuses "
        f"({resp.status} {body['error']['message']})"
    )


# --- 2. late and shuffled ------------------------------------------------------------------


async def deliver_late(client, fake, headers, clock, lifecycle: Lifecycle, order: str, run: int):
    """The API answers each token's NEWEST document; every notification is pushed a minute
    after the lifecycle's last event, in `order`, some twice (answered `duplicate`)."""
    user = account_id(lifecycle.name, order)
    for token, document in lifecycle.newest_documents().items():
        fake.set_subscription(PACKAGE, token, api_document(document, user))
    for i, delivery in enumerate(delivery_plan(lifecycle, order, 50_000 + 1_000 * run)):
        clock.now = lifecycle.last_event_time + LATE_START + timedelta(seconds=i)
        result = await push(client, headers, delivery.step.notification, delivery.message_id)
        expected = "duplicate" if delivery.duplicate else "processed"
        assert result == (200, {"status": expected}), (order, delivery.step.describe())
    # acknowledging is idempotent: no token is ever acknowledged twice
    acked = [a["token"] for a in fake.acknowledgements]
    assert len(acked) == len(set(acked)), "a token was acknowledged twice"
    return user


def compare_late(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """Every difference of one purchase-like object (entitlement or listed purchase) from the
    in-order record: none is allowed. Detection times come from Google's own times (a
    cancelTime, a notification's eventTimeMillis and type), so a late read of the newest
    document yields the same record."""
    return {key: (got.get(key), value) for key, value in want.items() if got.get(key) != value}


@pytest.mark.parametrize("name", LIFECYCLES)
async def test_lifecycle_late_and_shuffled(
    name, realdata, client, fake_play, google_keys, clock
) -> None:
    """Delivered late, in three fixed orders, some messages twice, the API answering each
    token's newest document: the final customer object equals the one the in-order delivery
    left (the whole entitlements object and every listed purchase; `explained` lists the
    only differences allowed)."""
    original = load_lifecycle(realdata, name)
    headers = push_headers(google_keys)
    read_at = original.last_event_time + READ_AFTER

    baseline_lc, baseline_names = original.renamed("~in-order")
    baseline_user = account_id(name, "in-order")
    await replay_in_order(
        client, fake_play, headers, clock, baseline_lc, baseline_user, id_base=40_000
    )
    clock.now = read_at
    baseline = await get_customer(client, baseline_user)
    want_list = {baseline_names[k]: v for k, v in by_token(baseline["subscriptions"]).items()}

    failures: list[tuple[str, Any]] = []
    for run, order in enumerate(ORDERS, start=1):
        lifecycle, names = original.renamed(f"~{order}")
        user = await deliver_late(client, fake_play, headers, clock, lifecycle, order, run)
        clock.now = read_at
        got = await get_customer(client, user)
        problems: dict[str, Any] = {}
        if set(got["entitlements"]) != set(baseline["entitlements"]):
            problems["entitlements"] = (
                sorted(got["entitlements"]),
                sorted(baseline["entitlements"]),
            )
        for ent, want in baseline["entitlements"].items():
            if ent in got["entitlements"] and (
                diff := compare_late(got["entitlements"][ent], want)
            ):
                problems[f"entitlement {ent}"] = diff
        got_list = {names[k]: v for k, v in by_token(got["subscriptions"]).items() if k in names}
        if set(got_list) != set(want_list) or len(got["subscriptions"]) != len(want_list):
            problems["subscriptions"] = (len(got["subscriptions"]), len(want_list))
        for token, want in want_list.items():
            entry = {k: v for k, v in want.items() if k != "purchase_token"}
            if token in got_list and (diff := compare_late(got_list[token], entry)):
                problems[f"subscription {token[:12]}…"] = diff
        if problems:
            failures.append((f"order {order}", problems))
    assert not failures, report(name + " late/shuffled vs in order", failures)


@pytest.mark.parametrize("name", LIFECYCLES)
async def test_late_delivery_yields_the_same_record(
    name, realdata, client, fake_play, google_keys, clock
) -> None:
    """Contract §3 to the letter: the times are the store's own, "never the moment receiptd
    happened to receive a message: a late delivery, a replay or a reconciliation yields the
    same record". Once every notification has been delivered (late, shuffled), every time
    of the in-order record has been delivered too: the cancel, revocation, grace and hold
    notifications carry their eventTimeMillis and their types even when the read that
    follows them shows a later state. Expected: the in-order contract state
    (`ContractModel`, which `test_lifecycle_in_order` shows the in-order delivery reaches),
    with no allowance."""
    lifecycle, _ = load_lifecycle(realdata, name).renamed("~strict")
    user = await deliver_late(
        client, fake_play, push_headers(google_keys), clock, lifecycle, STRICT_ORDER, 9
    )
    model = ContractModel()
    for step in lifecycle.steps:
        model.observe(step)
    clock.now = lifecycle.last_event_time + READ_AFTER
    problems = check_customer(await get_customer(client, user), model, clock.now)
    assert not problems, report(f"{name} delivered late ({STRICT_ORDER})", [("final", problems)])


# --- 3. real envelopes, notifications and product documents (pure functions) -------------

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)  # a fixed read time, long after the data


def test_real_push_envelopes_parse_and_classify(realdata: Path) -> None:
    items = read_json(google_dir(realdata) / "pubsub-push-envelopes-real.json")["items"]
    kinds = []
    for item in items:
        env = item["envelope"]
        message = parse_push(json.dumps(env).encode())
        assert message.poison_reason is None
        assert message.notification == item["decoded_data"]
        assert message.message_id == env["message"]["messageId"]
        assert message.subscription == env.get("subscription")
        assert message.delivery_attempt is None
        assert message.publish_time is not None
        assert shown(message.publish_time) == env["message"]["publishTime"][:19] + "Z"
        package = item["decoded_data"]["packageName"]
        n = classify(message.notification, {package})
        assert n.package_name == package
        assert n.event_time == millis(item["decoded_data"]["eventTimeMillis"])
        kinds.append((n.category, n.notification_type, n.type_name))
        # someone else's package is not ours: poison, stored and answered `rejected`
        other = classify(message.notification, {PACKAGE})
        assert (other.category, other.poison_reason) == (Category.POISON, "unknown package")
    assert kinds == [
        (Category.TEST, None, None),
        (Category.SUBSCRIPTION, 3, "SUBSCRIPTION_CANCELED"),
        (Category.TEST, None, None),
    ]
    cancel = classify(items[1]["decoded_data"], {"com.aitubo.image.creator"})
    sub = items[1]["decoded_data"]["subscriptionNotification"]
    assert (cancel.purchase_token, cancel.product_id) == (sub["purchaseToken"], "subscribe_annual")


def test_documented_envelopes_are_envelopes_with_poison_data(realdata: Path) -> None:
    """Google's documentation examples: well-formed envelopes whose data is not a
    DeveloperNotification (a schema sketch; a greeting): poison, not a 400."""
    items = read_json(google_dir(realdata) / "docs-envelope-examples.json")["items"]
    rtdn_doc, pubsub_doc = (parse_push(json.dumps(i["envelope"]).encode()) for i in items)
    assert (rtdn_doc.message_id, rtdn_doc.publish_time) == ("136969346945", None)
    for message in (rtdn_doc, pubsub_doc):
        assert message.notification is None
        assert message.poison_reason  # stored for inspection, answered `rejected`
    assert pubsub_doc.delivery_attempt == 1


async def test_real_and_documented_envelopes_over_http(
    realdata, client, google_keys, fake_play
) -> None:
    """The real push bodies, byte for byte, through POST /webhooks/google (contract §3): a
    Play Console test notification of a configured package is `ignored`; a notification of
    a package that is not ours and a well-formed envelope with unusable data are stored
    and answered 200 `rejected` (not 400, so Pub/Sub does not redeliver poison forever); a
    redelivery (same messageId) is `duplicate`. Nothing is read from the Play API."""
    folder = google_dir(realdata)
    real = read_json(folder / "pubsub-push-envelopes-real.json")["items"]
    documented = read_json(folder / "docs-envelope-examples.json")["items"]
    headers = push_headers(google_keys) | {"Content-Type": "application/json"}

    async def post(envelope_body: dict[str, Any]) -> Any:
        resp = await client.post(
            "/webhooks/google", data=json.dumps(envelope_body), headers=headers
        )
        return resp.status, await resp.json()

    # only network.loki.messenger is configured: every real envelope is someone else's
    assert [await post(item["envelope"]) for item in real] == [(200, {"status": "rejected"})] * 3
    assert [await post(item["envelope"]) for item in documented] == [
        (200, {"status": "rejected"})
    ] * 2
    assert await post(real[0]["envelope"]) == (200, {"status": "duplicate"})
    assert list(fake_play.api_requests()) == []


async def test_real_console_test_notification_is_ignored(
    realdata, fake_play, make_client, config, tmp_path, google_keys
) -> None:
    """The 2023 Play Console "Send test notification" push, for its own package configured."""
    item = read_json(google_dir(realdata) / "pubsub-push-envelopes-real.json")["items"][0]
    settings = google_settings(config, fake_play, tmp_path)
    settings["google"]["package_names"].append(item["decoded_data"]["packageName"])
    client = await make_client(settings)
    headers = push_headers(google_keys) | {"Content-Type": "application/json"}
    body = json.dumps(item["envelope"])
    statuses = []
    for _ in range(2):
        resp = await client.post("/webhooks/google", data=body, headers=headers)
        statuses.append((resp.status, await resp.json()))
    assert statuses == [(200, {"status": "ignored"}), (200, {"status": "duplicate"})]


def test_real_decoded_notifications_classify(realdata: Path) -> None:
    items = read_json(google_dir(realdata) / "rtdn-decoded-real.json")["items"]
    expired, purchased, voided = items
    # the one real message.data exactly as delivered, in a push envelope
    body = {"message": {"data": expired["message_data_base64"], "messageId": "1"}}
    message = parse_push(json.dumps(body).encode())
    assert message.notification == expired["decoded"]
    assert (
        base64.b64decode(expired["message_data_base64"])
        == json.dumps(expired["decoded"], separators=(",", ":")).encode()
    )
    got = [
        classify(item["decoded"], {item["decoded"]["packageName"]})
        for item in (expired, purchased, voided)
    ]
    assert [(n.category, n.type_name) for n in got] == [
        (Category.SUBSCRIPTION, "SUBSCRIPTION_EXPIRED"),
        (Category.SUBSCRIPTION, "SUBSCRIPTION_PURCHASED"),
        (Category.VOIDED, None),
    ]
    assert got[0].product_id == "week_premium"
    assert got[1].product_id == "lovepush_monthly_150"
    v = got[2]
    body = voided["decoded"]["voidedPurchaseNotification"]
    assert (v.purchase_token, v.order_id) == (body["purchaseToken"], "GPA.3346-3431-2321-61213")
    assert (v.voided_product_type, v.refund_type, v.product_id) == (1, 1, None)
    assert v.event_time == datetime(2024, 12, 19, 11, 5, 34, 93_000, tzinfo=UTC)


def test_real_voided_purchase_revokes_at_the_notification_time(realdata: Path) -> None:
    """Contract §3: a voidedPurchaseNotification revokes at once, and `revoked_at` is the
    notification's eventTimeMillis, not the moment receiptd read it (a late delivery, a
    replay or a reconciliation yields the same record)."""
    voided = read_json(google_dir(realdata) / "rtdn-decoded-real.json")["items"][2]["decoded"]
    n = classify(voided, {"com.anonymous.ipush"})
    shown_times = set()
    for now in (NOW, NOW + timedelta(days=3)):
        event = voided_event(n, now)
        assert event is not None
        assert event.purchase_id == n.purchase_token
        purchase = view(apply(None, event))
        assert purchase.status is Status.REVOKED
        shown_times.add(shown(purchase.revoked_at))
    assert shown_times == {"2024-12-19T11:05:34Z"}


def _product(item: dict[str, Any], product_id: str, code: int | None = None, **kw: Any) -> Any:
    [event] = product_events(code, "tok-real", item["response"], product_id, NOW, **kw)
    return event


def test_real_product_documents_give_the_right_status(realdata: Path) -> None:
    items = read_json(google_dir(realdata) / "play-api-responses-real.json")["items"]
    v1_subscription, consumed_kr, cancelled_in, purchased_de = items
    assert v1_subscription["response"]["kind"] == "androidpublisher#subscriptionPurchase"

    # KR: purchaseState 0, consumed, license tester (purchaseType 0)
    coins = _product(consumed_kr, "coins_100", consumable_products={"coins_100"})
    assert (coins.status, coins.transaction.kind) == (Status.ACTIVE, PurchaseKind.CONSUMABLE)
    assert coins.is_sandbox is True
    assert coins.transaction.transaction_id == "GPA.3383-2526-5819-26341"
    assert coins.transaction.purchased_at == datetime(2022, 10, 23, 7, 27, 41, 922_000, tzinfo=UTC)
    unlock = view(apply(None, _product(consumed_kr, "lifetime_unlock")))
    assert (unlock.status, unlock.kind, unlock.expires_at) == (
        Status.ACTIVE,
        PurchaseKind.NON_CONSUMABLE,
        None,  # a one-time product never expires
    )

    # IN: purchaseState 1 (cancelled) after payment: revoked; after a cancelled *pending*
    # purchase (ONE_TIME_PRODUCT_CANCELED) it was never paid: pending, never access
    refunded = _product(cancelled_in, "lifetime_unlock")
    assert refunded.status is Status.REVOKED
    assert view(apply(None, refunded)).status is Status.REVOKED
    never_paid = _product(cancelled_in, "lifetime_unlock", code=2)
    assert never_paid.status is Status.PENDING

    # DE: purchaseState 0 without purchaseType: a real (not test) purchase
    bought = _product(purchased_de, "lifetime_unlock", code=1)
    assert (bought.status, bought.is_sandbox) == (Status.ACTIVE, False)
    assert bought.transaction.purchased_at == millis("1634409867148")


def test_real_cancelled_product_record_does_not_depend_on_the_read_time(
    realdata: Path,
) -> None:
    """Contract §3: `revoked_at` is the store's time, "never the moment receiptd happened to
    receive a message: a late delivery, a replay or a reconciliation yields the same
    record". products.get carries no revocation time, so two reads of the same document at
    different moments must give the same revoked_at."""
    cancelled_in = read_json(google_dir(realdata) / "play-api-responses-real.json")["items"][2]
    records = set()
    for now in (NOW, NOW + timedelta(hours=5)):
        [event] = product_events(None, "tok-real", cancelled_in["response"], "unlock", now)
        purchase = view(apply(None, event))
        assert purchase.status is Status.REVOKED
        records.add(purchase.revoked_at)
    assert len(records) == 1, f"revoked_at follows the read time: {sorted(map(str, records))}"
