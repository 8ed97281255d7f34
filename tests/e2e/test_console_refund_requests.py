"""The console's refund request pages (issue 21, point 4): the list with its status filter,
time left and customer links, one request with what was sent (or why nothing was), and a
pending request's preference changed through a confirmation page and a CSRF-checked POST,
audited; a sent request refused. Apple's CONSUMPTION_REQUEST through the real webhook, the
app over HTTP, real PostgreSQL and Redis; the sending loop is stopped and driven by the test.
The time-left formatter is tested as a plain function at the end."""

from __future__ import annotations

import html
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.keys import REFUND_ANSWERS
from console.refund_routes import PREFERENCE_LABELS, nothing_sent, time_left
from entitlements.refunds import PREFERENCES
from tests.conftest import ADMIN_KEY, auth
from tests.e2e import test_refund_requests as refunds_e2e
from tests.e2e.test_console_http import csrf_in, page, sign_in

fake_api = refunds_e2e.fake_api
replay_ca = refunds_e2e.replay_ca
replay_api_key = refunds_e2e.replay_api_key
answering_config = refunds_e2e.answering_config
app = refunds_e2e.app
requested = refunds_e2e.requested

LIST = "/console/refund-requests"


def detail(request_id: str) -> str:
    return f"{LIST}/{request_id}"


async def the_request(client, user: str) -> dict[str, Any]:
    """The user's one refund request, as the admin API shows it."""
    resp = await client.get("/v1/refund-requests", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    [found] = [r for r in (await resp.json())["refund_requests"] if r["app_user_id"] == user]
    return found


async def audit_rows(database_url: str, user: str) -> list[tuple[str, str, dict[str, Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor, action, details::text AS details FROM audit_log "
            "WHERE app_user_id = $1 AND action = 'refund_preference' ORDER BY id",
            user,
        )
    finally:
        await conn.close()
    return [(r["actor"], r["action"], json.loads(r["details"])) for r in rows]


async def post_preference(
    client, cookie: str, request_id: str, **form: str
) -> tuple[int, str, str | None]:
    """POST the preference form; (status, page, Location of a redirect)."""
    resp = await client.post(
        f"{detail(request_id)}/preference",
        data=form,
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    return resp.status, await resp.text(), resp.headers.get("Location")


def rows_of(page_html: str) -> list[str]:
    """The request ids of the list's rows, in order."""
    return [
        line.split('data-refund-request="')[1].split('"')[0]
        for line in page_html.splitlines()
        if 'data-refund-request="' in line
    ]


async def test_the_list_shows_a_pending_request_with_its_time_left_and_customer(
    app, clock, replay_ca, fake_api
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    found = await the_request(app, who.user)
    clock.advance(hours=6, minutes=47, seconds=30)  # 5 h 12 min 30 s left
    _, cookie = await sign_in(app)
    status, body = await page(app, LIST, cookie)
    assert status == 200
    assert rows_of(body) == [found["id"]]
    assert "5 h 12 min left" in body
    assert f'<a href="/console/customers/{who.user}">{who.user}</a>' in body
    assert f'href="/console/refund-requests/{found["id"]}"' in body
    assert "unintended purchase" in body
    assert "Decline the refund" in body
    assert '<th scope="col">Time left</th>' in body
    assert '<a href="/console/refund-requests" aria-current="page">Refund requests</a>' in body
    assert '<p role="status">1 refund request(s)' in body
    # Past the deadline and not yet expired by the loop: overdue.
    clock.advance(hours=6)
    assert "overdue" in (await page(app, LIST, cookie))[1]


async def test_the_status_filter(app, clock, replay_ca, fake_api) -> None:
    skipped = await requested(app, clock, replay_ca[0], fake_api, consented=False)
    assert (await app.app[REFUND_ANSWERS].run_once()).skipped == 1
    pending = await requested(app, clock, replay_ca[0], fake_api)
    skipped_id = (await the_request(app, skipped.user))["id"]
    pending_id = (await the_request(app, pending.user))["id"]
    _, cookie = await sign_in(app)
    assert rows_of((await page(app, LIST, cookie))[1]) == [pending_id, skipped_id]
    _, body = await page(app, f"{LIST}?status=pending", cookie)
    assert rows_of(body) == [pending_id]
    assert '<option value="pending" selected>' in body
    assert rows_of((await page(app, f"{LIST}?status=skipped", cookie))[1]) == [skipped_id]
    _, body = await page(app, f"{LIST}?status=sent", cookie)
    assert rows_of(body) == []
    assert "No refund requests sent." in body
    # An unknown status filters nothing out.
    assert len(rows_of((await page(app, f"{LIST}?status=nope", cookie))[1])) == 2


async def test_a_request_page_shows_what_was_sent(app, clock, replay_ca, fake_api) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    request_id = (await the_request(app, who.user))["id"]
    _, cookie = await sign_in(app)
    _, body = await page(app, detail(request_id), cookie)
    assert "Nothing sent yet." in body
    assert 'name="preference"' in body  # pending: the form is there
    assert "12 h left" in body or "11 h 59 min left" in body

    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 1
    status, body = await page(app, detail(request_id), cookie)
    assert status == 200
    text = html.unescape(body)
    [(_tx, sent)] = fake_api.consumption_sent
    assert '"refundPreference": "DECLINE"' in text
    assert f'"consumptionPercentage": {sent["consumptionPercentage"]}' in text
    assert '"customerConsented": true' in text
    assert 'name="preference"' not in body  # sent: no form any more
    assert "its preference can no longer change" in body
    assert f'<a href="/console/customers/{who.user}">' in body


async def test_a_skipped_request_says_why_nothing_was_sent(app, clock, replay_ca, fake_api) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api, consented=False)
    await app.app[REFUND_ANSWERS].run_once()
    request_id = (await the_request(app, who.user))["id"]
    _, cookie = await sign_in(app)
    _, body = await page(app, detail(request_id), cookie)
    assert "Nothing was sent: the customer has not consented" in body


async def test_the_preference_changes_after_confirmation_and_is_audited(
    app, clock, replay_ca, fake_api, database_url
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    request_id = (await the_request(app, who.user))["id"]
    _, cookie = await sign_in(app)
    _, body = await page(app, detail(request_id), cookie)
    csrf = csrf_in(body)

    # First the confirmation page: nothing changes yet.
    status, body, _ = await post_preference(
        app, cookie, request_id, csrf=csrf, preference="grant_full"
    )
    assert status == 200
    assert "Confirm: change the refund preference" in body
    assert 'name="confirmed" value="yes"' in body
    assert 'name="preference" value="grant_full"' in body
    assert (await the_request(app, who.user))["preference"] == "decline"
    assert await audit_rows(database_url, who.user) == []

    status, _, location = await post_preference(
        app, cookie, request_id, csrf=csrf, preference="grant_full", confirmed="yes"
    )
    assert status == 303
    assert location == f"{detail(request_id)}?changed=1"
    status, body = await page(app, location, cookie)
    assert status == 200
    assert 'role="status">Preference changed to “Grant a full refund”.' in body
    assert (await the_request(app, who.user))["preference"] == "grant_full"
    assert await audit_rows(database_url, who.user) == [
        ("admin", "refund_preference", {"refund_request": request_id, "preference": "grant_full"})
    ]
    # And it is what Apple is told.
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 1
    assert fake_api.consumption_sent[0][1]["refundPreference"] == "GRANT_FULL"


async def test_a_post_without_the_csrf_token_changes_nothing(
    app, clock, replay_ca, fake_api, database_url
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    request_id = (await the_request(app, who.user))["id"]
    _, cookie = await sign_in(app)
    for form in ({}, {"csrf": "not-the-token"}, {"csrf": ""}):
        status, body, _ = await post_preference(
            app, cookie, request_id, preference="grant_full", confirmed="yes", **form
        )
        assert status == 403, form
        assert "CSRF check" in body
    # An unknown preference is refused on the page itself.
    _, body = await page(app, detail(request_id), cookie)
    status, body, _ = await post_preference(
        app, cookie, request_id, csrf=csrf_in(body), preference="refund_it", confirmed="yes"
    )
    assert status == 422
    assert "Choose a refund preference." in body
    assert (await the_request(app, who.user))["preference"] == "decline"
    assert await audit_rows(database_url, who.user) == []


async def test_a_request_no_longer_pending_is_refused(
    app, clock, replay_ca, fake_api, database_url
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    request_id = (await the_request(app, who.user))["id"]
    _, cookie = await sign_in(app)
    _, body = await page(app, detail(request_id), cookie)
    csrf = csrf_in(body)  # the form was loaded while the request was pending
    await app.app[REFUND_ANSWERS].run_once()
    for confirmed in ({}, {"confirmed": "yes"}):
        status, body, _ = await post_preference(
            app, cookie, request_id, csrf=csrf, preference="grant_full", **confirmed
        )
        assert status == 409, confirmed
        assert "This refund request is sent, no longer pending" in body
        assert 'role="alert"' in body
    found = await the_request(app, who.user)
    assert (found["status"], found["preference"]) == ("sent", "decline")
    assert await audit_rows(database_url, who.user) == []


async def test_an_unknown_request_is_not_found(client) -> None:
    _, cookie = await sign_in(client)
    _, body = await page(client, LIST, cookie)
    csrf = csrf_in(body)
    for request_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await page(client, detail(request_id), cookie))[0] == 404
        status, _, _ = await post_preference(
            client, cookie, request_id, csrf=csrf, preference="decline", confirmed="yes"
        )
        assert status == 404


async def test_unsigned_requests_are_sent_to_the_sign_in_form(client) -> None:
    request_id = str(uuid.uuid4())
    for path in (LIST, f"{LIST}?status=pending", detail(request_id)):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        location = resp.headers["Location"]
        assert location.startswith("/console/sign-in?next="), path
        assert "refund-requests" in location, path
    resp = await client.post(
        f"{detail(request_id)}/preference",
        data={"preference": "grant_full", "confirmed": "yes"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert "session has ended" in await resp.text()


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(hours=12), "12 h left"),
        (timedelta(hours=5, minutes=12, seconds=59), "5 h 12 min left"),
        (timedelta(hours=1, seconds=1), "1 h left"),
        (timedelta(minutes=59, seconds=59), "59 min left"),
        (timedelta(minutes=1), "1 min left"),
        (timedelta(seconds=59), "less than 1 min left"),
        (timedelta(seconds=0.5), "less than 1 min left"),
        (timedelta(0), "overdue"),
        (timedelta(seconds=-1), "overdue"),
        (timedelta(days=-2), "overdue"),
        (timedelta(days=1, hours=2, minutes=3), "26 h 3 min left"),
    ],
)
def test_time_left(left: timedelta, expected: str) -> None:
    assert time_left(NOW + left, NOW) == expected


def test_time_left_reads_rfc3339() -> None:
    assert time_left("2026-03-01T17:12:00Z", NOW) == "5 h 12 min left"
    assert time_left("2026-03-01T17:12:00.250000Z", NOW) == "5 h 12 min left"
    assert time_left("2026-03-01T11:59:59Z", NOW) == "overdue"


def test_nothing_sent_says_why() -> None:
    def row(status: str, error: str | None = None) -> dict[str, Any]:
        return {"status": status, "last_error": error}

    assert nothing_sent(row("pending")) == "Nothing sent yet."
    assert "The last attempt failed: StoreUnavailable: x." in nothing_sent(
        row("pending", "StoreUnavailable: x")
    )
    assert "has not consented" in nothing_sent(row("skipped", "the customer has not consented"))
    assert nothing_sent(row("failed", "deadline passed before a send")) == (
        "Nothing was sent: deadline passed before a send."
    )
    assert nothing_sent(row("refunded")) == "Nothing was sent."


def test_every_preference_has_a_label() -> None:
    assert tuple(PREFERENCE_LABELS) == PREFERENCES
