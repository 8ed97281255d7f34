"""Drills: the serving process stopped under webhook load, as Kubernetes and crashes stop it.

`receiptd serve` runs as a subprocess on a cloned test database and the session's Redis; Apple
notifications (signed by the local test CA) are POSTed many at a time.

- SIGTERM: in-flight requests finish (three Google pushes held at the Play API when the
  signal arrives are answered 200 and committed), the process exits 0 within
  `server.shutdown_timeout`, and every 2xx is a committed journal row with its state applied;
  a request refused or cut off is not committed half-way.
- SIGKILL while requests are in flight: the ingest journals and applies in ONE transaction, so
  there is no "journaled but not applied" row to recover: after the crash every 2xx is in the
  journal with its state, no journal row lacks its state and no state lacks its journal row.
  After a restart, the stores' redelivery of every notification is applied exactly once
  (answered ones are `duplicate`; unanswered ones are processed, or `duplicate` when they
  had committed just before the kill): one journal row and one change event per purchase.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from receipts.apple.verifier import peek
from simulators.google_signer import push_envelope, subscription_notification
from tests import logscan
from tests.drills.served import Answer, Served, deliver, free_port, in_background, load, to_toml
from tests.e2e import google_helpers
from tests.e2e.apple_helpers import apple_config, scenario
from tests.e2e.google_helpers import PACKAGE, google_config, push_headers, sub
from tests.e2e.test_apple_webhook import apple_ca

fake_play = google_helpers.fake_play
google_keys = google_helpers.google_keys
__all__ = ["apple_ca"]

SHUTDOWN_TIMEOUT = 10
LOAD = 160  # Apple notifications per drill
CONCURRENCY = 8


def served_config(database_url: str, redis_url: str, tmp: Path) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "port": free_port(),
            "data_dir": tmp / "data",
            "shutdown_timeout": SHUTDOWN_TIMEOUT,
        },
        "database": {"url": database_url},
        "redis": {"url": redis_url},
        "entitlements": {"premium": {"products": ["com.example.premium.monthly"]}},
    }


@pytest.fixture
async def served(tmp_path) -> AsyncIterator[list[Served]]:
    """The `receiptd serve` processes of a drill: killed if still running, and their whole
    output put through the log scan (it is not captured by pytest)."""
    started: list[Served] = []
    yield started
    for process in started:
        process.stop_quietly()
    for process in started:
        assert "http_request" in process.output()  # the scan below read the real logs
        assert logscan.findings(process.output()) == []


def launch(cfg: dict[str, Any], tmp: Path, started: list[Served]) -> Served:
    path = tmp / "receiptd.toml"
    path.write_text(to_toml(cfg))
    process = Served(path, cfg["server"]["port"], tmp / "receiptd")
    started.append(process)
    process.start()
    return process


def notifications(ca, clock, n: int) -> dict[str, tuple[dict[str, str], str, str]]:
    """n SUBSCRIBED notifications of n users: message id → (body, user, purchase id)."""
    out = {}
    for _ in range(n):
        s = scenario(ca)
        body = s.body("subscribe", clock.now)
        out[peek(body["signedPayload"])["notificationUUID"]] = (
            body,
            s.state.user,
            s.state.original_transaction_id,
        )
    return out


async def stored(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        journal = await conn.fetch(
            "SELECT message_id, result, purchase_id FROM store_notifications ORDER BY id"
        )
        purchases = await conn.fetch("SELECT purchase_id, app_user_id, status FROM purchases")
        events = await conn.fetch("SELECT app_user_id, type FROM customer_events")
    finally:
        await conn.close()
    return {"journal": journal, "purchases": purchases, "events": events}


def assert_nothing_half_done(
    state: dict[str, Any], sent: dict[str, tuple[Any, str, str]], answers: dict[str, Answer]
) -> None:
    """Every 2xx committed with its state; every journal row with its state; no state
    without its journal row; at most one row and one change event per notification."""
    journal = {r["message_id"]: r for r in state["journal"]}
    assert len(journal) == len(state["journal"])  # one row per message id
    purchases = {r["purchase_id"]: r for r in state["purchases"]}
    assert len(purchases) == len(state["purchases"])
    events: dict[str, int] = {}
    for r in state["events"]:
        events[r["app_user_id"]] = events.get(r["app_user_id"], 0) + 1
    for message_id, answer in answers.items():
        if answer.ok:
            assert answer.body == {"status": "processed"}, answer
            assert journal[message_id]["result"] == "processed"
    for message_id, (_, user, purchase_id) in sent.items():
        if message_id in journal:
            assert purchases[purchase_id]["app_user_id"] == user
            assert purchases[purchase_id]["status"] == "active"
            assert events.get(user) == 1
        else:
            assert purchase_id not in purchases  # not applied without its journal row
            assert user not in events


async def test_sigterm_under_webhook_load_finishes_in_flight_requests(
    served, database_url, redis_url, apple_ca, fake_play, google_keys, clock, tmp_path
) -> None:
    cfg = served_config(database_url, redis_url, tmp_path)
    cfg = apple_config(cfg, apple_ca[1])
    cfg = google_config(cfg, fake_play, tmp_path)
    tokens = [f"tok-sigterm-{i}" for i in range(3)]
    for token in tokens:
        fake_play.set_subscription(PACKAGE, token, sub(clock, "active", token))
    sent = notifications(apple_ca[0], clock, LOAD)
    server = launch(cfg, tmp_path, served)
    await server.wait_ready()

    fake_play.delay = 2.0  # the Play API answers slowly: these pushes are surely in flight
    connector = aiohttp.TCPConnector(limit=CONCURRENCY + len(tokens))
    async with aiohttp.ClientSession(connector=connector) as session:
        pushes = [
            in_background(
                deliver(
                    session,
                    f"{server.url}/webhooks/google",
                    push_envelope(
                        subscription_notification(PACKAGE, token, 4, event_time=clock.now),
                        f"m-sigterm-{token[-1]}",  # a message id, not the token
                        publish_time=clock.now,
                    ),
                    push_headers(google_keys),
                )
            )
            for token in tokens
        ]
        answered = asyncio.Event()
        apple = in_background(
            load(
                session,
                f"{server.url}/webhooks/apple",
                [body for body, _, _ in sent.values()],
                answered,
                after=20,
            )
        )
        await asyncio.wait_for(answered.wait(), 60)

        async def held_at_play() -> bool:
            return sum("subscriptionsv2" in r.path for r in fake_play.requests) == len(tokens)

        deadline = time.monotonic() + 30
        while not await held_at_play():
            assert time.monotonic() < deadline, "the pushes never reached the Play API"
            await asyncio.sleep(0.02)
        signalled = time.monotonic()
        server.signal(signal.SIGTERM)
        apple_answers = await asyncio.wait_for(apple, 60)
        push_answers = await asyncio.wait_for(asyncio.gather(*pushes), 60)
    code = await server.wait_exit(SHUTDOWN_TIMEOUT + 15)
    took = time.monotonic() - signalled

    assert code == 0, server.output()
    assert took < SHUTDOWN_TIMEOUT + 5  # in-flight work took ~2 s, not the whole timeout
    # The requests in flight at SIGTERM were finished and committed, not cut off.
    assert [a.body for a in push_answers] == [{"status": "processed"}] * len(tokens)
    answers = dict(zip(sent, apple_answers, strict=True))
    assert any(a.ok for a in apple_answers)
    assert any(not a.ok for a in apple_answers), "the drill never cut the load"
    assert all(a.ok or a.status is None for a in apple_answers)  # refused, never a 5xx
    state = await stored(database_url)
    assert_nothing_half_done(state, sent, answers)
    google_rows = [r for r in state["journal"] if r["message_id"].startswith("m-sigterm-")]
    assert sorted(r["result"] for r in google_rows) == ["processed"] * len(tokens)
    assert {r["purchase_id"] for r in state["purchases"]} >= set(tokens)


async def test_sigkill_mid_load_then_redelivery_is_applied_exactly_once(
    served, database_url, redis_url, apple_ca, clock, tmp_path
) -> None:
    cfg = apple_config(served_config(database_url, redis_url, tmp_path), apple_ca[1])
    sent = notifications(apple_ca[0], clock, LOAD)
    server = launch(cfg, tmp_path, served)
    await server.wait_ready()

    answered = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        apple = in_background(
            load(
                session,
                f"{server.url}/webhooks/apple",
                [body for body, _, _ in sent.values()],
                answered,
                after=20,
            )
        )
        await asyncio.wait_for(answered.wait(), 60)
        server.signal(signal.SIGKILL)  # a crash: no shutdown, requests cut mid-way
        first = dict(zip(sent, await asyncio.wait_for(apple, 60), strict=True))
    assert await server.wait_exit(10) == -signal.SIGKILL
    unanswered = [m for m, a in first.items() if not a.ok]
    assert unanswered, "the drill never cut the load"
    # Right after the crash, before any restart: nothing half-done, nothing to sweep.
    assert_nothing_half_done(await stored(database_url), sent, first)

    # The next start, then every store redelivering every notification it sent.
    server.start()
    await server.wait_ready()
    async with aiohttp.ClientSession() as session:
        second = {
            m: await deliver(session, f"{server.url}/webhooks/apple", body)
            for m, (body, _, _) in sent.items()
        }
    server.signal(signal.SIGTERM)
    assert await server.wait_exit(SHUTDOWN_TIMEOUT + 15) == 0

    for message_id, answer in second.items():
        assert answer.ok, answer
        if first[message_id].ok:
            assert answer.body == {"status": "duplicate"}
        else:  # committed just before the kill (answer lost), or not at all
            assert answer.body in ({"status": "processed"}, {"status": "duplicate"})
    state = await stored(database_url)
    assert_nothing_half_done(state, sent, first)
    assert sorted(r["message_id"] for r in state["journal"]) == sorted(sent)
    assert len(state["purchases"]) == len(sent)
    assert len(state["events"]) == len(sent)  # exactly once: one change event each
