"""The business page's latency series: settled days are computed once and kept
(latency_daily, migrations/0020), the open ones read live; the series is the one the journal
gives, whatever was kept before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage import console_metrics as metrics


async def add(conn: asyncpg.Connection, store: str, received: datetime, delay_s: float) -> None:
    await conn.execute(
        """
        INSERT INTO store_notifications (store, message_id, received_at, signed_at,
                                         notification_type, result)
        VALUES ($1, gen_random_uuid()::text, $2, $3, 'DID_RENEW', 'processed')
        """,
        store,
        received,
        received - timedelta(seconds=delay_s),
    )


def series(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[float, int]]:
    return {
        (r["day"].astimezone(UTC).date().isoformat(), r["store"]): (
            round(float(r["median_seconds"]), 3),
            r["notifications"],
        )
        for r in rows
    }


async def test_settled_days_are_kept_and_the_open_ones_read_live(
    database_url: str, clock: Any
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        today = clock.now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        now = today + timedelta(hours=10)
        since = today - timedelta(days=4)
        for days_ago, delays in ((3, (1, 3, 5)), (1, (10, 20)), (0, (7,))):
            for delay in delays:
                await add(conn, "app_store", today - timedelta(days=days_ago, hours=-2), delay)
        await add(conn, "play_store", today - timedelta(days=1, hours=-5), 2)
        direct = series([dict(r) for r in await conn.fetch(metrics.LATENCY_BY_DAY, since, now)])

        first = series(await metrics.latency_by_day(conn, since, now))
        assert first == direct
        kept = await conn.fetch("SELECT day, store FROM latency_daily ORDER BY day, store")
        settled = [(r["day"].isoformat(), r["store"]) for r in kept]
        names = [(today - timedelta(days=n)).date().isoformat() for n in (4, 3, 2, 1)]
        # Every settled day once, the empty ones as a marker; today is not settled.
        assert settled == [
            (names[0], ""),
            (names[1], "app_store"),
            (names[2], ""),
            (names[3], "app_store"),
            (names[3], "play_store"),
        ]

        # A settled day is read from latency_daily, not the journal (an entry that could not
        # arrive for it changes nothing); today's new entries count at once.
        await add(conn, "app_store", today - timedelta(days=3, hours=-2), 500)
        await add(conn, "app_store", today + timedelta(hours=9), 9)
        again = series(await metrics.latency_by_day(conn, since, now))
        assert again[(names[1], "app_store")] == first[(names[1], "app_store")]
        assert again[(today.date().isoformat(), "app_store")] == (8.0, 2)

        # Within SETTLED_AFTER of midnight, yesterday is still read live.
        early = today + timedelta(minutes=30)
        await conn.execute("DELETE FROM latency_daily")
        await metrics.latency_by_day(conn, since, early)
        kept_days = {r["day"] for r in await conn.fetch("SELECT day FROM latency_daily")}
        assert (today - timedelta(days=1)).date() not in kept_days
        assert (today - timedelta(days=2)).date() in kept_days
    finally:
        await conn.close()
