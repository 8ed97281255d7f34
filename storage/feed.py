"""The change feed (contract §3 `GET /v1/events`): customer_events in commit order.

Feed rows are inserted under a transaction-scoped advisory lock held until commit (see
`repository.record_changes`), so their ids are in commit order: a reader paging on
`id > cursor` never skips a row that commits later, nor sees one twice. The cursor is
opaque to clients: the last id, encoded.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import asyncpg

from entitlements.access import rfc3339
from entitlements.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_PREFIX = "e1."

PAGE = """
SELECT id, event_id, sequence, app_user_id, type, created_at, entitlements
FROM customer_events WHERE id > $1 ORDER BY id LIMIT $2
"""


def encode_cursor(last_id: int) -> str:
    """The opaque cursor after feed row `last_id` (0: the beginning)."""
    return _PREFIX + base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The feed row id a cursor points after (400 for anything we did not hand out)."""
    if cursor is None or cursor == "":
        return 0
    try:
        if not cursor.startswith(_PREFIX):
            raise ValueError(cursor)
        raw = cursor[len(_PREFIX) :]
        value = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("after is not a cursor this service handed out") from None
    if value < 0 or encode_cursor(value) != cursor:
        raise InvalidRequest("after is not a cursor this service handed out")
    return value


def parse_limit(value: str | None) -> int:
    """The page size: 1..1000, default 100 (400 otherwise)."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def event_object(row: asyncpg.Record) -> dict[str, Any]:
    """The contract's event object (also the body of an outbound webhook)."""
    entitlements = row["entitlements"]
    return {
        "id": str(row["event_id"]),
        "sequence": row["sequence"],
        "app_user_id": row["app_user_id"],
        "type": row["type"],
        "created_at": rfc3339(row["created_at"]),
        "entitlements": json.loads(entitlements) if isinstance(entitlements, str) else {},
    }


async def page(conn: asyncpg.Connection, after: int, limit: int) -> dict[str, Any]:
    """One page of the feed after row `after`; `next_cursor` is always there (unchanged
    when the page is empty, so a poller keeps asking from the same place)."""
    rows = await conn.fetch(PAGE, after, limit)
    last = rows[-1]["id"] if rows else after
    return {"events": [event_object(r) for r in rows], "next_cursor": encode_cursor(last)}
