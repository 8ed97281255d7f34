"""How every CLI command that works on the data starts (`prune`, `replay`, `reconcile`): the
settings it was given, its database (the configured one, or the embedded server on the data
directory), a pool, the schema migrated as `serve` migrates it, the catalog and the clock; and
the serving processes' cache, for commands whose fixes change what clients read."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from redis import asyncio as aredis

from cache.answers import CustomerCache, NoCache, RedisCustomerCache
from config.settings import Settings
from entitlements.access import Catalog
from entitlements.model import Clock
from server.app import catalog_from
from server.embedded import EmbeddedRedis, database_url, redis_answers
from server.failures import CONNECT_ERRORS, unreachable
from server.refunds_ctx import refund_delay
from server.schema import prepare_schema
from server.tls import warn_unverified
from services.apps import fill_missing_apps
from services.ingest import EntitlementService


def utc_now() -> datetime:
    """The commands' clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Command:
    """What a command works with once started."""

    settings: Settings
    pool: asyncpg.Pool
    catalog: Catalog
    clock: Clock

    def service(self, cache: CustomerCache) -> EntitlementService:
        """The ingest service, as `serve` builds it, writing through `cache`."""
        return EntitlementService(
            self.pool,
            cache,
            self.catalog,
            self.clock,
            self.settings.customers.transfer_policy,
            refund_delay=refund_delay(self.settings),
        )


@contextlib.asynccontextmanager
async def command(
    settings: Settings, *, connections: int = 1, clock: Clock | None = None
) -> AsyncIterator[Command]:
    """The command's database (at most `connections` at a time), migrated; closed after.
    The clock is `utc_now` unless given."""
    warn_unverified(settings)
    configured = settings.database.url.get_secret_value()
    async with database_url(configured, settings.server.data_dir) as url:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=connections)
        except CONNECT_ERRORS as exc:
            raise unreachable("the database", url, exc) from None
        try:
            async with pool.acquire() as conn:
                await prepare_schema(conn, settings)  # as serve does: this version's schema
                await fill_missing_apps(conn, settings)
            yield Command(settings, pool, catalog_from(settings), clock or utc_now)
        finally:
            await pool.close()


@contextlib.asynccontextmanager
async def cache_for_fixes(
    settings: Settings, done: str = "fixed"
) -> AsyncIterator[tuple[CustomerCache, str]]:
    """The serving processes' cache, to invalidate what a fix (or a reconciliation: `done`)
    changes, and a phrase for the summary. Not reachable: a cached record lives at most
    `redis.cache_ttl_seconds`."""
    ttl = settings.redis.cache_ttl_seconds
    url = settings.redis.url.get_secret_value()
    if url.lower() == "off":
        yield NoCache(), "none configured"
        return
    if not url:  # embedded: the serving process's Redis on this data dir, if it runs
        url = f"unix://{EmbeddedRedis(settings.server.data_dir).socket_path}"
    if not await redis_answers(url):
        yield NoCache(), f"not reachable; cached reads may be stale for up to {ttl} s"
        return
    client = aredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    cache = RedisCustomerCache(client, ttl)
    try:
        yield cache, f"invalidated for the customers {done}"
    finally:
        await cache.aclose()
        await client.aclose()
