"""Outbound webhook details the mutation run found untested (services/outbound.py), against a
real receiving aiohttp server on 127.0.0.1, the real app, PostgreSQL and Redis: the exact bytes
and headers of a delivery, every field of `GET /v1/webhooks` through a failure, an attempt in
flight and a success, the log lines, timeouts and refused connections by name, the claim batch,
a pass that waits for every endpoint before it reports a failure, and the background loop's
pacing (right away while there is work, a poll apart when idle or failing)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from api.keys import CLOCK, HTTP, OUTBOUND, POOL
from entitlements.outbox_signature import HEADER
from services.outbound import Endpoint, OutboundDelivery, RetryPolicy, endpoint_key
from tests.conftest import ADMIN_KEY, auth
from tests.e2e.test_outbound_webhooks import (
    INITIAL,
    MAXIMUM,
    NEW,
    TIMEOUT,
    grant,
    metrics,
    webhook_config,
    webhooks,
)
from tests.proxy import TcpProxy


def iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Hook:
    """Answers `status` (or holds each request until `release`), recording raw requests."""

    status: int = 200
    hold: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hold:
            await self.release.wait()
        return web.Response(status=self.status)


@pytest.fixture
async def serve(aiohttp_server):
    """A receiver per name on one local server: `await serve("a", "b")` -> {name: Hook}, url."""
    hooks: dict[str, Hook] = {}
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return await hooks[request.match_info["name"]].handle(request)

    app.router.add_post("/{name}", handle)
    server = await aiohttp_server(app)

    def factory(*names: str) -> tuple[dict[str, Hook], str]:
        hooks.update({n: Hook() for n in names})
        return hooks, str(server.make_url("/"))

    yield factory
    for hook in hooks.values():
        hook.release.set()


async def app_delivering_to(make_client, config, *urls: str, timeout: float = TIMEOUT):
    cfg = webhook_config(config, *urls)
    cfg["webhooks"]["timeout_seconds"] = timeout
    client = await make_client(cfg)
    await client.app[OUTBOUND].stop()
    return client, client.app[OUTBOUND]


async def test_a_delivery_is_the_compact_sorted_event_with_its_headers(
    make_client, config, serve, clock
) -> None:
    hooks, base = serve("a")
    client, delivery = await app_delivering_to(make_client, config, base + "a")
    await grant(client, "u-1", 1)
    assert await delivery.run_once() == 1
    [(headers, body)] = hooks["a"].requests
    event = json.loads(body)
    assert body == json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    assert list(event) == sorted(event)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "receiptd-webhooks"
    assert headers[HEADER].startswith(f"t={int(clock.now.timestamp())},")


async def test_the_endpoint_state_through_a_failure_an_attempt_in_flight_and_a_success(
    make_client, config, serve, clock
) -> None:
    hooks, base = serve("a")
    hook = hooks["a"]
    client, delivery = await app_delivering_to(make_client, config, base + "a", timeout=10)
    registered = clock.now
    await grant(client, "u-1", 1)
    [state] = await webhooks(client)  # not handed yet: pending all the same
    assert {k: state[k] for k in ("pending", "in_flight", "retrying", "last_attempt_at")} == {
        "pending": 1,
        "in_flight": 0,
        "retrying": 0,
        "last_attempt_at": None,
    }
    assert (state["oldest_pending_at"], state["oldest_pending_seconds"]) == (iso(registered), 0)

    hook.status = 500
    clock.advance(seconds=3)
    failed_at = clock.now
    assert await delivery.run_once() == 1
    clock.advance(seconds=1)
    [state] = await webhooks(client)
    retry_at = state["next_retry_at"]
    assert iso(failed_at) < retry_at <= iso(failed_at + RetryPolicy(INITIAL, MAXIMUM).delay(1, 1))
    assert state | {"next_retry_at": None, "cursor": None} == {
        "id": endpoint_key(base + "a"),
        "url": base + "a",
        "signing_key_id": "k2",
        "key_ids": ["k2", "k1"],
        "cursor": None,
        "pending": 1,
        "in_flight": 0,
        "retrying": 1,
        "oldest_pending_at": iso(registered),
        "oldest_pending_seconds": 4.0,
        "next_retry_at": None,
        "last_attempt_at": iso(failed_at),
        "last_success_at": None,
        "last_error": "http 500",
        "last_error_at": iso(failed_at),
    }

    hook.status, hook.hold = 200, True  # the retry is held by the receiver: in flight
    hook.arrived.clear()  # set by the failed attempt: wait for the retry itself
    clock.advance(seconds=MAXIMUM)
    attempt = asyncio.create_task(delivery.run_once())
    await asyncio.wait_for(hook.arrived.wait(), 10)
    [state] = await webhooks(client)
    assert (state["in_flight"], state["retrying"], state["next_retry_at"]) == (1, 1, None)
    hook.release.set()
    assert await attempt == 1
    [state] = await webhooks(client)
    assert (state["pending"], state["in_flight"], state["retrying"]) == (0, 0, 0)
    assert (state["oldest_pending_at"], state["oldest_pending_seconds"]) == (None, 0)
    assert (state["last_attempt_at"], state["last_success_at"]) == (iso(clock.now),) * 2
    assert (state["last_error"], state["last_error_at"]) == ("http 500", iso(failed_at))


async def test_a_hand_deleted_endpoint_row_shows_no_state(
    make_client, config, serve, database_url
) -> None:
    _, base = serve("a")
    client, _ = await app_delivering_to(make_client, config, base + "a")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM webhook_endpoints")
    finally:
        await conn.close()
    [state] = await webhooks(client)
    assert state == {
        "id": endpoint_key(base + "a"),
        "url": base + "a",
        "signing_key_id": "k2",
        "key_ids": ["k2", "k1"],
        "cursor": None,
        "pending": None,
        "in_flight": None,
        "retrying": None,
        "oldest_pending_at": None,
        "oldest_pending_seconds": None,
        "next_retry_at": None,
        "last_attempt_at": None,
        "last_success_at": None,
        "last_error": None,
        "last_error_at": None,
    }


async def test_each_attempt_is_logged_with_its_outcome(make_client, config, serve, clock) -> None:
    hooks, base = serve("a")
    client, delivery = await app_delivering_to(make_client, config, base + "a")
    await grant(client, "u-1", 1)
    feed = await (await client.get("/v1/events", headers=auth(ADMIN_KEY))).json()
    [event] = feed["events"]
    hooks["a"].status = 503
    failed_at = clock.now
    with capture_logs() as logs:
        await delivery.run_once()
        clock.advance(seconds=MAXIMUM)
        hooks["a"].status = 204  # any 2xx delivers
        await delivery.run_once()
    attempts = [e for e in logs if e["event"].startswith("webhook_deliver")]
    [failed, delivered] = attempts
    feed_id = failed["feed_id"]
    assert isinstance(feed_id, int)
    key = endpoint_key(base + "a")
    retry_at = datetime.fromisoformat(failed["next_attempt_at"])
    assert (
        failed_at + timedelta(seconds=INITIAL / 2)
        <= retry_at
        <= failed_at + timedelta(seconds=INITIAL)
    )
    assert {k: v for k, v in failed.items() if k != "next_attempt_at"} == {
        "event": "webhook_delivery_failed",
        "log_level": "warning",
        "error": "http 503",
        "endpoint": key,
        "event_id": event["id"],
        "feed_id": feed_id,
        "attempt": 1,
    }
    assert delivered == {
        "event": "webhook_delivered",
        "log_level": "info",
        "status": 204,
        "endpoint": key,
        "event_id": event["id"],
        "feed_id": feed_id,
        "attempt": 2,
    }


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_timeouts_and_refused_connections_are_named(
    make_client, config, serve, clock
) -> None:
    hooks, base = serve("slow")
    hooks["slow"].hold = True
    refused = f"http://127.0.0.1:{closed_port()}/hook"
    client, delivery = await app_delivering_to(make_client, config, base + "slow", refused)
    await grant(client, "u-1", 1)
    started = time.monotonic()
    assert await delivery.run_once() == 2
    assert time.monotonic() - started < 5  # the endpoint's timeout, not the session's (10 s)
    states = {s["id"]: s for s in await webhooks(client)}
    slow, gone = endpoint_key(base + "slow"), endpoint_key(refused)
    assert states[slow]["last_error"] == "timeout"
    assert states[gone]["last_error"] == "connection: ClientConnectorError"
    m = await metrics(client)
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{slow}",result="timeout"}}'] == 1
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{gone}",result="connection_error"}}'] == 1


@pytest.mark.parametrize("status", [300, 304])
async def test_only_a_2xx_delivers(make_client, config, serve, status) -> None:
    hooks, base = serve("a")
    hooks["a"].status = status
    client, delivery = await app_delivering_to(make_client, config, base + "a")
    await grant(client, "u-1", 1)
    assert await delivery.run_once() == 1
    [state] = await webhooks(client)
    assert (state["pending"], state["last_error"]) == (1, f"http {status}")


# --- OutboundDelivery driven directly, on the app's pool, HTTP session and clock ------------


class Counting:
    """DeliveryMetrics that counts the passes (one `observed` each) and can fail one endpoint's."""

    def __init__(self, failing: str | None = None) -> None:
        self.passes: list[float] = []
        self.failing = failing
        self.failed = asyncio.Event()
        self.pass_done = asyncio.Event()

    def attempted(self, endpoint: str, result: str) -> None:
        return None

    def observed(self, endpoint: str, pending: int, oldest_pending_seconds: float) -> None:
        self.passes.append(time.monotonic())
        self.pass_done.set()
        if endpoint == self.failing:
            self.failed.set()
            raise RuntimeError(f"metrics of {endpoint} are broken")


async def direct(client, urls: list[str], metrics: Counting, **kw: Any) -> OutboundDelivery:
    app = client.app
    delivery = OutboundDelivery(
        app[POOL],
        app[HTTP],
        app[CLOCK],
        [Endpoint.configure(u, [NEW]) for u in urls],
        RetryPolicy(INITIAL, MAXIMUM),
        timeout_seconds=kw.pop("timeout_seconds", 5.0),
        metrics=metrics,
        jitter=lambda: 1.0,
        **kw,
    )
    await delivery.register()
    return delivery


async def test_a_pass_claims_at_most_its_batch(make_client, config, serve) -> None:
    hooks, base = serve("a")
    client = await make_client(config)
    delivery = await direct(client, [base + "a"], Counting(), batch=2)
    for n in range(5):
        await grant(client, f"u-{n}", 1)
    assert [await delivery.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert len(hooks["a"].requests) == 5


async def test_a_pass_reports_a_failure_only_once_every_endpoint_has_finished(
    make_client, config, serve
) -> None:
    hooks, base = serve("broken", "held")
    hooks["held"].hold = True
    client = await make_client(config)
    counting = Counting(failing=endpoint_key(base + "broken"))
    delivery = await direct(client, [base + "broken", base + "held"], counting)
    await grant(client, "u-1", 1)
    task = asyncio.create_task(delivery.run_once())
    await asyncio.wait_for(counting.failed.wait(), 10)  # the first endpoint's pass failed
    await asyncio.wait_for(hooks["held"].arrived.wait(), 10)
    for _ in range(50):  # every callback the failure could set off has run
        await asyncio.sleep(0)
    assert not task.done()  # still waiting for the held endpoint
    hooks["held"].release.set()
    with pytest.raises(RuntimeError, match="broken"):
        await task
    assert len(counting.passes) == 2  # the held endpoint's pass ended too


POLL = 0.2


async def test_the_loop_runs_again_at_once_while_there_is_work(make_client, config, serve) -> None:
    hooks, base = serve("a")
    client = await make_client(config)
    delivery = await direct(client, [base + "a"], Counting(), poll_seconds=1.0)
    for day in (1, 2, 3):  # one customer: one event per pass, in order
        await grant(client, "u-1", day)
    delivery.start()
    try:
        await asyncio.wait_for(hooks["a"].arrived.wait(), 15)  # after the first poll
        started = time.monotonic()
        while len(hooks["a"].requests) < 3:
            assert time.monotonic() - started < 0.75, "the loop waited a poll between passes"
            await asyncio.sleep(0.01)
    finally:
        await delivery.stop()
    sequences = [json.loads(body)["sequence"] for _, body in hooks["a"].requests]
    assert sequences == [1, 2, 3]


async def passes_apart(counting: Counting, delivery: OutboundDelivery, n: int) -> float:
    """Run the loop until it made `n` passes; the shortest time between two of them."""
    delivery.start()
    try:
        deadline = time.monotonic() + 30
        while len(counting.passes) < n:
            assert time.monotonic() < deadline, "the loop stopped making passes"
            counting.pass_done.clear()
            await asyncio.wait_for(counting.pass_done.wait(), 30)
    finally:
        await delivery.stop()
    times = counting.passes[:n]
    return min(b - a for a, b in itertools.pairwise(times))


async def test_an_idle_loop_waits_a_poll_between_passes(make_client, config, serve) -> None:
    hooks, base = serve("a")
    client = await make_client(config)
    counting = Counting()
    delivery = await direct(client, [base + "a"], counting, poll_seconds=POLL)
    assert await passes_apart(counting, delivery, 4) >= POLL * 0.9
    assert hooks["a"].requests == []


async def test_a_failing_loop_waits_a_poll_between_passes_and_says_why(
    make_client, config, serve
) -> None:
    _, base = serve("a")
    client = await make_client(config)
    key = endpoint_key(base + "a")
    counting = Counting(failing=key)
    delivery = await direct(client, [base + "a"], counting, poll_seconds=POLL)
    with capture_logs() as logs:
        assert await passes_apart(counting, delivery, 4) >= POLL * 0.9
    failures = [e for e in logs if e["event"] == "webhook_pass_failed"]
    assert len(failures) >= 3
    assert {(e["endpoint"], e["log_level"]) for e in failures} == {(key, "error")}


async def test_an_outcome_that_cannot_be_recorded_is_retried_once_its_lease_lapses(
    make_client, config, serve, database_url, clock
) -> None:
    """The receiver answers 500 while PostgreSQL is unreachable: the pass still ends (the
    failure is not written), and the event goes out again when the attempt's lease lapses."""
    proxy = TcpProxy.for_postgres(database_url)
    await proxy.start()
    hooks, base = serve("a")
    try:
        config["database"]["url"] = proxy.postgres_url(config["database"]["url"])
        client = await make_client(config)
        await grant(client, "u-1", 1)
        delivery = OutboundDelivery(  # no metrics: nothing else in the pass needs PostgreSQL
            client.app[POOL],
            client.app[HTTP],
            client.app[CLOCK],
            [Endpoint.configure(base + "a", [NEW])],
            RetryPolicy(INITIAL, MAXIMUM),
            timeout_seconds=5.0,
        )
        await delivery.register()
        await grant(client, "u-1", 2)
        hook = hooks["a"]
        original = hook.handle

        async def down_then_fail(request: web.Request) -> web.Response:
            await proxy.down()
            hook.status = 500
            return await original(request)

        hook.handle = down_then_fail  # type: ignore[method-assign]
        assert await delivery.run_once() == 1
        await proxy.up()
        hook.handle, hook.status = original, 200  # type: ignore[method-assign]
        assert await delivery.run_once() == 0  # its lease still holds
        clock.advance(seconds=5.0 + 61)
        assert await delivery.run_once() == 1
        sequences = [json.loads(body)["sequence"] for _, body in hook.requests]
        assert sequences == [2, 2]
    finally:
        await proxy.down()
