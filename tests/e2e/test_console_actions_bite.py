"""The console's actions do what they say, and a session ends when its key may no longer sign
in: over HTTP with the session cookie and CSRF token, real PostgreSQL and Redis. Each test
kills a one-line change the rest of the console suite let through (issue 18): suspend and
unsuspend swapped (console/customer_routes.py), the "session ends when its key loses admin"
check of console/web.py disabled."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_KEY, READER_KEY, auth
from tests.e2e.test_console_http import audit_actions, csrf_in, page, sign_in


async def act(client, cookie: str, user: str, action: str, **fields: str) -> tuple[int, str]:
    """Run a console action, confirmed, as the signed-in operator; (status, the page after)."""
    _, html = await page(client, f"/console/customers/{user}", cookie)
    form = {"csrf": csrf_in(html), "confirmed": "yes", "reason": "", **fields}
    resp = await client.post(
        f"/console/customers/{user}/actions/{action}",
        data=form,
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    if resp.status != 303:
        return resp.status, await resp.text()
    return await page(client, resp.headers["Location"], cookie)


async def read(client, user: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    return await resp.json()


async def test_suspend_and_unsuspend_do_what_they_say(client, database_url) -> None:
    _, cookie = await sign_in(client)
    status, html = await act(client, cookie, "u-s", "grant", entitlement="premium", duration="")
    assert (status, "Granted premium." in html) == (200, True)
    assert (await read(client, "u-s"))["entitlements"]["premium"]["active"] is True

    status, html = await act(client, cookie, "u-s", "suspend", reason="chargeback")
    assert status == 200
    assert "Suspended." in html
    got = await read(client, "u-s")
    assert (got["suspended"], got["entitlements"]["premium"]["active"]) == (True, False)
    assert await audit_actions(database_url, "u-s") == ["grant", "suspend"]

    status, html = await act(client, cookie, "u-s", "unsuspend")
    assert status == 200
    assert "Unsuspended." in html
    got = await read(client, "u-s")
    assert (got["suspended"], got["entitlements"]["premium"]["active"]) == (False, True)
    assert await audit_actions(database_url, "u-s") == ["grant", "suspend", "unsuspend"]


def with_admin_scopes(config: dict[str, Any], scopes: list[str] | None) -> dict[str, Any]:
    """The same configuration with the `admin` key (same name, same secret) given `scopes`;
    None removes the key."""
    keys = [k for k in config["auth"]["api_keys"] if k["name"] != "admin"]
    if scopes is not None:
        keys.insert(0, {"name": "admin", "key": ADMIN_KEY, "scopes": scopes})
    return config | {"auth": config["auth"] | {"api_keys": keys}}


async def test_a_session_ends_when_its_key_loses_admin_or_goes(
    make_client, config, database_url
) -> None:
    first = await make_client(config)
    _, cookie = await sign_in(first)
    status, html = await page(first, "/console/customers/u-k", cookie)
    assert status == 200
    csrf = csrf_in(html)

    # The same key, still admin (a restart, another replica): the session goes on.
    same = await make_client(with_admin_scopes(config, ["admin"]))
    assert (await page(same, "/console/customers", cookie))[0] == 200

    for scopes in (["customers:read", "purchases:write"], None):  # admin scope lost; key gone
        reloaded = await make_client(with_admin_scopes(config, scopes))
        for path in ("/console/customers", "/console/journal", "/console/business"):
            status, _ = await page(reloaded, path, cookie)
            assert status == 303, (scopes, path)  # sent to the sign-in form
        resp = await reloaded.post(
            "/console/customers/u-k/actions/suspend",
            data={"csrf": csrf, "confirmed": "yes"},
            headers={"Cookie": cookie},
            allow_redirects=False,
        )
        assert resp.status == 403, scopes
        assert "session has ended" in await resp.text()
    assert await audit_actions(database_url, "u-k") == []
    assert (await read(first, "u-k"))["suspended"] is False
