"""Who is calling (Principal) and what they may do; authentication itself lives in api/auth.py.

Scopes: customers:read, purchases:write, admin (admin implies the others). A user token
lets its subject read and write its own customer only.
"""

from __future__ import annotations

from dataclasses import dataclass

from entitlements.errors import Forbidden

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
        """Whether the caller's key has `scope` (admin implies every scope)."""
        return ADMIN in self.scopes or scope in self.scopes

    def require_read(self, app_user_id: str) -> None:
        """Forbidden unless the caller may read this customer (customers:read, or its own
        user token)."""
        if not (self.has(READ) or self.user_id == app_user_id):
            raise Forbidden

    def require_write(self, app_user_id: str) -> None:
        """Forbidden unless the caller may submit purchases for this customer
        (purchases:write, or its own user token)."""
        if not (self.has(WRITE) or self.user_id == app_user_id):
            raise Forbidden

    def require_admin(self) -> None:
        """Forbidden unless the caller's key has the admin scope."""
        if ADMIN not in self.scopes:
            raise Forbidden
