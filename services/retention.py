"""Retention of raw store payloads: prune those older than the configured number of days.

`prune` is one pass (used by `receiptd prune`); `PayloadPruner` repeats it in the serving
process. A pass holds the retention advisory lock on one connection, so of several replicas
only one prunes at a time (the others skip their turn), and works in bounded batches, each
its own short statement, so a large backlog never holds many row locks for long.

Boundary: a payload is pruned when it was received strictly before `now - days`; one
received exactly at that instant is `days` old, not older, and stays until the next pass.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
import structlog

from entitlements.model import Clock
from runtime.background import Periodic
from storage import journal
from storage.database import run

log = structlog.get_logger(__name__)

BATCH = 1000  # rows per statement: short row locks, few round trips
FIRST_PASS_SECONDS = 60.0  # after start-up, once the process is serving
INTERVAL_SECONDS = 3600.0  # payloads age by the day: an hourly pass keeps them within an hour

# Called with (pruned so far, prunable when the pass began) after each batch.
Progress = Callable[[int, int], None]


def cutoff_for(now: datetime, days: int) -> datetime:
    """The receive time before which payloads are pruned."""
    return now - timedelta(days=days)


async def prune(
    pool: asyncpg.Pool,
    now: datetime,
    days: int,
    *,
    batch: int = BATCH,
    progress: Progress | None = None,
    wait: bool = False,
) -> int | None:
    """Drop every payload received before `cutoff_for(now, days)`; returns how many.

    None when another session holds the retention lock and `wait` is false (that pass is
    pruning the same rows). With `wait`, waits for it and then prunes what is left. Raises
    DatabaseUnavailable when PostgreSQL cannot be reached.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    cutoff = cutoff_for(now, days)

    async def work(conn: asyncpg.Connection) -> int | None:
        if not await journal.try_lock(conn):
            if not wait:
                return None
            await journal.lock(conn)
        # No unlock in a `finally`: after a failure or a cancellation mid-statement the
        # connection may not take another query, and the pool's reset on release
        # (pg_advisory_unlock_all) frees the lock anyway.
        pruned = await _batches(conn, cutoff, now, batch, progress)
        await journal.unlock(conn)
        return pruned

    return await run(pool, work)


async def _batches(
    conn: asyncpg.Connection,
    cutoff: datetime,
    now: datetime,
    batch: int,
    progress: Progress | None,
) -> int:
    total = await journal.count_prunable(conn, cutoff) if progress is not None else 0
    pruned = 0
    while True:
        done = await journal.prune_batch(conn, cutoff, now, batch)
        pruned += done
        if progress is not None:
            progress(pruned, max(total, pruned))
        if done < batch:  # the rest (if any) is locked by a writer: the next pass gets it
            return pruned


class PayloadPruner:
    """The serving process's periodic pass: first shortly after start, then every interval."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        days: int,
        *,
        on_pruned: Callable[[int], None] | None = None,
        batch: int = BATCH,
        first_pass_seconds: float = FIRST_PASS_SECONDS,
        interval_seconds: float = INTERVAL_SECONDS,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._days = days
        self._on_pruned = on_pruned
        self._batch = batch
        self._first = first_pass_seconds
        self._interval = interval_seconds
        self._loop = Periodic(
            "raw-payload-retention",
            self._pass,
            first=first_pass_seconds,
            idle=interval_seconds,
            failed="raw_payload_prune_failed",
        )

    async def run_once(self) -> int | None:
        """One pass; returns how many payloads it pruned, None when another replica was
        pruning. Raises DatabaseUnavailable when PostgreSQL cannot be reached."""
        now = self._clock()
        cutoff = cutoff_for(now, self._days)
        pruned = await prune(self._pool, now, self._days, batch=self._batch)
        if pruned is None:
            log.info("raw_payload_prune_skipped", reason="another_replica_is_pruning")
            return None
        if self._on_pruned is not None:
            self._on_pruned(pruned)
        log.info("raw_payloads_pruned", count=pruned, cutoff=cutoff.isoformat(), days=self._days)
        return pruned

    def start(self) -> None:
        """Start the periodic loop (idempotent)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop; a batch in flight is cancelled and rolls back, nothing half-done."""
        await self._loop.stop()

    async def _pass(self) -> float:
        await self.run_once()
        return self._interval
