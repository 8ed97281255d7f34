"""Replay benchmark: journal entries re-derived per second by `receiptd replay` with --jobs 1
and with --jobs N, measured in the same run on the same database (issue 24 point 5).

Seeds a fresh embedded PostgreSQL through the real service (`python -m receiptd serve`, a test
CA it trusts): U Apple subscriptions, each a lifecycle of E signed notifications (subscribe,
renewals, a cancel and its undo), posted in rounds so each user's events keep their order.
Then runs `python -m receiptd replay` as an operator would (a process of its own, the service
idle beside it so the embedded database stays up), wall clock from start to exit, start-up
included. Bounded: 127.0.0.1 only, a temporary directory.

    .venv/bin/python bench/replay.py [--users 2000] [--events 5] [--jobs 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apple_ingest import PRODUCT, post_all, wait_ready, write_config  # bench/ is on sys.path

from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario, Lifecycle

LIFECYCLE = ("subscribe", "renew", "cancel", "uncancel", "renew", "renew", "renew", "renew")
SUMMARY = re.compile(r"replay: (\d+) purchases checked, .*\((\d+) journal entries re-derived\)")


def rounds(ca: TestCA, users: int, events: int) -> list[list[dict[str, str]]]:
    """Signed bodies, one round per lifecycle step (every user's step k before any k+1)."""
    start = datetime.now(UTC) - timedelta(hours=events + 1)
    scenarios = [
        AppleScenario(ca, Lifecycle(user=str(uuid.uuid4()), product=PRODUCT)) for _ in range(users)
    ]
    return [
        [s.body(LIFECYCLE[k % len(LIFECYCLE)], start + timedelta(hours=k)) for s in scenarios]
        for k in range(events)
    ]


def replay(
    config: Path, jobs: int, *extra: str, profile: Path | None = None
) -> tuple[float, int, int, str]:
    """One `receiptd replay --jobs N`: (seconds, purchases, entries, its summary line); under
    py-spy (its workers included, collapsed stacks in `profile`) when given."""
    env = {**os.environ, "RECEIPTD_CONFIG": str(config)}
    argv = [sys.executable, "-m", "receiptd", "replay", "--jobs", str(jobs), *extra]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        argv = [str(spy), "record", "--subprocesses", "--format", "raw", "-o", str(profile), "--"]
        argv += [sys.executable, "-m", "receiptd", "replay", "--jobs", str(jobs), *extra]
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    # The summary line (py-spy adds lines of its own after it).
    lines = [line for line in done.stdout.splitlines() if SUMMARY.match(line)]
    match = SUMMARY.match(lines[-1]) if lines else None
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"replay --jobs {jobs} failed ({done.returncode}): {done.stderr}")
    return seconds, int(match.group(1)), int(match.group(2)), lines[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5, help="notifications per user")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument(
        "--profile", type=Path, help="also run each under py-spy: collapsed stacks in DIR"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rcd-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        ca = TestCA.generate()
        ca.save(tmp / "ca")
        print(f"signing {args.users * args.events} notifications (not timed)…", flush=True)
        bodies = rounds(ca, args.users, args.events)
        config = write_config(tmp, tmp / "ca", args.port)
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
        results: dict[int, tuple[float, int, int, str]] = {}
        overhead: dict[int, float] = {}
        try:
            asyncio.run(wait_ready(url, proc))
            seeded = time.perf_counter()
            for batch in bodies:
                asyncio.run(post_all(url, batch, args.concurrency))
            print(f"seeded in {time.perf_counter() - seeded:.0f} s through the service", flush=True)
            # Start-up alone (imports, pool, schema check, workers spawned): nothing selected.
            later = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
            for jobs in (1, args.jobs):
                overhead[jobs] = min(replay(config, jobs, "--since", later)[0] for _ in range(2))
            for _ in range(args.repeat):
                for jobs in (1, args.jobs):
                    run = replay(config, jobs)
                    print(f"  --jobs {jobs}: {run[0]:.1f} s; {run[3]}", flush=True)
                    if jobs not in results or run[0] < results[jobs][0]:
                        results[jobs] = run
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                for jobs in (1, args.jobs):
                    out = args.profile / f"replay-jobs{jobs}.txt"
                    replay(config, jobs, profile=out)
                    print(f"  profile of --jobs {jobs}: {out}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print()
    print(f"machine: {os.cpu_count()} cores; {args.users} purchases x {args.events} entries")
    one, many = results[1], results[args.jobs]
    if one[3] != many[3]:
        print(f"different summaries!\n  {one[3]}\n  {many[3]}")
    for jobs, (seconds, purchases, entries, _line) in sorted(results.items()):
        print(
            f"--jobs {jobs}: {entries} entries, {purchases} purchases in {seconds:.1f} s: "
            f"{entries / seconds:,.0f} entries/s; start-up {overhead[jobs]:.1f} s, without it "
            f"{entries / max(seconds - overhead[jobs], 0.001):,.0f} entries/s"
        )
    print(f"ratio --jobs {args.jobs} / --jobs 1: {one[0] / many[0]:.2f} (wall clock), ")
    net = (one[0] - overhead[1]) / max(many[0] - overhead[args.jobs], 0.001)
    print(f"  {net:.2f} without start-up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
