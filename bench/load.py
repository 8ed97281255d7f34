"""Load generators for bench/read.py, each run as its own process (never in the service's).

- saturation: `wrk` (C, one thread, keep-alive connections, a Lua script picking a random
  customer per request) when installed; else the Python closed loop below;
- fixed rate: an open-loop Python generator (raw asyncio streams, HTTP/1.1 keep-alive):
  request i is due at start + i / rate whatever the earlier ones did, and its latency is
  measured from that due time, so a stalled server is not hidden by a waiting client
  (no coordinated omission). wrk2 would do the same; plain wrk cannot.

    python bench/load.py fixed|closed URL --rate R --seconds S --customers N --key K
prints one JSON line: {"rate": achieved req/s, "p50_ms", "p99_ms", "errors", "n"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

WRK_SCRIPT = """
math.randomseed(%(seed)d)
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  return wrk.format("GET", "/v1/customers/%(prefix)s" .. math.random(0, %(last)d))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, *, key: str, prefix: str, customers: int, seconds: int, connections: int = 32
) -> dict[str, float]:
    """Saturation with wrk -t1 -c<connections>: req/s, p50 and p99 in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"seed": 7, "key": key, "prefix": prefix, "last": customers - 1})
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        Path(script.name).unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": rate,
        "p50_ms": _wrk_ms(out, "50%"),
        "p99_ms": _wrk_ms(out, "99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _wrk_ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"^\s+{pct}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match:
        await reader.readexactly(int(match.group(1)))
    return status


async def generate(
    url: str,
    *,
    mode: str,
    rate: float,
    seconds: float,
    customers: int,
    prefix: str,
    key: str,
    connections: int,
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(7)
    template = (
        f"GET /v1/customers/{prefix}%d HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    )
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                if mode == "fixed":
                    due = await queue.get()
                    if due is None:
                        return
                else:
                    due = time.perf_counter()
                    if due > deadline:
                        return
                writer.write((template % rng.randrange(customers)).encode())
                if await _response(reader) != 200:
                    errors += 1
                latencies.append(time.perf_counter() - due)
        finally:
            writer.close()

    tasks = [asyncio.ensure_future(connection()) for _ in range(connections)]
    started = time.perf_counter()
    if mode == "fixed":
        total = int(rate * seconds)
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(due)
        for _ in tasks:
            queue.put_nowait(None)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {
        "rate": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[max(0, int(n * 0.99) - 1)] * 1000 if n else 0.0,
        "errors": float(errors),
        "n": float(n),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["fixed", "closed"])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--prefix", default="bench-u-")
    parser.add_argument("--key", required=True)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    result = asyncio.run(
        generate(
            args.url,
            mode=args.mode,
            rate=args.rate,
            seconds=args.seconds,
            customers=args.customers,
            prefix=args.prefix,
            key=args.key,
            connections=args.connections,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
