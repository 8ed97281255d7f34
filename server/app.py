"""The app factory: settings → cleanup contexts (resources) → routes. Only wiring here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import aiohttp
import asyncpg
import redis.asyncio as aredis
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

import console
from api import customers as customers_api
from api import offers as offers_api
from api import ops
from api import outbound as outbox_api
from api import purchases as purchases_api
from api import reads as entitlements_api
from api import refunds as refunds_api
from api import revenue as revenue_api
from api import store_actions as store_actions_api
from api import webhooks as webhooks_api
from api.auth import ApiAuthenticator
from api.keys import (
    APPLE,
    AUTHENTICATOR,
    CACHE,
    CACHE_HEALTH,
    CLOCK,
    CONSOLE_KEYS,
    CONSOLE_READS,
    CONSOLE_STORE,
    EXECUTOR,
    GOOGLE,
    HTTP,
    LOCAL_READS,
    OPERATIONS,
    POOL,
    REGISTRY,
    REVENUE,
    SERVICE,
    SETTINGS,
    STORE_ACTING,
    STORE_MESSAGES,
    SUPPORT_ACTIONS,
)
from api.middleware import HttpMetrics, build_middleware
from api.rate_limit import FailureLimiter
from cache.answers import NoCache, RedisCustomerCache
from cache.health import CacheHealth
from cache.invalidation import InvalidationListener
from cache.local import LocalReads
from config.logging import quiet_malformed_requests
from config.settings import Settings
from entitlements.access import Catalog
from entitlements.model import Clock, Store
from receipts.port import Reconciling
from runtime.background import BackgroundTask
from server.embedded import EmbeddedRedis, database_url
from server.failures import CONNECT_ERRORS, target, unreachable
from server.offers_ctx import offers_ctx
from server.outbound_ctx import outbound_ctx
from server.refunds_ctx import refund_delay, refunds_ctx
from server.retention_ctx import retention_ctx
from server.schema import prepare_schema
from server.stores import apple_ctx, google_ctx, replay_stores
from server.tls import warn_unverified
from services.apps import fill_missing_apps
from services.console_reads import ConsoleReads
from services.ingest import EntitlementService
from services.operations import CustomerOperations
from services.revenue import Revenue
from services.store_actions import ConsoleStore
from services.store_messages import StoreMessages
from services.support_actions import SupportActions
from storage.database import reset_session

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def utc_now() -> datetime:
    """The serving clock (tests inject their own into `create_app`)."""
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Clock = utc_now) -> web.Application:
    """Build the application; resources are created by its cleanup contexts at start-up."""
    registry = CollectorRegistry()
    quiet_malformed_requests()  # a client's unparsable request is not our error (logging)
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[build_middleware(HttpMetrics(registry))],
    )
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[CLOCK] = clock
    app[STORE_ACTING] = {}
    app.cleanup_ctx.extend(
        [executor_ctx, http_ctx, database_ctx, cache_ctx, services_ctx, apple_ctx, google_ctx]
    )
    app.cleanup_ctx.append(retention_ctx)  # after the pool: stopped before it closes
    app.cleanup_ctx.append(outbound_ctx)  # after the pool and the HTTP session, likewise
    app.cleanup_ctx.append(console_store_ctx)  # after the store adapters
    app.cleanup_ctx.append(refunds_ctx)  # after the store adapters and the pool
    app.cleanup_ctx.append(offers_ctx)  # after the services
    app.add_routes(ops.routes)
    app.add_routes(entitlements_api.routes)
    app.add_routes(webhooks_api.routes)
    app.add_routes(refunds_api.routes)
    app.add_routes(store_actions_api.routes)
    app.add_routes(offers_api.routes)
    app.add_routes(revenue_api.routes)
    app.add_routes(purchases_api.routes)
    app.add_routes(customers_api.routes)
    app.add_routes(outbox_api.routes)
    console.setup(app)  # the operator console at /console
    return app


def catalog_from(settings: Settings) -> Catalog:
    """The entitlement catalog of the `[entitlements.*]` settings."""
    return Catalog({name: frozenset(e.products) for name, e in settings.entitlements.items()})


async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """The thread pool for the synchronous store libraries."""
    # Bounded pool for the few synchronous library calls (OCSP checks, credential refresh).
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="receiptd-sync")
    app[EXECUTOR] = executor
    yield
    executor.shutdown(wait=True, cancel_futures=True)


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one shared aiohttp client session, with explicit timeouts."""
    timeout = aiohttp.ClientTimeout(total=15, connect=5, sock_read=10)
    session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
    app[HTTP] = session
    yield
    await session.close()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The PostgreSQL pool (the embedded server when none is configured), migrated."""
    settings = app[SETTINGS]
    configured = settings.database.url.get_secret_value()
    async with database_url(configured, settings.server.data_dir) as url:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=settings.database.pool_min_size,
                max_size=settings.database.pool_max_size,
                command_timeout=settings.database.command_timeout,
                reset=reset_session,
            )
        except CONNECT_ERRORS as exc:
            raise unreachable("the database", url, exc) from None
        try:
            async with pool.acquire() as conn:
                await prepare_schema(conn, settings)
                await fill_missing_apps(conn, settings)
            app[POOL] = pool
            yield
        finally:
            await pool.close()


async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis answer cache, the per-process cache and its invalidation listener (or no
    cache with `url = "off"`)."""
    settings = app[SETTINGS]
    url = settings.redis.url.get_secret_value()
    if url.lower() == "off":
        app[CACHE] = NoCache()
        app[LOCAL_READS] = None  # nothing would tell this process that a customer changed
        yield
        return
    embedded = None
    if not url:
        embedded = EmbeddedRedis(settings.server.data_dir)
        url = await embedded.start()
    client = aredis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
    local = LocalReads(max_age=settings.redis.cache_ttl_seconds)
    # Its own connection: a subscribed connection blocks in reads (no socket timeout).
    channel = aredis.Redis.from_url(url, socket_connect_timeout=0.25)
    listener = InvalidationListener(channel, local)
    if settings.redis.local_cache:
        listener.start()
        await listener.wait_subscribed(seconds=1.0)  # not required: reads work without it
    cache = RedisCustomerCache(client, settings.redis.cache_ttl_seconds, local=local)
    app[CACHE] = cache
    app[CACHE_HEALTH] = health = CacheHealth(client)
    Gauge(
        "receiptd_cache_up",
        "1 while Redis answers (checked every 2 s), 0 while reads fall back to PostgreSQL",
        registry=app[REGISTRY],
    ).set_function(lambda: 1.0 if health.up else 0.0)
    # The first answer before serving: /readyz is right from the start.
    if not await health.check() and settings.redis.required:
        await client.aclose()
        await channel.aclose()
        raise unreachable("Redis", url, ConnectionError(health.reason or "no answer"))
    health.start()
    app[LOCAL_READS] = local if settings.redis.local_cache else None

    # Keys of earlier versions named customers (and some never expired): removed once.
    async def sweep_legacy_keys() -> None:
        await cache.sweep_legacy_keys()

    sweep = BackgroundTask("cache-legacy-sweep", sweep_legacy_keys)
    sweep.start()
    try:
        yield
    finally:
        await sweep.stop()
        await health.stop()
        await listener.aclose()
        await cache.aclose()
        await channel.aclose()
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """The use cases over the pool and the cache, and the authenticator."""
    settings = app[SETTINGS]
    app[SERVICE] = EntitlementService(
        pool=app[POOL],
        cache=app[CACHE],
        catalog=catalog_from(settings),
        clock=app[CLOCK],
        transfer_policy=settings.customers.transfer_policy,
        refund_delay=refund_delay(settings),
    )
    app[STORE_MESSAGES] = StoreMessages(app[SERVICE], app[CLOCK])
    app[CONSOLE_READS] = ConsoleReads(app[POOL])
    app[REVENUE] = Revenue(app[POOL])
    app[OPERATIONS] = CustomerOperations(
        pool=app[POOL], cache=app[CACHE], catalog=app[SERVICE].catalog, clock=app[CLOCK]
    )
    limiter = failure_limiter(settings)  # failed credentials, counted in Redis (its own client)
    app[AUTHENTICATOR] = app[CONSOLE_KEYS] = ApiAuthenticator(settings.auth, app[HTTP], limiter)
    warn_unverified(settings)
    log.info(
        "service_ready",
        listen=f"{settings.server.host}:{settings.server.port}",
        workers=settings.server.workers,
        database=_where(settings.database.url.get_secret_value()),
        cache=_where(settings.redis.url.get_secret_value()),
        apple=settings.apple is not None,
        google=settings.google is not None,
        entitlements=sorted(settings.entitlements),
    )
    yield
    await limiter.aclose()


async def console_store_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store adapters: the console's store actions over those configured."""
    adapters: dict[Store, Reconciling] = {}
    if APPLE in app:
        adapters[Store.APP_STORE] = app[APPLE]
    if GOOGLE in app:
        adapters[Store.PLAY_STORE] = app[GOOGLE]
    settings, pool, clock, catalog = app[SETTINGS], app[POOL], app[CLOCK], app[SERVICE].catalog
    acting = app[STORE_ACTING]
    app[SUPPORT_ACTIONS] = SupportActions(
        pool=pool,
        acting=acting,
        rereading=adapters,
        messages=app[STORE_MESSAGES],
        operations=app[OPERATIONS],
        clock=clock,
    )
    app[CONSOLE_STORE] = ConsoleStore(
        pool=pool,
        messages=app[STORE_MESSAGES],
        catalog=catalog,
        operations=app[OPERATIONS],
        adapters=adapters,
        replay_stores=lambda: replay_stores(settings, pool, clock, catalog),
        cache=app[CACHE],
        clock=app[CLOCK],
    )
    yield


def _where(url: str) -> str:
    """A store's target for the start-up line, never its password."""
    if not url:
        return "embedded"
    return "off" if url.lower() == "off" else target(url)


def failure_limiter(settings: Settings) -> FailureLimiter:
    """The limiter of `settings`, with a Redis client of its own on the [redis] URL (the
    embedded server's socket when the URL is empty; none with "off")."""
    url = settings.redis.url.get_secret_value()
    if url.lower() == "off":
        return FailureLimiter(settings.auth.rate_limit, None)
    if not url:  # cache_ctx starts (or reuses) the embedded server on this socket
        url = f"unix://{EmbeddedRedis(settings.server.data_dir).socket_path}"
    client = aredis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
    return FailureLimiter(settings.auth.rate_limit, client)
