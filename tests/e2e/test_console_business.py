"""The console's business page shows money (issue 22 point 4): revenue per day and currency
and MRR as GET /v1/revenue says them, paying subscriptions against trials and grants, each
with its numbers in a table; the revenue table downloads as CSV with the same numbers and no
cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from console.business import revenue_csv
from tests.conftest import ADMIN_KEY, auth
from tests.e2e import test_revenue
from tests.e2e.test_console_http import page, sign_in
from tests.e2e.test_revenue import DAY, apple_lifecycle, day, deliver, revenue

google_keys = test_revenue.google_keys
fake_play = test_revenue.fake_play
fake_api = test_revenue.fake_api
replay_ca = test_revenue.replay_ca
replay_api_key = test_revenue.replay_api_key
stores = test_revenue.stores

SECTION = re.compile(r'<section aria-labelledby="h-(\w+)"[^>]*>(.*?)</section>', re.S)
REVENUE_ROW = re.compile(
    r'<tr><th scope="row">([\d-]+)</th><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>'
    r"<td>([^<]*)</td><td>(\d+)</td><td>(\d+)</td></tr>"
)
MRR_ROW = re.compile(r'<tr><th scope="row">(\w+)</th><td>([^<]*)</td><td>(\d+)</td></tr>')
STORE = {"app_store": "App Store", "play_store": "Google Play"}


def sections(html: str) -> dict[str, str]:
    return dict(SECTION.findall(html))


def shown(days: list[dict]) -> list[tuple[str, ...]]:
    """GET /v1/revenue's days as the page's table shows them."""
    return [
        (d["date"], STORE[d["store"]], d["currency"], d["gross"], d["refunded"],
         str(d["charges"]), str(d["refunds"]))
        for d in days
    ]  # fmt: skip


async def csv_rows(client, cookie: str, query: str = "") -> list[list[str]]:
    resp = await client.get(f"/console/business/revenue.csv{query}", headers={"Cookie": cookie})
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="revenue.csv"'
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Cache-Control"] == "no-store"
    return list(csv.reader(io.StringIO(await resp.text())))


async def test_the_page_shows_revenue_and_mrr_as_the_api_and_the_csv(stores) -> None:
    s = stores
    _who, notes, t0 = apple_lifecycle(s)
    for note in notes[:4]:
        await deliver(s, note)
    s.clock.now = t0 + 68 * DAY
    _, cookie = await sign_in(s.client)
    status, html = await page(s.client, "/console/business", cookie)
    assert status == 200
    parts = sections(html)
    window = await revenue(s.client, day(s.clock.now - 29 * DAY), day(s.clock.now))
    assert window["days"] == [  # the window holds the third paid period only
        {"date": day(t0 + 67 * DAY), "store": "app_store", "currency": "USD", "gross": "12.99",
         "refunded": "0", "charges": 1, "refunds": 0},
    ]  # fmt: skip
    assert REVENUE_ROW.findall(parts["revenue"]) == shown(window["days"])
    assert MRR_ROW.findall(parts["mrr"]) == [("USD", "12.99", "1")]
    assert window["mrr"] == [{"currency": "USD", "amount": "12.99", "subscriptions": 1}]
    # The charts' own tables: the day's gross, and MRR day by day (9.99 before the increase).
    assert "<td>12.99</td><td>0</td>" in parts["revenue"]  # USD gross, USD refunded
    mrr_days = re.findall(r'<th scope="row">([\d-]+)</th><td>([\d.]+)</td>', parts["mrr"])
    assert mrr_days[-2:] == [(day(t0 + 67 * DAY), "12.99"), (day(t0 + 68 * DAY), "12.99")]
    assert (day(t0 + 66 * DAY), "9.99") in mrr_days
    assert "<td>1</td><td>0</td><td>0</td>" in parts["mix"]  # paying, trials, grants
    [header, *rows] = await csv_rows(s.client, cookie)
    assert header == ["date", "store", "currency", "gross", "refunded", "charges", "refunds"]
    assert rows == [[d["date"], d["store"], d["currency"], d["gross"], d["refunded"],
                     str(d["charges"]), str(d["refunds"])] for d in window["days"]]  # fmt: skip

    await deliver(s, notes[4])  # the refund, three days into the period
    s.clock.now = t0 + 71 * DAY
    _, cookie = await sign_in(s.client)  # the session ended with the days
    _, html = await page(s.client, "/console/business", cookie)
    parts = sections(html)
    window = await revenue(s.client, day(s.clock.now - 29 * DAY), day(s.clock.now))
    assert [(d["date"], d["gross"], d["refunded"]) for d in window["days"]] == [
        (day(t0 + 67 * DAY), "12.99", "0"),
        (day(t0 + 70 * DAY), "0", "12.99"),
    ]
    assert REVENUE_ROW.findall(parts["revenue"]) == shown(window["days"])
    assert MRR_ROW.findall(parts["mrr"]) == []
    assert "No paying subscription today." in parts["mrr"]
    assert len(await csv_rows(s.client, cookie)) == 3
    # Real money only: none (the fakes' Sandbox), on the page and in the CSV.
    _, html = await page(s.client, "/console/business?sandbox=false", cookie)
    assert REVENUE_ROW.findall(sections(html)["revenue"]) == []
    assert await csv_rows(s.client, cookie, "?sandbox=false") == [
        ["date", "store", "currency", "gross", "refunded", "charges", "refunds"]
    ]
    assert (await page(s.client, "/console/business?sandbox=maybe", cookie))[0] == 400


async def test_trials_grants_and_active_subscriptions_today(stores) -> None:
    s = stores
    who, notes, t0 = apple_lifecycle(s)
    await deliver(s, notes[0])  # the free week
    resp = await s.client.post(
        "/v1/customers/someone-else/entitlements/premium/grants",
        json={"duration": "P1M"},
        headers=auth(ADMIN_KEY),
    )
    assert resp.status == 201, await resp.text()
    s.clock.now = t0 + timedelta(days=2)
    _, cookie = await sign_in(s.client)
    _, html = await page(s.client, "/console/business", cookie)
    parts = sections(html)
    assert "<td>0</td><td>1</td><td>1</td>" in parts["mix"]  # paying, trials, grants
    assert "premium · App Store" in parts["active"]
    active = re.findall(r'<th scope="row">([\d-]+)</th><td>([\d.]+)</td>', parts["active"])
    assert active[-4:] == [
        (day(t0 - DAY), "0.0"),
        (day(t0), "1.0"),
        (day(t0 + DAY), "1.0"),
        (day(t0 + 2 * DAY), "1.0"),
    ]
    trials = re.findall(r'<th scope="row">([\d-]+)</th><td>([\d.]+)</td>', parts["trials"])
    assert (day(t0), "1.0") in trials
    # The trial ends unpaid: it no longer runs, nor counts as active.
    s.clock.now = t0 + 9 * DAY
    _, cookie = await sign_in(s.client)
    _, html = await page(s.client, "/console/business", cookie)
    assert "<td>0</td><td>0</td><td>1</td>" in sections(html)["mix"]
    assert who.user  # the subscriber stays a customer; only its trial ended


async def test_the_csv_needs_a_session(stores) -> None:
    # No session, a forged session cookie, an admin API key (the console takes sessions only).
    for headers in ({}, {"Cookie": "receiptd_console=forged"}, auth(ADMIN_KEY)):
        resp = await stores.client.get(
            "/console/business/revenue.csv", headers=headers, allow_redirects=False
        )
        assert resp.status == 303, headers
        assert resp.headers["Location"].startswith("/console/sign-in")


def test_no_csv_cell_starts_as_a_formula() -> None:
    days = [
        {"date": "2026-11-01", "store": "app_store", "currency": currency, "gross": "1",
         "refunded": "0", "charges": 1, "refunds": 0}
        for currency in ("=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tX", "USD")
    ]  # fmt: skip
    days.append(dict(days[-1], gross="-1.50"))
    rows = list(csv.reader(io.StringIO(revenue_csv(days))))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert [row[2] for row in rows[1:]] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tX", "USD", "USD",
    ]  # fmt: skip
    assert rows[-1][3] == "'-1.50"
