"""`simulate()` posts signed notifications over HTTP and continues one lifecycle across calls."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from receipts.apple.translate import notification_events
from receipts.apple.verifier import AppleVerifier
from simulators.apple_ca import TestCA
from simulators.apple_scenarios import simulate

USER = "0b7e3f4c-2d9a-4f8e-9c1b-5a6d7e8f9a0b"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[str, list[Any]]]:
    """A stand-in /webhooks/apple that verifies with the CA simulate() stores in tmp_path."""
    ca = TestCA.load_or_create(tmp_path / "ca")
    verifier = AppleVerifier("com.example.app", 1234567890, ["Sandbox"], [ca.root_der], False)
    seen: list[Any] = []

    async def webhook(request: web.Request) -> web.Response:
        note = await verifier.verify_notification((await request.json())["signedPayload"])
        seen.extend(notification_events(note))
        return web.json_response({"status": "processed", "type": note.notification_type})

    app = web.Application()
    app.router.add_post("/webhooks/apple", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_successive_calls_continue_the_lifecycle(
    tmp_path: Path, receiver: tuple[str, list[Any]]
) -> None:
    url, seen = receiver
    state = tmp_path / "state.json"
    first = await simulate("subscribe", USER, "premium", url, tmp_path / "ca", state, now=NOW)
    assert first["http_status"] == 200
    assert first["response"] == {"status": "processed", "type": "SUBSCRIBED"}
    assert "hint" not in first
    later = NOW + dt.timedelta(days=30)
    second = await simulate("renew", USER, "premium", url, tmp_path / "ca", state, now=later)
    assert second["original_transaction_id"] == first["original_transaction_id"]
    assert [e.purchase_id for e in seen] == [first["original_transaction_id"]] * 2
    assert [e.app_user_id for e in seen] == [USER, USER]
    assert seen[1].transaction.expires_at == later + dt.timedelta(days=30)
    assert seen[1].transaction.transaction_id != seen[0].transaction.transaction_id
    assert (
        json.loads(state.read_text())[f"{USER}|premium"]["original_transaction_id"]
        == (first["original_transaction_id"])
    )


async def test_non_uuid_user_gets_a_hint(tmp_path: Path, receiver: tuple[str, list[Any]]) -> None:
    url, seen = receiver
    answer = await simulate("subscribe", "alice", "premium", url, tmp_path / "ca", None, now=NOW)
    assert answer["http_status"] == 200
    assert "UUID" in answer["hint"]
    assert seen[0].app_user_id is None


async def test_unknown_event(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown Apple event"):
        await simulate("explode", USER, "p", "http://127.0.0.1:9", tmp_path / "ca", None, now=NOW)
