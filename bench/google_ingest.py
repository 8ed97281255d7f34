"""Google ingest benchmark: RTDN pushes/second end to end (HTTP → Play API read → committed)
with the fake Play API answering after a delay (default 50 ms), beside the same run with no
delay.

The service runs as a separate process (`python -m receiptd serve`) on embedded PostgreSQL
and Redis in a temporary directory; the fake Play API (which also serves the OIDC certs and
the service account's token endpoint) runs in this process. Every push is a signed
SUBSCRIPTION_RENEWED for its own purchase token, so each costs one OIDC verification, one
journal dedupe look-up, one subscriptionsv2.get and one ingest transaction. Bounded: N
requests per run, C at a time, 127.0.0.1 only; it stops by itself.

    .venv/bin/python bench/google_ingest.py [--n 300] [--concurrency 32] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from cpu import cpu_by_role, start_profilers, stop_profilers  # bench/cpu.py (on sys.path)

from simulators.fake_play import FakePlay
from simulators.google_signer import GoogleTestKeys, push_envelope, subscription_notification
from simulators.play_purchases import subscription_purchase

PACKAGE = "com.example.app"
PRODUCT = "premium_monthly"
PUSH_EMAIL = "rtdn-push@receiptd-bench.iam.gserviceaccount.com"
RENEWED = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    tmp: Path, fake: FakePlay, keys: GoogleTestKeys, port: int, workers: int = 1
) -> tuple[Path, str]:
    audience = f"http://127.0.0.1:{port}/webhooks/google"
    service_account = keys.write_service_account_file(tmp / "google", fake.token_uri)
    config = tmp / "receiptd.toml"
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{tmp / "data"}"
{f"workers = {workers}" if workers > 1 else ""}
[google]
package_names = ["{PACKAGE}"]
service_account_file = "{service_account}"
play_api_url = "{fake.base_url}"
pubsub_audience = "{audience}"
pubsub_service_account = "{PUSH_EMAIL}"
pubsub_certs_url = "{fake.certs_url}"
[entitlements.premium]
products = ["{PRODUCT}"]
"""
    )
    return config, audience


async def wait_ready(url: str, proc: asyncio.subprocess.Process, deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError("service exited during start-up")
            try:
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("service did not become ready")


def prepare(fake: FakePlay, label: str, n: int) -> list[dict[str, Any]]:
    """N purchases in the fake and one push envelope per purchase (not timed)."""
    now = datetime.now(UTC)
    bodies = []
    for i in range(n):
        token = f"bench-{label}-{i}"
        fake.set_subscription(
            PACKAGE, token, subscription_purchase("active", now=now, user=f"u-{label}-{i}")
        )
        note = subscription_notification(PACKAGE, token, RENEWED, event_time=now)
        bodies.append(push_envelope(note, f"m-{label}-{i}", publish_time=now))
    return bodies


async def post_all(
    url: str, bodies: list[dict[str, Any]], headers: dict[str, str], concurrency: int
) -> tuple[float, list[float]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(
                    f"{url}/webhooks/google", json=body, headers=headers
                ) as resp:
                    answer = await resp.json()
                    if resp.status != 200 or answer.get("status") != "processed":
                        raise RuntimeError(f"unexpected answer {resp.status} {answer}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed, latencies


def row(label: str, rate: float, latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"| {label:<24} | {rate:>9.1f} | {statistics.median(ms):>8.1f} | {p99:>8.1f} |"


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="rcd-gbench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        keys = GoogleTestKeys.generate()
        fake = FakePlay(keys=keys)
        await fake.start()
        port = free_port()
        config, audience = write_config(tmp, fake, keys, port, args.workers)
        env = {**os.environ, "RECEIPTD_CONFIG": str(config)}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        log = (tmp / "service.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiptd", "serve", env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url, proc)
            headers = {"Authorization": f"Bearer {keys.sign_push_token(audience, PUSH_EMAIL)}"}
            # Warm-up (not timed): access token, OIDC certs, pool connections.
            await post_all(url, prepare(fake, "warm", 64), headers, args.concurrency)
            results = []
            for run_no, delay_ms in enumerate((args.delay_ms, 0.0)):
                fake.delay = delay_ms / 1000
                bodies = prepare(fake, f"d{int(delay_ms)}", args.n)
                # The profilers (when asked) watch the first run only.
                spies = start_profilers(proc.pid, args.py_spy, args.perf) if run_no == 0 else []
                before = cpu_by_role(proc.pid, tmp)
                rate, latencies = await post_all(url, bodies, headers, args.concurrency)
                after = cpu_by_role(proc.pid, tmp)
                stop_profilers(spies)
                cpu = {role: (after[role] - before[role]) / args.n * 1000 for role in after}
                results.append((f"Play API delay {delay_ms:g} ms", rate, latencies, cpu))
        finally:
            proc.terminate()  # SIGTERM: the service stops its embedded servers
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()
            await fake.stop()
    print(f"\nGoogle RTDN ingest, N={args.n} per run, concurrency {args.concurrency}, ")
    print(f"{args.workers} worker(s), load average {os.getloadavg()}")
    print(
        "| run                      | pushes/s  | p50 ms   | p99 ms   "
        "| CPU ms per push: receiptd, PostgreSQL, Redis, client + fake Play |"
    )
    print("|--------------------------|-----------|----------|----------|------|")
    for label, rate, latencies, cpu in results:
        used = ", ".join(f"{cpu[k]:.2f}" for k in ("receiptd", "postgres", "redis", "client"))
        print(f"{row(label, rate, latencies)} {used} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=1, help="receiptd serve --workers N")
    parser.add_argument("--py-spy", type=Path, help="py-spy the service (first run) into this file")
    parser.add_argument("--perf", type=Path, help="perf record the service (first run) into this")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
