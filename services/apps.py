"""The app of purchases stored before apps were recorded (migration 0010): with one app per
store configured, it can only be that one; with several, the journal says (`receiptd replay
--fix` re-derives each purchase's app from the store's own statements)."""

from __future__ import annotations

import asyncpg
import structlog

from config.settings import Settings
from entitlements.model import Store
from storage import purchases as purchases_db

log = structlog.get_logger(__name__)


async def fill_missing_apps(conn: asyncpg.Connection, settings: Settings) -> None:
    """Give every purchase without an app its store's one configured app; log how many are
    left without one where a store has several apps (idempotent: cheap once done)."""
    configured: dict[Store, tuple[str, ...]] = {}
    if settings.apple is not None:
        configured[Store.APP_STORE] = tuple(a.bundle_id for a in settings.apple.configured_apps)
    if settings.google is not None:
        configured[Store.PLAY_STORE] = settings.google.package_names
    for store, apps in configured.items():
        if len(apps) == 1:
            filled = await purchases_db.fill_apps(conn, store, apps[0])
            if filled:
                log.info("purchase_apps_filled", store=store.value, app=apps[0], purchases=filled)
            continue
        left = await purchases_db.count_without_app(conn, store)
        if left:
            log.warning(
                "purchase_apps_unknown",
                store=store.value,
                purchases=left,
                fix="receiptd replay --fix re-derives each purchase's app from the journal",
            )
