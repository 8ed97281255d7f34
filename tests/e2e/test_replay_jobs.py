"""`receiptd replay --jobs N` as an operator runs it (`cli.main` in a thread, workers as real
spawned processes on the test's database): the same findings and summary as one process on a
damaged database, `--fix` fixing each purchase once, an interrupted run (a worker killed
mid-run) resumed without re-checking the pages its parts saved, `--restart`, and a resume
with other arguments refused."""

from __future__ import annotations

import asyncio
import multiprocessing

import asyncpg
import pytest

from services import replay as replay_service
from storage import replay_runs
from tests.e2e import replay_helpers
from tests.e2e.replay_helpers import SUMMARY, query, realistic_mix

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores
command = replay_helpers.command

DEADLINE = 60.0  # seconds for the workers to reach a point the test waits for


@pytest.fixture(autouse=True)
def small_pages(monkeypatch) -> None:
    # Each part of a small database then spans several pages (the workers get the parent's).
    monkeypatch.setattr(replay_service, "BATCH", 2)


async def damage(url: str) -> int:
    """Differences, lost rows and a not re-derivable purchase; how many purchases to fix."""
    await query(
        url,
        "UPDATE purchases SET status = 'revoked', expires_at = expires_at - interval '3 days'"
        " WHERE id % 3 = 0 AND store = 'app_store'",
    )
    await query(
        url,
        "UPDATE purchases SET state = jsonb_set(state, '{store_status}', '\"revoked\"')"
        " WHERE id % 3 = 1 AND store = 'play_store'",
    )
    await query(url, "DELETE FROM purchases WHERE id % 4 = 2")
    [row] = await query(url, "SELECT count(*) AS n FROM purchases")
    return int(row["n"])


async def test_two_jobs_report_what_one_does(stores, command, capsys) -> None:
    await realistic_mix(stores)
    await damage(stores.database_url)

    one_code, one, _ = await command(capsys=capsys)
    two_code, two, err = await command("--jobs", "2", capsys=capsys)

    assert one_code == two_code == 1
    assert len(one) > 5  # differs, missing
    # The same lines (in the order the parts' pages came) and the same summary line.
    assert sorted(two[:-1]) == sorted(one[:-1])
    assert two[-1] == one[-1]
    assert SUMMARY.match(two[-1]) is not None
    assert err == ""  # no progress off a terminal for a short run, no resume note
    [run] = await query(stores.database_url, "SELECT status, arguments FROM replay_runs")
    assert run["status"] == "finished"


async def test_fix_with_two_jobs_fixes_each_purchase_once(stores, command, capsys) -> None:
    await realistic_mix(stores)
    await damage(stores.database_url)
    _, before, _ = await command(capsys=capsys)
    broken = [line for line in before[:-1] if " differs: " in line or " missing: " in line]

    _code, out, _ = await command("--jobs", "2", "--fix", capsys=capsys)

    summary = SUMMARY.match(out[-1])
    assert summary is not None, out
    assert int(summary.group(5)) == len(broken)  # fixed
    fixed = [line for line in out[:-1] if " fixed: " in line or " recreated" in line]
    assert len(fixed) == len(broken)
    # Each purchase written once: one change-feed event per owner of a fixed purchase.
    events = await query(
        stores.database_url,
        "SELECT count(*) AS n FROM audit_log WHERE action IN ('replay_fix', 'replay_restore')",
    )
    owned = [line for line in fixed if " customer=- " not in line]
    assert events[0]["n"] == len(owned)
    # Fixed once: nothing differs any more.
    _code, out, _ = await command("--jobs", "2", capsys=capsys)
    again = SUMMARY.match(out[-1])
    assert again.group(2, 3, 5) == ("0", "0", "0"), out


async def test_a_killed_worker_leaves_a_run_that_resumes_where_its_parts_stopped(
    stores, command, capsys
) -> None:
    await realistic_mix(stores)
    url = stores.database_url
    await query(url, "UPDATE purchases SET status = 'revoked' WHERE store = 'app_store'")
    [row] = await query(url, "SELECT count(*) AS n FROM purchases")
    stored = int(row["n"])
    # The part of the highest row blocks on fixing it (its row lock, held here) after
    # saving its earlier pages.
    [last] = await query(
        url, "SELECT id, purchase_id FROM purchases WHERE store = 'app_store' ORDER BY id DESC"
        " LIMIT 1"
    )  # fmt: skip
    blocked_part = last["id"] % 2
    holder = await asyncpg.connect(url)
    lock = holder.transaction()
    await lock.start()
    await holder.execute("SELECT 1 FROM purchases WHERE id = $1 FOR UPDATE", last["id"])
    try:
        running = asyncio.create_task(command("--jobs", "2", "--fix", capsys=capsys))
        await _until_blocked(url, blocked_part)
        for child in multiprocessing.active_children():
            if child.name.startswith("receiptd-replay-"):
                child.kill()
    finally:
        await lock.rollback()
        await holder.close()
    code, out, err = await running
    assert code == 1
    assert "interrupted" in err
    assert "run the same command again to resume" in err
    assert not any(line.startswith("replay: ") for line in out)  # no summary
    saved = {p["part"]: p for p in await query(url, "SELECT * FROM replay_parts")}
    assert saved[blocked_part]["pages"] >= 1
    assert not saved[blocked_part]["finished"]
    pages_before = sum(p["pages"] for p in saved.values())

    code, out, err = await command("--jobs", "2", "--fix", capsys=capsys)

    assert code == 0, (out, err)
    assert "resuming" in err
    summary = SUMMARY.match(out[-1])
    # Every purchase checked once across both attempts: the saved pages were not redone.
    assert int(summary.group(1)) == stored
    [run] = await query(url, "SELECT id, status FROM replay_runs")
    assert run["status"] == "finished"
    after = await query(url, "SELECT part, pages, finished FROM replay_parts")
    assert all(p["finished"] for p in after)
    rerun = sum(p["pages"] for p in after) - pages_before
    assert rerun <= (stored + 1) // 2 + 2  # at most what the unfinished part had left
    _, out, _ = await command(capsys=capsys)
    assert SUMMARY.match(out[-1]).group(2, 3) == ("0", "0")


async def _until_blocked(url: str, part: int) -> None:
    """Until the part saved a page and a backend waits for the row lock."""
    conn = await asyncpg.connect(url)
    try:
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while asyncio.get_running_loop().time() < deadline:
            saved = await conn.fetchval(
                "SELECT pages FROM replay_parts WHERE part = $1 AND run_id = "
                "(SELECT max(id) FROM replay_runs)",
                part,
            )
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if saved and waiting:
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError("the worker never blocked on the locked purchase")


async def test_other_arguments_are_refused_and_restart_starts_over(stores, command, capsys) -> None:
    await realistic_mix(stores)
    url = stores.database_url
    # An interrupted run of other arguments (none of its pages done).
    conn = await asyncpg.connect(url)
    try:
        arguments = {"since": None, "customer": None, "fix": True, "jobs": 2}
        old = await replay_runs.start_run(conn, arguments, 2, stores.clock.now)
    finally:
        await conn.close()

    code, out, err = await command("--jobs", "3", capsys=capsys)
    assert (code, out) == (2, [])
    assert err.count("\n") == 1
    assert "other arguments (--jobs 2 --fix)" in err
    assert "--restart" in err

    code, out, err = await command("--jobs", "3", "--restart", capsys=capsys)
    assert code == 0, (out, err)
    runs = {r["id"]: r["status"] for r in await query(url, "SELECT id, status FROM replay_runs")}
    assert runs.pop(old) == "abandoned"
    assert list(runs.values()) == ["finished"]
    assert [p["part"] for p in await query(
        url, "SELECT part FROM replay_parts WHERE run_id <> $1 ORDER BY part", old
    )] == [0, 1, 2]  # fmt: skip

    code, _out, err = await command("--restart", capsys=capsys)
    assert code == 2
    assert "--jobs" in err
