"""Read API benchmark: GET /v1/customers/{id} per second, served from the Redis cache and
with Redis off (every read from PostgreSQL), by one serving process.

The service runs as a separate process (`python -m receiptd serve`) on embedded PostgreSQL
and Redis in a temporary directory. N customers get a promotional grant first (not timed);
then R reads of random customers, C at a time, with an API key. Bounded: R requests per
run, 127.0.0.1 only; it stops by itself.

    .venv/bin/python bench/read_api.py [--customers 2000] [--reads 6000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

KEY = "bench-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, port: int, redis: str) -> Path:
    config = tmp / f"receiptd-{port}.toml"
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{tmp / "data"}"
[redis]
url = "{redis}"
[entitlements.premium]
products = ["com.example.premium.monthly"]
[[auth.api_keys]]
name = "bench"
key = "{KEY}"
scopes = ["admin"]
"""
    )
    return config


def serve(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["RECEIPTD_CONFIG"] = str(config)
    return subprocess.Popen(
        [sys.executable, "-m", "receiptd", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("service exited during start-up")
            try:
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("service did not become ready")


async def seed(url: str, customers: list[str]) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def grant(user: str) -> None:
            path = f"{url}/v1/customers/{user}/entitlements/premium/grants"
            async with session.post(path, json={"duration": "P1M"}) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"grant failed: {resp.status}")

        await asyncio.gather(*(grant(u) for u in customers))


async def read_all(
    url: str, customers: list[str], reads: int, concurrency: int
) -> tuple[float, list[float]]:
    rng = random.Random(7)
    queue = [rng.choice(customers) for _ in range(reads)]
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            while queue:
                user = queue.pop()
                started = time.perf_counter()
                async with session.get(f"{url}/v1/customers/{user}") as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"read failed: {resp.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return reads / elapsed, latencies


def measure(
    tmp: Path, redis: str, customers: list[str], args: argparse.Namespace
) -> tuple[float, float, float]:
    port = free_port()
    proc = serve(write_config(tmp, port, redis))
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_ready(url, proc))
        asyncio.run(read_all(url, customers, min(2000, args.reads), args.concurrency))  # warm
        rate, latencies = asyncio.run(read_all(url, customers, args.reads, args.concurrency))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return rate, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rcd-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        customers = [f"bench-u-{i}" for i in range(args.customers)]
        port = free_port()
        proc = serve(write_config(tmp, port, ""))
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(url, proc))
            print(f"seeding {len(customers)} customers (not timed)…", flush=True)
            asyncio.run(seed(url, customers))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        rows = []
        for label, redis in (
            ("served from the Redis cache (hits)", ""),
            ("Redis off: every read from PostgreSQL", "off"),
        ):
            rows.append((label, *measure(tmp, redis, customers, args)))

    print()
    print(f"machine: {os.cpu_count()} cores; {args.customers} customers, {args.reads} reads, ")
    print(f"concurrency {args.concurrency}; client, service, PostgreSQL and Redis share it")
    print(f"{'GET /v1/customers/{id}':<52}{'reads/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for label, rate, p50, p99 in rows:
        print(f"{label:<52}{rate:>10.0f}{p50:>9.1f}{p99:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
