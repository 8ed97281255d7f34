"""`receiptd reconcile apple|google`: the command around `services.reconcile`: its arguments,
the configuration it needs, progress on stderr, failed items and the summary on stdout, and
its exit code (0: nothing failed; 1: something failed, the run was interrupted or another
one runs, the database is not reachable; 2: a bad argument or configuration; 130: Ctrl-C)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import datetime, timedelta

from config.settings import Settings
from entitlements.errors import DatabaseUnavailable
from entitlements.model import Store
from entitlements.reconcile import Counts
from receipts.rate_limit import RateLimiter
from server.bootstrap import cache_for_fixes, command
from server.progress import Progress
from server.stores import reconcile_store
from services.reconcile import AlreadyRunning, Options, Outcome, Reconciler, summary_line
from services.store_messages import StoreMessages
from storage.database import DB_DOWN_ERRORS

# Store API requests per second, well inside the stores' quotas, which the serving processes
# share: Apple allows 50 per second per endpoint in Production and a tenth of that in
# Sandbox; Play's default is 3,000 queries per minute per bucket.
DEFAULT_RATE = {"apple": 5.0, "google": 10.0}
# Pages of Play's voided purchases list per second: that API has a quota of its own (6,000
# queries a day, 30 in any 30 seconds); a page holds up to 1,000 voided purchases.
VOIDED_PAGES_PER_SECOND = 0.5
STORES = {"apple": Store.APP_STORE, "google": Store.PLAY_STORE}
_UNREACHABLE: tuple[type[BaseException], ...] = (DatabaseUnavailable, *DB_DOWN_ERRORS)


def add_reconcile(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    moment: Callable[[str], datetime],
) -> None:
    """The `reconcile` subcommand and its options."""
    cmd = sub.add_parser(
        "reconcile",
        help="ask a store what it sent or changed, apply what was missed, and report",
    )
    cmd.add_argument("store", choices=sorted(STORES), help="which store to ask")
    cmd.add_argument("--config", help="TOML file (default: $RECEIPTD_CONFIG)")
    cmd.add_argument(
        "--since",
        type=moment,
        metavar="DATE",
        help="what the store sent or changed from DATE on (2026-11-01, or an RFC 3339 time); "
        "default: a day before the end of the last run without failures, else all the store "
        "keeps (Apple: 180 days, Sandbox 30; Play: 30 days)",
    )
    cmd.add_argument(
        "--stale-after",
        type=_hours,
        default=24.0,
        metavar="HOURS",
        help="re-read held subscriptions whose stored state is older than this (default 24)",
    )
    cmd.add_argument(
        "--rate",
        type=rate_argument,
        metavar="N",
        help="at most N store API requests per second (default: apple 5, google 10)",
    )
    cmd.add_argument(
        "--restart", action="store_true", help="start over instead of resuming an interrupted run"
    )


def reconcile_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `receiptd reconcile` with loaded settings; returns the exit code."""
    problem = _missing_configuration(settings, args.store)
    if problem is not None:
        print(f"receiptd: {problem}", file=sys.stderr)
        return 2
    options = Options(
        since=args.since, stale_after=timedelta(hours=args.stale_after), restart=args.restart
    )
    rate = args.rate or DEFAULT_RATE[args.store]
    try:
        return asyncio.run(_reconcile(settings, args.store, options, rate))
    except KeyboardInterrupt:  # the position of the last item done is saved
        print(
            f"\nreceiptd: reconcile {args.store} interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def _missing_configuration(settings: Settings, name: str) -> str | None:
    if name == "apple":
        if settings.apple is None:
            return "reconcile apple needs an [apple] section"
        if not settings.apple.api_configured:
            return (
                "reconcile apple needs App Store Server API credentials "
                "([apple] issuer_id, key_id and private_key_file)"
            )
    elif settings.google is None:
        return "reconcile google needs a [google] section"
    return None


class _Console:
    """The run's observer: progress on stderr, failed items on stdout, notes on stderr."""

    def __init__(self, name: str, store: Store, bar: Progress) -> None:
        self._name = name
        self._store = store
        self._bar = bar

    def progress(self, counts: Counts, where: str, done: int | None, total: int | None) -> None:
        text = (
            f"reconcile {self._name}: {where}; checked {counts.checked}, missing "
            f"{counts.missing}, corrected {counts.corrected}, failed {counts.failed}"
        )
        self._bar.update(text, done, total)

    def failed(self, label: str, reason: str) -> None:
        self._bar.clear()
        print(f"{self._store.value} {label} failed: {reason}", flush=True)

    def note(self, text: str) -> None:
        self._bar.clear()
        print(f"reconcile {self._name}: {text}", file=sys.stderr, flush=True)


async def _reconcile(settings: Settings, name: str, options: Options, rate: float) -> int:
    store = STORES[name]
    bar = Progress(sys.stderr)
    console = _Console(name, store, bar)
    try:
        # One connection holds the run's lock and position; ingest takes the others.
        async with (
            command(settings, connections=3) as started,
            cache_for_fixes(settings, "corrected") as (cache, cache_note),
            reconcile_store(
                settings,
                store,
                started.pool,
                started.clock,
                started.catalog,
                limiter=RateLimiter(rate),
            ) as source,
        ):
            pages = RateLimiter(VOIDED_PAGES_PER_SECOND)
            reconciler = Reconciler(
                started.pool,
                StoreMessages(started.service(cache), started.clock),
                source,
                started.clock,
                console,
                list_limiter=pages if store is Store.PLAY_STORE else None,
            )
            outcome = await reconciler.run(options)
    except AlreadyRunning:
        bar.close()
        print(f"receiptd: another reconcile {name} is running", file=sys.stderr)
        return 1
    except _UNREACHABLE as exc:
        bar.close()
        print(f"receiptd: the database is not reachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        bar.close()
    return _report(name, outcome, cache_note)


def _report(name: str, outcome: Outcome, cache_note: str) -> int:
    line = summary_line(name, outcome.counts)
    if outcome.counts.corrected and cache_note:
        line += f"; cache: {cache_note}"
    print(line)
    if outcome.interrupted is not None:
        print(
            f"receiptd: reconcile {name} interrupted ({outcome.interrupted}); "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 1
    return 1 if outcome.counts.failed else 0


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}") from None
    if not 0 <= hours < 100_000:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}")
    return hours


def rate_argument(text: str) -> float:
    """`--rate`: requests per second, more than 0 and at most 1000."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}") from None
    if not 0 < rate <= 1000:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1000 per second: {text!r}")
    return rate
