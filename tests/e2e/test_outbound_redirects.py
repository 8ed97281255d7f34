"""Outbound webhooks answered by a redirect (services/outbound.py): only a 2xx answer
delivers an event. A 3xx is a failed attempt, retried with backoff like a 500, and its
Location is never followed, so the event never reaches a URL nobody configured (a followed
301/302 would even turn the POST into a bodiless GET answered 200: the event lost). A real
receiving aiohttp server on 127.0.0.1, the real app, PostgreSQL and Redis; tests drive the
passes and move the injected clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from api.keys import OUTBOUND
from services.outbound import endpoint_key
from tests.e2e.test_outbound_webhooks import MAXIMUM, grant, metrics, webhook_config, webhooks


@dataclass
class Redirecting:
    """POST /hook answers `status` with a Location to /target (or 200 once `fixed`);
    /target answers 200 to any method. Both record what reached them."""

    status: int
    fixed: bool = False
    hook: list[dict[str, Any]] = field(default_factory=list)
    target: list[str] = field(default_factory=list)

    async def handle_hook(self, request: web.Request) -> web.Response:
        self.hook.append(json.loads(await request.read()))
        if self.fixed:
            return web.Response(status=200)
        return web.Response(status=self.status, headers={"Location": "/target"})

    async def handle_target(self, request: web.Request) -> web.Response:
        self.target.append(f"{request.method} {await request.text()}")
        return web.Response(status=200, text="ok")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_failed_attempt_retried_and_never_followed(
    make_client, config, clock, aiohttp_server, status
) -> None:
    receiver = Redirecting(status)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle_hook)
    app.router.add_route("*", "/target", receiver.handle_target)
    server = await aiohttp_server(app)
    url = str(server.make_url("/hook"))
    client = await make_client(webhook_config(config, url))
    delivery = client.app[OUTBOUND]
    await delivery.stop()  # the test drives every pass
    key = endpoint_key(url)
    await grant(client, "u-1", 1)

    assert await delivery.run_once() == 1
    [state] = await webhooks(client)
    assert (state["pending"], state["retrying"]) == (1, 1)
    assert state["last_error"] == f"http {status}"
    assert state["last_success_at"] is None
    assert await delivery.run_once() == 0  # backing off
    clock.advance(seconds=MAXIMUM)
    assert await delivery.run_once() == 1  # retried: the same event again
    assert [e["sequence"] for e in receiver.hook] == [1, 1]
    assert len({e["id"] for e in receiver.hook}) == 1
    m = await metrics(client)
    assert m[f'receiptd_webhook_attempts_total{{endpoint="{key}",result="http_error"}}'] == 2
    assert f'receiptd_webhook_attempts_total{{endpoint="{key}",result="success"}}' not in m

    receiver.fixed = True  # the receiver answers 200 itself: now it is delivered
    clock.advance(seconds=MAXIMUM)
    assert await delivery.run_once() == 1
    [state] = await webhooks(client)
    assert (state["pending"], state["retrying"]) == (0, 0)
    assert state["last_success_at"] is not None
    assert await delivery.run_once() == 0
    assert receiver.target == []  # the Location was never followed
