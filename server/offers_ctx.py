"""The cleanup context of offers: `app[OFFERS]`, signing with the App Store Server API key
when one is configured (else every offer answers 422 `offers_not_configured`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from api.keys import CLOCK, OFFERS, POOL, SERVICE, SETTINGS
from config.settings import Settings
from services.offers import Offers, SigningKey


async def signing_key(settings: Settings) -> SigningKey | None:
    """The In-App Purchase key of `[apple]` that signs offers, or None without one."""
    apple = settings.apple
    if apple is None or not apple.api_configured or apple.private_key_file is None:
        return None
    key = await asyncio.to_thread(Path(apple.private_key_file).read_bytes)
    bundles = tuple(app.bundle_id for app in apple.configured_apps)
    return SigningKey(apple.issuer_id, apple.key_id, key, bundles)


async def offers_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the services: the offers use case on `app[OFFERS]`."""
    settings = app[SETTINGS]
    key = await signing_key(settings)
    app[OFFERS] = Offers(app[POOL], app[SERVICE], settings.offers, key, app[CLOCK])
    yield
