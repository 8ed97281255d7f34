"""`receiptd demo init` and `receiptd simulate apple|google …`: the local demo tooling.

`demo init` creates the demo Apple CA and Google keys the demo configuration trusts;
`simulate` sends realistic signed store notifications to a running service so a newcomer
can watch entitlements change. Test material only: never trusted by a real configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_DEMO_DIR = Path(".receiptd/demo")
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_PLAY_PORT = 8091


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `demo init` and `simulate apple|google` on the CLI."""
    from simulators.apple_scenarios import EVENTS as APPLE_EVENTS
    from simulators.simulate_google import EVENTS as GOOGLE_EVENTS

    demo = sub.add_parser("demo", help="demo set-up (test CA and keys for make run)")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    init = demo_sub.add_parser("init", help="create the demo Apple CA and Google keys")
    init.add_argument("--dir", type=Path, default=DEFAULT_DEMO_DIR)
    init.add_argument("--play-port", type=int, default=DEFAULT_PLAY_PORT)
    init.set_defaults(run=_demo_init)

    cmd = sub.add_parser("simulate", help="send simulated store notifications (demo)")
    stores = cmd.add_subparsers(dest="store", required=True)
    apple = stores.add_parser("apple", help="App Store Server Notifications V2")
    apple.add_argument("event", choices=sorted(APPLE_EVENTS))
    apple.add_argument("--environment", default="Sandbox", choices=["Sandbox", "Production"])
    google = stores.add_parser("google", help="Play Real-time Developer Notifications")
    google.add_argument("event", choices=sorted(GOOGLE_EVENTS))
    google.add_argument("--play-port", type=int, default=DEFAULT_PLAY_PORT)
    for store in (apple, google):
        store.add_argument("--user", required=True, help="app_user_id (a UUID for Apple)")
        store.add_argument("--product", required=True)
        store.add_argument("--url", default=DEFAULT_URL, help="the running service")
        store.add_argument("--dir", type=Path, default=DEFAULT_DEMO_DIR, help="demo keys")
    apple.set_defaults(run=_simulate_apple)
    google.set_defaults(run=_simulate_google)


def _demo_init(args: argparse.Namespace) -> int:
    from simulators.apple_ca import TestCA
    from simulators.simulate_google import ensure_demo_files

    TestCA.load_or_create(args.dir / "apple-ca")
    ensure_demo_files(args.dir / "google", args.play_port)
    print(f"demo CA and keys ready in {args.dir}")
    return 0


def _simulate_apple(args: argparse.Namespace) -> int:
    from simulators.apple_scenarios import simulate

    result = asyncio.run(
        simulate(
            args.event,
            args.user,
            args.product,
            args.url,
            args.dir / "apple-ca",
            args.dir / "apple-simulate.json",
            environment=args.environment,
            now=datetime.now(UTC),  # the demo drives a service running in real time
        )
    )
    return _report(result)


def _simulate_google(args: argparse.Namespace) -> int:
    from simulators.simulate_google import DEMO_AUDIENCE, ensure_demo_files, simulate

    ensure_demo_files(args.dir / "google", args.play_port)
    result = asyncio.run(
        simulate(
            args.event,
            args.user,
            args.product,
            args.url,
            args.dir / "google",
            args.play_port,
            args.dir / "google-simulate.json",
            # The demo's push audience names no port (demo/receiptd.toml), so the demo works
            # on whatever port it serves.
            audience=DEMO_AUDIENCE,
            now=datetime.now(UTC),  # the demo drives a service running in real time
        )
    )
    return _report(result)


def _report(result: dict[str, Any]) -> int:
    print(json.dumps(result, indent=2, default=str))
    status = int(result.get("http_status", 0))
    return 0 if 200 <= status < 300 else 1
