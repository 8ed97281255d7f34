"""The outbound webhook signature: `Receiptd-Signature: t=<unix>,kid=<key id>,v1=<hex>`.

`v1` is the hex HMAC-SHA256 of `"<t>." + raw body` under one secret. receiptd signs with the
first secret configured for an endpoint; a receiver accepts a signature made with any key it
knows, so keys rotate without a flag day: add the new key to the receivers, make it the
first secret here, then drop the old one everywhere. Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

HEADER = "Receiptd-Signature"
TOLERANCE_SECONDS = 300  # a receiver's default window for `t` (replays of old deliveries)
KEY_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One `key_id:secret` entry of an endpoint's `secrets` (the secret never in repr)."""

    key_id: str
    secret: bytes = field(repr=False)


def parse_key(value: str) -> SigningKey:
    """`"k2:s3cret"` → SigningKey("k2", b"s3cret"); ValueError naming the problem (never the
    secret) when it is not `key_id:secret`."""
    key_id, sep, secret = value.partition(":")
    if not sep or not secret:
        raise ValueError("a secret must be written key_id:secret")
    if not KEY_ID.match(key_id):
        raise ValueError("a key id is 1-64 letters, digits, '.', '_' or '-'")
    return SigningKey(key_id, secret.encode())


def digest(secret: bytes, t: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<t>." + body`."""
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, key: SigningKey, t: int) -> str:
    """The header value for `body` sent at unix second `t`."""
    return f"t={t},kid={key.key_id},v1={digest(key.secret, t, body)}"


def verify(
    header: str,
    body: bytes,
    secrets: Iterable[bytes],
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """True when `header` signs `body` with one of `secrets` and `t` is within `tolerance`
    seconds of `now`. Every known secret is tried (the `kid` only says which one signed)."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, value)
    t, v1 = fields.get("t", ""), fields.get("v1", "")
    if not (t.isascii() and t.isdigit()) or abs(now - int(t)) > tolerance:
        return False
    given = v1.encode()
    # Evaluate every candidate (no early exit) so timing does not tell which key matched.
    matches = [hmac.compare_digest(digest(s, int(t), body).encode(), given) for s in secrets]
    return any(matches)
