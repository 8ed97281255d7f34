"""The console's pages in detail, over HTTP with the session cookie and CSRF token, real
PostgreSQL and Redis: search, the customer page (why, purchases, timeline), the confirmation
and refusal pages of the actions, what each action writes, the journal (filters, paging, one
entry, its raw payload), the business page and the sign-in form. Written against the mutants
the mutation run found alive in console/*_routes.py (`make mutation-integration`)."""

from __future__ import annotations

import html as htmllib
import json
import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from api.keys import OUTBOUND
from api.reads import SERVICE
from console import customer_routes, journal_routes
from storage import console as console_pages
from tests.conftest import ADMIN_KEY, READER_KEY, auth
from tests.e2e.google_helpers import (
    USER,
    fake_play,
    google_client,
    google_keys,
    notify,
    push,
)
from tests.e2e.replay_helpers import query as fetch
from tests.e2e.test_console_http import cookies_of, csrf_in, page, sign_in
from tests.e2e.test_outbound_webhooks import webhook_config
from tests.factories import subscription_event

__all__ = ["fake_play", "google_client", "google_keys"]  # fixtures used here
RESULT_ROW = re.compile(r'<tr class="result-(\w+)">')
NOTICE = re.compile(r'<p class="notice" role="status">([^<]*)</p>')
ERROR = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def when(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


async def rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await fetch(database_url, sql, *args)]


async def audit(database_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    found = await rows(
        database_url, "SELECT action, app_user_id, details FROM audit_log ORDER BY id"
    )
    return [(action, user, json.loads(details)) for action, user, details in found]


async def post(client, cookie: str, path: str, form: dict[str, str]) -> tuple[int, str, str]:
    """POST a console form; (status, Location or "", body)."""
    resp = await client.post(path, data=form, headers={"Cookie": cookie}, allow_redirects=False)
    return resp.status, resp.headers.get("Location", ""), await resp.text()


async def csrf(client, cookie: str) -> str:
    return csrf_in((await page(client, "/console/customers", cookie))[1])


async def subscribe(client, clock, user: str, purchase_id: str = "otx-1") -> None:
    event = subscription_event(purchased_at=clock.now, purchase_id=purchase_id)
    await client.app[SERVICE].ingest(None, [event], submitted_by=user)


# --- search ---------------------------------------------------------------------------------


async def test_search_goes_to_the_one_match_lists_several_and_says_when_none(client, clock) -> None:
    await subscribe(client, clock, "u-2", purchase_id="otx-9")
    await subscribe(client, clock, "team/42", purchase_id="otx-42")
    resp = await client.post(
        "/v1/customers/otx-9/entitlements/premium/grants", json={}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 201  # a customer whose id is another's original transaction id
    _, cookie = await sign_in(client)
    for query, found in ((" u-2 ", "u-2"), ("otx-42", "team%2F42"), ("team/42", "team%2F42")):
        status, location = await found_at(client, cookie, query)
        assert (status, location) == (303, f"/console/customers/{found}"), query

    status, body = await page(client, "/console/customers?q=otx-9", cookie)
    assert status == 200
    assert "<h2>Customers matching “otx-9”</h2>" in body
    assert re.findall(r'<li><a href="([^"]+)">([^<]+)</a> \(by ([^)]+)\)</li>', body) == [
        ("/console/customers/otx-9", "otx-9", "app user id"),
        ("/console/customers/u-2", "u-2", "original transaction id"),
    ]
    status, body = await page(client, "/console/customers?q=nobody-at-all", cookie)
    assert status == 200
    assert NOTICE.findall(body) == [
        "No customer has the app user id, original transaction id or purchase token "
        "“nobody-at-all”."
    ]
    status, body = await page(client, "/console/customers", cookie)
    assert (status, NOTICE.findall(body), "Customers matching" in body) == (200, [], False)


async def found_at(client, cookie: str, query: str) -> tuple[int, str]:
    resp = await client.get(
        "/console/customers", params={"q": query}, headers={"Cookie": cookie}, allow_redirects=False
    )
    return resp.status, resp.headers.get("Location", "")


# --- the customer page ------------------------------------------------------------------------


async def test_the_customer_page_explains_a_suspension_and_what_lies_under_it(
    client, clock, monkeypatch
) -> None:
    await subscribe(client, clock, "u-1")
    clock.advance(minutes=5)
    suspended_at = clock.now
    resp = await client.post(
        "/v1/customers/u-1/suspend", json={"reason": "chargeback"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    _, cookie = await sign_in(client)
    status, body = await page(client, "/console/customers/u-1", cookie)
    assert status == 200
    why = htmllib.unescape(re.search(r'<td class="why">([^<]*)</td>', body)[1])
    assert why.startswith(
        f"No access: the account was suspended by operator admin at {when(suspended_at)} with "
        "reason “chargeback”. Without the suspension: access: paid period"
    )
    # The purchase is listed under its original transaction id.
    assert '<code title="original transaction id">otx-1</code>' in body
    # The timeline is cut at TIMELINE_LIMIT items, newest first.
    monkeypatch.setattr(customer_routes, "TIMELINE_LIMIT", 2)
    _, body = await page(client, "/console/customers/u-1", cookie)
    assert re.findall(r'<tr class="kind-(\w+)">', body) == ["change", "operator"]


# --- actions: confirmation, refusals and what each writes --------------------------------


async def test_each_action_writes_its_reason_and_says_what_it_did(client, database_url) -> None:
    _, cookie = await sign_in(client)
    token = await csrf(client, cookie)
    base = "/console/customers/u-1/actions/"
    steps = [
        ("grant", {"entitlement": "premium", "duration": "P1M", "reason": " goodwill "}),
        ("end_grants", {"entitlement": "premium", "reason": "by mistake"}),
        ("suspend", {"reason": "fraud"}),
        ("unsuspend", {"reason": "cleared"}),
    ]
    notices = []
    for action, form in steps:
        status, location, _ = await post(
            client, cookie, base + action, form | {"csrf": token, "confirmed": "yes"}
        )
        assert (status, location.split("?")[0]) == (303, "/console/customers/u-1"), action
        notices += NOTICE.findall((await page(client, location, cookie))[1])
    assert notices == [
        "Granted premium.",
        "Ended the grants of premium.",
        "Suspended.",
        "Unsuspended.",
    ]
    assert [(a, u, d.get("reason")) for a, u, d in await audit(database_url)] == [
        ("grant", "u-1", "goodwill"),
        ("end_grants", "u-1", "by mistake"),
        ("suspend", "u-1", "fraud"),
        ("unsuspend", "u-1", "cleared"),
    ]
    body = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert body["entitlements"]["premium"]["status"] == "revoked"


async def test_the_confirmation_shows_what_will_be_done(client) -> None:
    _, cookie = await sign_in(client)
    token = await csrf(client, cookie)
    status, _, body = await post(
        client, cookie, "/console/customers/u-1/actions/suspend", {"csrf": token}
    )
    assert status == 200
    assert "<dt>Reason</dt><dd>(none given)</dd>" in body
    assert HIDDEN.findall(body) == [
        ("csrf", token),  # the sign-out form of every page
        ("csrf", token),
        ("confirmed", "yes"),
        ("entitlement", ""),
        ("duration", ""),
        ("reason", ""),
    ]
    form = {"csrf": token, "entitlement": "premium", "duration": "P3W", "reason": "r"}
    status, _, body = await post(client, cookie, "/console/customers/u-1/actions/grant", form)
    assert status == 200
    assert "<dt>Duration</dt><dd>P3W</dd>" in body  # a duration the form does not offer


async def test_a_refused_action_asks_again_with_the_reason_and_changes_nothing(
    client, database_url
) -> None:
    _, cookie = await sign_in(client)
    token = await csrf(client, cookie)
    cases = [  # (form, the error shown)
        ({"entitlement": "gold", "duration": "P1D", "reason": "r"}, "Choose an entitlement."),
        (  # confirmed: the grant's own refusal, as the API words it
            {"entitlement": "premium", "duration": "P0D", "reason": "r", "confirmed": "yes"},
            "'P0D' is a duration of zero",
        ),
    ]
    for form, error in cases:
        status, _, body = await post(
            client, cookie, "/console/customers/u-7/actions/grant", form | {"csrf": token}
        )
        assert status == 422
        assert ERROR.findall(htmllib.unescape(body)) == [error]
        assert "<h1>Confirm: Grant</h1>" in body
        assert "<p>Customer <code>u-7</code>.</p>" in body
        assert 'action="/console/customers/u-7/actions/grant"' in body
        duration = {"P1D": "1 day", "P0D": ""}[form["duration"]]
        assert f"<dt>Duration</dt><dd>{duration}</dd>" in body
        hidden = dict(HIDDEN.findall(body))
        assert {k: hidden[k] for k in ("entitlement", "duration", "reason")} == {
            k: form[k] for k in ("entitlement", "duration", "reason")
        }
    assert await audit(database_url) == []


async def test_an_action_through_an_alias_is_noted_on_its_customer(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    resp = await google_client.post(
        "/v1/customers/u-main/aliases", json={"alias": USER}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    _, cookie = await sign_in(google_client)
    token = await csrf(google_client, cookie)
    with capture_logs() as logs:
        status, _, _ = await post(
            google_client,
            cookie,
            f"/console/customers/{USER}/actions/replay",
            {"csrf": token, "confirmed": "yes"},
        )
    assert status == 303
    [replay] = [row for row in await audit(database_url) if row[0] == "replay"]
    assert replay[1] == "u-main"
    [line] = [e for e in logs if e["event"] == "customer_replay"]
    assert (line["app_user_id"], line["actor"]) == ("u-main", "admin")


# --- the journal ----------------------------------------------------------------------------


async def test_journal_filters_and_pages(
    google_client, fake_play, google_keys, clock, monkeypatch
) -> None:
    monkeypatch.setattr(journal_routes, "PAGE_SIZE", 2)
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")  # purchased
    for _ in range(2):
        clock.advance(hours=1)
        await notify(google_client, fake_play, google_keys, clock, 2, "active", "tok-a")  # renewed
    assert (await push(google_client, google_keys, b"not json", at=clock.now))[0] == 200
    _, cookie = await sign_in(google_client)

    async def journal(query: str) -> tuple[str, list[str], list[str]]:
        status, body = await page(google_client, "/console/journal" + query, cookie)
        assert status == 200, query
        counts = re.search(r"<p role=\"status\">([^<]*)</p>", body)[1]
        types = re.findall(
            r'<tr class="result-\w+">\s*<td>[^<]*</td>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>', body
        )
        links = re.findall(r'<a href="([^"]+)" rel="(?:prev|next)">', body)
        return counts, types, [htmllib.unescape(link) for link in links]

    counts, types, links = await journal("")
    assert counts == "4 notification(s); page 1 of 2."
    assert types == ["—", "SUBSCRIPTION_RENEWED"]  # rejected first, then newest first
    assert links == ["/console/journal?page=2"]
    counts, types, links = await journal("?page=2")
    assert (counts, types) == (
        "4 notification(s); page 2 of 2.",
        ["SUBSCRIPTION_RENEWED", "SUBSCRIPTION_PURCHASED"],
    )
    assert links == ["/console/journal?page=1"]
    query = "?store=play_store&type=SUBSCRIPTION_RENEWED&result=processed"
    counts, types, links = await journal(query)
    assert (counts, types, links) == (
        "2 notification(s); page 1 of 1.",
        ["SUBSCRIPTION_RENEWED"] * 2,
        [],
    )
    counts, types, links = await journal("?type=SUBSCRIPTION_PURCHASED&result=processed&page=1")
    assert (counts, types) == ("1 notification(s); page 1 of 1.", ["SUBSCRIPTION_PURCHASED"])
    counts, _, _ = await journal("?store=app_store")
    assert counts == "0 notification(s); page 1 of 1."
    counts, _, _ = await journal("?store=elsewhere&result=maybe&page=123456789")  # ignored
    assert counts == "4 notification(s); page 1 of 2."
    monkeypatch.setattr(journal_routes, "PAGE_SIZE", 1)
    _, _, links = await journal("?store=play_store&type=SUBSCRIPTION_RENEWED&page=2")
    assert links == [
        "/console/journal?store=play_store&type=SUBSCRIPTION_RENEWED&page=1",
    ]
    _, _, links = await journal("?type=SUBSCRIPTION_RENEWED&result=processed")
    assert links == ["/console/journal?type=SUBSCRIPTION_RENEWED&result=processed&page=2"]
    # The count stops past storage.console.COUNT_LIMIT: a view costs the same at any size.
    monkeypatch.setattr(console_pages, "COUNT_LIMIT", 3)
    counts, _, _ = await journal("")
    assert counts == (
        "More than 3 notifications (narrow the filters to count them); page 1 of the first 3."
    )
    counts, _, _ = await journal("?result=processed")
    assert counts == "3 notification(s); page 1 of 3."


async def test_a_journal_entry_with_its_store_answers_and_who_saw_its_payload(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    _, cookie = await sign_in(google_client)
    token = await csrf(google_client, cookie)
    clock.advance(hours=1)
    status, _, _ = await post(
        google_client,
        cookie,
        f"/console/customers/{USER}/actions/reread",
        {"csrf": token, "confirmed": "yes"},
    )
    assert status == 303
    [(first,)] = await rows(database_url, "SELECT id FROM store_notifications ORDER BY id LIMIT 1")
    _, body = await page(google_client, f"/console/journal/{first}", cookie)
    assert "Store API answers used (1)" in body  # the Play API read of the notification
    reads = re.search(r"</summary>\s*<pre class=\"payload\" tabindex=\"0\">(.*?)</pre>", body, re.S)
    assert len(json.loads(htmllib.unescape(reads[1]))["reads"]) == 1
    with capture_logs() as logs:
        resp = await google_client.get(
            f"/console/journal/{first}?raw=1",
            headers={"Cookie": cookie, "X-Request-ID": "req-raw"},
        )
    assert resp.status == 200
    shown = [e for e in logs if e["event"] == "console_payload_shown"]
    assert [(e["journal_entry"], e["key"]) for e in shown] == [(first, "admin")]
    [noted] = [e for e in logs if e["event"] == "customer_view_payload"]
    assert (noted["app_user_id"], noted["actor"]) == (USER, "admin")
    [row] = await rows(
        database_url,
        "SELECT app_user_id, request_id, details FROM audit_log WHERE action = 'view_payload'",
    )
    assert (row[0], row[1], json.loads(row[2])) == (USER, "req-raw", {"journal_entry": first})


# --- the business page ----------------------------------------------------------------------


async def test_the_business_page_draws_each_chart_its_way_and_lists_the_endpoints(
    make_client, config, clock
) -> None:
    client = await make_client(webhook_config(config, "http://127.0.0.1:9/hook"))
    await client.app[OUTBOUND].stop()  # nothing is attempted: the backlog stays
    await subscribe(client, clock, "u-1")
    _, cookie = await sign_in(client)
    status, body = await page(client, "/console/business", cookie)
    assert status == 200
    sections = dict(
        re.findall(r'<section aria-labelledby="h-(\w+)"[^>]*>(.*?)</section>', body, re.S)
    )
    assert "premium · App Store" in sections["active"]
    for chart, bars in (("active", False), ("trials", True), ("refunds", True)):
        svg = sections[chart].split('<ul class="legend">')[0]
        assert ("<rect x=" in svg, "<polyline" in svg) == (bars, not bars), chart
    deliveries = sections["deliveries"]
    assert "<td>http://127.0.0.1:9/hook</td>" in deliveries
    assert "<td>1</td>" in deliveries  # the backlog: the purchase's event
    assert "0.0 s ago" in deliveries


# --- signing in and out ---------------------------------------------------------------------


async def test_sign_in_goes_where_it_was_asked_and_out_to_the_form(client) -> None:
    resp = await client.get("/console/sign-in?next=/console/journal")
    body = await resp.text()
    assert dict(HIDDEN.findall(body))["next"] == "/console/journal"
    token, form_cookie = dict(HIDDEN.findall(body))["csrf"], cookies_of(resp)
    client.session.cookie_jar.clear()
    resp = await client.post(
        "/console/sign-in",
        data={"csrf": token, "api_key": ADMIN_KEY, "next": "/console/journal"},
        headers={
            "Cookie": f"receiptd_console_sign_in={form_cookie['receiptd_console_sign_in'].value}"
        },
        allow_redirects=False,
    )
    assert (resp.status, resp.headers["Location"]) == (303, "/console/journal")
    client.session.cookie_jar.clear()
    assert dict(HIDDEN.findall(await (await client.get("/console/sign-in")).text()))["next"] == ""
    client.session.cookie_jar.clear()

    with capture_logs() as logs:
        _, cookie = await sign_in(client)
    assert [e["key"] for e in logs if e["event"] == "console_signed_in"] == ["admin"]
    resp = await client.get("/console", headers={"Cookie": cookie}, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/console/customers")
    status, location, _ = await post(
        client, cookie, "/console/sign-out", {"csrf": await csrf(client, cookie)}
    )
    assert (status, location) == (303, "/console/sign-in")


@pytest.mark.parametrize(
    ("form_token", "cookie_token"),
    [(None, "None"), (None, "XXXX"), ("XXXX", None), ("", ""), ("a-token", None)],
)
async def test_a_sign_in_without_its_form_token_is_refused_whatever_the_cookie(
    client, form_token, cookie_token
) -> None:
    data = {"api_key": ADMIN_KEY} | ({"csrf": form_token} if form_token is not None else {})
    headers = {"Cookie": f"receiptd_console_sign_in={cookie_token}"} if cookie_token else {}
    resp = await client.post("/console/sign-in", data=data, headers=headers, allow_redirects=False)
    assert resp.status == 403
    assert ERROR.findall(await resp.text()) == ["This form is out of date (CSRF check). Try again."]
    assert "receiptd_console" not in cookies_of(resp)


async def test_refused_sign_ins_say_why_and_are_logged(client) -> None:
    with capture_logs() as logs:
        unknown, _ = await sign_in(client, "not-a-key-at-all-0123")
        reader, _ = await sign_in(client, READER_KEY)
    assert ERROR.findall(await unknown.text()) == ["That is not a valid API key."]
    assert unknown.status == 401
    assert reader.status == 403
    refused = [
        {k: v for k, v in e.items() if k != "log_level"}
        for e in logs
        if e["event"] == "console_sign_in_refused"
    ]
    assert refused == [
        {"event": "console_sign_in_refused", "reason": "unknown key"},
        {"event": "console_sign_in_refused", "reason": "not admin", "key": "reader"},
    ]


@pytest.mark.parametrize("window", [60, 120, 3600])
async def test_too_many_failed_sign_ins_say_how_long_to_wait(make_client, config, window) -> None:
    config["auth"]["rate_limit"] = {"max_failures": 1, "window_seconds": window}
    client = await make_client(config)
    with capture_logs() as logs:
        resp, _ = await sign_in(client, "not-a-key-at-all-0123")
    assert resp.status == 429
    retry = int(resp.headers["Retry-After"])
    assert window - 1 <= retry <= window
    wait = f"{retry} seconds" if retry < 120 else f"{retry // 60} minutes"
    assert ERROR.findall(await resp.text()) == [f"Too many failed sign-ins. Try again in {wait}."]
    assert {"event": "console_sign_in_refused", "reason": "too many failures"} in [
        {k: v for k, v in e.items() if k != "log_level"} for e in logs
    ]


async def test_each_sign_in_form_has_a_fresh_random_token_in_its_cookie(client) -> None:
    tokens = []
    for _ in range(2):
        resp = await client.get("/console/sign-in")
        token = dict(HIDDEN.findall(await resp.text()))["csrf"]
        assert cookies_of(resp)["receiptd_console_sign_in"].value == token
        client.session.cookie_jar.clear()
        tokens.append(token)
    assert tokens[0] != tokens[1]
    assert all(len(t) >= 43 for t in tokens)  # 32 random bytes, URL-safe base64
