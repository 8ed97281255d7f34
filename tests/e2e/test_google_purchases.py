"""POST /v1/purchases for Google Play, end to end: the purchase token is read from the fake
Play API over HTTP on 127.0.0.1, linked to the submitting user under the transfer policy,
and acknowledged after the commit."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.play_purchases import product_purchase, subscription_purchase
from tests.conftest import WRITER_KEY, auth, user_auth
from tests.e2e import google_helpers
from tests.e2e.google_helpers import (
    COINS,
    LIFETIME,
    MONTHLY,
    PACKAGE,
    YEARLY,
    customer,
    google_config,
    rows,
)

google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play
google_client = google_helpers.google_client

USER = "u-play-1"


def body(product_id: str = MONTHLY, token: str = "tok-1", **extra: Any) -> dict[str, Any]:
    return {
        "app_user_id": USER,
        "store": "play_store",
        "package_name": PACKAGE,
        "product_id": product_id,
        "purchase_token": token,
        **extra,
    }


async def submit(client, payload: dict[str, Any], headers=None) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/purchases", json=payload, headers=headers or auth(WRITER_KEY))
    return resp.status, await resp.json()


def user_token(sub: str) -> dict[str, str]:
    return user_auth(sub)


def api_paths(fake) -> list[str]:
    return [r.path.split("/purchases/")[1].split("/")[0] for r in fake.api_requests()]


async def test_subscription_is_validated_linked_and_acknowledged(
    google_client, fake_play, clock, database_url
) -> None:
    purchase = subscription_purchase(
        "active", now=clock.now, acknowledged=False, offer_phase="trial"
    )
    fake_play.set_subscription(PACKAGE, "tok-1", purchase)
    status, got = await submit(google_client, body(), user_token(USER))
    assert status == 200, got
    premium = got["entitlements"]["premium"]
    assert (premium["active"], premium["store"], premium["period_type"]) == (
        True,
        "play_store",
        "trial",
    )
    assert [s["purchase_token"] for s in got["subscriptions"]] == ["tok-1"]
    [ack] = fake_play.acknowledgements
    assert (ack["kind"], ack["product_id"], ack["token"]) == ("subscription", MONTHLY, "tok-1")
    assert await rows(database_url, "SELECT * FROM play_acknowledgements") == []
    # Resubmitting is always safe: same answer, no second acknowledgement.
    status, again = await submit(google_client, body())
    assert (status, again["entitlements"]) == (200, got["entitlements"])
    assert len(fake_play.acknowledgements) == 1


async def test_one_time_product_without_a_type_falls_back_to_products_get(
    google_client, fake_play, clock
) -> None:
    fake_play.set_product(
        PACKAGE, LIFETIME, "p-1", product_purchase(LIFETIME, purchase_time=clock.now)
    )
    status, got = await submit(google_client, body(LIFETIME, "p-1"))
    assert status == 200, got
    assert got["entitlements"]["premium"]["expires_at"] is None
    assert [p["purchase_token"] for p in got["purchases"]] == ["p-1"]
    assert api_paths(fake_play) == ["subscriptionsv2", "products", "products"]  # get, ack
    assert [a["kind"] for a in fake_play.acknowledgements] == ["product"]


@pytest.mark.parametrize(
    ("product", "extra"), [(LIFETIME, {"product_type": "one_time"}), (COINS, {})]
)
async def test_declared_or_consumable_products_are_read_directly(
    google_client, fake_play, clock, product, extra
) -> None:
    purchase = product_purchase(product, purchase_time=clock.now, acknowledged=True)
    fake_play.set_product(PACKAGE, product, "p-2", purchase)
    status, got = await submit(google_client, body(product, "p-2", **extra))
    assert status == 200, got
    assert api_paths(fake_play) == ["products"]
    assert fake_play.acknowledgements == []  # already acknowledged


async def test_rejections(google_client, fake_play, clock) -> None:
    yearly = subscription_purchase("active", now=clock.now, product_id=YEARLY)
    fake_play.set_subscription(PACKAGE, "tok-y", yearly)
    cases = [
        (body(**{"package_name": "com.other.app"}), 422, "product_not_configured"),
        (body("com.unknown.product"), 422, "product_not_configured"),
        (body(token="tok-unknown"), 422, "purchase_not_found"),
        (body(token="tok-unknown", product_type="subscription"), 422, "purchase_not_found"),
        (body(token="tok-y"), 422, "purchase_not_found"),  # the token is for another product
        (body(purchase_token=None), 400, "invalid_request"),
        (body(product_id=12), 400, "invalid_request"),
        (body(package_name=""), 400, "invalid_request"),
        (body(product_type="bundle"), 400, "invalid_request"),
    ]
    for payload, status, code in cases:
        got_status, got = await submit(google_client, payload)
        assert (got_status, got["error"]["code"]) == (status, code), payload
        assert "tok-" not in got["error"]["message"]
    assert (await customer(google_client, USER))["entitlements"] == {}
    assert fake_play.acknowledgements == []


async def test_play_api_down_is_503(google_client, fake_play, clock) -> None:
    fake_play.set_subscription(PACKAGE, "tok-1", subscription_purchase("active", now=clock.now))
    fake_play.deny = True
    status, got = await submit(google_client, body())
    assert (status, got["error"]["code"]) == (503, "store_access_denied")
    fake_play.deny = False
    fake_play.fail(503, times=4)  # every attempt of the client's retries
    status, got = await submit(google_client, body())
    assert (status, got["error"]["code"]) == (503, "store_unavailable")
    status, got = await submit(google_client, body())  # the app retries: safe
    assert status == 200
    assert got["entitlements"]["premium"]["active"] is True


async def test_google_not_configured_is_422(client) -> None:
    status, got = await submit(client, body())
    assert (status, got["error"]["code"]) == (422, "submission_not_supported")


@pytest.mark.parametrize(("policy", "status"), [("keep", 409), ("transfer", 200)])
async def test_transfer_policy(
    fake_play, make_client, config, tmp_path, clock, policy, status
) -> None:
    config["customers"] = {"transfer_policy": policy}
    client = await make_client(google_config(config, fake_play, tmp_path))
    fake_play.set_subscription(PACKAGE, "tok-1", subscription_purchase("active", now=clock.now))
    assert (await submit(client, body()))[0] == 200
    got_status, got = await submit(client, body() | {"app_user_id": "u-other"})
    assert got_status == status, got
    if status == 409:
        assert got["error"]["code"] == "purchase_owned_by_another_user"
        assert (await customer(client, USER))["entitlements"]["premium"]["active"] is True
    else:
        previous = (await customer(client, USER))["entitlements"]
        assert previous.get("premium", {"active": False})["active"] is False
        assert got["entitlements"]["premium"]["active"] is True


async def test_anonymous_play_api_on_loopback(
    fake_play, make_client, config, tmp_path, clock
) -> None:
    fake_play.require_auth = False
    cfg = google_config(config, fake_play, tmp_path)
    cfg["google"]["service_account_file"] = None
    client = await make_client(cfg)
    fake_play.set_subscription(PACKAGE, "tok-1", subscription_purchase("active", now=clock.now))
    status, got = await submit(client, body())
    assert status == 200, got
    assert not any(r.authorized for r in fake_play.api_requests())
    assert fake_play.token_requests == 0
