"""Shared set-up for Google Play end-to-end tests: a fake Play API (which also serves the
test OIDC certificates) on 127.0.0.1, a service account whose token_uri is the fake, and
signed Pub/Sub pushes. Store data (purchases, notifications, pushes) is dated by the test's
injected clock; only the push's OIDC token reads the real clock (google-auth checks it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from simulators.fake_play import FakePlay
from simulators.google_signer import (
    DEMO_PUSH_EMAIL,
    GoogleTestKeys,
    push_envelope,
    subscription_notification,
)
from simulators.play_purchases import subscription_purchase
from tests.conftest import READER_KEY, auth

PACKAGE = "com.example.app"
AUDIENCE = "https://receiptd.test/webhooks/google"
PUSH_EMAIL = DEMO_PUSH_EMAIL
MONTHLY = "premium_monthly"
YEARLY = "premium_yearly"
LIFETIME = "lifetime_unlock"
COINS = "coins_100"
USER = "u-google-1"


@pytest.fixture(scope="session")
def google_keys() -> GoogleTestKeys:
    return GoogleTestKeys.generate()


@pytest.fixture
async def fake_play(google_keys: GoogleTestKeys) -> AsyncIterator[FakePlay]:
    fake = FakePlay(keys=google_keys)
    await fake.start()
    yield fake
    await fake.stop()


def google_config(
    config: dict[str, Any], fake: FakePlay, directory: Path, **overrides: Any
) -> dict[str, Any]:
    """`config` with a [google] section pointing every Google endpoint at `fake`."""
    assert fake.keys is not None
    service_account = fake.keys.write_service_account_file(directory / "sa", fake.token_uri)
    config["google"] = {
        "package_names": [PACKAGE],
        "service_account_file": service_account,
        "play_api_url": fake.base_url,
        "pubsub_audience": AUDIENCE,
        "pubsub_service_account": PUSH_EMAIL,
        "pubsub_certs_url": fake.certs_url,
        "consumable_products": [COINS],
        **overrides,
    }
    config["entitlements"]["premium"]["products"] += [YEARLY, LIFETIME]
    return config


def push_headers(keys: GoogleTestKeys, **token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.sign_push_token(AUDIENCE, PUSH_EMAIL, **token)}"}


async def push(
    client: Any,
    keys: GoogleTestKeys,
    notification: dict[str, Any] | bytes,
    message_id: str | None = None,
    *,
    at: datetime,
) -> tuple[int, dict[str, Any]]:
    """POST a signed push of `notification`, published `at`; returns (status, JSON body)."""
    body = push_envelope(notification, message_id or f"m-{uuid.uuid4().hex}", publish_time=at)
    resp = await client.post("/webhooks/google", json=body, headers=push_headers(keys))
    return resp.status, await resp.json()


async def customer(client: Any, user: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    result: dict[str, Any] = await resp.json()
    return result


async def rows(database_url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def iso(when: Any) -> str:
    return str(when.strftime("%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture
async def google_client(fake_play, make_client, config, tmp_path):
    # fake_play first: it is torn down after the app, so the app never outlives it.
    return await make_client(google_config(config, fake_play, tmp_path))


def sub(clock, state: str, token: str = "tok-a", **kw: Any) -> dict[str, Any]:
    kw.setdefault("user", USER)
    return subscription_purchase(state, now=clock.now, **kw)


async def notify(client, fake, keys, clock, code, state, token="tok-a", **kw) -> dict[str, Any]:
    """Make the Play API say `state` for `token`, push notification `code`; expect 200."""
    fake.set_subscription(PACKAGE, token, sub(clock, state, token, **kw))
    note = subscription_notification(PACKAGE, token, code, event_time=clock.now)
    status, body = await push(client, keys, note, at=clock.now)
    assert status == 200, body
    return body
