"""Outbound webhooks against a local receiver on 127.0.0.1 that can fail, stall past the
timeout and recover, with the real app, PostgreSQL and Redis. Events come from operator
grants through the HTTP API. The background loops are stopped; tests drive passes
(`run_once`) and move the injected clock instead of sleeping."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from api.keys import OUTBOUND
from entitlements.outbox_signature import HEADER, parse_key, verify
from services.outbound import Endpoint, OutboundDelivery, endpoint_key
from tests.conftest import ADMIN_KEY, READER_KEY, auth

NEW = "k2:new-secret-0123456789abcdef"
OLD = "k1:old-secret-0123456789abcdef"
INITIAL = 5.0
MAXIMUM = 40.0
TIMEOUT = 0.3  # real seconds a stalled receiver costs per attempt
LEASE_LAPSED = {"seconds": TIMEOUT + 61}


@dataclass
class Arrival:
    event: dict[str, Any]
    answered: int  # the status the receiver answered (0: it stalled)
    signature_ok: bool


@dataclass
class Receiver:
    """Records every request; answers 200, 500 (`fail`, or for customers in `fail_users`),
    or stalls until released (`stall`); paths in `down` answer 503 and record nothing.
    Verifies each signature against both keys."""

    clock: Any
    mode: str = "ok"
    fail_users: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["name"] in self.down:
            return web.Response(status=503)
        body = await request.read()
        keys = [parse_key(NEW).secret, parse_key(OLD).secret]
        ok = verify(request.headers[HEADER], body, keys, now=self.clock.now.timestamp())
        event = json.loads(body)
        key = f"{event['id']}"
        if key in self.in_flight:
            self.overlaps.append(key)
        self.in_flight.add(key)
        try:
            if self.mode == "stall":
                self.arrivals.append(Arrival(event, 0, ok))
                self.arrived.set()
                await self.release.wait()
                return web.Response(status=200)
            failing = self.mode == "fail" or event["app_user_id"] in self.fail_users
            status = 500 if failing else 200
            self.arrivals.append(Arrival(event, status, ok))
            self.arrived.set()
            return web.Response(status=status, text="ok" if status == 200 else "down")
        finally:
            self.in_flight.discard(key)

    def delivered(self) -> dict[str, list[int]]:
        """Per customer, the sequences accepted (2xx), in arrival order, duplicates kept."""
        out: dict[str, list[int]] = defaultdict(list)
        for a in self.arrivals:
            if a.answered == 200:
                out[a.event["app_user_id"]].append(a.event["sequence"])
        return dict(out)

    def assert_in_order_and_complete(self, expected: dict[str, int]) -> None:
        """Nothing lost; per customer no event arrives (even as a failed attempt) before the
        previous one was accepted; every arrival was validly signed."""
        assert all(a.signature_ok for a in self.arrivals)
        accepted: dict[str, set[int]] = defaultdict(set)
        for a in self.arrivals:
            user, seq = a.event["app_user_id"], a.event["sequence"]
            assert all(s in accepted[user] for s in range(1, seq)), (user, seq)
            if a.answered == 200:
                accepted[user].add(seq)
        assert {u: sorted(s) for u, s in accepted.items()} == {
            u: list(range(1, n + 1)) for u, n in expected.items()
        }


@pytest.fixture
async def receiver(aiohttp_server, clock):
    rec = Receiver(clock)
    app = web.Application()
    app.router.add_post("/{name}", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/"))
    yield rec
    rec.release.set()


def webhook_config(config: dict, *urls: str) -> dict:
    return {
        **config,
        "webhooks": {
            "retry_initial_seconds": INITIAL,
            "retry_max_seconds": MAXIMUM,
            "timeout_seconds": TIMEOUT,
            "outbound": [{"url": url, "secrets": [NEW, OLD]} for url in urls],
        },
    }


@pytest.fixture
def start(make_client, config, receiver):
    """Start an app delivering to the receiver's paths; its loops are stopped so the test
    drives every pass."""

    async def factory(*names: str, cfg: dict | None = None):
        urls = [receiver.url + n for n in (names or ("a",))]
        client = await make_client(webhook_config(cfg or config, *urls))
        await client.app[OUTBOUND].stop()
        return client

    return factory


async def grant(client, user: str, days: int) -> None:
    resp = await client.post(
        f"/v1/customers/{user}/entitlements/premium/grants",
        json={"duration": f"P{days}D"},
        headers=auth(ADMIN_KEY),
    )
    assert resp.status == 201


async def drain(delivery: OutboundDelivery, passes: int = 30) -> int:
    """Run passes until one attempts nothing; returns the attempts made."""
    total = 0
    for _ in range(passes):
        attempted = await delivery.run_once()
        if attempted == 0:
            return total
        total += attempted
    raise AssertionError("deliveries kept coming")


async def webhooks(client) -> list[dict]:
    resp = await client.get("/v1/webhooks", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    return (await resp.json())["endpoints"]


async def metrics(client) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("receiptd_webhook_")
    }


async def test_events_are_signed_and_delivered_in_order_with_state_and_metrics(
    start, receiver, clock
) -> None:
    client = await start()
    delivery = client.app[OUTBOUND]
    for day in (1, 2, 3):
        await grant(client, "u-1", day)
        await grant(client, "u-2", day)
    with capture_logs() as logs:
        assert await drain(delivery) == 6
    receiver.assert_in_order_and_complete({"u-1": 3, "u-2": 3})
    assert receiver.delivered() == {"u-1": [1, 2, 3], "u-2": [1, 2, 3]}  # each exactly once

    # The body is the feed's event object, byte for byte what was signed.
    feed = await (await client.get("/v1/events", headers=auth(READER_KEY))).json()
    assert sorted((a.event for a in receiver.arrivals), key=lambda e: e["id"]) == sorted(
        feed["events"], key=lambda e: e["id"]
    )
    [state] = await webhooks(client)
    key = endpoint_key(receiver.url + "a")
    assert state["id"] == key
    assert state["url"] == receiver.url + "a"
    assert (state["signing_key_id"], state["key_ids"]) == ("k2", ["k2", "k1"])
    assert state["cursor"] == feed["next_cursor"]
    assert (state["pending"], state["in_flight"], state["retrying"]) == (0, 0, 0)
    assert state["last_success_at"] is not None
    assert state["last_error"] is None
    m = await metrics(client)
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{key}",result="success"}}'] == 6
    assert m[f'receiptd_webhook_pending{{endpoint="{key}"}}'] == 0
    assert m[f'receiptd_webhook_oldest_pending_seconds{{endpoint="{key}"}}'] == 0
    delivered = [e for e in logs if e["event"] == "webhook_delivered"]
    assert len(delivered) == 6
    assert {e["endpoint"] for e in delivered} == {key}
    text = json.dumps(logs, default=str) + json.dumps(await webhooks(client)) + str(m)
    assert "secret-0123456789" not in text


async def test_fails_times_out_recovers_and_restarts_without_losing_anything(
    start, receiver, clock, config
) -> None:
    """The issue's scenario: the receiver answers 500, then stalls past the timeout, then
    the service restarts in the middle of an attempt, then the receiver recovers. Nothing
    is lost, duplicates are allowed, per-customer order is kept."""
    client = await start()
    delivery = client.app[OUTBOUND]
    key = endpoint_key(receiver.url + "a")
    await grant(client, "u-1", 1)
    await grant(client, "u-2", 1)

    receiver.mode = "fail"
    assert await delivery.run_once() == 2  # both customers' first events fail
    assert await delivery.run_once() == 0  # backing off: nothing is due yet
    [state] = await webhooks(client)
    assert (state["pending"], state["retrying"], state["last_error"]) == (2, 2, "http 500")
    await grant(client, "u-1", 2)  # queued behind u-1's failing first event

    clock.advance(seconds=INITIAL)  # the first retry is due after 2.5-5 s
    receiver.mode = "stall"
    assert await delivery.run_once() == 2  # only the heads: u-1's second event waits
    assert [a.event["sequence"] for a in receiver.arrivals[-2:]] == [1, 1]
    [state] = await webhooks(client)
    assert state["last_error"] == "timeout"
    assert state["pending"] == 3

    clock.advance(seconds=2 * INITIAL)  # second retry: after 5-10 s
    receiver.arrived.clear()
    task = asyncio.create_task(delivery.run_once())
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    task.cancel()  # the process dies mid-attempt: the claims keep their leases
    with pytest.raises(asyncio.CancelledError):
        await task
    await grant(client, "u-2", 2)  # committed, never handed by this process
    await client.close()

    receiver.mode = "ok"
    receiver.release.set()
    client = await start(cfg=config)  # a new process on the same database
    delivery = client.app[OUTBOUND]
    assert await delivery.run_once() == 0  # the dead process's leases still hold
    clock.advance(**LEASE_LAPSED)
    await drain(delivery)
    receiver.assert_in_order_and_complete({"u-1": 2, "u-2": 2})
    first = [
        a for a in receiver.arrivals if (a.event["app_user_id"], a.event["sequence"]) == ("u-1", 1)
    ]
    assert len(first) >= 3  # at least once: the receiver saw it on every attempt
    [state] = await webhooks(client)
    assert (state["pending"], state["retrying"], state["last_error"]) == (0, 0, "timeout")
    m = await metrics(client)  # counted by the new process only
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{key}",result="success"}}'] == 4


async def test_backoff_doubles_with_jitter_up_to_the_maximum(start, receiver, clock) -> None:
    client = await start()
    delivery = client.app[OUTBOUND]
    await grant(client, "u-1", 1)
    receiver.mode = "fail"
    for nominal in (5, 10, 20, 40, 40):  # initial 5 s doubling, capped at 40 s
        assert await delivery.run_once() == 1  # fails
        [state] = await webhooks(client)
        wait = (parse_time(state["next_retry_at"]) - clock.now).total_seconds()
        assert nominal / 2 - 1 <= wait <= nominal  # jitter: half to all; the API shows seconds
        clock.advance(seconds=nominal / 2 - 1)
        assert await delivery.run_once() == 0  # not before half the delay
        clock.advance(seconds=nominal / 2 + 1)
    receiver.mode = "ok"
    assert await drain(delivery) == 1
    receiver.assert_in_order_and_complete({"u-1": 1})
    key = endpoint_key(receiver.url + "a")
    m = await metrics(client)
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{key}",result="http_error"}}'] == 5
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{key}",result="success"}}'] == 1


def parse_time(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_failing_customer_does_not_hold_up_other_customers(start, receiver, clock) -> None:
    client = await start()
    delivery = client.app[OUTBOUND]
    receiver.fail_users = {"u-bad"}
    for day in (1, 2, 3):
        await grant(client, "u-bad", day)
        await grant(client, "u-good", day)
        await grant(client, f"u-{day}", day)
    for _ in range(4):
        await delivery.run_once()
        clock.advance(seconds=MAXIMUM)
    assert receiver.delivered() == {"u-good": [1, 2, 3], "u-1": [1], "u-2": [1], "u-3": [1]}
    # u-bad's first event was retried; its later events never left.
    assert {
        a.event["sequence"] for a in receiver.arrivals if a.event["app_user_id"] == "u-bad"
    } == {1}
    receiver.fail_users = set()
    await drain(delivery)
    receiver.assert_in_order_and_complete({"u-bad": 3, "u-good": 3, "u-1": 1, "u-2": 1, "u-3": 1})


async def test_an_endpoint_down_for_a_day_does_not_hold_up_another(start, receiver, clock) -> None:
    client = await start("down", "up")
    delivery = client.app[OUTBOUND]
    down, up = (endpoint_key(receiver.url + n) for n in ("down", "up"))
    receiver.down = {"down"}
    await grant(client, "u-1", 1)
    started = clock.now
    for hour in range(24):
        await grant(client, "u-1", hour + 2)
        await grant(client, f"u-h{hour}", 1)
        await delivery.run_once()
        clock.advance(hours=1)
    await drain(delivery)
    expected = {"u-1": 25} | {f"u-h{h}": 1 for h in range(24)}
    receiver.assert_in_order_and_complete(expected)  # everything reached the healthy one
    states = {s["id"]: s for s in await webhooks(client)}
    assert states[up]["pending"] == 0
    assert states[down]["pending"] == 49
    assert states[down]["oldest_pending_at"] == started.strftime("%Y-%m-%dT%H:%M:%SZ")
    m = await metrics(client)
    assert m[f'receiptd_webhook_pending{{endpoint="{down}"}}'] == 49
    assert m[f'receiptd_webhook_oldest_pending_seconds{{endpoint="{down}"}}'] == 24 * 3600
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{down}",result="http_error"}}'] > 24

    receiver.down = set()
    receiver.arrivals.clear()
    clock.advance(seconds=MAXIMUM)
    await drain(delivery)
    receiver.assert_in_order_and_complete(expected)  # the day's backlog, in order


async def test_two_replicas_never_send_the_same_attempt_at_once(
    start, receiver, clock, config
) -> None:
    first = await start()
    second = await start(cfg=config)
    replicas = [first.app[OUTBOUND], second.app[OUTBOUND]]
    users = [f"u-{n}" for n in range(12)]
    for day in (1, 2, 3):
        for user in users:
            await grant(first, user, day)
    receiver.fail_users = {"u-0", "u-1"}
    for _ in range(10):
        counts = await asyncio.gather(*(r.run_once() for r in replicas))
        if receiver.fail_users:
            receiver.fail_users = set()
            clock.advance(seconds=MAXIMUM)
        elif sum(counts) == 0:
            break
    assert receiver.overlaps == []
    receiver.assert_in_order_and_complete(dict.fromkeys(users, 3))
    # No failure after the first round and no crash: exactly one copy of each event.
    assert receiver.delivered() == {u: [1, 2, 3] for u in users}


async def test_a_new_endpoint_starts_at_the_end_of_the_feed(
    make_client, start, receiver, config
) -> None:
    before = await make_client(config)  # no endpoint configured yet
    await grant(before, "u-old", 1)
    await before.close()
    client = await start()
    await grant(client, "u-new", 1)
    await drain(client.app[OUTBOUND])
    assert receiver.delivered() == {"u-new": [1]}


async def test_delivery_state_is_for_admins_and_hides_credentials(
    make_client, config, receiver
) -> None:
    url = receiver.url.replace("http://", "http://user:pw-in-url@") + "a?token=tok-in-url"
    client = await make_client(webhook_config(config, url))
    await client.app[OUTBOUND].stop()
    assert (await client.get("/v1/webhooks")).status == 401
    assert (await client.get("/v1/webhooks", headers=auth(READER_KEY))).status == 403
    [state] = await webhooks(client)
    assert state["url"] == receiver.url + "a"
    assert state["id"] == endpoint_key(url)
    text = json.dumps(state) + await (await client.get("/metrics")).text()
    for secret in ("pw-in-url", "tok-in-url", "secret-0123456789"):
        assert secret not in text
    assert "pw-in-url" not in repr(Endpoint.configure(url, [NEW]))


async def test_events_pending_at_an_erasure_go_out_with_the_pseudonym(
    start, receiver, clock
) -> None:
    client = await start()
    delivery = client.app[OUTBOUND]
    await grant(client, "u-gone", 1)
    receiver.mode = "fail"
    assert await delivery.run_once() == 1
    resp = await client.delete("/v1/customers/u-gone", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    receiver.mode = "ok"
    receiver.arrivals.clear()
    clock.advance(seconds=MAXIMUM)
    await drain(delivery)
    [(pseudonym, sequences)] = receiver.delivered().items()
    assert pseudonym.startswith("erased:")
    assert sequences == [1, 2]
    assert [a.event["type"] for a in receiver.arrivals] == ["grant_added", "erased"]
    assert "u-gone" not in json.dumps([a.event for a in receiver.arrivals])


async def test_the_background_loop_delivers_on_its_own(make_client, config, receiver) -> None:
    client = await make_client(webhook_config(config, receiver.url + "a"))  # loops running
    await grant(client, "u-1", 1)
    await asyncio.wait_for(receiver.arrived.wait(), timeout=15)  # first pass after ~1 s
    receiver.assert_in_order_and_complete({"u-1": 1})
    await client.close()  # stops the loop before the pool closes, cleanly
