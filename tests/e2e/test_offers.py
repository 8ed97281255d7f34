"""Offers signed for the app (issue 23), over HTTP against the real app, PostgreSQL and Redis.

Each signature is verified the way Apple would: the JWS header (ES256, the key id), its
claims, and its signature against the public half of the In-App Purchase key; the legacy
signature over Apple's documented field order. Eligibility follows `[offers.*]` and, for
introductory offers, the customer's history in both stores.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256

from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth
from tests.e2e import google_helpers, replay_helpers
from tests.e2e.apple_helpers import BUNDLE_ID, PRODUCT, apple_config
from tests.e2e.google_helpers import MONTHLY, google_config, notify
from tests.e2e.replay_helpers import ISSUER_ID, KEY_ID
from tests.e2e.test_console_http import page, sign_in

google_keys = google_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key

OFFERS = {
    "winback": {
        "offer_id": "winback_50",
        "products": [PRODUCT],
        "eligible": "lapsed",
        "lapsed_days": 30,
    },
    "loyal": {"offer_id": "loyal_10", "products": [PRODUCT], "eligible": "active"},
    "anyone": {"offer_id": "hello_5", "products": [PRODUCT], "eligible": "any"},
}


@pytest.fixture
def offers_config(config, fake_api, fake_play, replay_ca, replay_api_key, tmp_path):
    cfg = apple_config(
        config,
        replay_ca[1],
        issuer_id=ISSUER_ID,
        key_id=KEY_ID,
        private_key_file=str(replay_api_key[1]),
        api_base_url=fake_api.url,
    )
    cfg = google_config(cfg, fake_play, tmp_path)
    cfg["offers"] = OFFERS
    return cfg


@pytest.fixture
async def app(make_client, offers_config):
    return await make_client(offers_config)


@pytest.fixture
def public_key(replay_api_key) -> ec.EllipticCurvePublicKey:
    return replay_api_key[0].public_key()


async def grant(app, user: str, **body: Any) -> None:
    resp = await app.post(
        f"/v1/customers/{user}/entitlements/premium/grants", json=body, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 201, await resp.text()


async def ask(app, user: str, headers=None, **body: Any):
    resp = await app.post(
        f"/v1/customers/{user}/offers/apple", json=body, headers=headers or user_auth(user)
    )
    return resp.status, await resp.json()


def verified(jws: str, public_key, audience: str) -> dict[str, Any]:
    """The claims of `jws` after checking its header and ES256 signature as Apple would."""
    header = jwt.get_unverified_header(jws)
    assert header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(jws, public_key, algorithms=["ES256"], audience=audience)
    assert claims["iss"] == ISSUER_ID
    assert claims["bid"] == BUNDLE_ID
    uuid.UUID(claims["nonce"])
    assert isinstance(claims["iat"], int)
    return claims


async def test_a_lapsed_customer_gets_a_signed_winback_offer(app, clock, public_key) -> None:
    user = "u-lapsed"
    await grant(app, user, duration="P1M")
    clock.advance(days=31 + 30)  # ended 30 days ago and a bit
    status, body = await ask(app, user, offer="winback", product_id=PRODUCT)
    assert status == 200, body
    claims = verified(body["signature"], public_key, "promotional-offer")
    assert claims["productId"] == PRODUCT
    assert claims["offerIdentifier"] == "winback_50"
    assert "transactionId" not in claims
    # The signature is recorded, with its nonce, in the customer's export.
    export = await (await app.get(f"/v1/customers/{user}/export", headers=auth(ADMIN_KEY))).json()
    [issued] = export["offer_signatures"]
    assert (issued["offer"], issued["format"], issued["nonce"]) == (
        "winback",
        "jws",
        claims["nonce"],
    )


async def test_a_transaction_id_is_signed_into_the_offer(app, clock, public_key) -> None:
    await grant(app, "u-tx", duration="P1D")
    clock.advance(days=40)
    status, body = await ask(
        app, "u-tx", offer="winback", product_id=PRODUCT, transaction_id="2000000123"
    )
    assert status == 200, body
    assert verified(body["signature"], public_key, "promotional-offer")["transactionId"] == (
        "2000000123"
    )


async def test_the_legacy_signature_verifies_over_apples_field_order(
    app, clock, public_key
) -> None:
    user = "u-Legacy"
    await grant(app, user)  # lifetime: active
    status, body = await ask(app, user, offer="loyal", product_id=PRODUCT, format="legacy")
    assert status == 200, body
    assert set(body) == {"key_id", "nonce", "timestamp", "signature"}
    assert body["key_id"] == KEY_ID
    assert body["timestamp"] == int(clock.now.timestamp() * 1000)
    message = "\u2063".join(
        [
            BUNDLE_ID,
            KEY_ID,
            PRODUCT,
            "loyal_10",
            user.lower(),
            body["nonce"],
            str(body["timestamp"]),
        ]
    )
    public_key.verify(base64.b64decode(body["signature"]), message.encode(), ec.ECDSA(SHA256()))


@pytest.mark.parametrize(
    ("offer", "setup_days", "reason"),
    [
        ("winback", None, "never had premium"),
        ("winback", 0, "has premium now"),
        ("winback", 10, "ended 9 day(s) ago; the offer needs 30"),
        ("loyal", None, "who have premium now"),
    ],
)
async def test_refusals_say_why(app, clock, offer, setup_days, reason) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    if setup_days is not None:
        await grant(app, user, duration="P1D")
        clock.advance(days=setup_days)
    status, body = await ask(app, user, offer=offer, product_id=PRODUCT)
    assert (status, body["error"]["code"]) == (403, "not_eligible")
    assert reason in body["error"]["message"]


async def test_any_customer_may_have_an_any_offer_but_not_while_suspended(app) -> None:
    assert (await ask(app, "u-new", offer="anyone", product_id=PRODUCT))[0] == 200
    await grant(app, "u-susp")
    resp = await app.post("/v1/customers/u-susp/suspend", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    status, body = await ask(app, "u-susp", offer="anyone", product_id=PRODUCT)
    assert (status, body["error"]["message"]) == (403, "the customer is suspended")


async def test_who_may_ask_and_bad_requests(app) -> None:
    url = "/v1/customers/u-1/offers/apple"
    body = {"offer": "anyone", "product_id": PRODUCT}
    assert (await app.post(url, json=body)).status == 401
    for headers in (user_auth("u-2"), auth(READER_KEY)):
        assert (await app.post(url, json=body, headers=headers)).status == 403
    for headers in (user_auth("u-1"), auth(WRITER_KEY), auth(ADMIN_KEY)):
        assert (await app.post(url, json=body, headers=headers)).status == 200
    for bad, status, code in (
        ({"offer": "nope", "product_id": PRODUCT}, 404, "unknown_offer"),
        ({"offer": "anyone", "product_id": "premium_monthly"}, 400, "invalid_request"),
        ({"offer": "anyone"}, 400, "invalid_request"),
        ({"offer": "anyone", "product_id": PRODUCT, "format": "pem"}, 400, "invalid_request"),
        ({"offer": "anyone", "product_id": PRODUCT, "x": 1}, 400, "invalid_request"),
        ({"offer": "anyone", "product_id": PRODUCT, "app": "com.other"}, 400, "invalid_request"),
    ):
        resp = await app.post(url, json=bad, headers=user_auth("u-1"))
        assert (resp.status, (await resp.json())["error"]["code"]) == (status, code), bad


async def test_without_a_key_offers_are_not_configured(make_client, config, replay_ca) -> None:
    cfg = apple_config(config, replay_ca[1])
    cfg["offers"] = OFFERS
    app = await make_client(cfg)
    status, body = await ask(app, "u-1", offer="anyone", product_id=PRODUCT)
    assert (status, body["error"]["code"]) == (422, "offers_not_configured")
    resp = await app.post(
        "/v1/customers/u-1/offers/apple/introductory",
        json={"product_id": PRODUCT, "transaction_id": "1"},
        headers=user_auth("u-1"),
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "offers_not_configured")


async def introductory(app, user: str) -> dict[str, Any]:
    resp = await app.post(
        f"/v1/customers/{user}/offers/apple/introductory",
        json={"product_id": PRODUCT, "transaction_id": "2000000999"},
        headers=user_auth(user),
    )
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_an_android_trial_makes_the_ios_introductory_offer_ineligible(
    app, clock, fake_play, google_keys, public_key
) -> None:
    user = "u-android-trial"
    # A free trial on Google Play, which then became a paid period.
    await notify(app, fake_play, google_keys, clock, 4, "active", token="tok-trial", user=user,
                 offer_phase="trial")  # fmt: skip
    clock.advance(days=7)
    await notify(app, fake_play, google_keys, clock, 2, "active", token="tok-trial", user=user,
                 offer_phase="base")  # fmt: skip
    body = await introductory(app, user)
    assert body["eligible"] is False
    assert "free trial of premium_monthly on Google Play" in body["reason"]
    claims = verified(body["signature"], public_key, "introductory-offer-eligibility")
    assert claims["allowIntroductoryOffer"] is False
    assert (claims["productId"], claims["transactionId"]) == (PRODUCT, "2000000999")

    fresh = await introductory(app, "u-fresh")
    assert fresh["eligible"] is True
    claims = verified(fresh["signature"], public_key, "introductory-offer-eligibility")
    assert claims["allowIntroductoryOffer"] is True


async def test_a_paid_android_subscription_keeps_the_introductory_offer(
    app, clock, fake_play, google_keys
) -> None:
    user = "u-android-paid"
    await notify(app, fake_play, google_keys, clock, 4, "active", token="tok-paid", user=user,
                 product_id=MONTHLY, offer_phase="base")  # fmt: skip
    assert (await introductory(app, user))["eligible"] is True


async def test_signatures_show_on_the_console_timeline(app, clock) -> None:
    user = "u-timeline"
    await grant(app, user, duration="P1D")
    clock.advance(days=31)
    assert (await ask(app, user, offer="winback", product_id=PRODUCT))[0] == 200
    await introductory(app, user)
    _resp, cookie = await sign_in(app)
    status, html = await page(app, f"/console/customers/{user}", cookie)
    assert status == 200
    assert "offer winback signed (jws)" in html
    assert "introductory offer eligibility signed (eligible)" in html
    assert html.count("offer signed</td>") == 2


async def test_who_may_ask_for_introductory_eligibility(app) -> None:
    url = "/v1/customers/u-1/offers/apple/introductory"
    body = {"product_id": PRODUCT, "transaction_id": "2000000999"}
    assert (await app.post(url, json=body)).status == 401
    for headers in (user_auth("u-2"), auth(READER_KEY)):
        assert (await app.post(url, json=body, headers=headers)).status == 403
    for headers in (user_auth("u-1"), auth(WRITER_KEY)):
        assert (await app.post(url, json=body, headers=headers)).status == 200
    for bad in ({"product_id": PRODUCT}, {"product_id": "unknown", "transaction_id": "1"}):
        assert (await app.post(url, json=bad, headers=user_auth("u-1"))).status == 400
