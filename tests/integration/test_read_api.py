"""The read API of contract §3 over HTTP, against real PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from structlog.testing import capture_logs

from api.reads import SERVICE
from cache.answers import answer_key
from entitlements.model import PeriodType, Status
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_token
from tests.contract import ENTITLEMENT_FIELDS
from tests.factories import subscription_event


def iso(when: datetime) -> str:
    """The contract's timestamp format (RFC 3339, UTC, seconds)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed(client, clock, **kwargs) -> None:
    """Write a purchase through the real service (the same path webhooks use)."""
    service = client.app[SERVICE]
    event = subscription_event(purchased_at=clock.now - timedelta(days=1), **kwargs)
    await service.ingest(None, [event], submitted_by=kwargs.get("app_user_id") or "u-1")


async def test_unknown_customer_reads_as_empty(client, clock) -> None:
    resp = await client.get("/v1/customers/nobody", headers=auth(READER_KEY))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "app_user_id": "nobody",
        "as_of": iso(clock.now),
        "suspended": False,
        "entitlements": {},
        "subscriptions": [],
        "purchases": [],
    }


async def test_active_subscription_field_by_field(client, clock) -> None:
    await seed(client, clock, period_type=PeriodType.TRIAL)
    resp = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert resp.status == 200
    body = await resp.json()
    premium = body["entitlements"]["premium"]
    assert set(premium) == ENTITLEMENT_FIELDS
    assert premium == {
        "active": True,
        "status": "active",
        "period_type": "trial",
        "will_renew": True,
        "expires_at": iso(clock.now + timedelta(days=29)),  # bought a day ago, for 30 days
        "grace_period_expires_at": None,
        "product_id": "com.example.premium.monthly",
        "store": "app_store",
        "is_sandbox": False,
        "purchased_at": iso(clock.now - timedelta(days=1)),
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }
    assert "pro" not in body["entitlements"]
    [sub] = body["subscriptions"]
    assert sub["original_transaction_id"] == "otx-1"
    assert set(sub) >= ENTITLEMENT_FIELDS


async def test_active_is_evaluated_at_request_time(client, clock) -> None:
    await seed(client, clock, will_renew=False)
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["entitlements"]["premium"]["active"] is True
    assert body["entitlements"]["premium"]["will_renew"] is False
    clock.advance(days=31)  # past expires_at; served from the cache, still recomputed
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["as_of"] == iso(clock.now)
    assert body["entitlements"]["premium"]["active"] is False
    assert body["entitlements"]["premium"]["status"] == "expired"


async def test_grace_period_is_active_until_grace_ends(client, clock) -> None:
    grace_end = clock.now + timedelta(days=3)
    await seed(
        client,
        clock,
        status=Status.GRACE_PERIOD,
        in_billing_retry=True,
        grace_period_expires_at=grace_end,
        expires_at=clock.now - timedelta(hours=1),
    )
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    premium = body["entitlements"]["premium"]
    assert premium["status"] == "grace_period"
    assert premium["active"] is True
    assert premium["grace_period_expires_at"] == iso(grace_end)
    assert premium["billing_issue_detected_at"] == iso(clock.now - timedelta(days=1))
    clock.advance(days=4)
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["entitlements"]["premium"]["active"] is False


async def test_single_entitlement_endpoint(client, clock) -> None:
    await seed(client, clock)
    resp = await client.get("/v1/customers/u-1/entitlements/premium", headers=auth(READER_KEY))
    assert await resp.json() == {
        "app_user_id": "u-1",
        "entitlement": "premium",
        "active": True,
        "status": "active",
        "expires_at": iso(clock.now + timedelta(days=29)),
    }
    resp = await client.get("/v1/customers/u-1/entitlements/pro", headers=auth(READER_KEY))
    assert await resp.json() == {
        "app_user_id": "u-1",
        "entitlement": "pro",
        "active": False,
        "status": None,
        "expires_at": None,
    }
    resp = await client.get("/v1/customers/u-1/entitlements/gold", headers=auth(READER_KEY))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "unknown_entitlement"


async def test_etag_and_if_none_match(client, clock) -> None:
    await seed(client, clock)
    first = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    etag = first.headers["ETag"]
    clock.advance(seconds=5)  # as_of changes, content does not
    again = await client.get(
        "/v1/customers/u-1", headers={**auth(READER_KEY), "If-None-Match": etag}
    )
    assert again.status == 304
    assert again.headers["ETag"] == etag
    await seed(client, clock, transaction_id="tx-2", will_renew=False, signed_at=clock.now)
    changed = await client.get(
        "/v1/customers/u-1", headers={**auth(READER_KEY), "If-None-Match": etag}
    )
    assert changed.status == 200
    assert changed.headers["ETag"] != etag


@pytest.mark.parametrize(
    ("headers", "path", "status", "code"),
    [
        ({}, "/v1/customers/u-1", 401, "unauthenticated"),
        (auth("wrong-key-0123456789"), "/v1/customers/u-1", 401, "unauthenticated"),
        ({"Authorization": "Basic abc"}, "/v1/customers/u-1", 401, "unauthenticated"),
        (auth(WRITER_KEY), "/v1/customers/u-1", 403, "forbidden"),
        (auth(READER_KEY), "/v1/customers/u-1", 200, None),
        (auth(ADMIN_KEY), "/v1/customers/u-1", 200, None),
        ({"X-API-Key": READER_KEY}, "/v1/customers/u-1", 200, None),
        (auth(user_token("u-1")), "/v1/customers/u-1", 200, None),
        (auth(user_token("u-2")), "/v1/customers/u-1", 403, "forbidden"),
        (auth(user_token("u-1", exp_in=-3600)), "/v1/customers/u-1", 401, "unauthenticated"),
        (auth(user_token("u-1", secret="x" * 40)), "/v1/customers/u-1", 401, "unauthenticated"),
        (auth(user_token("u-1")), "/v1/customers/u-1/entitlements/premium", 200, None),
        (auth(WRITER_KEY), "/v1/customers/u-1/entitlements/premium", 403, "forbidden"),
    ],
)
async def test_auth_matrix(client, headers, path, status, code) -> None:
    resp = await client.get(path, headers=headers)
    assert resp.status == status
    if code is not None:
        body = await resp.json()
        assert body["error"]["code"] == code
        assert body["error"]["message"]


async def test_key_by_sha256_digest(make_client, config) -> None:
    secret = "hashed-key-0123456789abcdef"
    config["auth"]["api_keys"].append(
        {
            "name": "hashed",
            "key_sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "scopes": ["customers:read"],
        }
    )
    client = await make_client(config)
    assert (await client.get("/v1/customers/u-1", headers=auth(secret))).status == 200


@pytest.mark.parametrize("bad_id", ["a" * 129, "has space", "tab\there", "newline\n"])
async def test_invalid_app_user_id_is_400(client, bad_id) -> None:
    resp = await client.get(f"/v1/customers/{quote(bad_id)}", headers=auth(READER_KEY))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_request"


async def test_unknown_route_and_method_are_json_errors(client) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_served_without_redis_and_when_redis_is_down(make_client, config, clock) -> None:
    for redis_url in ("off", "redis://127.0.0.1:1/0"):
        config["redis"]["url"] = redis_url
        client = await make_client(config)
        with capture_logs() as logs:
            await seed(client, clock)
            resp = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
        assert resp.status == 200
        assert (await resp.json())["entitlements"]["premium"]["active"] is True
        if redis_url != "off":
            assert any(e["event"] == "cache_unavailable" for e in logs)
        await client.close()


async def test_reads_are_cached_and_invalidated_on_write(client, clock, redis_client) -> None:
    await seed(client, clock)
    await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert await redis_client.exists(answer_key("u-1")) == 1
    await seed(client, clock, transaction_id="tx-2", will_renew=False, signed_at=clock.now)
    assert await redis_client.exists(answer_key("u-1")) == 0
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["entitlements"]["premium"]["will_renew"] is False


async def test_stale_cache_entry_from_an_old_generation_is_not_served(
    client, clock, redis_client
) -> None:
    await seed(client, clock)
    await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    stale = await redis_client.get(answer_key("u-1"))
    await seed(client, clock, transaction_id="tx-2", will_renew=False, signed_at=clock.now)
    # A reader that raced the write re-installs the old record after the invalidation:
    await redis_client.set(answer_key("u-1"), stale)
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["entitlements"]["premium"]["will_renew"] is False
