"""The `receiptd` command: serve, migrate, prune, replay, reconcile, extend, simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from cache.answers import CustomerCache, NoCache
from config.logging import configure_logging
from config.settings import ConfigError, Settings, load_settings
from entitlements.errors import DatabaseUnavailable
from entitlements.replay import Finding
from server.bootstrap import cache_for_fixes, command
from server.embedded import database_url
from server.extend_command import add_extend, extend_command
from server.failures import CONNECT_ERRORS, StartupFailure, unreachable
from server.progress import Progress
from server.reconcile_command import add_reconcile, reconcile_command
from server.tls import warn_unverified
from services.retention import cutoff_for, prune
from storage.database import DB_DOWN_ERRORS
from storage.migrations import SchemaMismatch, migrate
from storage.replay import Selection

# The database is not there (refused, timed out, shut down): a message, not a traceback.
UNREACHABLE: tuple[type[BaseException], ...] = (DatabaseUnavailable, *DB_DOWN_ERRORS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m receiptd`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("serve", "migrate", "prune", "replay", "reconcile", "extend"):  # config
        if args.command in ("replay", "reconcile", "extend"):  # the report is stdout
            configure_logging(json=not sys.stderr.isatty(), level="WARNING", stream=sys.stderr)
        else:
            configure_logging(json=not sys.stdout.isatty() or args.json_logs)
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            print(f"receiptd: {exc}", file=sys.stderr)
            return 2
        try:
            return _run(settings, args)
        except (SchemaMismatch, StartupFailure) as exc:
            print(f"receiptd: {exc}", file=sys.stderr)
            return 1
    return int(args.run(args))


def _run(settings: Settings, args: argparse.Namespace) -> int:
    """One of the commands that read the configuration."""
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "prune":
        return asyncio.run(_prune(settings))
    if args.command == "replay":
        selection = Selection(since=args.since, customer=args.customer)
        if args.jobs > 1:
            from server.replay_jobs import replay_jobs

            return replay_jobs(
                settings, selection, fix=args.fix, jobs=args.jobs, restart=args.restart
            )
        if args.restart:
            print("receiptd: --restart goes with --jobs N (N > 1)", file=sys.stderr)
            return 2
        return asyncio.run(_replay(settings, selection, fix=args.fix))
    if args.command == "reconcile":
        return reconcile_command(settings, args)
    if args.command == "extend":
        return extend_command(settings, args)
    return asyncio.run(_migrate(settings))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receiptd", description=__doc__)
    parser.add_argument("--json-logs", action="store_true", help="JSON logs even on a terminal")
    sub = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("serve", "run the HTTP service (migrates first unless database.migrate_on_start = false)"),
        ("migrate", "apply database migrations (as database.migration_url) and exit"),
        ("prune", "delete raw store payloads older than retention.raw_payload_days"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="TOML file (default: $RECEIPTD_CONFIG)")
        if name == "serve":
            cmd.add_argument(
                "--workers",
                type=_positive,
                help="processes serving the port (SO_REUSEPORT); default server.workers",
                metavar="N",
            )
            # Set by the parent of `--workers N` on each child: bind with SO_REUSEPORT.
            cmd.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    replay = sub.add_parser(
        "replay",
        help="re-derive purchases from the journal and report where the stored state differs",
    )
    replay.add_argument("--config", help="TOML file (default: $RECEIPTD_CONFIG)")
    replay.add_argument(
        "--since",
        type=_moment,
        help="only purchases a journal entry received at or after DATE touched "
        "(2026-11-01, or an RFC 3339 time; a date is midnight UTC)",
        metavar="DATE",
    )
    replay.add_argument("--customer", help="only this customer's purchases", metavar="ID")
    replay.add_argument(
        "--fix", action="store_true", help="write the re-derived state and its change events"
    )
    replay.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="check the purchases in N processes (default 1); an interrupted run resumes",
    )
    replay.add_argument(
        "--restart",
        action="store_true",
        help="with --jobs: start over instead of resuming an interrupted run",
    )
    add_reconcile(sub, moment=_moment)
    add_extend(sub)
    _add_simulate(sub)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64: {text!r}")
    return value


def _moment(text: str) -> datetime:
    """A --since value: an ISO 8601 date (midnight UTC) or a time with its offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r}") from None
    if moment.tzinfo is None:
        if len(text) > 10:
            raise argparse.ArgumentTypeError(f"give the time's UTC offset: {text!r}")
        moment = moment.replace(tzinfo=UTC)
    return moment


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The demo commands (`demo init`, `simulate`), when the demo kit is installed."""
    from server import simulate

    try:
        simulate.add_commands(sub)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "simulators":
            raise
        # An install without the demo kit: serve and migrate still work.


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from server.app import create_app

    workers = args.workers or settings.server.workers
    if args.worker_index is None and workers > 1:
        from server.workers import supervise

        if settings.server.port == 0:
            print("receiptd: server.workers > 1 needs a fixed server.port (not 0)", file=sys.stderr)
            return 2
        child_args = ["--json-logs"] if args.json_logs else []
        child_args += ["serve", "--workers", "1"]
        if args.config:
            child_args += ["--config", args.config]
        return asyncio.run(supervise(settings, workers, child_args))
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout,
        access_log=None,
        print=lambda *_: None,
        handle_signals=True,
        reuse_port=args.worker_index is not None or None,
    )
    return 0


async def _migrate(settings: Settings) -> int:
    warn_unverified(settings, migration=True, redis=False)
    # The migration role when one is configured (it may create tables), else the runtime URL.
    configured = (
        settings.database.migration_url.get_secret_value()
        or settings.database.url.get_secret_value()
    )
    async with database_url(configured, settings.server.data_dir) as url:
        try:
            conn = await asyncpg.connect(url)
        except CONNECT_ERRORS as exc:
            raise unreachable("the database", url, exc) from None
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
    print(f"applied {len(applied)} migration(s): {applied}" if applied else "schema up to date")
    return 0


async def _prune(settings: Settings) -> int:
    days = settings.retention.raw_payload_days
    now = datetime.now(UTC)
    cutoff = cutoff_for(now, days)
    bar = Progress(sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.update(f"pruned {done} of {total} raw payloads", done, total)

    try:
        async with command(settings) as started:
            # wait: a replica's periodic pass holds the lock only while it prunes
            pruned = await prune(started.pool, now, days, progress=progress, wait=True)
    except UNREACHABLE as exc:
        print(f"receiptd: the database is not reachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        bar.close()
    before = cutoff.isoformat(timespec="seconds").replace("+00:00", "Z")
    print(f"pruned {pruned or 0} raw payloads older than {days} days (before {before})")
    return 0


async def _replay(settings: Settings, selection: Selection, *, fix: bool) -> int:
    from server.stores import replay_stores
    from services.replay import Replayer, describe, summary_line

    bar = Progress(sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.update(f"replayed {done} of {total} purchases", done, total)

    def report(finding: Finding, outcome: str) -> None:
        bar.clear()
        print(describe(finding, outcome), flush=True)

    try:
        async with command(settings) as started:
            pool, catalog, clock = started.pool, started.catalog, started.clock
            no_cache: tuple[CustomerCache, str] = (NoCache(), "")
            caching = cache_for_fixes(settings) if fix else contextlib.nullcontext(no_cache)
            async with (
                replay_stores(settings, pool, clock, catalog, inline=True) as adapters,
                caching as (cache, cache_note),
            ):
                replayer = Replayer(pool, adapters, catalog, clock, cache)
                summary = await replayer.run(selection, fix=fix, report=report, progress=progress)
    except UNREACHABLE as exc:
        print(f"receiptd: the database is not reachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(summary_line(summary, fix=fix, cache=cache_note))
    return 0 if summary.clean else 1
