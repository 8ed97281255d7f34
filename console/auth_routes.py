"""Signing in to the console with an admin API key, and signing out.

The key is posted once, compared like any API key (api.auth), and never shown, logged or
kept: the browser gets a session cookie instead (console.web). A key without the `admin`
scope is refused with a page that says so. Failed sign-ins are limited per client address and
per key name (api/rate_limit.py): then 429 with `Retry-After`, whatever the key.
"""

from __future__ import annotations

import hmac
import secrets

import structlog
from aiohttp import web

from api.keys import CONSOLE_KEYS
from console.web import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    clear_cookie,
    current_session,
    end_session,
    render,
    safe_next,
    set_cookie,
    signed_in,
    start_session,
)
from entitlements.errors import TooManyFailures, Unauthenticated

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()


@routes.get("/console")
async def get_console(request: web.Request) -> web.StreamResponse:
    """GET /console (anyone): a redirect to the customer search when signed in, else to the
    sign-in form."""
    if await current_session(request) is None:
        raise web.HTTPSeeOther("/console/sign-in")
    raise web.HTTPSeeOther("/console/customers")


@routes.get("/console/sign-in")
async def get_sign_in(request: web.Request) -> web.StreamResponse:
    """GET /console/sign-in (anyone): the sign-in form, with a fresh CSRF token and cookie."""
    return _form(request, None, 200)


@routes.post("/console/sign-in")
async def post_sign_in(request: web.Request) -> web.StreamResponse:
    """POST /console/sign-in (anyone, with the form's CSRF token): sign in with an admin API
    key; a session cookie and a redirect to `next`, or the form again with why (401, 403,
    429)."""
    form = await request.post()
    token = str(form.get("csrf", ""))
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not token or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return _form(request, "This form is out of date (CSRF check). Try again.", 403)
    secret = str(form.get("api_key", "")).strip()
    try:
        key = await request.app[CONSOLE_KEYS].console_key(request, secret)
    except TooManyFailures as exc:
        log.info("console_sign_in_refused", reason="too many failures")
        wait = (
            f"{exc.retry_after} seconds"
            if exc.retry_after < 120
            else f"{exc.retry_after // 60} minutes"
        )
        response = _form(request, f"Too many failed sign-ins. Try again in {wait}.", 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthenticated:
        log.info("console_sign_in_refused", reason="unknown key")
        return _form(request, "That is not a valid API key.", 401)
    if not key.admin:
        log.info("console_sign_in_refused", reason="not admin", key=key.name)
        return _form(
            request,
            f"The key “{key.name}” has no admin scope: the console needs an admin key.",
            403,
        )
    session_token = await start_session(request, key)
    log.info("console_signed_in", key=key.name)
    response = web.HTTPSeeOther(safe_next(str(form.get("next", "")) or None))
    set_cookie(request, response, SESSION_COOKIE, session_token)
    clear_cookie(response, SIGN_IN_COOKIE)
    raise response


@routes.post("/console/sign-out")
@signed_in
async def post_sign_out(request: web.Request) -> web.StreamResponse:
    """POST /console/sign-out (signed-in operator): end the session everywhere, clear its
    cookie and redirect to the sign-in form."""
    await end_session(request)
    response = web.HTTPSeeOther("/console/sign-in")
    clear_cookie(response, SESSION_COOKIE)
    raise response


def _form(request: web.Request, error: str | None, status: int) -> web.Response:
    """The sign-in form with a fresh CSRF token (and its cookie)."""
    token = secrets.token_urlsafe(32)
    context = {"error": error, "sign_in_csrf": token, "next": request.query.get("next", "")}
    response = render(request, "sign_in.html", context, status=status)
    set_cookie(request, response, SIGN_IN_COOKIE, token)
    return response
