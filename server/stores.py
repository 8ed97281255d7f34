"""Cleanup contexts that build the store adapters from settings (absent section = disabled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from config.settings import AppleSettings
from receipts.apple import AppleVerifier, AppStoreServerClient
from receipts.apple.api import PRODUCTION_URL, SANDBOX_URL
from receipts.apple.terms import NonRenewingTerms
from server.app_keys import EXECUTOR, HTTP, SETTINGS
from webhooks.apple import APPLE_API, APPLE_TERMS, APPLE_VERIFIER

log = structlog.get_logger(__name__)


def build_apple_verifier(settings: AppleSettings, executor: object | None) -> AppleVerifier:
    """The verifier for the configured roots and environments."""
    roots = [Path(p).read_bytes() for p in settings.root_certificates]
    return AppleVerifier(
        settings.bundle_id,
        settings.app_apple_id,
        list(settings.environments),
        roots,
        settings.online_checks,
        executor,  # type: ignore[arg-type]
    )


async def apple_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].apple
    if settings is None:
        yield
        return
    verifier = await asyncio.to_thread(build_apple_verifier, settings, app[EXECUTOR])
    app[APPLE_VERIFIER] = verifier
    app[APPLE_TERMS] = NonRenewingTerms(settings.non_renewing_terms)
    if settings.api_configured:
        assert settings.private_key_file is not None
        base = settings.api_base_url.rstrip("/")
        app[APPLE_API] = AppStoreServerClient(
            app[HTTP],
            verifier,
            issuer_id=settings.issuer_id,
            key_id=settings.key_id,
            private_key=await asyncio.to_thread(Path(settings.private_key_file).read_bytes),
            bundle_id=settings.bundle_id,
            production_url=base or PRODUCTION_URL,
            sandbox_url=base or SANDBOX_URL,
        )
    log.info("apple_enabled", environments=list(settings.environments), api=settings.api_configured)
    yield
