"""Read benchmark (issue 11): GET /v1/customers/{id} of receiptd against a bare aiohttp handler
returning the same bytes with the same key check, in one run on one machine.

Everything runs here as separate processes: embedded PostgreSQL and Redis (temporary
directory), `receiptd serve` (one or two workers), the bare handler (bench/bare_handler.py),
and the load generators (bench/load.py: `wrk -t1 -c32` at saturation when wrk is
installed, the Python open-loop generator at a fixed 1,000 req/s). Client, service and
databases share the cores: on 2 cores these are floors, and the load average is printed
beside every figure.

Customers are seeded with COPY (not through the API): `--small` (1,000) and `--large`
(1,000,000) customers, each with one running promotional grant, in two databases.

- hit: the customer's rendered answer is in the worker's cache (warmed first);
- Redis: `redis.local_cache = false`, answers warm in Redis: every read is one MGET and an
  orjson decode (the miss path of the worker's cache when Redis has the answer);
- miss: `redis.url = "off"`, so there is no cache at all: every read is the PostgreSQL path
  (one round trip), at 1k and at 1M customers.

    .venv/bin/python bench/read.py [--seconds 10] [--large 1000000] [--scenarios a,b,…]
    BENCH_SOURCE=/path/to/other/checkout … serves that checkout's receiptd (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import redis.asyncio as aredis
from cpu import cpu_by_role  # bench/cpu.py and bench/load.py (this folder is on sys.path)
from load import run_wrk, wrk_available

from server.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.migrations import migrate

KEY = "bench-reader-key-0123456789abcdef"
PREFIX = "bench-u-"
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def seed(server_url: str, name: str, customers: int) -> float:
    """A migrated database `name` with `customers` customers and one grant each; seconds."""
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    conn = await asyncpg.connect(with_database(server_url, name))
    try:
        await migrate(conn)
        started = time.perf_counter()
        now = datetime.now(UTC)
        ids = [f"{PREFIX}{i}" for i in range(customers)]
        await conn.copy_records_to_table(
            "customers", records=((i,) for i in ids), columns=["app_user_id"]
        )
        grants = ((i, "premium", now - timedelta(days=1), now + timedelta(days=30)) for i in ids)
        await conn.copy_records_to_table(
            "grants",
            records=grants,
            columns=["app_user_id", "entitlement", "starts_at", "expires_at"],
        )
        seeded = time.perf_counter() - started
        # Settle before measuring: no autovacuum or checkpoint of the fresh rows meanwhile.
        await conn.execute("VACUUM ANALYZE customers")
        await conn.execute("VACUUM ANALYZE grants")
        await conn.execute("CHECKPOINT")
        return seeded
    finally:
        await conn.close()


@dataclass
class Target:
    url: str
    process: asyncio.subprocess.Process

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    def rss_mb(self) -> list[float]:
        """Resident memory of the serving processes (the workers, not a supervising parent)."""
        pids = [self.process.pid]
        children = _children(self.process.pid)
        if children:
            pids = children
        return [round(_rss_kb(pid) / 1024, 1) for pid in pids]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def start_receiptd(
    tmp: Path, db_url: str, redis_url: str, workers: int, local: bool = True
) -> Target:
    port = free_port()
    config = tmp / f"receiptd-{port}.toml"
    workers_line = f"workers = {workers}\n" if workers > 1 else ""
    config.write_text(
        f'[server]\nport = {port}\n{workers_line}data_dir = "{tmp / "data"}"\n'
        f'[database]\nurl = "{db_url}"\n[redis]\nurl = "{redis_url}"\n'
        + ("" if local else "local_cache = false\n")
        + '[entitlements.premium]\nproducts = ["com.example.premium.monthly"]\n'
        + f'[[auth.api_keys]]\nname = "bench"\nkey = "{KEY}"\nscopes = ["admin"]\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["RECEIPTD_CONFIG"] = str(config)
    source = env.pop("BENCH_SOURCE", None)  # another checkout's receiptd (before/after)
    if source:
        env["PYTHONPATH"] = source
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiptd",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=source or None,  # `-m receiptd` imports from the working directory first
    )
    target = Target(f"http://127.0.0.1:{port}", process)
    await wait_ready(target)
    return target


async def start_bare(tmp: Path, body: bytes) -> Target:
    port = free_port()
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "bare_handler.py"), str(port), KEY, str(body_file)
    )
    target = Target(f"http://127.0.0.1:{port}", process)
    await wait_ready(target)
    return target


async def wait_ready(target: Target) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if target.process.returncode is not None:
                raise RuntimeError("the server exited at start-up")
            try:
                async with session.get(f"{target.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become ready")


async def fetch(target: Target, customer: str) -> bytes:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{target.url}/v1/customers/{customer}", headers=headers) as resp,
    ):
        assert resp.status == 200, resp.status
        return await resp.read()


async def python_load(
    target: Target, mode: str, customers: int, seconds: float, rate: float = 1000
) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "load.py"),
        mode,
        target.url,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--customers",
        str(customers),
        "--prefix",
        PREFIX,
        "--key",
        KEY,
        "--connections",
        "64" if mode == "fixed" else "32",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    result: dict[str, float] = json.loads(out)
    return result


async def saturation(target: Target, customers: int, seconds: int) -> dict[str, float]:
    if wrk_available():
        return await asyncio.to_thread(
            run_wrk, target.url, key=KEY, prefix=PREFIX, customers=customers, seconds=seconds
        )
    return await python_load(target, "closed", customers, seconds)


Row = dict[str, object]


async def measure(
    label: str, target: Target, customers: int, args: argparse.Namespace, *, fixed: bool = True
) -> Row:
    row: Row = {"label": label}
    row["load_before"] = load_average()
    before = cpu_by_role(target.process.pid, args.data_dir)
    row["saturation"] = await saturation(target, customers, args.seconds)
    after = cpu_by_role(target.process.pid, args.data_dir)
    served = row["saturation"]["rate"] * args.seconds
    row["cpu_us_per_request"] = {
        role: round((after[role] - before[role]) / served * 1e6, 1)
        for role in ("receiptd", "postgres", "redis")
    }
    if fixed:
        row["fixed"] = await python_load(target, "fixed", customers, args.seconds, args.rate)
    row["load_after"] = load_average()
    row["rss_mb"] = target.rss_mb()
    print(json.dumps(row), flush=True)
    return row


async def reads_while_writing(target: Target, args: argparse.Namespace) -> Row:
    """Fixed-rate reads while grants are written (each invalidates its customer: Redis
    generation, pub/sub, the worker's cache) at `--write-rate` per second."""
    headers = {"Authorization": f"Bearer {KEY}"}
    written = 0
    stop = asyncio.Event()

    async def writer(session: aiohttp.ClientSession) -> None:
        nonlocal written
        i = 0
        while not stop.is_set():
            user = f"{PREFIX}{(i * 7919) % args.small}"
            path = f"{target.url}/v1/customers/{user}/entitlements/premium/grants"
            async with session.post(path, json={"duration": "P1D"}, headers=headers) as resp:
                assert resp.status == 201, resp.status
            written += 1
            i += 1
            await asyncio.sleep(1 / args.write_rate)

    row: Row = {"label": f"receiptd 1 worker, hit, 1k, + {args.write_rate:g} writes/s"}
    row["load_before"] = load_average()
    async with aiohttp.ClientSession() as session:
        task = asyncio.ensure_future(writer(session))
        started = time.perf_counter()
        row["fixed"] = await python_load(target, "fixed", args.small, args.seconds, args.rate)
        stop.set()
        await task
        row["writes_per_s"] = written / (time.perf_counter() - started)
    row["saturation"] = {"rate": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    row["load_after"] = load_average()
    row["rss_mb"] = target.rss_mb()
    print(json.dumps(row), flush=True)
    return row


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    scenarios = set(args.scenarios.split(","))
    with tempfile.TemporaryDirectory(prefix="rcd-bread-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        args.data_dir = tmp  # whose PostgreSQL and Redis cpu_by_role counts
        pg = EmbeddedPostgres(tmp / "data")
        server_url = await pg.start()
        redis_server = EmbeddedRedis(tmp / "data")
        redis_url = await redis_server.start()
        flusher = aredis.Redis.from_url(redis_url)
        try:
            small_s = await seed(server_url, "bench_small", args.small)
            print(f"seeded {args.small} customers in {small_s:.1f} s (COPY)", flush=True)
            large = "large-hit" in scenarios or "large-miss" in scenarios
            if large:
                large_s = await seed(server_url, "bench_large", args.large)
                print(f"seeded {args.large} customers in {large_s:.1f} s (COPY)", flush=True)
            small_url = with_database(server_url, "bench_small")
            large_url = with_database(server_url, "bench_large")

            async def receiptd(db: str, cache: str, workers: int = 1, local: bool = True) -> Target:
                await flusher.flushall()
                return await start_receiptd(tmp, db, cache, workers, local)

            target = await receiptd(small_url, redis_url)
            body = await fetch(target, f"{PREFIX}0")
            try:
                if "hit" in scenarios:
                    await python_load(target, "closed", args.small, 3)  # warm every customer
                    rows.append(
                        await measure("receiptd 1 worker, hit, 1k", target, args.small, args)
                    )
            finally:
                await target.stop()
            if "bare" in scenarios:
                bare = await start_bare(tmp, body)
                try:
                    rows.append(await measure("bare aiohttp handler", bare, args.small, args))
                finally:
                    await bare.stop()
            # name: (label, database, Redis URL, workers, worker cache, customers, warm-up)
            cases = {
                "redis": ("receiptd 1 worker, Redis, 1k", small_url, redis_url, 1, False, 0, 3),
                "miss": ("receiptd 1 worker, miss, 1k", small_url, "off", 1, True, 0, 0),
                "large-miss": ("receiptd 1 worker, miss, 1M", large_url, "off", 1, True, 1, 0),
                "large-hit": ("receiptd 1 worker, hit, 1M", large_url, redis_url, 1, True, 0, 3),
                "writes": ("", small_url, redis_url, 1, True, 0, 3),
                "workers": ("receiptd 2 workers, hit, 1k", small_url, redis_url, 2, True, 0, 3),
            }
            for name, (label, db, cache, workers, local, large, warm) in cases.items():
                if name not in scenarios:
                    continue
                target = await receiptd(db, cache, workers, local)
                try:
                    if warm:  # every answer rendered and cached once (a hot 1k of the 1M)
                        await python_load(target, "closed", args.small, warm)
                    if name == "writes":
                        rows.append(await reads_while_writing(target, args))
                    else:
                        customers = args.large if large else args.small
                        rows.append(await measure(label, target, customers, args))
                finally:
                    await target.stop()
        finally:
            await flusher.aclose()
            await redis_server.stop()
            await pg.stop()
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> None:
    by = {str(r["label"]): r for r in rows}
    tool = "wrk -t1 -c32" if wrk_available() else "Python closed loop, 32 connections"
    print()
    print(f"machine: {os.cpu_count()} cores, shared by load generator, servers and databases")
    print(f"saturation: {tool}, {args.seconds} s; fixed: {args.rate:.0f} req/s offered, open loop")
    print(
        f"{'':34}{'sat req/s':>10}{'p50':>7}{'p99':>7}  {'@fixed req/s':>12}{'p50':>7}{'p99':>7}"
        f"  {'RSS MB':>12}  {'CPU µs/req (service, PG, Redis)':>32}  load (1/5/15 min)"
    )
    for label, row in by.items():
        sat, fixed = row["saturation"], row.get("fixed") or {}
        assert isinstance(sat, dict)
        assert isinstance(fixed, dict)
        rss = ",".join(str(m) for m in row["rss_mb"])  # type: ignore[attr-defined]
        cpu = row.get("cpu_us_per_request") or {}
        assert isinstance(cpu, dict)
        cpu_text = (
            " / ".join(f"{cpu[k]:g}" for k in ("receiptd", "postgres", "redis")) if cpu else "—"
        )
        print(
            f"{label:34}{sat['rate']:>10.0f}{sat['p50_ms']:>7.2f}{sat['p99_ms']:>7.2f}  "
            f"{fixed.get('rate', 0):>12.0f}{fixed.get('p50_ms', 0):>7.2f}"
            f"{fixed.get('p99_ms', 0):>7.2f}  {rss:>12}  {cpu_text:>32}  {row['load_before']}"
        )

    def ratio(a: str, b: str) -> str:
        if a not in by or b not in by:
            return "n/a"
        ra = by[a]["saturation"]["rate"]  # type: ignore[index]
        rb = by[b]["saturation"]["rate"]  # type: ignore[index]
        return f"{ra / rb:.2f}x"

    hit1, hit2 = "receiptd 1 worker, hit, 1k", "receiptd 2 workers, hit, 1k"
    redis1 = "receiptd 1 worker, Redis, 1k"
    miss1k, miss1m = "receiptd 1 worker, miss, 1k", "receiptd 1 worker, miss, 1M"
    bare = "bare aiohttp handler"
    print(f"hit / bare: {ratio(hit1, bare)} (target >= 0.7)")
    print(f"miss served by Redis / bare: {ratio(redis1, bare)} (target >= 0.35)")
    print(f"miss served by PostgreSQL / bare: {ratio(miss1k, bare)} (target >= 0.35)")
    print(f"req/s 1k / 1M, miss (= cost 1M / 1k): {ratio(miss1k, miss1m)} (target <= 1.2)")
    print(f"2 workers / 1 worker, hit: {ratio(hit2, hit1)} (target >= 1.6)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--write-rate", type=float, default=50)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--scenarios", default="hit,bare,redis,miss,large-miss,writes,workers")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    report(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
