"""`receiptd replay` as an operator runs it: in-process `cli.main` (its own event loop, in a
thread, as from a shell) against the test's database and stores: report lines, the summary
line, exit codes, the selection flags, and progress: a bar on a terminal, plain lines
elsewhere once a run is long enough."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest

from server import progress
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import scenario
from tests.e2e.google_helpers import USER, notify
from tests.e2e.replay_helpers import LINE, SUMMARY, apple_notify, query

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores
command = replay_helpers.command


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_report_lines_summary_and_exit_codes(stores, command, capsys, monkeypatch) -> None:
    user = str(uuid.uuid4())
    await apple_notify(stores, scenario(stores.ca, user=user).body("subscribe", stores.clock.now))
    s = stores
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-a")
    await query(s.database_url, "UPDATE purchases SET status = 'expired' WHERE store = 'app_store'")
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    code, out, _ = await command(capsys=capsys)

    assert code == 1
    [line, summary] = out
    match = LINE.match(line)
    assert match is not None, line
    assert match.group(1, 3, 4, 5) == ("app_store", user, "differs", "status expired → active")
    assert SUMMARY.match(summary) is not None, summary
    assert SUMMARY.match(summary).group(1, 2, 3, 4, 5, 6, 7, 8) == (
        "2", "1", "0", "0", "0", "2", None, None
    )  # fmt: skip
    assert "tok-a" not in "\n".join(out)
    # Progress on the terminal, taken away for the report line, redrawn, ended.
    bar = "[" + "#" * 24 + "] 100%"
    assert terminal.getvalue().endswith(f"\r{bar} replayed 2 of 2 purchases\x1b[K\n")

    code, out, _ = await command("--fix", capsys=capsys)
    assert code == 0
    assert LINE.match(out[0]).group(4) == "fixed"
    fixed = SUMMARY.match(out[1])
    assert fixed.group(2, 5, 8) == ("1", "1", "; cache: invalidated for the customers fixed")

    code, out, _ = await command(capsys=capsys)
    assert (code, len(out)) == (0, 1)
    assert SUMMARY.match(out[0]).group(1, 2) == ("2", "0")


async def test_selection_flags_and_no_progress_off_a_terminal(stores, command, capsys) -> None:
    s = stores
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-a")
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-b", user="u-other")

    day_before = (s.clock.now - timedelta(days=1)).date().isoformat()  # midnight UTC
    code, out, err = await command("--customer", USER, "--since", day_before, capsys=capsys)
    assert (code, err) == (0, "")  # no progress off a terminal for a short run
    assert SUMMARY.match(out[-1]).group(1) == "1"
    later = (s.clock.now + timedelta(seconds=1)).isoformat()  # with its offset
    code, out, _ = await command("--since", later, capsys=capsys)
    assert SUMMARY.match(out[-1]).group(1) == "0"
    naive = s.clock.now.replace(tzinfo=None).isoformat(timespec="seconds")
    for bad in ("yesterday", naive):  # no offset: which time zone?
        with pytest.raises(SystemExit) as exited:
            await command("--since", bad, capsys=capsys)
        assert exited.value.code == 2


async def test_plain_progress_lines_off_a_terminal(stores, command, capsys, monkeypatch) -> None:
    s = stores
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-a")
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # as if the run were long

    code, _out, err = await command(capsys=capsys)

    assert (code, err) == (0, "replayed 1 of 1 purchases (100%)\n")
