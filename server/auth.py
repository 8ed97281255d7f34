"""Authentication of API callers: secret API keys from config, and app user tokens (JWT).

`Authorization: Bearer <key or user token>` (or `X-API-Key: <key>`). Keys are compared as
SHA-256 digests with hmac.compare_digest against every configured key (no early exit), so
timing does not reveal which key or how much of it matched.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import structlog
from aiohttp import web

from config.settings import AuthSettings, UserTokenSettings
from entitlements.errors import Unauthenticated
from entitlements.permissions import Principal

log = structlog.get_logger(__name__)

_JWKS_TTL_SECONDS = 300.0
_JWKS_MIN_REFRESH_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    digest: bytes
    scopes: frozenset[str]
    principal: Principal  # immutable: built once, shared by every request with this key


class Authenticator:
    """Implements entitlements.permissions.Authenticator from the [auth] settings."""

    def __init__(self, settings: AuthSettings, session: aiohttp.ClientSession | None) -> None:
        self._keys = [
            _Key(
                name=k.name,
                digest=(
                    hashlib.sha256(k.key.get_secret_value().encode()).digest()
                    if k.key is not None
                    else bytes.fromhex(k.key_sha256 or "")
                ),
                scopes=frozenset(k.scopes),
                principal=Principal(name=k.name, scopes=frozenset(k.scopes)),
            )
            for k in settings.api_keys
        ]
        self._users = (
            UserTokenVerifier(settings.user_tokens, session)
            if settings.user_tokens.enabled
            else None
        )

    async def authenticate(self, request: web.Request) -> Principal:
        secret = _presented_secret(request)
        if secret is None:
            raise Unauthenticated("missing credentials: send Authorization: Bearer <key or token>")
        key = self._match_key(secret)
        if key is not None:
            return key.principal
        if self._users is not None and secret.count(".") == 2:
            user_id = await self._users.verify(secret)
            return Principal(name="user", user_id=user_id)
        raise Unauthenticated("invalid credentials")

    async def user_subject(self, token: str) -> str:
        """The `sub` of a valid user token (a proof that its bearer holds that app user id,
        e.g. an alias); Unauthenticated when user tokens are off or the token is invalid."""
        if self._users is None or token.count(".") != 2:
            raise Unauthenticated("invalid user token")
        return await self._users.verify(token)

    def key_principal(self, secret: str) -> Principal | None:
        """The API key `secret` is (the console's sign-in form), or None."""
        key = self._match_key(secret)
        return key.principal if key is not None else None

    def named_key(self, name: str) -> Principal | None:
        """The configured API key called `name` (a console session's key), or None."""
        key = next((k for k in self._keys if k.name == name), None)
        return key.principal if key is not None else None

    def _match_key(self, secret: str) -> _Key | None:
        presented = hashlib.sha256(secret.encode()).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found


def _presented_secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("X-API-Key", "").strip()
    return api_key or None


class UserTokenVerifier:
    """Verifies app user tokens: HS256 with a shared secret, or RS256/ES256 against a JWKS
    fetched with aiohttp and cached (refetched once on an unknown key id, rate-limited)."""

    def __init__(self, settings: UserTokenSettings, session: aiohttp.ClientSession | None) -> None:
        self._settings = settings
        self._session = session
        self._jwks: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> str:
        """The token's `sub` (the app_user_id it may act for); Unauthenticated otherwise."""
        s = self._settings
        options: jwt.types.Options = {"require": ["exp", "sub"]}
        kwargs: dict[str, Any] = {"audience": s.audience or None, "leeway": 30}
        if s.issuer:
            kwargs["issuer"] = s.issuer
        try:
            if s.secret.get_secret_value():
                claims = jwt.decode(
                    token,
                    s.secret.get_secret_value(),
                    algorithms=["HS256"],
                    options=options,
                    **kwargs,
                )
            else:
                key = await self._signing_key(token)
                claims = jwt.decode(
                    token, key, algorithms=["RS256", "ES256"], options=options, **kwargs
                )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid user token: {type(exc).__name__}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("invalid user token: no subject")
        return sub

    async def _signing_key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid user token") from exc
        if kid not in self._jwks or time.monotonic() - self._fetched_at > _JWKS_TTL_SECONDS:
            await self._refresh(force=kid not in self._jwks)
        if kid not in self._jwks:
            raise Unauthenticated("invalid user token: unknown key id")
        return self._jwks[kid]

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age < _JWKS_MIN_REFRESH_SECONDS and (force or age < _JWKS_TTL_SECONDS):
                return
            if self._session is None:
                return
            try:
                async with self._session.get(self._settings.jwks_url) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
                keys = jwt.PyJWKSet.from_dict(document)
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                log.warning("jwks_fetch_failed", error=type(exc).__name__)
                self._fetched_at = time.monotonic()
                return
            self._jwks = {k.key_id: k.key for k in keys.keys if k.key_id}
            self._fetched_at = time.monotonic()
