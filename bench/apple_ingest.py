"""Apple ingest benchmark: notifications/second end to end (HTTP → committed) beside the
app-store-server-library's own verify-only rate, measured in the same run.

The service runs as a separate process (`python -m receiptd serve`) on embedded PostgreSQL
and Redis in a temporary directory, trusting a freshly generated test CA. Notifications are
signed before timing starts. Bounded: N requests, C at a time, 127.0.0.1 only.

    .venv/bin/python bench/apple_ingest.py [--n 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier
from cpu import cpu_by_role, start_profilers, stop_profilers  # bench/cpu.py (on sys.path)

from receipts.apple import AppleVerifier
from receipts.apple.chain_cache import CachingChainVerifier
from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario, Lifecycle

BUNDLE_ID = "com.example.app"
PRODUCT = "com.example.premium.monthly"


def make_bodies(ca: TestCA, n: int) -> list[dict[str, str]]:
    now = datetime.now(UTC)
    bodies = []
    for _ in range(n):
        scenario = AppleScenario(ca, Lifecycle(user=str(uuid.uuid4()), product=PRODUCT))
        bodies.append(scenario.body("subscribe", now))
    return bodies


def library_rate(
    ca: TestCA, bodies: list[dict[str, str]], *, chain_cache: bool = False
) -> tuple[float, float]:
    """Notifications/second the library verifies on one thread (nested JWS included) and its
    CPU seconds per notification (this thread's, from the kernel), optionally with our chain
    cache but PyJWT's own decoder."""
    verifier = SignedDataVerifier([ca.root_der], False, Environment.SANDBOX, BUNDLE_ID, 1234567890)
    if chain_cache:
        cache = CachingChainVerifier(verifier._chain_verifier, [ca.root_der])
        verifier._chain_verifier = cache  # type: ignore[assignment]
    started, cpu_started = time.perf_counter(), time.thread_time()
    for body in bodies:
        n = verifier.verify_and_decode_notification(body["signedPayload"])
        assert n.data is not None
        verifier.verify_and_decode_signed_transaction(n.data.signedTransactionInfo or "")
        verifier.verify_and_decode_renewal_info(n.data.signedRenewalInfo or "")
    cpu = (time.thread_time() - cpu_started) / len(bodies)
    return len(bodies) / (time.perf_counter() - started), cpu


def served_rate(ca: TestCA, bodies: list[dict[str, str]]) -> tuple[float, float]:
    """Our verifier as served: chain cache and its own fast decoder (one thread); its rate
    and CPU seconds per notification."""
    verifier = AppleVerifier(BUNDLE_ID, 1234567890, ["Sandbox"], [ca.root_der], False)
    started, cpu_started = time.perf_counter(), time.thread_time()
    for body in bodies:
        verifier.verify_notification_sync(body["signedPayload"])
    cpu = (time.thread_time() - cpu_started) / len(bodies)
    return len(bodies) / (time.perf_counter() - started), cpu


def write_config(tmp: Path, ca_dir: Path, port: int, workers: int = 1) -> Path:
    config = tmp / "receiptd.toml"
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{tmp / "data"}"
{f"workers = {workers}" if workers > 1 else ""}
[apple]
bundle_id = "{BUNDLE_ID}"
app_apple_id = 1234567890
environments = ["Sandbox"]
root_certificates = ["{ca_dir / "root.der"}"]
[entitlements.premium]
products = ["{PRODUCT}"]
"""
    )
    return config


async def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
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


async def post_all(
    url: str, bodies: list[dict[str, str]], concurrency: int
) -> tuple[float, list[float]]:
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(f"{url}/webhooks/apple", json=body) as resp:
                    answer = await resp.json()
                    if resp.status != 200 or answer["status"] != "processed":
                        raise RuntimeError(f"unexpected answer {resp.status} {answer}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--workers", type=int, default=1, help="receiptd serve --workers N")
    parser.add_argument("--py-spy", type=Path, help="py-spy the service into this file")
    parser.add_argument("--perf", type=Path, help="perf record the service into this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rcd-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        ca = TestCA.generate()
        ca.save(tmp / "ca")
        print(f"signing {args.n} notifications (not timed)…", flush=True)
        bodies = make_bodies(ca, args.n)
        warmup, measured = bodies[: min(200, args.n // 10)], bodies
        lib, lib_cpu = library_rate(ca, measured)  # the library as shipped: the baseline
        cached, _ = library_rate(ca, measured, chain_cache=True)
        ours, ours_cpu = served_rate(ca, measured)

        config = write_config(tmp, tmp / "ca", args.port, args.workers)
        env = {**os.environ, "RECEIPTD_CONFIG": str(config)}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiptd", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            asyncio.run(wait_ready(url, proc))
            warm = [
                AppleScenario(ca, Lifecycle(user=str(uuid.uuid4()), product=PRODUCT)).body(
                    "subscribe", datetime.now(UTC)
                )
                for _ in warmup
            ]
            asyncio.run(post_all(url, warm, args.concurrency))
            spy = start_profilers(proc.pid, args.py_spy, args.perf)
            cpu_before = cpu_by_role(proc.pid, tmp)
            rate, latencies = asyncio.run(post_all(url, measured, args.concurrency))
            cpu_used = {
                role: seconds - cpu_before.get(role, 0.0)
                for role, seconds in cpu_by_role(proc.pid, tmp).items()
            }
            stop_profilers(spy)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print()
    print(f"machine: {os.cpu_count()} cores; n={args.n}, concurrency={args.concurrency}, ")
    print(f"{args.workers} worker(s), load average {os.getloadavg()}")
    print(f"{'measure':<52}{'per second':>12}")
    print(f"{'library verify only (3 JWS/notification, 1 thread)':<52}{lib:>12.0f}")
    print(f"{'receiptd verifier, chain cache only (1 thread)':<52}{cached:>12.0f}")
    print(f"{'  + fast base64url check (as served, 1 thread)':<52}{ours:>12.0f}")
    print(f"{'end to end: HTTP → verified → committed':<52}{rate:>12.0f}")
    print(f"ratio end-to-end / library verify-only: {rate / lib:.2f}")
    print(f"ratio cached verifier / library verify-only: {ours / lib:.2f}")
    print(f"end-to-end latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    per = ", ".join(f"{role} {seconds / args.n * 1000:.2f}" for role, seconds in cpu_used.items())
    print(f"CPU ms per notification: {per}")
    receiptd_ms = cpu_used["receiptd"] / args.n * 1000
    print(
        f"CPU ms per notification, same run: receiptd end to end {receiptd_ms:.2f}, "
        f"library verify-only {lib_cpu * 1000:.2f}, receiptd verifier alone {ours_cpu * 1000:.2f}"
    )
    print(f"ratio receiptd CPU / library verify-only CPU: {receiptd_ms / (lib_cpu * 1000):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
