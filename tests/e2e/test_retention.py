"""Retention in the serving process: a pass (driven directly, as the periodic task runs it)
drops old raw payloads, keeps what dedupe and the timeline need, and counts in /metrics."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from api.keys import RETENTION
from simulators.apple_ca import TestCA
from storage import journal
from tests.conftest import READER_KEY, auth
from tests.e2e.apple_helpers import apple_config, scenario

DAYS = 30
METRIC = "receiptd_raw_payloads_pruned_total"


@pytest.fixture(scope="session")
def apple_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    ca_dir = tmp_path_factory.mktemp("apple-ca-retention")
    ca = TestCA.generate()
    ca.save(ca_dir)
    return ca, ca_dir


@pytest.fixture
async def apple_client(make_client, config, apple_ca):
    config["retention"] = {"raw_payload_days": DAYS}
    return await make_client(apple_config(config, apple_ca[1]))


async def journal_rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM store_notifications ORDER BY id")
    finally:
        await conn.close()


async def metric(client) -> float:
    text = await (await client.get("/metrics")).text()
    values = [line.split()[1] for line in text.splitlines() if line.startswith(f"{METRIC} ")]
    assert len(values) == 1, text
    return float(values[0])


async def test_a_pruned_notification_is_still_a_duplicate_and_keeps_its_timeline(
    apple_client, apple_ca, clock, database_url
) -> None:
    s = scenario(apple_ca[0])
    subscribe = s.body("subscribe", clock.now)
    assert (await (await apple_client.post("/webhooks/apple", json=subscribe)).json()) == {
        "status": "processed"
    }
    clock.advance(days=DAYS, seconds=1)
    renew = s.body("renew", clock.now)
    assert (await (await apple_client.post("/webhooks/apple", json=renew)).json()) == {
        "status": "processed"
    }
    before = await journal_rows(database_url)
    customer = await apple_client.get(f"/v1/customers/{s.state.user}", headers=auth(READER_KEY))
    entitlements = (await customer.json())["entitlements"]

    assert await metric(apple_client) == 0
    with capture_logs() as logs:
        assert await apple_client.app[RETENTION].run_once() == 1

    after = await journal_rows(database_url)
    assert [r["payload"] is None for r in after] == [True, False]
    assert after[0]["payload_pruned_at"] == clock.now
    for old, new in zip(before, after, strict=True):  # what dedupe and the timeline read
        for column in ("id", "message_id", "notification_type", "subtype", "signed_at"):
            assert new[column] == old[column]
        assert (new["purchase_id"], new["result"]) == (old["purchase_id"], old["result"])
    assert await metric(apple_client) == 1
    assert [(e["event"], e["count"]) for e in logs if e["event"] == "raw_payloads_pruned"] == [
        ("raw_payloads_pruned", 1)
    ]

    resent = await apple_client.post("/webhooks/apple", json=subscribe)
    assert await resent.json() == {"status": "duplicate"}
    assert len(await journal_rows(database_url)) == 2
    customer = await apple_client.get(f"/v1/customers/{s.state.user}", headers=auth(READER_KEY))
    assert (await customer.json())["entitlements"] == entitlements


async def test_a_replica_skips_its_pass_while_another_prunes(
    apple_client, apple_ca, clock, database_url
) -> None:
    s = scenario(apple_ca[0])
    await apple_client.post("/webhooks/apple", json=s.body("subscribe", clock.now))
    clock.advance(days=DAYS + 1)
    other_replica = await asyncpg.connect(database_url)
    try:
        assert await journal.try_lock(other_replica)
        assert await apple_client.app[RETENTION].run_once() is None
        assert await metric(apple_client) == 0
        await journal.unlock(other_replica)
    finally:
        await other_replica.close()
    assert (await journal_rows(database_url))[0]["payload"] is not None
    assert await apple_client.app[RETENTION].run_once() == 1
    assert await metric(apple_client) == 1
