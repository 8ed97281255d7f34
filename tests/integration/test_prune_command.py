"""`receiptd prune` in-process against a real database: the count it reports, what it
leaves, its progress on a terminal, and a database that is not there."""

from __future__ import annotations

import asyncio
import io
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from server import cli, progress
from tests.integration.test_retention import insert, rows


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def write_config(tmp_path: Path, database_url: str, days: int) -> Path:
    path = tmp_path / "receiptd.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "{database_url}"\n'
        '[redis]\nurl = "off"\n'
        f"[retention]\nraw_payload_days = {days}\n"
    )
    return path


SUMMARY = re.compile(
    r"^pruned (\d+) raw payloads older than (\d+) days "
    r"\(before (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)$"
)


@pytest.fixture
def quiet_cli(monkeypatch) -> None:
    # main() configures logging for the process (cached structlog loggers would then bypass
    # capture_logs in later tests); the command's own output is what is checked here.
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    # main() reads the environment like any command: only the config file may speak, not
    # DATABASE_URL / REDIS_URL (the suite's servers, not this test's database) nor any
    # RECEIPTD_<SECTION>__<KEY> override someone exported.
    for name in list(os.environ):
        if name.upper().startswith("RECEIPTD_") or name.upper() in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("quiet_cli")
async def test_cli_prune_deletes_what_is_older_than_the_setting_and_says_how_many(
    conn, database_url, tmp_path, capsys, monkeypatch
) -> None:
    # The command reads the host clock (it is the operator's "now"); rows far on either side
    # of any plausible host time keep the test independent of it.
    for message_id in ("a", "b"):
        await insert(conn, message_id, datetime(2000, 1, 1, tzinfo=UTC))
    await insert(conn, "future", datetime(2999, 1, 1, tzinfo=UTC))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    config = write_config(tmp_path, database_url, 30)

    # main() runs its own event loop (asyncio.run): in a thread, as from a shell.
    assert await asyncio.to_thread(cli.main, ["prune", "--config", str(config)]) == 0

    summary = SUMMARY.match(capsys.readouterr().out.splitlines()[-1])
    assert summary is not None
    assert summary.group(1, 2) == ("2", "30")
    before = datetime.fromisoformat(summary[3])
    assert datetime(2000, 1, 1, tzinfo=UTC) < before < datetime(2999, 1, 1, tzinfo=UTC)
    bar = "[" + "#" * 24 + "] 100%"
    assert terminal.getvalue() == f"\r{bar} pruned 2 of 2 raw payloads\x1b[K\n"
    after = await rows(conn)
    assert {m for m, r in after.items() if r["payload"] is None} == {"a", "b"}

    assert await asyncio.to_thread(cli.main, ["prune", "--config", str(config)]) == 0
    summary = SUMMARY.match(capsys.readouterr().out.splitlines()[-1])
    assert summary is not None
    assert summary[1] == "0"


@pytest.mark.usefixtures("quiet_cli")
async def test_cli_prune_shows_plain_progress_off_a_terminal_only_when_long(
    conn, database_url, tmp_path, capsys, monkeypatch
) -> None:
    await insert(conn, "a", datetime(2000, 1, 1, tzinfo=UTC))
    await insert(conn, "b", datetime(2000, 1, 1, tzinfo=UTC))
    config = write_config(tmp_path, database_url, 90)
    assert await asyncio.to_thread(cli.main, ["prune", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert out.err == ""  # a short run: no progress lines in a log
    assert out.out.startswith("pruned 2 raw payloads older than 90 days (before ")

    # A run long enough for a line (every LINE_SECONDS): plain text, no control characters.
    await insert(conn, "c", datetime(2000, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)
    assert await asyncio.to_thread(cli.main, ["prune", "--config", str(config)]) == 0
    assert capsys.readouterr().err == "pruned 1 of 1 raw payloads (100%)\n"


@pytest.mark.usefixtures("quiet_cli")
async def test_cli_prune_without_a_database_says_so(tmp_path, capsys) -> None:
    config = write_config(tmp_path, "postgresql://receiptd@127.0.0.1:1/receiptd", 90)
    assert await asyncio.to_thread(cli.main, ["prune", "--config", str(config)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("receiptd: the database is not reachable")
