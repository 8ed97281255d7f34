"""`receiptd reconcile` as an operator runs it: in-process `cli.main` (its own event loop, in a
thread, as from a shell) against the test's database and store fakes: failed items and the
summary on stdout, notes and progress on stderr (a bar on a terminal, plain lines in a log),
and the exit codes."""

from __future__ import annotations

import asyncio
import io
import re

import asyncpg
import pytest

from entitlements.model import Store
from server import bootstrap, cli, progress
from storage.reconcile import LOCK_KEYS
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import scenario
from tests.e2e.google_helpers import PACKAGE, notify, sub

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores

SUMMARY = re.compile(
    r"^reconcile (apple|google): checked (\d+), missing (\d+), corrected (\d+), failed (\d+)"
    r"(; cache: .+)?$"
)
FAILED = re.compile(r"^(app_store|play_store) (.+) failed: ([a-z_]+): (.+)$")
# The test process's own log lines (main()'s logging set-up is patched out, see `command`).
LOG_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[|\{"event")')


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Command:
    """`receiptd reconcile ARGS` with `settings` and the app's clock; (exit code, stdout
    lines, stderr)."""

    def __init__(self, settings) -> None:
        self.settings = settings

    async def __call__(self, *args: str, capsys) -> tuple[int, list[str], str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["reconcile", *args])
        captured = capsys.readouterr()
        out = [line for line in captured.out.splitlines() if not LOG_LINE.match(line)]
        return code, out, captured.err


@pytest.fixture
def command(stores, monkeypatch) -> Command:
    # main() configures logging for the process (cached structlog loggers would then bypass
    # capture_logs in later tests) and reads a config file: the app's settings stand in.
    run = Command(stores.settings)
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    monkeypatch.setattr(cli, "load_settings", lambda _path: run.settings)
    monkeypatch.setattr(bootstrap, "utc_now", stores.clock)  # store data's clock
    return run


async def test_summary_failed_items_and_exit_codes(stores, command, capsys, monkeypatch) -> None:
    s = stores
    for token, user in (("tok-a", "u-1"), ("tok-b", "u-2")):
        await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", token, user=user)
    s.clock.advance(hours=25)
    known = s.fake_play.subscriptions.pop((PACKAGE, "tok-a"))  # Play does not know it: fails
    s.fake_play.set_subscription(PACKAGE, "tok-b", sub(s.clock, "expired", "tok-b"))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    code, out, _ = await command("google", capsys=capsys)

    assert code == 1
    [failed, summary] = out
    assert FAILED.match(failed).group(1, 3) == ("play_store", "purchase_not_found")
    assert FAILED.match(failed).group(2).startswith("purchase ")
    assert SUMMARY.match(summary).group(2, 3, 4, 5, 6) == (
        "2", "1", "1", "1", "; cache: invalidated for the customers corrected",
    )  # fmt: skip
    assert "tok-a" not in "\n".join(out)
    drawn = terminal.getvalue()
    assert "re-reading held subscriptions; checked 2, missing 1, corrected 1, failed 1" in drawn
    assert drawn.startswith("\r")
    assert drawn.endswith("\x1b[K\n")

    s.fake_play.set_subscription(PACKAGE, "tok-a", known)  # as stored: nothing to correct
    code, out, _ = await command("google", capsys=capsys)
    assert (code, out) == (0, ["reconcile google: checked 1, missing 0, corrected 0, failed 0"])


async def test_an_interrupted_run_says_so_and_the_next_resumes(stores, command, capsys) -> None:
    s = stores
    for _n in range(21):
        body = scenario(s.ca).body("subscribe", s.clock.now)
        s.fake_api.add_notification(body["signedPayload"])
        s.clock.advance(minutes=1)
    s.fake_api.fail_next(503, times=3, when=lambda r: "paginationToken" in r.query)

    code, out, err = await command("apple", capsys=capsys)

    assert code == 1
    assert SUMMARY.match(out[-1]).group(2, 3) == ("20", "20")
    assert err == (
        "receiptd: reconcile apple interrupted (store_unavailable: The App Store Server API is"
        " unavailable); run the same command again to resume\n"
    )

    code, out, err = await command("apple", capsys=capsys)
    assert code == 0
    assert SUMMARY.match(out[-1]).group(2, 3) == ("21", "21")
    assert re.match(r"^reconcile apple: resuming the run started \S+Z \(--restart", err)


async def test_notes_and_plain_progress_lines_off_a_terminal(
    stores, command, capsys, monkeypatch
) -> None:
    s = stores
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # as if the run were long

    code, out, err = await command("google", "--since", "2000-01-01", capsys=capsys)

    assert (code, out) == (0, ["reconcile google: checked 0, missing 0, corrected 0, failed 0"])
    lines = err.splitlines()
    assert lines[0].startswith(
        f"reconcile google: voided purchases ({PACKAGE}): the store keeps less; from "
    )
    assert lines[1:] == [
        f"reconcile google: voided purchases ({PACKAGE}), page 1; checked 0, missing 0,"
        " corrected 0, failed 0",
        "reconcile google: re-reading held subscriptions; checked 0, missing 0, corrected 0,"
        " failed 0 (100%)",
    ]
    assert "\r" not in err
    assert s.fake_play.requests  # the list was asked


async def test_bad_configuration_or_arguments_exit_2_and_a_running_run_exits_1(
    stores, command, capsys
) -> None:
    apple = stores.settings.apple.model_copy(update={"issuer_id": ""})
    command.settings = stores.settings.model_copy(update={"apple": apple})
    code, out, err = await command("apple", capsys=capsys)
    assert (code, out) == (2, [])
    assert err == (
        "receiptd: reconcile apple needs App Store Server API credentials "
        "([apple] issuer_id, key_id and private_key_file)\n"
    )
    command.settings = stores.settings.model_copy(update={"google": None})
    assert (await command("google", capsys=capsys))[0] == 2
    for bad in (["google", "--rate", "0"], ["google", "--stale-after", "soon"], ["amazon"]):
        with pytest.raises(SystemExit) as exited:
            await command(*bad, capsys=capsys)
        assert exited.value.code == 2

    command.settings = stores.settings
    holder = await asyncpg.connect(stores.database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEYS[Store.PLAY_STORE])
        code, _out, err = await command("google", capsys=capsys)
    finally:
        await holder.close()
    assert (code, err) == (1, "receiptd: another reconcile google is running\n")
