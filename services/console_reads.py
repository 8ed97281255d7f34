"""What the operator console and the change feed read: one method per page, each one
PostgreSQL round trip (storage/console.py, storage/console_metrics.py, storage/feed.py), and
the console's sessions. The pages shape the answers; nothing here renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage import console as pages
from storage import console_metrics as metrics
from storage import feed
from storage.console import Session
from storage.database import run

__all__ = [
    "DAYS",
    "BusinessRows",
    "ConsoleReads",
    "JournalPage",
    "Session",
    "window",
]  # Session: console/web.py

DAYS = 30  # the business page's window


@dataclass(frozen=True, slots=True)
class BusinessRows:
    """The business page's rows over `days` (instants a day apart, oldest first), all from
    rollups and partial indexes (storage/console_metrics.py): changes of the active count per
    entitlement and store and of MRR per currency (day None: the sum before the window),
    transitions and notification latency per day, and what runs now besides paying
    subscriptions: trials and grants."""

    days: list[datetime]
    active: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    latency: list[dict[str, Any]]
    mrr: list[dict[str, Any]]
    trials: int
    grants: int


@dataclass(frozen=True, slots=True)
class JournalPage:
    """One page of the journal: how many entries match (at most pages.COUNT_LIMIT: `more`
    says there are more), the page's rows, and every type and app the journal holds (the
    filters' choices)."""

    total: int
    rows: list[dict[str, Any]]
    types: list[str]
    apps: list[str]
    more: bool = False


def window(now: datetime, days: int = DAYS) -> list[datetime]:
    """`days` instants a day apart, ending at `now`."""
    return [now - timedelta(days=days - 1 - i) for i in range(days)]


class ConsoleReads:
    """The console's reads and sessions, and the change feed's pages."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def feed_page(self, after: str | None, limit: str | None) -> dict[str, Any]:
        """A page of the change feed after the cursor `after` (contract §3, `GET /v1/events`);
        InvalidRequest for a cursor or limit it cannot read."""
        start, size = feed.decode_cursor(after), feed.parse_limit(limit)
        return await run(self._pool, lambda conn: feed.page(conn, start, size))

    async def search(self, query: str) -> list[tuple[str, str]]:
        """Customers whose app user id, original transaction id or purchase token is `query`:
        (app user id, what matched)."""
        return await run(self._pool, lambda conn: pages.search(conn, query))

    async def customer_details(
        self, customer: str, limit: int
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """A customer's facts (suspension, aliases, per-purchase details) and the newest
        `limit` rows of its timeline."""

        async def read(
            conn: asyncpg.Connection,
        ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
            facts = await pages.customer_facts(conn, customer)
            return facts, await pages.timeline_rows(conn, customer, limit)

        return await run(self._pool, read)

    async def journal(
        self,
        *,
        store: str | None,
        notification_type: str | None,
        result: str | None,
        limit: int,
        offset: int,
        app: str | None = None,
    ) -> JournalPage:
        """One page of the journal under the filters, with the choices of the filters."""

        async def read(conn: asyncpg.Connection) -> JournalPage:
            total, rows = await pages.journal_page(
                conn,
                store=store,
                notification_type=notification_type,
                result=result,
                limit=limit,
                offset=offset,
                app=app,
            )
            types, apps = await pages.journal_types(conn), await pages.journal_apps(conn)
            more = total > pages.COUNT_LIMIT
            return JournalPage(min(total, pages.COUNT_LIMIT), rows, types, apps, more)

        return await run(self._pool, read)

    async def journal_entry(self, entry_id: int) -> dict[str, Any] | None:
        """One journal entry with its payload and its purchase's owner (None: no such entry)."""
        return await run(self._pool, lambda conn: pages.journal_entry(conn, entry_id))

    async def business(self, now: datetime, sandbox: bool | None = None) -> BusinessRows:
        """The business page's rows for the DAYS days ending at `now`; with `sandbox` True or
        False only test or only real money and trials (None: both)."""
        days = window(now)
        since = days[0].replace(hour=0, minute=0, second=0, microsecond=0)
        first, last = days[0].astimezone(UTC).date(), now.astimezone(UTC).date()

        async def read(conn: asyncpg.Connection) -> BusinessRows:
            return BusinessRows(
                days,
                active=await metrics.active_changes(conn, first, last),
                transitions=await metrics.transitions(conn, first, last),
                latency=await metrics.latency_by_day(conn, since, now),
                mrr=await metrics.mrr_changes(conn, first, last, sandbox),
                trials=await metrics.running_trials(conn, now, sandbox),
                grants=await metrics.open_grants(conn, now),
            )

        return await run(self._pool, read)

    async def start_session(
        self,
        *,
        token_sha256: bytes,
        key_name: str,
        key_binding: bytes,
        csrf_token: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a new console session (only the digest of its token)."""
        await run(
            self._pool,
            lambda conn: pages.insert_session(
                conn,
                token_sha256=token_sha256,
                key_name=key_name,
                key_binding=key_binding,
                csrf_token=csrf_token,
                created_at=created_at,
                expires_at=expires_at,
            ),
        )

    async def session(self, token_sha256: bytes, now: datetime) -> Session | None:
        """The session of a token digest while it lasts."""
        return await run(self._pool, lambda conn: pages.session(conn, token_sha256, now))

    async def end_session(self, token_sha256: bytes) -> None:
        """Forget a session (sign-out)."""
        await run(self._pool, lambda conn: pages.delete_session(conn, token_sha256))
