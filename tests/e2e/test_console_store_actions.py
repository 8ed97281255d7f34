"""The console over HTTP with the fake Play API: the store actions on one customer, re-read
from the store (a change the service missed is journaled and applied) and replay (re-derived
from the journal), each confirmed and leaving an audit row with its counts; and the journal
pages (rejected first, filters, the decoded payload, the raw one only when asked, never after
retention pruned it)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import asyncpg

from console import journal_routes
from storage.journal import prune_batch
from tests.e2e.google_helpers import (
    PACKAGE,
    USER,
    customer,
    fake_play,
    google_client,
    google_keys,
    notify,
    push,
    rows,
    sub,
)
from tests.e2e.test_console_http import csrf_in, page, sign_in

__all__ = ["fake_play", "google_client", "google_keys"]  # fixtures used here
RESULT_ROW = re.compile(r'<tr class="result-(\w+)">')


async def act(client, cookie: str, action: str) -> str:
    """Confirm `action` on the customer page; the page it lands on."""
    _, html = await page(client, f"/console/customers/{USER}", cookie)
    path = f"/console/customers/{USER}/actions/{action}"
    form = {"csrf": csrf_in(html), "confirmed": "yes"}
    resp = await client.post(path, data=form, headers={"Cookie": cookie}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    status, landed = await page(client, resp.headers["Location"], cookie)
    assert status == 200
    return landed


async def audit(database_url: str, action: str) -> list[dict]:
    found = await rows(
        database_url,
        f"SELECT details FROM audit_log WHERE action = '{action}' AND app_user_id = '{USER}'",
    )
    return [json.loads(r["details"]) for r in found]


async def test_reread_applies_what_the_store_says_now(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    clock.advance(hours=2)
    # The store changed its mind and no notification came: only a re-read finds out.
    fake_play.set_subscription(PACKAGE, "tok-a", sub(clock, "expired", "tok-a"))
    _, cookie = await sign_in(google_client)
    html = await act(google_client, cookie, "reread")
    assert "Re-read 1 purchase(s) from the stores: 1 changed, 0 could not be read." in html
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("expired", False)
    assert await audit(database_url, "reread") == [{"changed": 1, "failed": 0, "purchases": 1}]
    journal = await rows(database_url, "SELECT notification_type FROM store_notifications")
    assert [r["notification_type"] for r in journal].count("RECONCILE") == 1
    # Read again: the store says what is held now, so nothing is journaled.
    html = await act(google_client, cookie, "reread")
    assert "1 purchase(s) from the stores: 0 changed" in html


async def test_replay_re_derives_the_customer_from_the_journal(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    _, cookie = await sign_in(google_client)
    html = await act(google_client, cookie, "replay")
    assert "Replayed 1 purchase(s) from the journal: 0 differed, 0 fixed" in html
    assert await audit(database_url, "replay") == [
        {"checked": 1, "differing": 0, "fixed": 0, "not_rederivable": 0}
    ]
    assert "replay by admin" in html  # the timeline shows the operator action


async def test_journal_rejected_first_decoded_and_nothing_after_pruning(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    assert (await push(google_client, google_keys, b"not json", at=clock.now))[1] == {
        "status": "rejected"
    }
    _, cookie = await sign_in(google_client)
    _, html = await page(google_client, "/console/journal", cookie)
    assert RESULT_ROW.findall(html) == ["rejected", "processed"]
    _, html = await page(google_client, "/console/journal?result=processed", cookie)
    assert RESULT_ROW.findall(html) == ["processed"]
    ids = {
        r["result"]: r["id"]
        for r in await rows(database_url, "SELECT id, result FROM store_notifications")
    }
    _, html = await page(google_client, f"/console/journal/{ids['processed']}", cookie)
    assert "(base64) decoded" in html
    assert "Raw signed payload" not in html  # only when asked for
    _, html = await page(google_client, f"/console/journal/{ids['processed']}?raw=1", cookie)
    assert "Raw signed payload" in html
    assert await audit(database_url, "view_payload") == [{"journal_entry": ids["processed"]}]
    _, html = await page(google_client, f"/console/journal/{ids['rejected']}", cookie)
    assert "did not verify" in html
    assert "(base64) decoded" not in html
    conn = await asyncpg.connect(database_url)
    try:
        await prune_batch(conn, clock.now + timedelta(days=1), clock.now, 100)
    finally:
        await conn.close()
    _, html = await page(google_client, f"/console/journal/{ids['processed']}?raw=1", cookie)
    assert "was pruned by retention" in html
    assert "Raw signed payload" not in html
    assert "(base64) decoded" not in html


async def test_journal_pages(google_client, fake_play, google_keys, clock, monkeypatch) -> None:
    monkeypatch.setattr(journal_routes, "PAGE_SIZE", 1)
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    clock.advance(hours=1)
    await notify(google_client, fake_play, google_keys, clock, 2, "active", "tok-a")
    _, cookie = await sign_in(google_client)
    _, first = await page(google_client, "/console/journal?store=play_store", cookie)
    assert "page 1 of 2" in first
    assert "<td>SUBSCRIPTION_RENEWED</td>" in first  # newest first
    assert 'href="/console/journal?store=play_store&amp;page=2" rel="next"' in first
    _, second = await page(google_client, "/console/journal?store=play_store&page=2", cookie)
    assert "<td>SUBSCRIPTION_PURCHASED</td>" in second
    assert "<td>SUBSCRIPTION_RENEWED</td>" not in second
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second
