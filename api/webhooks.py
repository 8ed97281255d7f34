"""POST /webhooks/apple and /webhooks/google (contract §3): the store message use case
(services/store_messages.py) for the store the path names, and its one canonical log line.

A 2xx is sent only after the journal entry committed; a message the adapter refuses is
stored nowhere (its 4xx stands); poison is journaled `rejected` and answered 200; outages
(the store or the database away) keep their 503, so the store redelivers.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from api.http import json_response
from api.keys import APPLE, GOOGLE, STORE_MESSAGES
from entitlements.errors import StoreNotConfigured
from receipts.port import StoreAdapter

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()


@routes.post("/webhooks/apple")
async def post_apple_notification(request: web.Request) -> web.Response:
    """POST /webhooks/apple (the App Store; its signed payload is the proof): a server
    notification; `{"status": ...}` with the result, 404 when the App Store is not configured."""
    adapter = request.app.get(APPLE)
    if adapter is None:
        raise StoreNotConfigured("the App Store is not configured on this service")
    return await _notification(request, adapter, "apple_notification")


@routes.post("/webhooks/google")
async def post_google_notification(request: web.Request) -> web.Response:
    """POST /webhooks/google (Google Play via Pub/Sub push; its Authorization is the proof): a
    real-time developer notification; `{"status": ...}` with the result, 404 when Google Play
    is not configured."""
    adapter = request.app.get(GOOGLE)
    if adapter is None:
        raise StoreNotConfigured("Google Play is not configured on this service")
    return await _notification(request, adapter, "google_notification")


async def _notification(request: web.Request, adapter: StoreAdapter, event: str) -> web.Response:
    line: dict[str, Any] = {}  # the one canonical log line: ids only, never tokens
    try:
        body = await request.read()
        authorization = request.headers.get("Authorization")
        status = await request.app[STORE_MESSAGES].notification(adapter, authorization, body, line)
        line["result"] = status
    except Exception as exc:
        line["result"] = getattr(exc, "code", "error")
        raise
    finally:
        log.info(event, **line)
    return json_response({"status": status})
