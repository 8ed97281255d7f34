"""Google Play submissions: package, product and purchase token (validated with the Play API)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from entitlements.model import StoreEvent
from receipts.errors import NotConfigured


async def google_purchase_events(
    app: web.Application, submission: dict[str, Any]
) -> list[StoreEvent]:
    """Verified StoreEvents for a Play submission (wired when the Play path lands)."""
    raise NotConfigured("Google Play is not configured on this service")
