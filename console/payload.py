"""The decoded form of a journaled message, for the journal page: JSON parsed, and inside it
every compact JWS and every base64 `data` field opened into the JSON it carries.

Only messages the service verified when it received them are decoded (the journal's result
is `processed` or `ignored`); the signatures were checked then, so they are not checked
again here. Nothing store-specific: the shapes are JSON, JWS and base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_DEPTH = 6


def decode(payload: str) -> Any:
    """The payload with its signed and encoded parts opened (the raw text if not JSON)."""
    opened = _open_string(payload, 0)
    return opened if opened is not None else payload


def pretty(value: Any) -> str:
    """`value` as indented JSON with sorted keys, non-ASCII kept as is."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _walk(value: Any, depth: int, key: str | None = None) -> Any:
    if depth > _DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _walk(v, depth + 1, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, depth + 1) for v in value]
    if isinstance(value, str):
        opened = _open_string(value, depth, base64_ok=key == "data")
        return value if opened is None else opened
    return value


def _open_string(text: str, depth: int, *, base64_ok: bool = False) -> Any:
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return _walk(json.loads(stripped), depth + 1)
        except (ValueError, RecursionError):
            return None
    if _JWS.match(stripped):
        parts = stripped.split(".")
        header, body = _b64_json(parts[0]), _b64_json(parts[1])
        if isinstance(header, dict) and "alg" in header and body is not None:
            return {"(signed) header": header, "(signed) payload": _walk(body, depth + 1)}
    if base64_ok:
        inner = _b64_json(stripped)
        if inner is not None:
            return {"(base64) decoded": _walk(inner, depth + 1)}
    return None


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    for decoder in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            return json.loads(decoder(padded))
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
            continue
    return None
