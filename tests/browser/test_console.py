"""The operator console in a real browser (Debian's chromium through Playwright).

One service for the module (real PostgreSQL and Redis, the fake Play API) with customers made
through the real webhook paths, dated by the injected clock: a refunded one, one in its grace
period, one suspended by an operator, one with nothing. The Done-when walk: each of the first
three shows why they lack (or have) access on the customer page alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from server.app import create_app
from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario
from simulators.fake_play import FakePlay
from simulators.google_signer import voided_notification
from tests.conftest import (
    ADMIN_KEY,
    READER_KEY,
    Clock,
    Clones,
    auth,
    base_config,
    clock_start,
    with_database,
)
from tests.e2e.apple_helpers import apple_config, scenario
from tests.e2e.google_helpers import PACKAGE, google_config, google_keys, notify, push

__all__ = ["google_keys"]  # the session fixture, used here

REFUNDED, GRACE, SUSPENDED, PLAIN = "u-refunded", "u-grace", "u-suspended", "u-plain"
# An App Store subscriber in its grace period (Apple's app account token is a UUID).
APPLE_GRACE = "5f0c8a52-3b8e-4c1e-9a57-0d6f2b1c9e44"


class Service:
    """The running console and what the tests need to know of it."""

    def __init__(self, client: TestClient, clock: Clock, apple: AppleScenario) -> None:
        self.client = client
        self.clock = clock
        self.apple = apple

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))


@pytest.fixture(scope="module")
async def service(
    clones: Clones,
    redis_server_url: str,
    google_keys,
    tmp_path_factory,
) -> AsyncIterator[Service]:
    name = await clones.take()
    fake = FakePlay(keys=google_keys)
    await fake.start()
    clock = Clock(clock_start())
    directory = tmp_path_factory.mktemp("console")
    ca = TestCA.generate()
    ca.save(directory)
    config = base_config(with_database(clones.server_url, name), redis_server_url, directory)
    config = apple_config(google_config(config, fake, directory), directory)
    app = create_app(Settings(**config), clock=clock)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        apple = scenario(ca, user=APPLE_GRACE)
        await _customers(client, fake, google_keys, clock, apple)
        yield Service(client, clock, apple)
    finally:
        await client.close()
        await fake.stop()
        clones.give_back(name)


async def _customers(
    client: TestClient, fake: FakePlay, keys: Any, clock: Clock, apple: AppleScenario
) -> None:
    """The walk's customers, through the stores' webhooks and the operator API."""
    for user, token in ((REFUNDED, "tok-refund"), (GRACE, "tok-grace")):
        await notify(client, fake, keys, clock, 4, "active", token, user=user)
    await _apple(client, apple.body("subscribe", clock.now))
    clock.advance(days=30)
    await _apple(client, apple.body("fail-grace", clock.now))
    await notify(client, fake, keys, clock, 4, "active", "tok-susp", user=SUSPENDED)
    await notify(client, fake, keys, clock, 6, "grace", "tok-grace", user=GRACE)
    voided = voided_notification(
        PACKAGE, "tok-refund", "GPA.9", event_time=clock.now, product_type=1
    )
    assert (await push(client, keys, voided, at=clock.now))[0] == 200
    resp = await client.post(
        f"/v1/customers/{SUSPENDED}/suspend", json={"reason": "chargeback"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    clock.advance(hours=1)


async def _apple(client: TestClient, body: dict[str, Any]) -> None:
    resp = await client.post("/webhooks/apple", json=body)
    assert resp.status == 200, await resp.text()


async def sign_in(page, service: Service, key: str = ADMIN_KEY) -> None:
    await page.goto(service.url("/console"))
    await page.get_by_label("Admin API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def why(page, entitlement: str = "premium") -> str:
    row = page.locator(f'tr.entitlement[data-entitlement="{entitlement}"]')
    return str(await row.locator("td.why").inner_text())


async def shot(page, artifacts: Path, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def test_a_non_admin_key_is_refused(page, service, artifacts) -> None:
    await sign_in(page, service, READER_KEY)
    alert = page.get_by_role("alert")
    assert "has no admin scope" in await alert.inner_text()
    assert READER_KEY not in await page.content()
    assert await page.get_by_label("Admin API key").input_value() == ""  # never echoed
    await shot(page, artifacts, "sign-in-refused")


async def test_sign_in_search_and_the_customer_page(page, service, artifacts) -> None:
    await sign_in(page, service)
    await page.wait_for_url("**/console/customers")
    await shot(page, artifacts, "search")
    await page.get_by_label("App user id, original transaction id or purchase token").fill(
        "tok-grace"
    )
    await page.get_by_role("button", name="Find customer").click()
    await page.wait_for_url(f"**/console/customers/{GRACE}")
    assert "Customer u-grace" in await page.get_by_role("heading", level=1).inner_text()
    purchases = await page.locator("#h-purchases + table").inner_text()
    assert "premium_monthly" in purchases
    assert "tok-grace" in purchases
    assert "grace period" in purchases
    timeline = await page.locator("table.timeline").inner_text()
    assert "Google Play: SUBSCRIPTION_IN_GRACE_PERIOD" in timeline
    assert "Google Play: SUBSCRIPTION_PURCHASED" in timeline
    assert "processed" in timeline
    assert "store time" in timeline
    assert "state change" in timeline
    await shot(page, artifacts, "customer-grace")


async def test_done_when_why_each_customer_has_or_lacks_access(page, service, artifacts) -> None:
    """Refunded, in grace, suspended: the customer page alone says why."""
    await sign_in(page, service)
    await page.goto(service.url(f"/console/customers/{REFUNDED}"))
    text = await why(page)
    assert text.startswith("No access: refunded or revoked by Google Play at ")
    await shot(page, artifacts, "customer-refunded")

    await page.goto(service.url(f"/console/customers/{GRACE}"))
    text = await why(page)
    assert text.startswith("Access: the renewal payment is failing")
    assert "grace period until" in text
    await shot(page, artifacts, "customer-grace-why")

    await page.goto(service.url(f"/console/customers/{APPLE_GRACE}"))
    text = await why(page)
    assert text.startswith("Access: the renewal payment is failing since ")
    assert "App Store keeps access in its grace period until" in text
    timeline = await page.locator("table.timeline").inner_text()
    assert "App Store: DID_FAIL_TO_RENEW / GRACE_PERIOD" in timeline
    await shot(page, artifacts, "customer-apple-grace")

    await page.goto(service.url(f"/console/customers/{SUSPENDED}"))
    text = await why(page)
    assert text.startswith("No access: the account was suspended by operator admin at ")
    assert "with reason “chargeback”" in text
    assert "Without the suspension: access: paid period until" in text
    assert "Suspended" in await page.locator(".facts").inner_text()
    await shot(page, artifacts, "customer-suspended")


async def test_an_action_asks_for_confirmation_then_is_done(page, service, artifacts) -> None:
    await sign_in(page, service)
    await page.goto(service.url(f"/console/customers/{PLAIN}"))
    assert "never had an entitlement" in await page.locator("#main").inner_text()
    await page.get_by_label("Duration").select_option("P7D")
    await page.locator("#grant-reason").fill("support ticket 42")
    await page.get_by_role("button", name="Grant…").click()
    await page.wait_for_url("**/actions/grant")
    heading = await page.get_by_role("heading", level=1).inner_text()
    assert heading == "Confirm: Grant"
    assert "7 days" in await page.locator("dl").inner_text()
    await shot(page, artifacts, "confirm-grant")
    await page.get_by_role("button", name="Yes, grant").click()
    await page.wait_for_url(f"**/console/customers/{PLAIN}?done=*")
    assert "Granted premium." in await page.get_by_role("status").first.inner_text()
    assert (await why(page)).startswith("Access: granted by an operator until ")
    timeline = await page.locator("table.timeline").inner_text()
    assert "grant by admin" in timeline
    assert "reason “support ticket 42”" in timeline


async def test_search_by_original_transaction_id(page, service) -> None:
    await sign_in(page, service)
    await page.get_by_label("App user id, original transaction id or purchase token").fill(
        service.apple.state.original_transaction_id
    )
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/console/customers/{APPLE_GRACE}")


async def test_a_forged_form_is_refused(page, service) -> None:
    await sign_in(page, service)
    await page.goto(service.url(f"/console/customers/{PLAIN}"))
    form = page.locator("form[action$='/actions/suspend']")
    await form.locator("input[name=csrf]").evaluate("input => { input.value = 'forged'; }")
    await form.get_by_role("button").click()
    assert "CSRF" in await page.get_by_role("alert").inner_text()
    await page.goto(service.url(f"/console/customers/{PLAIN}"))
    assert "Suspended" not in await page.locator(".facts").inner_text()


async def test_keyboard_only_and_every_field_labelled(page, service) -> None:
    await page.goto(service.url("/console"))
    # The key field takes the focus on arrival (autofocus), which the browser may apply a
    # moment after the load event: wait for it rather than type into nothing.
    await page.wait_for_function("document.activeElement?.id === 'api_key'", timeout=5000)
    await page.keyboard.type(ADMIN_KEY)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/customers")
    # Tab through the page from the top: the skip link, the menu, then the search field.
    focused = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        focused.append(
            await page.evaluate(
                "document.activeElement.id || document.activeElement.textContent.trim()"
            )
        )
        if focused[-1] == "q":
            break
    assert focused[0] == "Skip to content"
    assert "Journal" in focused
    assert focused[-1] == "q"
    await page.keyboard.type(GRACE)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/console/customers/{GRACE}")
    for path in (f"/console/customers/{GRACE}", "/console/journal"):
        await page.goto(service.url(path))
        unlabelled = await page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => e.labels.length === 0).map(e => e.name)"""
        )
        assert unlabelled == [], path


async def test_journal_and_one_decoded_notification(page, service, artifacts) -> None:
    await sign_in(page, service)
    await page.goto(service.url("/console/journal"))
    await page.get_by_label("Type").select_option("SUBSCRIPTION_IN_GRACE_PERIOD")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("main table tbody tr")
    assert await rows.count() == 1
    await shot(page, artifacts, "journal")
    await rows.first.get_by_role("link").click()
    decoded = await page.locator("pre.payload").first.inner_text()
    assert "(base64) decoded" in decoded
    assert "tok-grace" in decoded
    assert await page.locator("pre.raw").count() == 0
    await page.get_by_role("link", name="Show the raw signed payload").click()
    assert await page.locator("pre.raw").count() == 1
    await shot(page, artifacts, "journal-entry")


async def test_business_page_draws_its_charts(page, service, artifacts) -> None:
    await sign_in(page, service)
    await page.goto(service.url("/console/business"))
    assert await page.locator("svg.chart").count() == 7  # money (3) and the feed (4)
    active = await page.locator("#h-active + svg + ul.legend").inner_text()
    assert "premium · Google Play" in active
    await shot(page, artifacts, "business")
