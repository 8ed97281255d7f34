"""Authentication of API callers: secret API keys from config, and app user tokens (JWT).

`Authorization: Bearer <key or user token>` (or `X-API-Key: <key>`). Keys are compared as
SHA-256 digests with hmac.compare_digest against every configured key (no early exit), so
timing does not reveal which key or how much of it matched. Failed credentials go through the
FailureLimiter (api/rate_limit.py: its docstring states the rule and what a blocked client
may still do). User tokens must carry `iss`, `aud`, `exp` and a `sub` that is an app user id;
with a JWKS each key verifies the one algorithm of its type (RSA: RS256, EC P-256: ES256), so
a token cannot choose how it is checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import jwt
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.keys import AUTHENTICATOR
from api.rate_limit import FailureLimiter, Subject, key_name_subject
from config.settings import AuthSettings, UserTokenSettings
from entitlements.errors import Unauthenticated
from entitlements.model import is_app_user_id
from entitlements.permissions import ADMIN, Principal

log = structlog.get_logger(__name__)

_JWKS_TTL_SECONDS = 300.0
_JWKS_MIN_REFRESH_SECONDS = 30.0
_MIN_RSA_BITS = 2048
# A console session stores SHA-256(this prefix + the key's SHA-256 digest): it names the key
# itself (a rotation under the same name ends the session), and is neither the key nor the
# digest a `key_sha256` setting would hold.
_SESSION_BINDING_PREFIX = b"receiptd console session key v1\x00"
# What PyJWT and cryptography raise for a token they cannot verify: a signature of another
# key type (TypeError), deeply nested JSON (RecursionError), a huge `exp` (OverflowError)...
_UNVERIFIABLE = (jwt.PyJWTError, ValueError, TypeError, KeyError, ArithmeticError, RecursionError)

# The client of the request being authenticated (set by `authenticate`, in the request's own
# task), so that `user_subject` called later by the same handler counts against it.
_CLIENT: ContextVar[Subject | None] = ContextVar("receiptd_auth_client", default=None)


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal or raises Unauthenticated
    (ApiAuthenticator below; tests put fixed ones in its place)."""

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller of `request` (Unauthenticated when its credentials prove nobody)."""
        ...

    async def user_subject(self, token: str) -> str:
        """The `sub` of a valid user token (Unauthenticated otherwise)."""
        ...


async def caller(request: web.Request) -> Principal:
    """The authenticated caller of this request (401 when there is none)."""
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:
        raise Unauthenticated
    return await authenticator.authenticate(request)


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    digest: bytes
    scopes: frozenset[str]
    principal: Principal  # immutable: built once, shared by every request with this key
    session_binding: bytes


@dataclass(frozen=True, slots=True)
class ConsoleKey:
    """The API key posted to the console's sign-in form: its name, whether it may sign in
    (admin scope) and the binding a session keeps to it (never the key or its digest)."""

    name: str
    admin: bool
    binding: bytes


class ApiAuthenticator:
    """Implements entitlements.permissions.Authenticator from the [auth] settings."""

    def __init__(
        self,
        settings: AuthSettings,
        session: aiohttp.ClientSession | None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self._keys = [
            _key(k.name, _digest_of(k.key, k.key_sha256), k.scopes) for k in settings.api_keys
        ]
        self._users = (
            UserTokenVerifier(settings.user_tokens, session)
            if settings.user_tokens.enabled
            else None
        )
        # Without a shared limiter (a test building its own): counted in this process.
        self._limiter = limiter or FailureLimiter(settings.rate_limit, None)

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller of `request`: the subject of a valid user token, or the principal of a
        configured API key. Unauthenticated when neither matches (the failure is counted
        against the client address); TooManyFailures while that client is blocked (a user
        token is verified even then)."""
        secret = _presented_secret(request)
        if secret is None:
            raise Unauthenticated("missing credentials: send Authorization: Bearer <key or token>")
        client = self._limiter.client(request)
        _CLIENT.set(client)
        refused = None
        if self._users is not None and _token_shaped(secret):
            # A signature cannot be guessed: verified even from a blocked address.
            try:
                return Principal(name="user", user_id=await self._users.verify(secret))
            except Unauthenticated as exc:
                refused = exc
        await self._limiter.check(client)  # a key is not even compared from a blocked client
        key = self._match_key(secret)
        if key is not None:
            return key.principal
        await self._limiter.failed(client)
        raise refused or Unauthenticated("invalid credentials")

    async def user_subject(self, token: str, request: web.Request | None = None) -> str:
        """The `sub` of a valid user token (a proof that its bearer holds that app user id,
        e.g. an alias); Unauthenticated when user tokens are off or the token is invalid.
        A failure counts against the client of `request`, else of the request this task
        authenticated (TooManyFailures once it is blocked)."""
        refused = Unauthenticated("invalid user token")
        if self._users is not None and _token_shaped(token):
            try:
                return await self._users.verify(token)
            except Unauthenticated as exc:
                refused = exc
        client = self._limiter.client(request) if request is not None else _CLIENT.get()
        if client is not None:
            await self._limiter.check(client)
            await self._limiter.failed(client)
        raise refused

    async def console_key(self, request: web.Request, secret: str) -> ConsoleKey:
        """The key posted to the console's sign-in form. Unauthenticated when no key is
        `secret`; TooManyFailures when the client (or the key's name) is blocked. A key
        without the admin scope is returned (admin=False) and counts as a failed sign-in for
        the client and for its name."""
        client = self._limiter.client(request)
        await self._limiter.check(client)
        key = self._match_key(secret) if secret else None
        if key is None:
            await self._limiter.failed(client)
            raise Unauthenticated("not a valid API key")
        name = key_name_subject(key.name)
        await self._limiter.check(name)
        admin = ADMIN in key.scopes
        if not admin:
            await self._limiter.failed(client, name)
        return ConsoleKey(name=key.name, admin=admin, binding=key.session_binding)

    def console_session_valid(self, name: str, binding: bytes | None) -> bool:
        """Whether a console session of key `name` made with `binding` may go on: a key of that
        name is still configured, still the same key, and still has the admin scope."""
        valid = False
        for key in self._keys:  # every key compared: no early exit
            same = binding is not None and hmac.compare_digest(key.session_binding, binding)
            valid |= same and key.name == name and ADMIN in key.scopes
        return valid

    def _match_key(self, secret: str) -> _Key | None:
        presented = hashlib.sha256(secret.encode()).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found


def _digest_of(key: Any, key_sha256: str | None) -> bytes:
    if key is not None:
        return hashlib.sha256(key.get_secret_value().encode()).digest()
    return bytes.fromhex(key_sha256 or "")


def _key(name: str, digest: bytes, scopes: tuple[str, ...]) -> _Key:
    return _Key(
        name=name,
        digest=digest,
        scopes=frozenset(scopes),
        principal=Principal(name=name, scopes=frozenset(scopes)),
        session_binding=hashlib.sha256(_SESSION_BINDING_PREFIX + digest).digest(),
    )


def _token_shaped(secret: str) -> bool:
    return secret.count(".") == 2


def _presented_secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = request.headers.get("X-API-Key", "").strip()
    return api_key or None


@dataclass(frozen=True, slots=True)
class _Jwk:
    """A published verification key and the one algorithm it verifies."""

    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    algorithm: str


def _usable_jwk(entry: object) -> tuple[str, _Jwk] | None:
    """(kid, key) of a JWKS entry the service accepts: an RSA public key of 2048 bits or more
    (RS256) or an EC P-256 public key (ES256), for signatures; None for anything else."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
        return None
    try:
        key = jwt.PyJWK(entry).key
    except _UNVERIFIABLE:
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        return None
    if entry.get("alg", algorithm) != algorithm:
        return None  # published for another algorithm than its type's: not ours to guess
    return kid, _Jwk(key, algorithm)


class UserTokenVerifier:
    """Verifies app user tokens: HS256 with a shared secret, or RS256/ES256 against a JWKS
    fetched with aiohttp and cached (refetched once on an unknown key id, rate-limited)."""

    def __init__(self, settings: UserTokenSettings, session: aiohttp.ClientSession | None) -> None:
        self._settings = settings
        self._session = session
        self._jwks: dict[str, _Jwk] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> str:
        """The token's `sub` (the app_user_id it may act for); Unauthenticated otherwise."""
        s = self._settings
        options: jwt.types.Options = {"require": ["exp", "iss", "aud", "sub"]}
        try:
            if s.secret.get_secret_value():
                key: Any = s.secret.get_secret_value()
                algorithm = "HS256"
            else:
                jwk = await self._signing_key(jwt.get_unverified_header(token).get("kid"))
                key, algorithm = jwk.key, jwk.algorithm
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=options,
                issuer=s.issuer,
                audience=s.audience,
                leeway=30,
            )
        except _UNVERIFIABLE as exc:
            raise Unauthenticated(f"invalid user token: {type(exc).__name__}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not is_app_user_id(sub):
            raise Unauthenticated("invalid user token: its subject is not an app user id")
        return sub

    async def _signing_key(self, kid: object) -> _Jwk:
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("invalid user token: no key id")
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
                entries = document["keys"]
                if not isinstance(entries, list):
                    raise TypeError("keys is not a list")
            except (aiohttp.ClientError, TimeoutError, *_UNVERIFIABLE) as exc:
                log.warning("jwks_fetch_failed", error=type(exc).__name__)
                self._fetched_at = time.monotonic()
                return
            usable = dict(found for found in map(_usable_jwk, entries) if found is not None)
            if not usable:
                log.warning("jwks_without_usable_keys", published=len(entries))
            self._jwks = usable
            self._fetched_at = time.monotonic()
