"""The Google Play cleanup context: push verifier, Play API client, acknowledgement retries.

Credentials policy: the Play Developer API is called with the service account of
`service_account_file`. Without one, requests go out unauthenticated, which only a local
fake answers, so that is allowed only when `play_api_url` points at the loopback interface
(tests, the demo). Both rules, and the required push identity, are enforced by the settings
(config.settings.GoogleSettings), so a bad configuration stops start-up naming the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from entitlements.api import CLOCK
from receipts.google.play import PLAY_API_URL, AccessTokens, PlayClient
from receipts.google.push_auth import PushTokenVerifier
from server.app_keys import HTTP, SETTINGS
from server.ops import POOL
from webhooks.google_play import GOOGLE_PLAY, GooglePlay
from webhooks.play_acks import PlayAcknowledgements

log = structlog.get_logger(__name__)


def _load_tokens(path: Path) -> AccessTokens:
    return AccessTokens.from_service_account_file(path)


async def google_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].google
    if settings is None:
        yield
        return
    tokens = None
    if settings.service_account_file is not None:
        tokens = await asyncio.to_thread(_load_tokens, settings.service_account_file)
    session = app[HTTP]
    play = PlayClient(
        session,
        tokens,
        root_url=settings.play_api_url or PLAY_API_URL,
        allow_anonymous=tokens is None,  # only reachable for a loopback play_api_url
    )
    acks = PlayAcknowledgements(app[POOL], play, app[CLOCK])
    app[GOOGLE_PLAY] = GooglePlay(
        verifier=PushTokenVerifier(
            settings.pubsub_audience,
            settings.pubsub_service_account,
            settings.pubsub_certs_url or None,  # None: Google's oauth2/v1/certs
            session,
        ),
        play=play,
        acks=acks,
        pool=app[POOL],
        package_names=frozenset(settings.package_names),
        consumable_products=frozenset(settings.consumable_products),
    )
    acks.start()
    log.info(
        "google_enabled",
        packages=sorted(settings.package_names),
        credentials="service_account" if tokens is not None else "anonymous (loopback)",
    )
    try:
        yield
    finally:
        await acks.stop()
        play.close()
