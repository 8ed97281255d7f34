"""Scale harness (issue 24 point 1): what a read, a webhook, a feed page, an export, an
erasure, a console page, a replay and a prune cost at ten million customers and twenty
million journal entries, each beside the same measure at 1,000 customers, in one run.

Not part of `make test`. Everything runs here: embedded PostgreSQL and Redis under
`--data-dir` (default: a temporary directory on /tmp's disk; the large database needs
~25 GB), a fake Play API and a test CA the service trusts, `python -m receiptd serve` and
its commands as processes of their own. Per database (`scale_small`, `scale_large`):

1. the service ingests a few real customers over HTTP (Apple: subscribe and renew, signed
   by the test CA; Google: purchase and renewal pushes with the fake Play API's answers);
2. bench/scale_seed.py clones those customers' rows through COPY up to `--small` or
   `--customers` customers (two journal entries and two change-feed events each), the
   newest `--payload-window` journal entries with raw payloads at real size, the older
   ones pruned as retention leaves them, ages spread over a year; plus one customer with
   10,000 change-feed events;
3. the measures, printed side by side with the ratio large / small.

    .venv/bin/python bench/scale.py [--customers 10000000] [--small 1000] [--seconds 10]
        [--data-dir DIR] [--only reads,ingest,feed,export,console,replay,prune]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aredis
from apple_ingest import PRODUCT as APPLE_PRODUCT  # bench/ is on sys.path
from apple_ingest import post_all as apple_post_all
from google_ingest import PACKAGE, PUSH_EMAIL
from google_ingest import PRODUCT as GOOGLE_PRODUCT
from google_ingest import post_all as google_post_all
from read import KEY, PREFIX, free_port, python_load, with_database
from scale_seed import Plan, seed, templates

from server.embedded import EmbeddedPostgres, EmbeddedRedis
from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario, Lifecycle
from simulators.fake_play import FakePlay
from simulators.google_signer import GoogleTestKeys, push_envelope, subscription_notification
from simulators.play_purchases import subscription_purchase
from storage.feed import encode_cursor
from storage.migrations import migrate

BUNDLE_ID = "com.example.app"
PURCHASED, RENEWED = 4, 2
BIG = "scale-big-customer"
MEASURES = ("reads", "ingest", "feed", "export", "console", "replay", "prune")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class World:
    """What the measures share: the servers, the stores' fakes and signers."""

    tmp: Path
    server_url: str
    redis_url: str
    ca: TestCA
    keys: GoogleTestKeys
    fake: FakePlay
    args: argparse.Namespace


@dataclass
class Service:
    url: str
    config: Path
    process: asyncio.subprocess.Process
    audience: str

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def write_config(world: World, db_url: str, port: int, **overrides: str) -> Path:
    service_account = world.keys.write_service_account_file(
        world.tmp / "google", world.fake.token_uri
    )
    audience = f"http://127.0.0.1:{port}/webhooks/google"
    redis_lines = f'url = "{overrides.get("redis", world.redis_url)}"\n'
    if overrides.get("local_cache") == "false":
        redis_lines += "local_cache = false\n"
    config = world.tmp / f"receiptd-{port}.toml"
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{world.tmp / "data"}"
[database]
url = "{db_url}"
[redis]
{redis_lines}
[retention]
raw_payload_days = {overrides.get("raw_payload_days", "90")}
[apple]
bundle_id = "{BUNDLE_ID}"
app_apple_id = 1234567890
environments = ["Sandbox"]
root_certificates = ["{world.tmp / "ca" / "root.der"}"]
[google]
package_names = ["{PACKAGE}"]
service_account_file = "{service_account}"
play_api_url = "{world.fake.base_url}"
pubsub_audience = "{audience}"
pubsub_service_account = "{PUSH_EMAIL}"
pubsub_certs_url = "{world.fake.certs_url}"
[entitlements.premium]
products = ["{APPLE_PRODUCT}", "{GOOGLE_PRODUCT}"]
[[auth.api_keys]]
name = "bench"
key = "{KEY}"
scopes = ["admin"]
"""
    )
    return config


def service_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["RECEIPTD_CONFIG"] = str(config)
    return env


async def start_service(world: World, db_url: str, **overrides: str) -> Service:
    port = free_port()
    config = write_config(world, db_url, port, **overrides)
    log = (world.tmp / f"service-{port}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiptd", "serve", env=service_env(config), stdout=log, stderr=log
    )
    service = Service(
        f"http://127.0.0.1:{port}", config, process, f"http://127.0.0.1:{port}/webhooks/google"
    )
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the service exited at start-up: see {log.name}")
            try:
                async with session.get(f"{service.url}/readyz") as resp:
                    if resp.status == 200:
                        return service
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the service did not become ready")


# --- the stores' messages ---------------------------------------------------------------


def apple_bodies(world: World, n: int, events: tuple[str, ...], now: datetime) -> list[list[dict]]:
    """Per event, one signed body per new customer (rounds keep each customer's order)."""
    scenarios = [
        AppleScenario(world.ca, Lifecycle(user=str(uuid.uuid4()), product=APPLE_PRODUCT))
        for _ in range(n)
    ]
    start = now - timedelta(hours=len(events))
    return [
        [s.body(e, start + timedelta(hours=i)) for s in scenarios] for i, e in enumerate(events)
    ]


def google_bodies(world: World, label: str, n: int, kinds: tuple[int, ...]) -> list[list[dict]]:
    """Per push kind, one envelope per new purchase token; the fake's answer for round r is
    set by `google_round(r)` before its pushes go (a renewal: a later expiry, a new order)."""
    now = datetime.now(UTC)
    rounds: list[list[dict]] = [[] for _ in kinds]
    for i in range(n):
        token = f"scale-{label}-{i}"
        for r, kind in enumerate(kinds):
            note = subscription_notification(PACKAGE, token, kind, event_time=now)
            rounds[r].append(push_envelope(note, f"m-{label}-{i}-{r}", publish_time=now))
    return rounds


def google_round(world: World, label: str, n: int, r: int) -> None:
    """The fake Play API's answer for round r of `google_bodies(label)`'s purchases."""
    now = datetime.now(UTC)
    for i in range(n):
        purchase = subscription_purchase(
            "active",
            now=now + timedelta(days=30 * r),
            start=now - timedelta(days=1),
            order_id=f"GPA.3300-{i:04d}-{r:04d}-{abs(hash(label)) % 100000:05d}"
            + (f"..{r - 1}" if r else ""),
            user=f"g-{label}-{i}",
        )
        world.fake.set_subscription(PACKAGE, f"scale-{label}-{i}", purchase)


def google_headers(world: World, service: Service) -> dict[str, str]:
    token = world.keys.sign_push_token(service.audience, PUSH_EMAIL)
    return {"Authorization": f"Bearer {token}"}


def p99(latencies: list[float]) -> float:
    ms = sorted(x * 1000 for x in latencies)
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))]


async def ingest_core(world: World, service: Service, label: str, n: int) -> list[str]:
    """n Apple and n Google customers, two store messages each, through HTTP; their ids."""
    for body_round in apple_bodies(world, n, ("subscribe", "renew"), datetime.now(UTC)):
        await apple_post_all(service.url, body_round, 16)
    headers = google_headers(world, service)
    for r, body_round in enumerate(google_bodies(world, f"core-{label}", n, (PURCHASED, RENEWED))):
        google_round(world, f"core-{label}", n, r)
        await google_post_all(service.url, body_round, headers, 16)
    conn = await asyncpg.connect(service_db(service))
    try:
        rows = await conn.fetch("SELECT app_user_id FROM customers ORDER BY created_at")
    finally:
        await conn.close()
    return [r["app_user_id"] for r in rows]


def service_db(service: Service) -> str:
    for line in service.config.read_text().splitlines():
        if line.startswith("url = ") and "postgres" in line:
            return line.split('"')[1]
    raise RuntimeError("no database url")


async def add_big_customer(db_url: str, template_user: str, events: int) -> str:
    """A new customer with `events` change-feed events (a copy of the template's first);
    its id."""
    big = f"{BIG}-{int(time.time())}"
    conn = await asyncpg.connect(db_url, command_timeout=None)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO customers (app_user_id, created_at, updated_at, event_sequence,
                                       snapshot)
                SELECT $1, created_at, updated_at, $3, snapshot FROM customers
                WHERE app_user_id = $2
                """,
                big,
                template_user,
                events,
            )
            await conn.execute(
                """
                INSERT INTO customer_events (event_id, app_user_id, sequence, type, created_at,
                                             entitlements)
                SELECT gen_random_uuid(), $1, g, e.type, e.created_at - (g * interval '1 hour'),
                       e.entitlements
                FROM customer_events e, generate_series(1, $3::int) g
                WHERE e.app_user_id = $2 AND e.sequence = 1
                """,
                big,
                template_user,
                events,
            )
        await conn.execute("ANALYZE customer_events")
    finally:
        await conn.close()
    return big


# --- the measures ------------------------------------------------------------------------

Figures = dict[str, float]


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> float:
    """The median of n calls, ms."""
    took = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


async def get_ok(session: aiohttp.ClientSession, url: str, **kw: Any) -> bytes:
    async with session.get(url, **kw) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {url}: {resp.status} {body[:200]!r}")
        return body


async def measure_reads(world: World, db_url: str, customers: int) -> Figures:
    out: Figures = {}
    hot = min(1000, customers)
    cases = (
        (f"read hit p99 ms (1,000 hot customers, {world.args.rate:g} req/s)", {}, hot),
        ("read Redis p99 ms (worker cache off)", {"local_cache": "false"}, hot),
        ("read PostgreSQL p99 ms (no cache, any customer)", {"redis": "off"}, customers),
    )
    flusher = aredis.Redis.from_url(world.redis_url)
    try:
        for label, overrides, population in cases:
            await flusher.flushall()
            service = await start_service(world, db_url, **overrides)
            try:
                if population == hot:
                    await python_load(service, "closed", hot, 3)  # type: ignore[arg-type]
                result = await python_load(
                    service,  # type: ignore[arg-type]
                    "fixed",
                    population,
                    world.args.seconds,
                    world.args.rate,
                )
                out[label] = result["p99_ms"]
            finally:
                await service.stop()
    finally:
        await flusher.aclose()
    return out


async def measure_ingest(world: World, service: Service, label: str) -> Figures:
    n = world.args.ingest
    [bodies] = apple_bodies(world, n, ("subscribe",), datetime.now(UTC))
    rate, latencies = await apple_post_all(service.url, bodies, 16)
    out = {"Apple ingest /s": rate, "Apple ingest p99 ms": p99(latencies)}
    stamp = f"bench-{label}-{int(time.time())}"
    [pushes] = google_bodies(world, stamp, n, (RENEWED,))
    google_round(world, stamp, n, 0)
    rate, latencies = await google_post_all(service.url, pushes, google_headers(world, service), 16)
    out |= {"Google ingest /s": rate, "Google ingest p99 ms": p99(latencies)}
    return out


async def measure_feed(service: Service, db_url: str) -> Figures:
    conn = await asyncpg.connect(db_url)
    try:
        last = await conn.fetchval("SELECT max(id) FROM customer_events")
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {KEY}"}
    end = encode_cursor(max(0, last - 100))
    async with aiohttp.ClientSession(headers=headers) as session:
        start_ms = await timed(20, lambda: get_ok(session, f"{service.url}/v1/events?limit=100"))
        end_ms = await timed(
            20, lambda: get_ok(session, f"{service.url}/v1/events?limit=100&after={end}")
        )
    return {"feed page at the start ms": start_ms, "feed page at the end ms": end_ms}


async def measure_export(service: Service, db_url: str, template_user: str) -> Figures:
    big = await add_big_customer(db_url, template_user, 10_000)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        started = time.perf_counter()
        body = await get_ok(session, f"{service.url}/v1/customers/{big}/export")
        export_ms = (time.perf_counter() - started) * 1000
        events = len(json.loads(body).get("events", []))
        started = time.perf_counter()
        async with session.delete(f"{service.url}/v1/customers/{big}") as resp:
            assert resp.status == 200, (resp.status, await resp.text())
        erase_ms = (time.perf_counter() - started) * 1000
    if events != 10_000:
        print(f"  (the export held {events} events)")
    return {"export, 10,000 events ms": export_ms, "erasure, 10,000 events ms": erase_ms}


async def console_session(service: Service) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    page = (await get_ok(session, f"{service.url}/console/sign-in")).decode()
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    async with session.post(
        f"{service.url}/console/sign-in",
        data={"csrf": csrf, "api_key": KEY, "next": "/console/customers"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, (resp.status, await resp.text())
    return session


async def measure_console(service: Service, customer: str) -> Figures:
    session = await console_session(service)
    pages = {
        "console customer page ms": f"/console/customers/{customer}",
        "console journal page ms": "/console/journal",
        "console journal, filtered by type ms": "/console/journal?type=DID_RENEW",
        "console business page ms": "/console/business",
    }
    try:
        return {
            label: await timed(5, lambda p=path: get_ok(session, f"{service.url}{p}"))
            for label, path in pages.items()
        }
    finally:
        await session.close()


def _interruptible() -> None:
    """SIGINT as at a terminal (a shell's background job would inherit it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def run_command(
    service: Service, *argv: str, limit_s: float | None = None, config: Path | None = None
) -> float:
    """Seconds `receiptd <argv>` took (interrupted with SIGINT after limit_s)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiptd",
        *argv,
        env=service_env(config or service.config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a command typed at a terminal
        preexec_fn=_interruptible,
    )
    try:
        await asyncio.wait_for(process.wait(), limit_s)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the command and its workers
        await process.wait()
    return time.perf_counter() - started


async def measure_replay(world: World, service: Service, db_url: str, customer: str) -> Figures:
    customer_s = await run_command(service, "replay", "--customer", customer)
    limit = world.args.replay_seconds
    seconds = await run_command(service, "replay", "--jobs", "2", "--restart", limit_s=limit)
    conn = await asyncpg.connect(db_url)
    try:
        run_id = await conn.fetchval("SELECT max(id) FROM replay_runs")
        rows = await conn.fetch("SELECT counts FROM replay_parts WHERE run_id = $1", run_id)
        await conn.execute("UPDATE replay_runs SET status = 'abandoned' WHERE status = 'running'")
    finally:
        await conn.close()
    counts = [json.loads(r["counts"]) for r in rows]
    checked = sum(c.get("checked", 0) for c in counts)
    return {
        "replay --customer s (start-up included)": customer_s,
        "full replay --jobs 2 purchases checked/s": checked / seconds,
    }


async def payloads(db_url: str) -> int:
    """How many journal entries keep their raw payload."""
    conn = await asyncpg.connect(db_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM store_notifications WHERE payload IS NOT NULL"
            )
        )
    finally:
        await conn.close()


async def measure_prune(world: World, db_url: str) -> Figures:
    """Apple ingest at a fixed 50/s for --seconds, alone and then while `receiptd prune`
    drops every payload older than a day (the service keeps the default retention: its own
    periodic prune would otherwise run during the measure without the command)."""
    service = await start_service(world, db_url)
    prune_config = write_config(world, db_url, free_port(), raw_payload_days="1")
    try:

        async def ingest_at_rate() -> list[float]:
            n = int(50 * world.args.seconds)
            [bodies] = apple_bodies(world, n, ("subscribe",), datetime.now(UTC))
            latencies: list[float] = []
            async with aiohttp.ClientSession() as session:

                async def one(body: dict, due: float) -> None:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    started = time.perf_counter()
                    async with session.post(f"{service.url}/webhooks/apple", json=body) as resp:
                        assert resp.status == 200, resp.status
                    latencies.append(time.perf_counter() - started)

                t0 = time.perf_counter()
                await asyncio.gather(*(one(b, t0 + i / 50) for i, b in enumerate(bodies)))
            return latencies

        before = await payloads(db_url)
        alone = await ingest_at_rate()
        prune = asyncio.ensure_future(run_command(service, "prune", config=prune_config))
        during = await ingest_at_rate()
        prune_s = await prune
        after = await payloads(db_url)
    finally:
        await service.stop()
    pruned = before - after + int(50 * world.args.seconds) * 2  # the new ones keep theirs
    return {
        "ingest p99 ms at 50/s, no prune": p99(alone),
        "ingest p99 ms at 50/s, during prune": p99(during),
        "payloads pruned": float(max(pruned, before - after)),
        "prune s": prune_s,
    }


async def seeded(world: World, name: str, db_url: str, customers: int) -> list[str]:
    """Database `name` created, migrated, a few real customers ingested over HTTP, cloned up
    to `customers`; the real customers' ids (kept in table scale_harness)."""
    say = world.args.say
    conn = await asyncpg.connect(world.server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    conn = await asyncpg.connect(db_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    service = await start_service(world, db_url)
    try:
        core = await ingest_core(world, service, name, world.args.core)
    finally:
        await service.stop()
    conn = await asyncpg.connect(db_url)
    try:
        layout, found = await templates(conn, core)
    finally:
        await conn.close()
    plan = Plan(
        customers=customers - len(core),
        payload_window=world.args.payload_window,
        now=datetime.now(UTC),
        prefix=PREFIX,
    )
    started = time.perf_counter()
    timings = await seed(db_url, found, layout, plan, say=say)
    took = {k: round(v) for k, v in timings.items()}
    say(f"{name}: seeded {customers:,} customers in {time.perf_counter() - started:.0f} s {took}")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE TABLE scale_harness (core text[] NOT NULL)")
        await conn.execute("INSERT INTO scale_harness VALUES ($1)", core)
    finally:
        await conn.close()
    return core


async def database(world: World, name: str, customers: int) -> Figures:
    """Seed database `name` to `customers` and run the measures on it."""
    say = world.args.say
    db_url = with_database(world.server_url, name)
    figures: Figures = {}
    core = None
    conn = await asyncpg.connect(world.server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    if exists:
        conn = await asyncpg.connect(db_url)
        try:
            if await conn.fetchval("SELECT to_regclass('scale_harness') IS NOT NULL"):
                core = await conn.fetchval("SELECT core FROM scale_harness")
        finally:
            await conn.close()
    if core is None or not world.args.reuse:
        core = await seeded(world, name, db_url, customers)
    else:
        say(f"{name}: reusing the seeded database")
    conn = await asyncpg.connect(db_url)
    try:
        sizes = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
            "ORDER BY pg_total_relation_size(oid) DESC LIMIT 8"
        )
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        counts = {
            t: await conn.fetchval(f"SELECT reltuples::bigint FROM pg_class WHERE relname = '{t}'")
            for t in ("customers", "purchases", "store_notifications", "customer_events")
        }
    finally:
        await conn.close()
    say(
        f"{name}: {total / 1e9:.1f} GB; "
        + ", ".join(f"{r['relname']} {r['bytes'] / 1e9:.2f} GB" for r in sizes)
        + f"; rows {counts}"
    )
    figures["database GB"] = total / 1e9
    only = world.args.only
    if "reads" in only:
        figures |= await measure_reads(world, db_url, customers - len(core))
        say(f"{name}: reads done {load_average()}")
    service = await start_service(world, db_url)
    try:
        if "ingest" in only:
            figures |= await measure_ingest(world, service, name)
        if "feed" in only:
            figures |= await measure_feed(service, db_url)
        if "console" in only:
            figures |= await measure_console(service, core[0])
        if "export" in only:
            figures |= await measure_export(service, db_url, core[0])
        if "replay" in only:
            figures |= await measure_replay(world, service, db_url, core[0])
        say(f"{name}: measures done {load_average()}")
    finally:
        await service.stop()
    if "prune" in only:
        figures |= await measure_prune(world, db_url)
    return figures


async def run(args: argparse.Namespace) -> None:
    base = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="rcd-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(base / "data")
    server_url = await pg.start()
    redis_server = EmbeddedRedis(base / "data")
    redis_url = await redis_server.start()
    ca = TestCA.generate()
    ca.save(base / "ca")
    keys = GoogleTestKeys.generate()
    fake = FakePlay(keys=keys)
    await fake.start()
    world = World(base, server_url, redis_url, ca, keys, fake, args)
    results: dict[str, Figures] = {}
    try:
        for name, customers in (("scale_small", args.small), ("scale_large", args.customers)):
            results[name] = await database(world, name, customers)
            print(json.dumps({name: results[name]}), flush=True)
    finally:
        await fake.stop()
        await redis_server.stop()
        await pg.stop()
    small, large = results["scale_small"], results["scale_large"]
    print()
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    print(f"machine: {os.cpu_count()} cores; load average {load_average()}; {today}")
    print(f"| measure | {args.small:,} customers | {args.customers:,} customers | ratio |")
    print("|---|---:|---:|---:|")
    for key in small:
        a, b = small[key], large.get(key, float("nan"))
        print(f"| {key} | {a:,.1f} | {b:,.1f} | {b / a if a else float('nan'):.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--core", type=int, default=20, help="real customers per store")
    parser.add_argument("--payload-window", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=1000, help="reads per second")
    parser.add_argument("--ingest", type=int, default=500)
    parser.add_argument("--replay-seconds", type=float, default=60)
    parser.add_argument("--data-dir")
    parser.add_argument("--only", default=",".join(MEASURES), help="none: seed only")
    parser.add_argument(
        "--reuse", action="store_true", help="measure databases seeded by an earlier run"
    )
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    args.say = lambda text: print(text, flush=True)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
