"""HTTP helpers every handler shares: JSON bodies in and out, and the app user id rule."""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

from entitlements.audit import Actor
from entitlements.errors import InvalidRequest
from entitlements.model import APP_USER_ID_MAX, is_app_user_id
from entitlements.permissions import Principal


def app_user_id_from_value(value: str) -> str:
    """A validated app user id (400 on bad characters or length)."""
    if not is_app_user_id(value):
        raise InvalidRequest(
            f"app_user_id must be 1-{APP_USER_ID_MAX} characters without control characters "
            "or whitespace"
        )
    return value


def app_user_id_from(request: web.Request) -> str:
    """The `{app_user_id}` path segment, validated."""
    return app_user_id_from_value(request.match_info["app_user_id"])


def json_object(body: bytes, error: type[Exception] = InvalidRequest) -> dict[str, Any]:
    """A request body that must be one JSON object; `error` (a 400 class) otherwise."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise error("body is not JSON") from None
    except RecursionError:  # not a ValueError: deeply nested arrays or objects
        raise error("body is nested too deeply") from None
    if not isinstance(document, dict):
        raise error("body must be a JSON object")
    return document


def json_fields(body: bytes, allowed: set[str]) -> dict[str, Any]:
    """A JSON object body with no field outside `allowed` (400 naming the others)."""
    document = json_object(body)
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    return document


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    """A compact JSON response."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def actor_of(principal: Principal) -> Actor:
    """Who acts in this request, for the audit log: the caller and the request id."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return Actor(principal.actor, request_id if isinstance(request_id, str) else None)
