"""Who may do what (contract §3): scopes of API keys and a user token's own customer."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from api.auth import caller
from api.keys import AUTHENTICATOR
from entitlements.errors import Forbidden, Unauthenticated
from entitlements.permissions import ADMIN, READ, WRITE, Principal

READER = Principal("billing-service", frozenset({READ}))
WRITER = Principal("purchases-service", frozenset({WRITE}))
ADMIN_KEY = Principal("operator", frozenset({ADMIN}))
NO_SCOPES = Principal("nothing")
USER = Principal("user:u-1", user_id="u-1")

# principal → (may read u-1, may write u-1, may read u-2, may write u-2, is admin)
RIGHTS = [
    (READER, True, False, True, False, False),
    (WRITER, False, True, False, True, False),
    (ADMIN_KEY, True, True, True, True, True),  # admin implies the others
    (NO_SCOPES, False, False, False, False, False),
    (USER, True, True, False, False, False),  # a user token: its own customer only
]


def allowed(check, *args) -> bool:
    try:
        check(*args)
    except Forbidden:
        return False
    return True


@pytest.mark.parametrize(("who", "read1", "write1", "read2", "write2", "admin"), RIGHTS)
def test_rights(who: Principal, read1, write1, read2, write2, admin) -> None:
    assert allowed(who.require_read, "u-1") is read1
    assert allowed(who.require_write, "u-1") is write1
    assert allowed(who.require_read, "u-2") is read2
    assert allowed(who.require_write, "u-2") is write2
    assert allowed(who.require_admin) is admin


def test_has_scope() -> None:
    assert READER.has(READ) is True
    assert READER.has(WRITE) is False
    assert [ADMIN_KEY.has(s) for s in (READ, WRITE, ADMIN)] == [True, True, True]
    assert NO_SCOPES.has(READ) is False
    assert USER.has(READ) is False  # a user reads its own customer by id, not by scope


class FixedAuthenticator:
    """Answers with one principal, for the request it was given only."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []

    async def authenticate(self, request: web.Request) -> Principal:
        self.seen.append(request)
        return READER


async def test_caller_asks_the_configured_authenticator() -> None:
    app = web.Application()
    authenticator = FixedAuthenticator()
    app[AUTHENTICATOR] = authenticator
    request = make_mocked_request("GET", "/v1/customers/u-1", app=app)
    assert await caller(request) == READER
    assert authenticator.seen == [request]


async def test_caller_without_an_authenticator_is_unauthenticated() -> None:
    request = make_mocked_request("GET", "/v1/customers/u-1", app=web.Application())
    with pytest.raises(Unauthenticated):
        await caller(request)
