"""`receiptd extend`: the command around `services.mass_extend`: its arguments, the stores it
needs (built as `serve` builds them, their requests spaced by a rate limiter), progress on
stderr, refused and failed items and the report on stdout, and its exit code (0: finished,
nothing failed; 1: something failed, the run was interrupted or another one runs, the
database is not reachable; 2: a bad argument or configuration, or other arguments than the
interrupted run's; 130: Ctrl-C)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from config.settings import Settings
from entitlements.errors import DatabaseUnavailable
from entitlements.model import Store
from receipts.rate_limit import RateLimiter
from server.bootstrap import cache_for_fixes, command
from server.progress import Progress
from server.reconcile_command import DEFAULT_RATE, rate_argument
from server.stores import extend_stores
from services.mass_extend import (
    AlreadyRunning,
    CannotStart,
    Counts,
    MassExtender,
    Options,
    Outcome,
    summary_line,
)
from services.store_messages import StoreMessages
from services.support_actions import PLAY_MAX_DAYS, REASONS
from storage.database import DB_DOWN_ERRORS

DEFAULT_WAIT_MINUTES = 60.0  # how long a run follows Apple's mass extensions
_UNREACHABLE: tuple[type[BaseException], ...] = (DatabaseUnavailable, *DB_DOWN_ERRORS)


def add_extend(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `extend` subcommand and its options."""
    cmd = sub.add_parser(
        "extend",
        help="extend every renewing subscription after an outage (Apple's mass extension, "
        "a Play deferral each) and report",
    )
    cmd.add_argument("--config", help="TOML file (default: $RECEIPTD_CONFIG)")
    cmd.add_argument(
        "--days",
        type=_days,
        required=True,
        metavar="N",
        help="days to extend by (Apple: 1 to 90; Play: 1 to 365)",
    )
    cmd.add_argument("--reason", choices=REASONS, required=True, help="the reason told to Apple")
    cmd.add_argument("--product", metavar="P", help="only the subscriptions of this product")
    cmd.add_argument(
        "--rate",
        type=rate_argument,
        metavar="N",
        help="at most N store API requests per second, each store (default: apple 5, google 10)",
    )
    cmd.add_argument(
        "--wait",
        type=_minutes,
        default=DEFAULT_WAIT_MINUTES,
        metavar="MINUTES",
        help="follow Apple's mass extensions until complete, at most this long; the same "
        "command again follows them further (default 60)",
    )
    cmd.add_argument(
        "--restart",
        action="store_true",
        help="abandon an interrupted run and start a new one (asks every store again)",
    )


def extend_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `receiptd extend` with loaded settings; returns the exit code."""
    apple = settings.apple is not None and settings.apple.api_configured
    if not apple and settings.google is None:
        print(
            "receiptd: extend needs a store configured for actions: [apple] with App Store "
            "Server API credentials (issuer_id, key_id and private_key_file), or [google]",
            file=sys.stderr,
        )
        return 2
    if settings.apple is not None and not apple:
        print(
            "extend: [apple] has no App Store Server API credentials: its subscriptions are "
            "not extended",
            file=sys.stderr,
        )
    options = Options(
        days=args.days,
        reason=args.reason,
        product=args.product,
        restart=args.restart,
        wait=timedelta(minutes=args.wait),
    )
    try:
        return asyncio.run(_extend(settings, options, args.rate))
    except KeyboardInterrupt:  # what each item got to is saved
        print(
            "\nreceiptd: extend interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


class _Console:
    """The run's observer: progress on stderr, refused and failed items on stdout, notes on
    stderr."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar

    def progress(self, counts: Counts, where: str, done: int | None, total: int | None) -> None:
        text = (
            f"extend: {where}; requested {counts.requested}, confirmed {counts.confirmed}, "
            f"refused {counts.refused}, failed {counts.failed}"
        )
        self._bar.update(text, done, total)

    def answered(self, store: Store, label: str, status: str, detail: str) -> None:
        self._bar.clear()
        print(f"{store.value} {label} {status}: {detail}", flush=True)

    def note(self, text: str) -> None:
        self._bar.clear()
        print(f"extend: {text}", file=sys.stderr, flush=True)


async def _extend(settings: Settings, options: Options, rate: float | None) -> int:
    bar = Progress(sys.stderr)
    try:
        # One connection holds the run's lock and items; the re-reads' ingest takes others.
        async with (
            command(settings, connections=3) as started,
            cache_for_fixes(settings, "extended") as (cache, cache_note),
            extend_stores(
                settings,
                started.pool,
                started.clock,
                started.catalog,
                apple_limiter=RateLimiter(rate or DEFAULT_RATE["apple"]),
                google_limiter=RateLimiter(rate or DEFAULT_RATE["google"]),
            ) as stores,
        ):
            extender = MassExtender(
                started.pool,
                StoreMessages(started.service(cache), started.clock),
                started.clock,
                _Console(bar),
                apple=stores.apple,
                play=stores.play,
                play_reads=stores.play_reads,
            )
            outcome = await extender.run(options)
    except AlreadyRunning:
        bar.close()
        print("receiptd: another extend is running", file=sys.stderr)
        return 1
    except CannotStart as exc:
        bar.close()
        print(f"receiptd: {exc}", file=sys.stderr)
        return 2
    except _UNREACHABLE as exc:
        bar.close()
        print(f"receiptd: the database is not reachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        bar.close()
    return _report(outcome, cache_note)


def _report(outcome: Outcome, cache_note: str) -> int:
    for store, counts in outcome.counts.items():
        line = summary_line(
            store,
            counts,
            apple_extended=outcome.apple_extended,
            apple_not_extended=outcome.apple_not_extended,
        )
        if store is Store.PLAY_STORE and counts.confirmed and cache_note:
            line += f"; cache: {cache_note}"
        print(line)
    if outcome.interrupted is not None:
        print(
            f"receiptd: extend interrupted ({outcome.interrupted}); run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 1
    return 1 if outcome.failed else 0


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= PLAY_MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"a whole number of days from 1 to {PLAY_MAX_DAYS} (Apple: at most 90): {text!r}"
        )
    return days


def _minutes(text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not 0 <= minutes <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"minutes from 0 to a week: {text!r}")
    return minutes
