"""POST /webhooks/apple and /webhooks/google (contract §3): read → store adapter → ingest →
answer, the same for both stores.

The adapter authenticates and verifies (nothing is stored for a request it refuses); a message
with nothing left to resolve is journaled with its verdict; otherwise a cheap look-up of the
store's message id skips a store API call for a redelivery, the adapter resolves the events,
and the journal row, the events and the follow-up rows commit in one transaction (the
journal's unique message id stays the real guard). A 2xx is sent only after that commit.

The journal row keeps the raw message and every store API answer its events came from, with
the service-clock time they were read at, so `receiptd replay` can re-derive them.

Poison: once a message is authenticated and verified, a failure to turn it into events that no
retry can cure (a translator bug, a store payload shape we do not read: any exception that is
not an outage) is journaled `rejected`, with the exception's type as the reason, and answered
200, so the store does not redeliver it for days; it is logged as an error, with ids only.
Outages keep their 503 (the store or the database is away: the redelivery will work).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from api.http import json_response
from api.keys import APPLE, CLOCK, GOOGLE, SERVICE
from entitlements.errors import DatabaseUnavailable, EntitlementError, StoreNotConfigured
from receipts.errors import MalformedPayload, ReceiptError, StoreUnavailable
from receipts.port import Inbound, Resolution, StoreAdapter
from receipts.recording import reads_document
from storage.database import DB_DOWN_ERRORS
from storage.purchases import NotificationRow

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

# A store or the database away: the redelivery will work, so never poison (503 stands).
OUTAGES: tuple[type[BaseException], ...] = (StoreUnavailable, DatabaseUnavailable)
# A connection cut or timed out that no store client translated: an outage as well (503).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (*DB_DOWN_ERRORS, aiohttp.ClientError)


@routes.post("/webhooks/apple")
async def post_apple_notification(request: web.Request) -> web.Response:
    adapter = request.app.get(APPLE)
    if adapter is None:
        raise StoreNotConfigured("the App Store is not configured on this service")
    return await _notification(request, adapter, "apple_notification")


@routes.post("/webhooks/google")
async def post_google_notification(request: web.Request) -> web.Response:
    adapter = request.app.get(GOOGLE)
    if adapter is None:
        raise StoreNotConfigured("Google Play is not configured on this service")
    return await _notification(request, adapter, "google_notification")


async def _notification(request: web.Request, adapter: StoreAdapter, event: str) -> web.Response:
    line: dict[str, Any] = {}  # the one canonical log line: ids only, never tokens
    try:
        status = await _handle(request, adapter, line)
        line["result"] = status
    except Exception as exc:
        line["result"] = getattr(exc, "code", "error")
        raise
    finally:
        log.info(event, **line)
    return json_response({"status": status})


async def _handle(request: web.Request, adapter: StoreAdapter, line: dict[str, Any]) -> str:
    body = await request.read()
    inbound = await adapter.receive(request.headers.get("Authorization"), body)
    line.update(inbound.log)
    service = request.app[SERVICE]
    now = request.app[CLOCK]()
    if inbound.settled is not None:
        resolution = Resolution([], result=inbound.settled, reason=inbound.reason)
    else:
        if await service.journal_seen(inbound.store, inbound.message_id):
            return "duplicate"
        resolution = await _resolve(adapter, inbound, now, line)
        line.update(resolution.log)
    outcome = await service.ingest(
        journal_row(inbound, resolution, now), resolution.events, also=resolution.write
    )
    if outcome.status == "processed":
        await resolution.after_commit()
    return outcome.status


async def _resolve(
    adapter: StoreAdapter, inbound: Inbound, now: datetime, line: dict[str, Any]
) -> Resolution:
    """The adapter's resolution, or a `rejected` one when the message is poison."""
    try:
        return await adapter.resolve(inbound, now)
    except OUTAGES:
        raise
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable() from exc
    except MalformedPayload as exc:  # a shape we do not read: our messages never quote values
        reason = f"unreadable: {exc.message}"
    except (ReceiptError, EntitlementError):
        raise  # one of our verdicts (not found, not ours, …): its status stands
    except Exception as exc:
        reason = f"translation failed: {type(exc).__name__}"  # str(exc) may quote the payload
    log.error("store_notification_poisoned", reason=reason, **inbound.log)
    line["reason"] = reason
    return Resolution([], result="rejected", reason=reason)


def journal_row(inbound: Inbound, resolution: Resolution, now: datetime) -> NotificationRow:
    """The raw message for the journal, with the verdict of its processing and the store
    answers it used (read at `now`)."""
    return NotificationRow(
        store=inbound.store,
        message_id=inbound.message_id,
        notification_type=inbound.type_name,
        subtype=inbound.subtype,
        signed_at=inbound.stated_at,
        purchase_id=inbound.purchase_id,
        result=resolution.result,
        reason=resolution.reason,
        payload=inbound.payload,
        reads=reads_document(now, resolution.reads),
    )
