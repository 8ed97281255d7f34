"""Revenue and MRR from the daily rollups (contract §3, "Revenue (admin)"; issue 22): per
day, store and currency the gross, refunded, charges and refunds; MRR per currency as of the
last day. The rollups are kept in the transaction of each charge (storage/money.py), so an
answer costs the same at a thousand purchases and at ten million."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from entitlements.money import amount_text
from storage import money as db
from storage.database import run


class Revenue:
    """The revenue use case for the API and the console."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def between(self, first: date, last: date, sandbox: bool | None = None) -> dict[str, Any]:
        """Revenue per day from `first` to `last` (inclusive) and MRR as of `last`; with
        `sandbox` True or False only test or only real money (None: both)."""

        async def read(conn: asyncpg.Connection) -> tuple[list[Any], list[Any]]:
            return (
                await db.revenue_days(conn, first, last, sandbox),
                await db.mrr_as_of(conn, last, sandbox),
            )

        days, mrr = await run(self._pool, read)
        return {
            "days": [
                {
                    "date": r["day"].isoformat(),
                    "store": r["store"],
                    "currency": r["currency"],
                    "gross": amount_text(r["gross"]),
                    "refunded": amount_text(r["refunded"]),
                    "charges": int(r["charges"]),
                    "refunds": int(r["refunds"]),
                }
                for r in days
            ],
            "mrr": [
                {
                    "currency": r["currency"],
                    "amount": amount_text(r["amount"], cents=True),
                    "subscriptions": int(r["subscriptions"]),
                }
                for r in mrr
            ],
        }
