"""Who is calling (Principal) and what they may do; authentication itself lives in server/.

Scopes: customers:read, purchases:write, admin (admin implies the others). A user token
lets its subject read and write its own customer only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from entitlements.errors import Forbidden, Unauthenticated
from server.keys import AUTHENTICATOR

READ = "customers:read"
WRITE = "purchases:write"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an API key (name, scopes) or an app user (user_id)."""

    name: str
    scopes: frozenset[str] = frozenset()
    user_id: str | None = None

    @property
    def actor(self) -> str:
        """Who acted, for the audit log: the API key's name, or "user:<app_user_id>"."""
        return f"user:{self.user_id}" if self.user_id is not None else self.name

    def has(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def require_read(self, app_user_id: str) -> None:
        if not (self.has(READ) or self.user_id == app_user_id):
            raise Forbidden

    def require_write(self, app_user_id: str) -> None:
        if not (self.has(WRITE) or self.user_id == app_user_id):
            raise Forbidden

    def require_admin(self) -> None:
        if ADMIN not in self.scopes:
            raise Forbidden


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal or raises Unauthenticated."""

    async def authenticate(self, request: web.Request) -> Principal: ...

    async def user_subject(self, token: str) -> str:
        """The `sub` of a valid user token (Unauthenticated otherwise)."""
        ...


async def caller(request: web.Request) -> Principal:
    """The authenticated caller of this request (401 when there is none)."""
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:
        raise Unauthenticated
    return await authenticator.authenticate(request)
