"""`simulate google …` end to end against a minimal webhook built from the Google layer alone.

The handler below is what webhooks/ is expected to do with receipts.google: authenticate,
parse, classify, re-read the Play API (hosted by simulate on its port), acknowledge, fold
the events with the pure state machine. Both the simulator and the handler take their time
from the test's injected clock, advanced between simulated events.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from entitlements.model import PeriodType, PurchaseState, Status
from entitlements.state import apply, mark_superseded, view
from receipts.errors import PushAuthenticationFailed
from receipts.google.play import AccessTokens, PlayClient
from receipts.google.push_auth import PushTokenVerifier
from receipts.google.translate import (
    Category,
    classify,
    needs_acknowledgement,
    parse_push,
    subscription_events,
    voided_event,
)
from simulators.google_signer import DEMO_PUSH_EMAIL
from simulators.simulate_google import DEMO_PACKAGE, ensure_demo_files, simulate
from tests.conftest import Clock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MiniService:
    def __init__(self, keys_dir: Path, play_port: int, clock: Clock) -> None:
        self.keys_dir = keys_dir
        self.play_port = play_port
        self.clock = clock
        self.states: dict[str, PurchaseState] = {}
        self.url = ""

    async def start(self, session: aiohttp.ClientSession) -> None:
        files = ensure_demo_files(self.keys_dir, self.play_port)
        self.tokens = AccessTokens.from_service_account_file(files.service_account)
        self.play = PlayClient(
            session, self.tokens, root_url=f"http://127.0.0.1:{self.play_port}/", backoff=0.01
        )
        app = web.Application()
        app.router.add_post("/webhooks/google", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.verifier = PushTokenVerifier(
            f"{self.url}/webhooks/google", DEMO_PUSH_EMAIL, files.certs.as_uri(), session
        )

    async def stop(self) -> None:
        self.play.close()
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            await self.verifier.verify(request.headers.get("Authorization"))
        except PushAuthenticationFailed:
            return web.json_response({"error": "unauthenticated"}, status=401)
        message = parse_push(await request.read())
        assert message.notification is not None
        note = classify(message.notification, {DEMO_PACKAGE})
        now = self.clock.now
        assert note.purchase_token is not None
        assert note.package_name is not None
        token = note.purchase_token
        events = []
        if note.category is Category.VOIDED:
            voided = voided_event(note, now)
            assert voided is not None
            events.append(voided)
        purchase = await self.play.get_subscription(note.package_name, token)
        events += subscription_events(
            note.notification_type,
            token,
            purchase,
            note.package_name,
            now,
            event_time=note.event_time,
        )
        if needs_acknowledgement(purchase):
            product = purchase["lineItems"][0]["productId"]
            await self.play.acknowledge_subscription(note.package_name, product, token)
        for event in events:
            self.states[event.purchase_id] = apply(self.states.get(event.purchase_id), event)
            if event.supersedes in self.states:
                old = self.states[event.supersedes]
                self.states[event.supersedes] = mark_superseded(
                    old, event.purchase_id, event.occurred_at
                )
        return web.json_response({"status": "processed"})


@pytest.fixture
async def service(tmp_path: Path, clock: Clock) -> AsyncIterator[MiniService]:
    async with aiohttp.ClientSession() as session:
        mini = MiniService(tmp_path / "keys", _free_port(), clock)
        await mini.start(session)
        yield mini
        await mini.stop()


async def _sim(service: MiniService, event: str, **kw: Any) -> dict[str, Any]:
    """Simulate `event` a minute after the previous one (by the injected clock)."""
    service.clock.advance(minutes=1)
    result = await simulate(
        event,
        "u-1",
        "premium_monthly",
        service.url,
        service.keys_dir,
        service.play_port,
        service.keys_dir / "sim.json",
        now=service.clock.now,
        **kw,
    )
    assert result["http_status"] == 200, result
    return result


async def test_subscription_life(service: MiniService) -> None:
    first = await _sim(service, "trial")
    token = first["purchase_token"]
    assert first["acknowledged"] is True  # the new token was acknowledged
    v = view(service.states[token])
    assert (v.status, v.period_type, v.will_renew, v.is_sandbox) == (
        Status.ACTIVE,
        PeriodType.TRIAL,
        True,
        True,
    )
    renewed = await _sim(service, "renew")
    assert renewed["purchase_token"] == token
    assert renewed["acknowledged"] is False  # renewals need no acknowledgement
    assert view(service.states[token]).period_type is PeriodType.NORMAL
    await _sim(service, "cancel")
    v = view(service.states[token])
    assert (v.status, v.will_renew) == (Status.ACTIVE, False)
    assert v.unsubscribe_detected_at is not None
    await _sim(service, "restart")
    assert view(service.states[token]).unsubscribe_detected_at is None
    await _sim(service, "grace")
    v = view(service.states[token])
    assert v.status is Status.GRACE_PERIOD
    assert v.grace_period_expires_at == v.expires_at
    assert v.billing_issue_detected_at is not None
    await _sim(service, "hold")
    assert view(service.states[token]).status is Status.ON_HOLD
    await _sim(service, "recover")
    v = view(service.states[token])
    assert (v.status, v.billing_issue_detected_at) == (Status.ACTIVE, None)
    await _sim(service, "pause")
    assert view(service.states[token]).status is Status.PAUSED
    await _sim(service, "expire")
    assert view(service.states[token]).status is Status.EXPIRED


async def test_revoke_voided_and_linked_resignup(service: MiniService) -> None:
    old = (await _sim(service, "purchase"))["purchase_token"]
    await _sim(service, "cancel")
    new = (await _sim(service, "purchase"))["purchase_token"]  # re-signup before expiry
    assert new != old
    assert view(service.states[old]).status is Status.EXPIRED  # superseded
    assert view(service.states[new]).status is Status.ACTIVE
    await _sim(service, "revoke")
    v = view(service.states[new])
    assert v.status is Status.REVOKED
    assert v.revoked_at is not None
    again = (await _sim(service, "intro"))["purchase_token"]
    assert view(service.states[again]).period_type is PeriodType.INTRO
    await _sim(service, "voided")
    assert view(service.states[again]).status is Status.REVOKED


async def test_wrong_audience_is_refused_and_bad_events_raise(service: MiniService) -> None:
    with pytest.raises(ValueError, match="needs a purchase"):
        await _sim(service, "renew")
    with pytest.raises(ValueError, match="unknown event"):
        await _sim(service, "explode")
    result = await simulate(
        "purchase",
        "u-2",
        "p",
        service.url,
        service.keys_dir,
        service.play_port,
        None,
        audience="https://elsewhere.example.com/",
        now=service.clock.now,
    )
    assert result["http_status"] == 401
