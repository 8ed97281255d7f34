"""What every console page shares: templates, the session cookie, sign-in checks and CSRF.

A session is a random token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the
request came over TLS, directly or through a proxy saying `X-Forwarded-Proto: https`); the
database keeps its SHA-256 (`console_sessions`), so every worker and replica knows it and
signing out ends it everywhere. A session is bound to its API key itself (a digest of the key,
api.auth): it ends when that key is removed, rotated (even under the same name) or loses
the admin scope. Every POST form carries the session's CSRF token; the
sign-in form, before any session, carries a token that must match a cookie of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.auth import ConsoleKey
from api.http import actor_of
from api.keys import CLOCK, CONSOLE_KEYS, CONSOLE_READS, CONSOLE_TEMPLATES
from entitlements.audit import Actor
from entitlements.permissions import ADMIN, Principal
from services.console_reads import Session

SESSION_COOKIE = "receiptd_console"
SIGN_IN_COOKIE = "receiptd_console_sign_in"
SESSION_HOURS = 8
SESSION = web.RequestKey("console_session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A template as an HTML response that no cache keeps and no frame shows."""
    session = request.get(SESSION)
    page = request.app[CONSOLE_TEMPLATES].get_template(template)
    body = page.render(
        session=session,
        csrf=session.csrf_token if session else "",
        path=request.path,
        **({"error": None} | context),
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers.update(SECURITY_HEADERS)
    return response


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def is_tls(request: web.Request) -> bool:
    """Whether the request came over TLS, directly or through a proxy saying
    `X-Forwarded-Proto: https`."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """Set a console cookie: `HttpOnly`, `SameSite=Strict`, under /console, for the session's
    lifetime, `Secure` over TLS."""
    response.set_cookie(
        name,
        value,
        max_age=SESSION_HOURS * 3600,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request),
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    """Delete a console cookie."""
    response.del_cookie(name, path="/console")


def digest(token: str) -> bytes:
    """The SHA-256 of a session token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).digest()


async def start_session(request: web.Request, key: ConsoleKey) -> str:
    """A new session for the admin `key`; the token for the cookie."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = request.app[CLOCK]()
    expires = now + timedelta(hours=SESSION_HOURS)
    await request.app[CONSOLE_READS].start_session(
        token_sha256=digest(token),
        key_name=key.name,
        key_binding=key.binding,
        csrf_token=csrf,
        created_at=now,
        expires_at=expires,
    )
    return token


async def end_session(request: web.Request) -> None:
    """End the request's session, if its cookie names one (for every worker and replica)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app[CONSOLE_READS].end_session(digest(token))


async def current_session(request: web.Request) -> Session | None:
    """The request's session, while it lasts and its very key is still an admin key."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    now = request.app[CLOCK]()
    found = await request.app[CONSOLE_READS].session(digest(token), now)
    if found is None:
        return None
    if not request.app[CONSOLE_KEYS].console_session_valid(found.key_name, found.key_binding):
        return None  # the key was removed, rotated or lost its admin scope since
    return found


def signed_in(handler: Handler) -> Handler:
    """Pages for signed-in operators: others are sent to the sign-in form; a POST must carry
    the session's CSRF token (403 otherwise)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            if request.method == "POST":
                return refused(request, "Your session has ended. Sign in again.", 403)
            raise web.HTTPSeeOther(f"/console/sign-in?next={_next(request)}")
        request[SESSION] = session
        if request.method == "POST":
            form = await request.post()
            if not _same(str(form.get("csrf", "")), session.csrf_token):
                return refused(request, "This form is out of date (CSRF check). Reload it.", 403)
        return await handler(request)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def refused(request: web.Request, message: str, status: int) -> web.Response:
    """The page that says why a request was refused, with `status`."""
    return render(request, "refused.html", {"message": message}, status=status)


def operator(request: web.Request) -> Actor:
    """Who acts, for the audit log: the session's API key name and the request id."""
    return actor_of(Principal(name=request[SESSION].key_name, scopes=frozenset({ADMIN})))


def _same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


def _next(request: web.Request) -> str:
    return quote(request.path_qs, safe="")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console/customers"
