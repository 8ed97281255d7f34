"""Apple non-renewing subscriptions (contract §2 `non_renewing_durations`): access lasts the
configured duration from the purchase; without one the purchase reads as lifetime and the
missing setting is logged once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from structlog.testing import capture_logs

from entitlements.duration import parse_duration
from simulators.apple_ca import TestCA
from tests.conftest import READER_KEY, auth
from tests.e2e.apple_helpers import apple_config, scenario

SEASON = "com.example.season"


@pytest.fixture(scope="module")
def apple_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    ca_dir = tmp_path_factory.mktemp("apple-ca-nr")
    ca = TestCA.generate()
    ca.save(ca_dir)
    return ca, ca_dir


@pytest.fixture
async def apple_client(make_client, config, apple_ca):
    cfg = apple_config(config, apple_ca[1], non_renewing_durations={SEASON: "P3M"})
    return await make_client(cfg)


async def premium(client, user: str) -> dict:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    return (await resp.json())["entitlements"]["premium"]


def iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_configured_duration_ends_access(apple_client, apple_ca, clock) -> None:
    bought = clock.now.replace(microsecond=0)
    s = scenario(apple_ca[0], product=SEASON)
    resp = await apple_client.post("/webhooks/apple", json=s.body("one-time-non-renewing", bought))
    assert resp.status == 200
    ends = parse_duration("P3M").after(bought)
    got = await premium(apple_client, s.state.user)
    assert (got["active"], got["status"], got["expires_at"]) == (True, "active", iso(ends))
    assert got["will_renew"] is False
    clock.now = ends - timedelta(seconds=1)
    assert (await premium(apple_client, s.state.user))["active"] is True
    clock.now = ends
    got = await premium(apple_client, s.state.user)
    assert (got["active"], got["status"]) == (False, "expired")


async def test_unconfigured_product_reads_lifetime_and_warns_once(
    apple_client, apple_ca, clock
) -> None:
    with capture_logs() as logs:
        for _ in range(2):
            s = scenario(apple_ca[0], product="com.example.lifetime")
            body = s.body("one-time-non-renewing", clock.now)
            assert (await apple_client.post("/webhooks/apple", json=body)).status == 200
            got = await premium(apple_client, s.state.user)
            assert (got["active"], got["expires_at"]) == (True, None)
    warnings = [e for e in logs if e["event"] == "non_renewing_duration_missing"]
    assert len(warnings) == 1
    assert warnings[0]["product_id"] == "com.example.lifetime"
    assert warnings[0]["log_level"] == "warning"


async def test_submitted_transaction_gets_the_duration_too(apple_client, apple_ca, clock) -> None:
    bought = clock.now.replace(microsecond=0)
    s = scenario(apple_ca[0], product=SEASON)
    notification = s.body("one-time-non-renewing", bought)["signedPayload"]
    payload = jwt.decode(notification, options={"verify_signature": False})
    signed = payload["data"]["signedTransactionInfo"]
    resp = await apple_client.post(
        "/v1/purchases",
        json={"app_user_id": "u-season", "store": "app_store", "signed_transaction": signed},
        headers=auth("test-writer-key-0123456789"),
    )
    assert resp.status == 200, await resp.text()
    got = (await resp.json())["entitlements"]["premium"]
    assert got["expires_at"] == iso(parse_duration("P3M").after(bought))
