"""Cleanup contexts that build the store adapters from settings (an absent section: disabled).

Credentials policy for Google: the Play Developer API is called with the service account of
`service_account_file`. Without one, requests go out unauthenticated, which only a local fake
answers, so that is allowed only when `play_api_url` points at the loopback interface (tests,
the demo). Both rules, and the required push identity, are enforced by the settings
(config.settings.GoogleSettings), so a bad configuration stops start-up naming the key.

`replay_stores` builds the same adapters for `receiptd replay`, outside a serving app: they
never call a store (their answers come from the journal), and Apple's verifier checks
offline, at each item's signed date, whatever `online_checks` says (replay re-verifies
history; revocation checks are about now). `reconcile_store` builds one store's adapter as
`serve` does, for `receiptd reconcile`, its store API requests spaced by a rate limiter;
`extend_stores` what `receiptd extend` asks (Apple's mass extensions, Play's deferrals and
re-reads), likewise spaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from api.keys import (
    APPLE,
    CLOCK,
    EXECUTOR,
    GOOGLE,
    HTTP,
    POOL,
    SERVICE,
    SETTINGS,
    STORE_ACTING,
)
from config.settings import AppleSettings, GoogleSettings, Settings
from entitlements.access import Catalog
from entitlements.model import Clock, Store
from receipts.apple.actions import REASON_CODES, AppleActions
from receipts.apple.adapter import AppleStore
from receipts.apple.server_api import PRODUCTION_URL, SANDBOX_URL, AppStoreServerClient
from receipts.apple.terms import NonRenewingTerms
from receipts.apple.verifier import AppleVerifier
from receipts.google.acknowledgements import PlayAcknowledgements
from receipts.google.actions import PlayActions
from receipts.google.adapter import GooglePlayStore
from receipts.google.play import PLAY_API_URL, AccessTokens, PlayClient
from receipts.google.push_auth import PushTokenVerifier
from receipts.port import Reconciling, StoreActing, StoreAdapter
from receipts.rate_limit import RateLimiter

log = structlog.get_logger(__name__)


def build_apple_verifier(
    settings: AppleSettings, executor: Executor | None, *, inline: bool = False
) -> AppleVerifier:
    """The verifier for the configured roots and environments (`inline`: see AppleVerifier)."""
    roots = [Path(p).read_bytes() for p in settings.root_certificates]
    first, *others = settings.configured_apps
    return AppleVerifier(
        first.bundle_id,
        first.app_apple_id,
        list(settings.environments),
        roots,
        settings.online_checks,
        executor,
        allow_unsigned=settings.allow_xcode,
        other_apps=[(a.bundle_id, a.app_apple_id) for a in others],
        inline=inline,
    )


async def apple_store(
    settings: AppleSettings,
    session: aiohttp.ClientSession,
    verifier: AppleVerifier,
    limiter: RateLimiter | None = None,
) -> AppleStore:
    """The App Store adapter (with an API client when credentials are configured)."""
    api = None
    if settings.api_configured:
        assert settings.private_key_file is not None
        base = settings.api_base_url.rstrip("/")
        api = AppStoreServerClient(
            session,
            verifier,
            issuer_id=settings.issuer_id,
            key_id=settings.key_id,
            private_key=await asyncio.to_thread(Path(settings.private_key_file).read_bytes),
            bundle_id=settings.configured_apps[0].bundle_id,
            production_url=base or PRODUCTION_URL,
            sandbox_url=base or SANDBOX_URL,
            limiter=limiter,
        )
    return AppleStore(verifier, api, NonRenewingTerms(settings.non_renewing_terms))


async def apple_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the App Store adapter on `app[APPLE]` when [apple] is configured
    (else none: the store is disabled)."""
    settings = app[SETTINGS].apple
    if settings is None:
        yield
        return
    verifier = await asyncio.to_thread(build_apple_verifier, settings, app[EXECUTOR])
    app[APPLE] = adapter = await apple_store(settings, app[HTTP], verifier)
    if adapter.api is not None:
        app[STORE_ACTING][Store.APP_STORE] = AppleActions(adapter.api)
    log.info("apple_enabled", environments=list(settings.environments), api=adapter.api is not None)
    yield


def _load_tokens(path: Path) -> AccessTokens:
    return AccessTokens.from_service_account_file(path)


async def google_store(
    settings: GoogleSettings,
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    clock: Clock,
    catalog: Catalog,
    *,
    limiter: RateLimiter | None = None,
) -> tuple[GooglePlayStore, PlayClient, PlayAcknowledgements]:
    """The Play adapter, its Play client and its acknowledgements (for the caller to start,
    stop and close)."""
    tokens = None
    if settings.service_account_file is not None:
        tokens = await asyncio.to_thread(_load_tokens, settings.service_account_file)
    play = PlayClient(
        session,
        tokens,
        root_url=settings.play_api_url or PLAY_API_URL,
        allow_anonymous=tokens is None,  # only reachable for a loopback play_api_url
        limiter=limiter,
    )
    acks = PlayAcknowledgements(pool, play, clock)
    adapter = GooglePlayStore(
        verifier=PushTokenVerifier(
            settings.pubsub_audience,
            settings.pubsub_service_account,
            settings.pubsub_certs_url or None,  # None: Google's oauth2/v1/certs
            session,
        ),
        play=play,
        acks=acks,
        package_names=frozenset(settings.package_names),
        consumable_products=frozenset(settings.consumable_products),
        known_products=frozenset().union(*catalog.products_by_entitlement.values()),
    )
    return adapter, play, acks


async def google_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the Google Play adapter on `app[GOOGLE]` when [google] is configured,
    its acknowledgements running until the app stops (else none: the store is disabled)."""
    settings = app[SETTINGS].google
    if settings is None:
        yield
        return
    adapter, play, acks = await google_store(
        settings, app[HTTP], app[POOL], app[CLOCK], app[SERVICE].catalog
    )
    app[GOOGLE] = adapter
    app[STORE_ACTING][Store.PLAY_STORE] = PlayActions(play, sorted(settings.package_names)[0])
    acks.start()
    log.info(
        "google_enabled",
        packages=sorted(settings.package_names),
        credentials="service_account"
        if settings.service_account_file is not None
        else "anonymous (loopback)",
    )
    try:
        yield
    finally:
        await acks.stop()
        play.close()


@contextlib.asynccontextmanager
async def replay_stores(
    settings: Settings,
    pool: asyncpg.Pool,
    clock: Clock,
    catalog: Catalog,
    *,
    inline: bool = False,
) -> AsyncIterator[dict[Store, StoreAdapter]]:
    """The configured stores' adapters, built as `serve` builds them, for replay; `inline`
    (the `receiptd replay` process only, never a serving one): Apple verifies on the loop's
    thread."""
    adapters: dict[Store, StoreAdapter] = {}
    async with aiohttp.ClientSession() as session:  # never used: answers come from the journal
        play = None
        try:
            if settings.apple is not None:
                offline = settings.apple.model_copy(update={"online_checks": False})
                verifier = await asyncio.to_thread(
                    functools.partial(build_apple_verifier, offline, None, inline=inline)
                )
                adapters[Store.APP_STORE] = await apple_store(settings.apple, session, verifier)
            if settings.google is not None:
                google, play, _acks = await google_store(
                    settings.google, session, pool, clock, catalog
                )
                adapters[Store.PLAY_STORE] = google
            yield adapters
        finally:
            if play is not None:
                play.close()


@contextlib.asynccontextmanager
async def reconcile_store(
    settings: Settings,
    store: Store,
    pool: asyncpg.Pool,
    clock: Clock,
    catalog: Catalog,
    *,
    limiter: RateLimiter,
) -> AsyncIterator[Reconciling]:
    """The store's adapter, built as `serve` builds it (its section must be configured)."""
    timeout = aiohttp.ClientTimeout(total=15, connect=5, sock_read=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if store is Store.APP_STORE:
            assert settings.apple is not None
            verifier = await asyncio.to_thread(build_apple_verifier, settings.apple, None)
            yield await apple_store(settings.apple, session, verifier, limiter)
            return
        assert settings.google is not None
        adapter, play, _acks = await google_store(
            settings.google, session, pool, clock, catalog, limiter=limiter
        )
        try:
            yield adapter
        finally:
            play.close()


@dataclass(frozen=True, slots=True)
class AppleMassExtensions:
    """Apple's mass extension and its status on the App Store Server API (`api`), asked in
    our reason words (customer_satisfaction, service_outage, other)."""

    api: AppStoreServerClient

    def for_app(self, bundle_id: str | None) -> AppleMassExtensions:
        """The same, asking about the app `bundle_id` (None: the configured app)."""
        return AppleMassExtensions(self.api.for_app(bundle_id))

    async def mass_extend(
        self,
        environment: str,
        *,
        product_id: str,
        days: int,
        reason: str,
        request_identifier: str,
    ) -> None:
        """Extend Subscription Renewal Dates for All Active Subscribers of `product_id`."""
        await self.api.mass_extend(
            environment,
            product_id=product_id,
            days=days,
            reason_code=REASON_CODES[reason],
            request_identifier=request_identifier,
        )

    async def mass_extend_status(
        self, environment: str, product_id: str, request_identifier: str
    ) -> dict[str, Any]:
        """Get Status of Subscription-Renewal-Date Extensions of one mass extension."""
        return await self.api.mass_extend_status(environment, product_id, request_identifier)


@dataclass(frozen=True, slots=True)
class ExtendStores:
    """What `receiptd extend` asks: Apple's mass extensions (None: no API credentials), Play's
    deferrals and the Play adapter that re-reads (None: no [google] section)."""

    apple: AppleMassExtensions | None
    play: StoreActing | None
    play_reads: Reconciling | None


@contextlib.asynccontextmanager
async def extend_stores(
    settings: Settings,
    pool: asyncpg.Pool,
    clock: Clock,
    catalog: Catalog,
    *,
    apple_limiter: RateLimiter,
    google_limiter: RateLimiter,
) -> AsyncIterator[ExtendStores]:
    """The configured stores' actions, built as `serve` builds them, each store's requests
    spaced by its limiter."""
    timeout = aiohttp.ClientTimeout(total=15, connect=5, sock_read=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        apple = None
        if settings.apple is not None and settings.apple.api_configured:
            verifier = await asyncio.to_thread(build_apple_verifier, settings.apple, None)
            api = (await apple_store(settings.apple, session, verifier, apple_limiter)).api
            apple = AppleMassExtensions(api) if api is not None else None
        if settings.google is None:
            yield ExtendStores(apple, None, None)
            return
        adapter, play, _acks = await google_store(
            settings.google, session, pool, clock, catalog, limiter=google_limiter
        )
        try:
            actions = PlayActions(play, sorted(settings.google.package_names)[0])
            yield ExtendStores(apple, actions, adapter)
        finally:
            play.close()
