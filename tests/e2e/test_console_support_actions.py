"""The console's store actions over HTTP (issue 21): extend every renewing subscription (Apple's
renewal date extension, Play's deferral) and revoke a Google Play purchase with a refund, each
confirmed on a page of its own with the session's CSRF token, against the fake App Store
Server API and the fake Play Developer API. Nothing is asked without the confirmation or with
a forged token; a refusal of the service shows the refused page and asks no store; the service
writes the audit row, which the customer page's timeline shows; the App Store has no revoke
form (only Apple refunds)."""

from __future__ import annotations

import html as htmllib
import re
from typing import Any

from tests.e2e import google_helpers, replay_helpers
from tests.e2e.apple_helpers import PRODUCT
from tests.e2e.google_helpers import notify
from tests.e2e.test_console_http import audit_actions, csrf_in, page, sign_in
from tests.e2e.test_store_actions import subscribed_on_apple

google_keys = google_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores

TOKEN = "tok-console-actions"
NOTICE = re.compile(r'<p class="notice" role="status">([^<]*)</p>')
ALERT = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
OPTION = re.compile(r'<option value="([^"]*)">')


async def both_stores(s) -> tuple[str, str]:
    """A customer with an active Apple subscription and an active Google Play one; (the
    customer, the Apple original transaction id)."""
    user, tx = await subscribed_on_apple(s)
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", token=TOKEN, user=user)
    return user, tx["originalTransactionId"]


async def post(s, cookie: str, user: str, action: str, form: dict[str, str]) -> tuple[int, str]:
    """POST an action form; (status, the page it lands on after a redirect, or its own)."""
    resp = await s.client.post(
        f"/console/customers/{user}/actions/{action}",
        data=form,
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    if resp.status != 303:
        return resp.status, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith(f"/console/customers/{user}?done="), location
    return await page(s.client, location, cookie)


def revoke_form(body: str) -> str | None:
    """The customer page's revoke form, if it shows one."""
    match = re.search(r'<form[^>]*/actions/revoke".*?</form>', body, re.S)
    return match[0] if match else None


def asked(s) -> tuple[list[Any], list[Any], list[Any]]:
    """What the fake stores were asked: (Apple extensions, Play deferrals, Play revocations)."""
    return s.fake_api.extensions, s.fake_play.deferrals, s.fake_play.revocations


async def test_extend_is_confirmed_then_asks_both_stores_and_is_audited(stores) -> None:
    s = stores
    user, otx = await both_stores(s)
    _, cookie = await sign_in(s.client)
    status, body = await page(s.client, f"/console/customers/{user}", cookie)
    assert status == 200
    assert 'name="days" type="number" min="1" max="365"' in body
    assert '<option value="service_outage">Service outage</option>' in body
    token = csrf_in(body)
    form = {"csrf": token, "days": "7", "reason": "service_outage"}

    # Without the confirmation: the confirmation page, naming what will be asked; nothing is.
    status, body = await post(s, cookie, user, "extend", form)
    assert status == 200
    assert "<h1>Confirm: Extend subscriptions</h1>" in body
    assert "<dt>Days</dt><dd>7</dd>" in body
    assert "<dt>Reason</dt><dd>Service outage</dd>" in body
    assert f"App Store: {PRODUCT} <code>{otx}</code>" in body
    assert f"Google Play: {google_helpers.MONTHLY} <code>{TOKEN}</code>" in body
    assert "access changes only when the store confirms" in body
    assert asked(s) == ([], [], [])
    assert await audit_actions(s.database_url, user) == []

    status, body = await post(s, cookie, user, "extend", form | {"confirmed": "yes"})
    assert status == 200
    assert NOTICE.findall(htmllib.unescape(body)) == [
        "Extension by 7 day(s) asked — App Store: requested; Google Play: requested. "
        "Access changes only when the store confirms."
    ]
    [extension] = s.fake_api.extensions
    assert extension.original_transaction_id == otx
    assert (extension.body["extendByDays"], extension.body["extendReasonCode"]) == (7, 3)
    [deferral] = s.fake_play.deferrals
    assert deferral["token"] == TOKEN
    assert deferral["body"]["deferralContext"]["deferDuration"] == f"{7 * 86_400}s"
    assert await audit_actions(s.database_url, user) == ["extend"]
    timeline = body[body.index('<table class="timeline">') :]
    assert "extend by admin" in timeline
    assert "days: 7" in timeline
    assert "requested: 2" in timeline


async def test_nothing_is_asked_without_confirmation_or_with_a_forged_token(stores) -> None:
    s = stores
    user, _otx = await both_stores(s)
    _, cookie = await sign_in(s.client)
    _, body = await page(s.client, f"/console/customers/{user}", cookie)
    token = csrf_in(body)
    for action, fields in (
        ("extend", {"days": "7", "reason": "other"}),
        ("revoke", {"purchase": TOKEN, "refund": "full"}),
    ):
        status, body = await post(s, cookie, user, action, {"csrf": token, **fields})
        assert status == 200
        assert "Confirm: " in body
        for csrf in ("forged", ""):
            form = {"csrf": csrf, "confirmed": "yes", **fields}
            status, body = await post(s, cookie, user, action, form)
            assert status == 403
            assert "CSRF" in body
        status, body = await post(s, cookie, user, action, {"confirmed": "yes", **fields})
        assert status == 403
    assert asked(s) == ([], [], [])
    assert await audit_actions(s.database_url, user) == []


async def test_a_refused_extension_shows_why_and_asks_nothing(stores) -> None:
    s = stores
    user, _otx = await subscribed_on_apple(s)
    _, cookie = await sign_in(s.client)
    _, body = await page(s.client, f"/console/customers/{user}", cookie)
    token = csrf_in(body)

    # Apple extends by at most 90 days: the service refuses before any store is asked.
    form = {"csrf": token, "confirmed": "yes", "days": "91", "reason": "other"}
    status, body = await post(s, cookie, user, "extend", form)
    assert status == 422
    assert "<h1>Refused</h1>" in body
    [alert] = ALERT.findall(htmllib.unescape(body))
    assert alert.startswith("Nothing was asked of the stores and nothing changed: days must be")
    assert "Apple extends by at most 90 days" in alert

    # What the form itself lacks is asked again on the confirmation page.
    for fields, error in (
        ({"days": "0", "reason": "other"}, "Days must be a whole number from 1 to 365."),
        ({"days": "seven", "reason": "other"}, "Days must be a whole number from 1 to 365."),
        ({"days": "7", "reason": "because"}, "Choose a reason."),
    ):
        form = {"csrf": token, "confirmed": "yes", **fields}
        status, body = await post(s, cookie, user, "extend", form)
        assert status == 422, fields
        assert ALERT.findall(htmllib.unescape(body)) == [error]
        assert "<h1>Confirm: Extend subscriptions</h1>" in body

    # A customer without a renewing subscription: nothing to extend.
    form = {"csrf": token, "days": "7", "reason": "other"}
    status, body = await post(s, cookie, "u-nobody", "extend", form)
    assert status == 200
    assert "None renewing now: there is nothing to extend." in body
    status, body = await post(s, cookie, "u-nobody", "extend", form | {"confirmed": "yes"})
    assert status == 422
    assert "no renewing subscription to extend" in body
    assert asked(s) == ([], [], [])
    assert await audit_actions(s.database_url, user) == []


async def test_revoke_a_play_purchase_through_its_confirmation(stores) -> None:
    s = stores
    user, otx = await both_stores(s)
    _, cookie = await sign_in(s.client)
    _, body = await page(s.client, f"/console/customers/{user}", cookie)
    form_html = revoke_form(body)
    assert form_html is not None
    # Only the Google Play purchase is offered; the App Store one never is.
    assert OPTION.findall(form_html) == [TOKEN, "full", "prorated"]
    assert otx not in form_html
    assert "Only Apple refunds App Store purchases" in form_html
    token = csrf_in(body)
    form = {"csrf": token, "purchase": TOKEN, "refund": "prorated"}

    status, body = await post(s, cookie, user, "revoke", form)
    assert status == 200
    assert "<h1>Confirm: Revoke with refund</h1>" in body
    assert f"Google Play: {google_helpers.MONTHLY} <code>{TOKEN}</code> (active)" in body
    assert "<dt>Refund</dt><dd>Prorated refund (the unused time)</dd>" in body
    assert s.fake_play.revocations == []

    status, body = await post(s, cookie, user, "revoke", form | {"confirmed": "yes"})
    assert status == 200
    assert NOTICE.findall(htmllib.unescape(body)) == [
        "Revocation asked — Google Play: requested. Access ends only when the store confirms."
    ]
    [revoked] = s.fake_play.revocations
    assert (revoked["token"], revoked["body"]) == (
        TOKEN,
        {"revocationContext": {"proratedRefund": {}}},
    )
    # Play says it ended: the purchase reads without access, and nothing is left to revoke.
    row = re.search(rf'<code title="purchase token">{TOKEN}</code></td>\s*<td>([^<]*)', body)
    assert row is not None
    assert "(no access)" in row[1]
    assert revoke_form(body) is None
    assert "No Google Play purchase to revoke." in body
    assert await audit_actions(s.database_url, user) == ["revoke"]
    timeline = body[body.index('<table class="timeline">') :]
    assert "revoke by admin" in timeline
    assert "refund: prorated" in timeline
    assert s.fake_api.extensions == []


async def test_the_app_store_has_no_revoke_form_and_a_forged_one_is_refused(stores) -> None:
    s = stores
    user, tx = await subscribed_on_apple(s)
    otx = tx["originalTransactionId"]
    _, cookie = await sign_in(s.client)
    _, body = await page(s.client, f"/console/customers/{user}", cookie)
    assert revoke_form(body) is None
    assert "Only Apple refunds App Store purchases" in body
    form = {"csrf": csrf_in(body), "purchase": otx, "refund": "full", "confirmed": "yes"}
    status, body = await post(s, cookie, user, "revoke", form)
    assert status == 422
    assert "<h1>Refused</h1>" in body
    assert "only Apple refunds" in htmllib.unescape(body)
    assert asked(s) == ([], [], [])
    assert await audit_actions(s.database_url, user) == []
    _, body = await page(s.client, f"/console/customers/{user}", cookie)
    assert '<span class="badge good">active</span>' in body
