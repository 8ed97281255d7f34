"""Where receiptd's CPU goes per request, by component: a py-spy raw profile (`--py-spy` of
bench/apple_ingest.py or bench/google_ingest.py) summed into one row per component.

Each stack goes to the first component (in the order of `COMPONENTS`) one of its frames
matches, so a `json.loads` inside JWS decoding is JWS decoding and one inside a repository is
JSON. Shares are of the samples; with `--cpu-ms` (the run's measured receiptd CPU per
request) they become µs per request. py-spy samples the thread holding the GIL: a thread
descheduled while holding it (a loaded machine) still counts, a syscall that releases it
(`send`, `epoll_wait`) does not, so the table is a split of the measured total, not a
measurement of each part.

    .venv/bin/python bench/profile_table.py /tmp/apple.txt --cpu-ms 5.1
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

# (component, substrings: a frame containing any of them belongs to it). A stack goes to the
# first of `WHOLE` one of its frames matches (wherever it is: JSON decoding inside JWS
# verification is verification), else to the innermost frame that matches a component of
# `INNERMOST` (a repository's `json.dumps` is JSON, its `conn.execute` asyncpg), else to
# the innermost of `LOOP` (the event loop's and aiohttp's own work, around everything).
Rules = list[tuple[str, tuple[str, ...]]]
WHOLE: Rules = [
    (
        "executor hop (thread pool)",
        ("run_in_executor", "Future.set_result", "_chain_future", "call_soon_threadsafe"),
    ),
    ("JWS: ECDSA signature check", ("ECAlgorithm.verify ", "_verify_signature ", "verify_es256")),
    ("JWS: public key load", ("ECAlgorithm.prepare_key", "load_pem_public_key")),
    ("JWS: chain check (cache)", ("chain_cache.py",)),
    ("JWS: library models (cattrs)", ("cattrs", "LibraryUtility", "appstoreserverlibrary/models")),
    ("JWS: base64url + JSON decoding", ("fast_jws.py", "jwt/", "signed_payload_of", "verifier.py")),
    ("JWS: library verifier steps", ("signed_data_verifier.py",)),
    ("Play: OIDC push token check", ("push_auth.py", "google/auth", "google/oauth2")),
    ("Play: API client", ("receipts/google/play.py", "aiohttp/client")),
    ("logging (structlog, canonical line)", ("structlog/", "logging/__init__", "config/logging")),
]
INNERMOST: Rules = [
    ("Redis (cache invalidation)", ("redis/", "(cache/")),
    ("asyncpg (client, protocol, pool)", ("asyncpg/",)),
    ("JSON (json, orjson)", ("json/", "orjson")),
    ("storage: statement arguments", ("(storage/",)),
    ("domain fold (entitlements)", ("(entitlements/",)),
    ("store translation", ("(receipts/",)),
    ("use case (services)", ("(services/",)),
    ("metrics + request middleware", ("api/middleware.py", "prometheus", "api/metrics")),
    ("webhook handler", ("(api/",)),
]
LOOP: Rules = [
    ("aiohttp server (parse, route, respond)", ("aiohttp/", "multidict", "yarl/")),
    ("asyncio loop + sockets", ("asyncio/", "selectors.py", "runpy", "server/")),
]


def table(path: Path) -> tuple[collections.Counter[str], int]:
    """Samples per component and in all, from a py-spy raw (collapsed) profile."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")[1:]  # the first names the process
        counts[_component(frames)] += samples
    return counts, total


def _component(frames: list[str]) -> str:
    for name, needles in WHOLE:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    if frames and ("concurrent/futures" in frames[-1] or "threading.py" in frames[-1]):
        return "executor hop (thread pool)"  # a worker thread's own work
    for rules in (INNERMOST, LOOP):
        for frame in reversed(frames):
            for name, needles in rules:
                if any(needle in frame for needle in needles):
                    return name
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--cpu-ms", type=float, help="measured receiptd CPU ms per request")
    args = parser.parse_args()
    counts, total = table(args.profile)
    print(f"| component | share | {'µs per request |' if args.cpu_ms else ''}")
    print(f"|---|---|{'---|' if args.cpu_ms else ''}")
    for name, samples in counts.most_common():
        share = samples / total
        us = f" {share * args.cpu_ms * 1000:.0f} |" if args.cpu_ms else ""
        print(f"| {name} | {share:.1%} |{us}")
    print(f"({total} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
