"""The `receiptd` command: serve, migrate, simulate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from aiohttp import web

from config.logging import configure_logging
from config.settings import ConfigError, Settings, load_settings
from server.embedded import database_url
from server.migrations import migrate


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m receiptd`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("serve", "migrate"):  # the commands that read the configuration
        configure_logging(json=not sys.stdout.isatty() or args.json_logs)
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            print(f"receiptd: {exc}", file=sys.stderr)
            return 2
        if args.command == "serve":
            return _serve(settings)
        return asyncio.run(_migrate(settings))
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receiptd", description=__doc__)
    parser.add_argument("--json-logs", action="store_true", help="JSON logs even on a terminal")
    sub = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("serve", "run the HTTP service (applies migrations first)"),
        ("migrate", "apply database migrations and exit"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="TOML file (default: $RECEIPTD_CONFIG)")
    _add_simulate(sub)
    return parser


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The demo commands (`demo init`, `simulate`), when the demo kit is installed."""
    from server import simulate

    try:
        simulate.add_commands(sub)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "simulators":
            raise
        # An install without the demo kit: serve and migrate still work.


def _serve(settings: Settings) -> int:
    from server.app import create_app

    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout,
        access_log=None,
        print=lambda *_: None,
        handle_signals=True,
    )
    return 0


async def _migrate(settings: Settings) -> int:
    configured = settings.database.url.get_secret_value()
    async with database_url(configured, settings.server.data_dir) as url:
        conn = await asyncpg.connect(url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
    print(f"applied {len(applied)} migration(s): {applied}" if applied else "schema up to date")
    return 0
