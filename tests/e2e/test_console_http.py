"""The operator console over plain HTTP: sign-in and its cookie flags, a non-admin key
refused, CSRF on every POST, confirmed actions with their audit rows, sign-out, and no key in
a page or a log line. Real PostgreSQL and Redis; the browser tests are in tests/browser/."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from tests.conftest import ADMIN_KEY, READER_KEY, auth

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def cookies_of(resp: Any) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar.items())


def csrf_in(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def sign_in_form(client, headers: dict[str, str] | None = None) -> tuple[str, str, Any]:
    resp = await client.get("/console/sign-in", headers=headers or {})
    assert resp.status == 200
    html = await resp.text()
    morsel = cookies_of(resp)["receiptd_console_sign_in"]
    client.session.cookie_jar.clear()  # each test sends its cookies itself
    return csrf_in(html), morsel.value, morsel


async def sign_in(client, key: str = ADMIN_KEY, **headers: str) -> tuple[Any, str]:
    """POST the sign-in form; (response, the session cookie header to send back)."""
    token, cookie, _ = await sign_in_form(client)
    resp = await client.post(
        "/console/sign-in",
        data={"csrf": token, "api_key": key, "next": ""},
        headers={"Cookie": f"receiptd_console_sign_in={cookie}", **headers},
        allow_redirects=False,
    )
    session = cookies_of(resp).get("receiptd_console")
    client.session.cookie_jar.clear()
    return resp, f"receiptd_console={session.value}" if session else ""


async def page(client, path: str, cookie: str) -> tuple[int, str]:
    resp = await client.get(path, headers={"Cookie": cookie}, allow_redirects=False)
    return resp.status, await resp.text()


async def audit_actions(database_url: str, user: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT action FROM audit_log WHERE app_user_id = $1 ORDER BY id", user
        )
    finally:
        await conn.close()
    return [r["action"] for r in rows]


async def test_unsigned_requests_are_sent_to_the_sign_in_form(client) -> None:
    for path in ("/console", "/console/customers", "/console/journal", "/console/business"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/sign-in"), path
    html = await (await client.get("/console/sign-in")).text()
    assert '<label for="api_key">' in html
    assert 'id="api_key"' in html


async def test_sign_in_sets_a_strict_http_only_expiring_cookie(client) -> None:
    _, _, form_cookie = await sign_in_form(client)
    assert form_cookie["httponly"]
    assert form_cookie["samesite"] == "Strict"
    with capture_logs() as logs:
        resp, cookie = await sign_in(client)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/customers"
    morsel = cookies_of(resp)["receiptd_console"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/console"
    assert int(morsel["max-age"]) == 8 * 3600
    assert not morsel["secure"]  # plain HTTP here
    status, html = await page(client, "/console/customers", cookie)
    assert status == 200
    assert "Signed in as <b>admin</b>" in html
    assert ADMIN_KEY not in html
    assert ADMIN_KEY not in repr(logs)
    assert any(e["event"] == "console_signed_in" for e in logs)


async def test_cookies_are_secure_behind_tls(client) -> None:
    _, _, form_cookie = await sign_in_form(client, {"X-Forwarded-Proto": "https"})
    assert form_cookie["secure"] is True
    resp, _ = await sign_in(client, **{"X-Forwarded-Proto": "https"})
    assert cookies_of(resp)["receiptd_console"]["secure"] is True


async def test_a_non_admin_key_is_refused_with_a_clear_message(client) -> None:
    with capture_logs() as logs:
        resp, cookie = await sign_in(client, READER_KEY)
    assert resp.status == 403
    html = await resp.text()
    assert "has no admin scope" in html
    assert "“reader”" in html
    assert READER_KEY not in html
    assert READER_KEY not in repr(logs)
    assert cookie == ""
    resp, cookie = await sign_in(client, "not-a-key")
    assert resp.status == 401
    assert cookie == ""
    assert "not a valid API key" in await resp.text()


async def test_sign_in_without_its_csrf_token_is_refused(client) -> None:
    _, cookie, _ = await sign_in_form(client)
    resp = await client.post(
        "/console/sign-in",
        data={"csrf": "forged", "api_key": ADMIN_KEY},
        headers={"Cookie": f"receiptd_console_sign_in={cookie}"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert "receiptd_console" not in cookies_of(resp)


async def test_every_post_needs_the_session_csrf_token(client, database_url) -> None:
    _, cookie = await sign_in(client)
    path = "/console/customers/u-csrf/actions/suspend"
    for data in ({"confirmed": "yes"}, {"confirmed": "yes", "csrf": "forged"}):
        resp = await client.post(path, data=data, headers={"Cookie": cookie})
        assert resp.status == 403
        assert "CSRF" in await resp.text()
    resp = await client.post("/console/sign-out", data={}, headers={"Cookie": cookie})
    assert resp.status == 403  # signing out is a POST too
    assert await audit_actions(database_url, "u-csrf") == []
    # Another session's token does not do either.
    _, other = await sign_in(client)
    _, html = await page(client, "/console/customers", other)
    data = {"confirmed": "yes", "csrf": csrf_in(html)}
    resp = await client.post(path, data=data, headers={"Cookie": cookie})
    assert resp.status == 403
    assert await audit_actions(database_url, "u-csrf") == []


async def test_an_action_is_confirmed_then_done_and_audited(client, database_url) -> None:
    _, cookie = await sign_in(client)
    _, html = await page(client, "/console/customers/u-act", cookie)
    token = csrf_in(html)
    path = "/console/customers/u-act/actions/grant"
    form = {"csrf": token, "entitlement": "premium", "duration": "P1M", "reason": "goodwill"}
    resp = await client.post(path, data=form, headers={"Cookie": cookie})
    assert resp.status == 200
    confirm = await resp.text()
    assert "Confirm: Grant" in confirm
    assert "1 month" in confirm
    assert "goodwill" in confirm
    assert await audit_actions(database_url, "u-act") == []  # nothing done yet
    resp = await client.post(
        path, data=form | {"confirmed": "yes"}, headers={"Cookie": cookie}, allow_redirects=False
    )
    assert resp.status == 303
    status, html = await page(client, resp.headers["Location"], cookie)
    assert status == 200
    assert "Granted premium." in html
    assert "Access: granted by an operator until" in html
    assert await audit_actions(database_url, "u-act") == ["grant"]
    body = await (await client.get("/v1/customers/u-act", headers=auth(ADMIN_KEY))).json()
    assert body["entitlements"]["premium"]["active"] is True


async def test_sign_out_ends_the_session_everywhere(client) -> None:
    _, cookie = await sign_in(client)
    _, html = await page(client, "/console/customers", cookie)
    resp = await client.post(
        "/console/sign-out",
        data={"csrf": csrf_in(html)},
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    assert resp.status == 303
    status, _ = await page(client, "/console/customers", cookie)
    assert status == 303  # the old cookie no longer signs in


async def test_sessions_expire_by_the_service_clock(client, clock) -> None:
    _, cookie = await sign_in(client)
    clock.advance(hours=8, seconds=1)
    status, _ = await page(client, "/console/customers", cookie)
    assert status == 303


async def test_pages_are_not_cached_nor_framed(client) -> None:
    _, cookie = await sign_in(client)
    resp = await client.get("/console/journal", headers={"Cookie": cookie})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    resp = await client.get("/console/business", headers={"Cookie": cookie})
    assert resp.status == 200
    assert "<svg" in await resp.text()


async def test_a_session_is_known_to_every_replica(make_client, config) -> None:
    """Sessions live in PostgreSQL: another process (worker or replica) on the same database
    serves the signed-in operator, and signing out on one ends it on the other."""
    first, second = await make_client(config), await make_client(config)
    _, cookie = await sign_in(first)
    status, html = await page(second, "/console/customers", cookie)
    assert status == 200
    assert "Signed in as <b>admin</b>" in html
    resp = await second.post(
        "/console/sign-out",
        data={"csrf": csrf_in(html)},
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await page(first, "/console/customers", cookie))[0] == 303
