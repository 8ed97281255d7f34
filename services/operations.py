"""Operator actions on customers (contract §3 "Operators and internal services", §4): grants,
suspension, aliases, the GDPR export and erasure. Each is one transaction that writes its
change, an audit row (who, when, what, why) and a change-feed event, then invalidates every
cached read of the customer (its id and its aliases).

An alias stands for the customer it was merged into: acting on an alias acts on that
customer. Lock order matches ingest (purchases, then customers, then the feed lock).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from cache.answers import CustomerCache
from entitlements.access import Catalog, entitlements_of, rfc3339
from entitlements.audit import Actor, AuditEntry
from entitlements.errors import AliasConflict, InvalidRequest
from entitlements.model import Clock
from storage import customers as customers_db
from storage import purchases as purchases_db
from storage.database import run

log = structlog.get_logger(__name__)

PSEUDONYM_PREFIX = "erased:"


Work = Callable[[asyncpg.Connection, str, datetime], Awaitable[dict[str, Any] | None]]


class CustomerOperations:
    """The operator actions; `SERVICE`'s sibling on the application."""

    def __init__(
        self, pool: asyncpg.Pool, cache: CustomerCache, catalog: Catalog, clock: Clock
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._catalog = catalog
        self._clock = clock

    # --- grants and suspension -------------------------------------------------------------

    async def grant(
        self,
        app_user_id: str,
        entitlement: str,
        expires_at: datetime | None,
        actor: Actor,
        reason: str | None = None,
    ) -> str:
        """Give `entitlement` from now until `expires_at` (None: lifetime); the customer id."""

        async def work(conn: asyncpg.Connection, customer: str, now: datetime) -> dict[str, Any]:
            await customers_db.add_grant(conn, customer, entitlement, now, expires_at)
            return {"entitlement": entitlement, "expires_at": rfc3339(expires_at)}

        return await self._act(
            app_user_id, "grant", "grant_added", work, actor=actor, reason=reason
        )

    async def end_grants(
        self, app_user_id: str, entitlement: str, actor: Actor, reason: str | None = None
    ) -> str:
        """End the customer's running grants of `entitlement` (store purchases untouched)."""

        async def work(conn: asyncpg.Connection, customer: str, now: datetime) -> dict[str, Any]:
            ended = await customers_db.end_grants(conn, customer, entitlement, now)
            return {"entitlement": entitlement, "ended": ended}

        return await self._act(
            app_user_id, "end_grants", "grants_ended", work, actor=actor, reason=reason
        )

    async def suspend(self, app_user_id: str, actor: Actor, reason: str | None = None) -> str:
        """Every entitlement reads inactive until `unsuspend`; store data keeps flowing."""

        async def work(conn: asyncpg.Connection, customer: str, now: datetime) -> None:
            await customers_db.suspend(conn, customer, now)

        return await self._act(
            app_user_id, "suspend", "suspended", work, actor=actor, reason=reason
        )

    async def unsuspend(self, app_user_id: str, actor: Actor, reason: str | None = None) -> str:
        """Entitlements read what the stores say now."""

        async def work(conn: asyncpg.Connection, customer: str, now: datetime) -> None:
            await customers_db.unsuspend(conn, customer, now)

        return await self._act(
            app_user_id, "unsuspend", "unsuspended", work, actor=actor, reason=reason
        )

    async def _act(
        self,
        requested: str,
        action: str,
        event_type: str,
        work: Work,
        *,
        actor: Actor,
        reason: str | None,
    ) -> str:
        now = self._clock()

        async def tx(conn: asyncpg.Connection) -> tuple[str, list[str]]:
            async with conn.transaction():
                customer = await customers_db.alias_owner(conn, requested) or requested
                await purchases_db.ensure_customer(conn, customer)
                await customers_db.lock_customer_row(conn, customer)
                details = dict(await work(conn, customer, now) or {})
                if reason is not None:
                    details["reason"] = reason
                entry = AuditEntry(actor.name, action, customer, actor.request_id, details)
                await customers_db.audit(conn, entry, now)
                await self._record(conn, [(customer, event_type)], now)
                return customer, await purchases_db.aliases_of(conn, [customer])

        customer, aliases = await run(self._pool, tx)
        await self._cache.invalidate({requested, customer, *aliases})
        log.info("customer_" + action, app_user_id=customer, actor=actor.name)
        return customer

    async def note(
        self, app_user_id: str, action: str, actor: Actor, details: dict[str, Any]
    ) -> str:
        """An audit row alone, for an action whose changes (if any) were written on their
        own path (the console's re-read and replay of a customer); the customer id."""
        now = self._clock()

        async def tx(conn: asyncpg.Connection) -> str:
            customer = await customers_db.alias_owner(conn, app_user_id) or app_user_id
            entry = AuditEntry(actor.name, action, customer, actor.request_id, details)
            await customers_db.audit(conn, entry, now)
            return customer

        customer = await run(self._pool, tx)
        log.info("customer_" + action, app_user_id=customer, actor=actor.name)
        return customer

    # --- aliases ---------------------------------------------------------------------------

    async def add_alias(self, app_user_id: str, alias: str, actor: Actor) -> str:
        """Merge `alias` (an anonymous id, an old id) into `app_user_id`: its purchases and
        grants move, and reads of the alias answer for `app_user_id` from now on."""
        if alias == app_user_id:
            raise InvalidRequest("a customer cannot be its own alias")
        now = self._clock()

        async def tx(conn: asyncpg.Connection) -> list[str]:
            async with conn.transaction():
                if await customers_db.alias_owner(conn, app_user_id) is not None:
                    raise AliasConflict(f"{app_user_id!r} is itself an alias of a customer")
                owner = await customers_db.alias_owner(conn, alias)
                if owner == app_user_id:
                    return []  # already merged: nothing to do
                if owner is not None:
                    raise AliasConflict("this alias belongs to another customer")
                erased = await purchases_db.erased_among(conn, [app_user_id, alias])
                if erased:
                    raise AliasConflict("an erased customer cannot take part in a merge")
                await customers_db.lock_purchases_of(conn, [alias])
                await purchases_db.ensure_customer(conn, app_user_id)
                alias_known = await customers_db.customer_exists(conn, alias)
                await customers_db.move_to(conn, app_user_id, alias, now)
                for customer, role in ((app_user_id, "target"), (alias, "alias")):
                    entry = AuditEntry(actor.name, "alias", customer, actor.request_id)
                    await customers_db.audit(conn, _with(entry, {"role": role}), now)
                changed = [(app_user_id, "alias_merged")]
                if alias_known:
                    changed.append((alias, "alias_merged"))
                await self._record(conn, changed, now)
                await customers_db.retire(conn, alias, app_user_id, now)
                return await purchases_db.aliases_of(conn, [app_user_id])

        aliases = await run(self._pool, tx)
        await self._cache.invalidate({app_user_id, alias, *aliases})
        log.info("customer_alias", app_user_id=app_user_id, actor=actor.name)
        return app_user_id

    # --- GDPR ------------------------------------------------------------------------------

    async def export(self, app_user_id: str, actor: Actor) -> dict[str, Any]:
        """Everything stored about the customer, as one JSON document (access, portability)."""
        now = self._clock()

        async def tx(conn: asyncpg.Connection) -> dict[str, Any]:
            async with conn.transaction():
                customer = await customers_db.alias_owner(conn, app_user_id) or app_user_id
                if await customers_db.customer_exists(conn, customer):
                    entry = AuditEntry(actor.name, "export", customer, actor.request_id)
                    await customers_db.audit(conn, entry, now)
                document = await customers_db.export(conn, customer)
            return {"app_user_id": customer, "exported_at": rfc3339(now), **document}

        return await run(self._pool, tx)

    async def erase(self, app_user_id: str, actor: Actor) -> None:
        """Erase the person: the id (and its aliases) is replaced by a pseudonym in what must
        be kept for accounting (purchases, the change feed, the audit log), everything else
        goes (grants, aliases, the raw payloads of its purchases, the customer row). The id
        then reads as unknown; a later store notification for one of its purchases stays
        with the pseudonym until a user submits that purchase again. Idempotent."""
        now = self._clock()

        async def tx(conn: asyncpg.Connection) -> list[str]:
            async with conn.transaction():
                customer = await customers_db.alias_owner(conn, app_user_id) or app_user_id
                aliases = await purchases_db.aliases_of(conn, [customer])
                ids = [customer, *aliases]
                if app_user_id not in ids:
                    ids.append(app_user_id)
                pseudonyms = {i: PSEUDONYM_PREFIX + uuid.uuid4().hex for i in ids}
                await customers_db.lock_purchases_of(conn, [customer])
                known = await customers_db.lock_customer_row(conn, customer)
                if known:
                    await customers_db.erase(conn, customer, pseudonyms[customer], now)
                await customers_db.scrub(conn, pseudonyms)
                pseudonym = pseudonyms[customer]
                entry = AuditEntry(actor.name, "erase", pseudonym, actor.request_id)
                await customers_db.audit(conn, entry, now)
                if known:
                    await self._record(conn, [(pseudonym, "erased")], now)
                return ids

        ids = await run(self._pool, tx)
        await self._cache.invalidate(ids)
        log.info("customer_erased", actor=actor.name)  # no id: it is gone

    # --- shared ----------------------------------------------------------------------------

    async def _record(
        self, conn: asyncpg.Connection, changes: list[tuple[str, str]], now: datetime
    ) -> None:
        await purchases_db.record_changes(
            conn,
            changes,
            lambda record: entitlements_of(record, self._catalog, now),
            at=now,
            always={customer for customer, _ in changes},
        )


def _with(entry: AuditEntry, details: dict[str, Any]) -> AuditEntry:
    return AuditEntry(entry.actor, entry.action, entry.app_user_id, entry.request_id, details)
