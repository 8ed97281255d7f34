"""The customer object rendered once to bytes, with its ETag: what the read cache holds.

The body is `head` + the request's `as_of` + `tail`, so a cached answer is served with the
time of the request it answers while its ETag (over everything but `as_of`) stays the same
until the content changes, `active` flipping at a period's end included.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from cache.local import Rendered, holds_at
from entitlements.access import Catalog, CustomerRecord, customer_object, next_change, rfc3339

__all__ = [
    "as_of",
    "body_of",
    "decode",
    "encode",
    "entitlements_in",
    "head_for",
    "holds_at",
    "render",
]


def render(record: CustomerRecord, catalog: Catalog, now: datetime) -> Rendered:
    """The customer object of `record` at `now`, rendered to bytes with its ETag and the
    instant it stops holding (`next_change`)."""
    body = customer_object(record, catalog, now)
    app_user_id = orjson.dumps(body.pop("app_user_id"))
    rest = orjson.dumps(body)  # b'{"suspended":…}', keys in the contract's order
    digest = hashlib.sha256(app_user_id + rest).hexdigest()[:32]
    return Rendered(
        head=_HEAD_START + app_user_id + _HEAD_END,
        tail=b'",' + rest[1:],
        etag=f'"{digest}"',
        rendered_at=now,
        valid_until=next_change(record, now),
    )


_HEAD_START = b'{"app_user_id":'
_HEAD_END = b',"as_of":"'


def head_for(app_user_id: str) -> bytes:
    """The body's start when the answer is about `app_user_id` itself."""
    return _HEAD_START + orjson.dumps(app_user_id) + _HEAD_END


def encode(rendered: Rendered, app_user_id: str) -> bytes:
    """For the Redis cache, the answer read as `app_user_id`: one orjson document (decoding it
    builds no domain objects). The id read is left out — the reader knows it — so that Redis
    holds no customer ids (contract §3, erasure); only an alias's answer keeps its head, which
    names the customer it was merged into (the erasure of that customer forgets both)."""
    document = {
        "t": rendered.tail.decode(),
        "e": rendered.etag,
        "r": rendered.rendered_at,
        "v": rendered.valid_until,
    }
    if rendered.head != head_for(app_user_id):
        document["h"] = rendered.head.decode()
    return orjson.dumps(document)


def decode(raw: bytes, app_user_id: str) -> Rendered:
    """The answer `encode` stored for `app_user_id`."""
    data = orjson.loads(raw)
    until = data["v"]
    head = data.get("h")
    return Rendered(
        head=head.encode() if head is not None else head_for(app_user_id),
        tail=data["t"].encode(),
        etag=data["e"],
        rendered_at=datetime.fromisoformat(data["r"]),
        valid_until=datetime.fromisoformat(until) if until is not None else None,
    )


def entitlements_in(rendered: Rendered) -> dict[str, Any]:
    """The `entitlements` object of a rendered answer (valid at any instant it holds at)."""
    rest: dict[str, Any] = orjson.loads(b"{" + rendered.tail[2:])
    return dict(rest["entitlements"])


def body_of(rendered: Rendered, now: datetime) -> bytes:
    """The response body at `now` (RFC 3339, second precision, UTC: as access.rfc3339)."""
    return rendered.head + as_of(now) + rendered.tail


_last: tuple[int, bytes] = (0, b"")


def as_of(now: datetime) -> bytes:
    """`now` as RFC 3339 bytes; the last second is remembered (most requests share one)."""
    global _last  # noqa: PLW0603  (a one-entry memo; the loop is single-threaded)
    stamp = int(now.timestamp() // 1)
    if _last[0] != stamp or not _last[1]:
        _last = (stamp, (rfc3339(now) or "").encode())
    return _last[1]
