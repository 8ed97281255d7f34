"""Authentication of Pub/Sub push requests: the OIDC JWT in `Authorization: Bearer …`.

Google's signing certificates (oauth2/v1/certs format, `{kid: PEM certificate}`) are
fetched with aiohttp and cached for the response's Cache-Control max-age. An unknown kid
triggers one refetch, at most once per `min_refetch_interval`, so tokens with made-up kids
cannot make us hammer the endpoint. Signature and time checks are google-auth's
`jwt.decode` (pure CPU, a fraction of a millisecond); issuer, email and email_verified are
checked here. Error messages never contain the token.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import google.auth.exceptions
import google.auth.jwt

from receipts.errors import PushAuthenticationFailed, StoreUnavailable

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
DEFAULT_MAX_AGE = 300.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)
_MAX_TOKEN_LENGTH = 8192


class PushTokenVerifier:
    """Verifies Pub/Sub push OIDC tokens for one audience and one push service account."""

    def __init__(
        self,
        audience: str,
        service_account_email: str,
        certs_url: str | None,
        session: aiohttp.ClientSession,
        *,
        clock_skew_seconds: int = 30,
        fetch_timeout: float = 5.0,
        min_refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not audience or not service_account_email:
            raise ValueError("the push audience and service account email must be configured")
        self._audience = audience
        self._email = service_account_email
        self._certs_url = certs_url or GOOGLE_CERTS_URL
        self._session = session
        self._skew = clock_skew_seconds
        self._timeout = aiohttp.ClientTimeout(total=fetch_timeout)
        self._min_refetch = min_refetch_interval
        self._clock = clock
        self._certs: dict[str, str] = {}
        self._expires_at = float("-inf")
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def verify(self, authorization_header: str | None) -> dict[str, Any]:
        """Return the verified claims, or raise `PushAuthenticationFailed`.

        Raises `StoreUnavailable` when the certificates cannot be fetched (the caller
        answers 503 so that Pub/Sub redelivers).
        """
        token = _bearer(authorization_header)
        try:
            header = google.auth.jwt.decode_header(token)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
            raise PushAuthenticationFailed("The push token is not a JWT.") from exc
        if header.get("alg") != "RS256":
            raise PushAuthenticationFailed("The push token is not signed with RS256.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise PushAuthenticationFailed("The push token has no key id.")
        certs = await self._certs_for(kid)
        if kid not in certs:
            raise PushAuthenticationFailed("The push token is signed by an unknown key.")
        try:
            claims: dict[str, Any] = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
                token,
                certs={kid: certs[kid]},
                audience=self._audience,
                clock_skew_in_seconds=self._skew,
            )
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
            raise PushAuthenticationFailed(_reason(exc)) from exc
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise PushAuthenticationFailed("The push token was not issued by Google.")
        if claims.get("email") != self._email:
            raise PushAuthenticationFailed("The push token is for another service account.")
        if claims.get("email_verified") is not True:
            raise PushAuthenticationFailed("The push token's email is not verified.")
        return claims

    async def _certs_for(self, kid: str) -> Mapping[str, str]:
        """The cached certificates; fetched when stale, or once more for an unknown kid."""
        if self._clock() < self._expires_at and kid in self._certs:
            return self._certs
        async with self._lock:  # one fetch at a time; waiters reuse its result
            now = self._clock()
            stale = now >= self._expires_at
            may_refetch = now - self._fetched_at >= self._min_refetch
            if stale or (kid not in self._certs and may_refetch):
                try:
                    await self._fetch()
                except StoreUnavailable:
                    if kid not in self._certs:
                        raise
                    # Google rotates keys slowly: ride out a short outage on the old set,
                    # and try again after the refetch interval, not on every request.
                    self._expires_at = now + self._min_refetch
            return self._certs

    async def _fetch(self) -> None:
        body, max_age = await self._download()
        try:
            certs = json.loads(body)
        except ValueError as exc:
            raise StoreUnavailable("Google's push certificates are not JSON.") from exc
        if not isinstance(certs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in certs.items()
        ):
            raise StoreUnavailable("Google's push certificates are not in the v1 format.")
        now = self._clock()
        self._certs = certs
        self._fetched_at = now
        self._expires_at = now + max_age
        self.fetch_count += 1

    async def _download(self) -> tuple[bytes, float]:
        parts = urlsplit(self._certs_url)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
            try:
                return await asyncio.to_thread(path.read_bytes), DEFAULT_MAX_AGE
            except OSError as exc:
                raise StoreUnavailable("The push certificate file cannot be read.") from exc
        try:
            async with self._session.get(self._certs_url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise StoreUnavailable(
                        f"Google's push certificate endpoint answered {resp.status}."
                    )
                body = await resp.read()
                return body, _max_age(resp.headers.get("Cache-Control"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable("Google's push certificate endpoint is unreachable.") from exc


def _bearer(header: str | None) -> str:
    if not header:
        raise PushAuthenticationFailed("The push request has no Authorization header.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PushAuthenticationFailed("The push request is not authenticated with a Bearer token.")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise PushAuthenticationFailed("The push token is too long.")
    return token


def _max_age(cache_control: str | None) -> float:
    """Cache-Control max-age in seconds; the default when absent, 0 for no-store/no-cache."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    if re.search(r"no-store|no-cache", cache_control, re.IGNORECASE):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else DEFAULT_MAX_AGE


def _reason(exc: Exception) -> str:
    """Our own words for google-auth's errors (theirs may quote the token)."""
    text = str(exc).lower()
    if "expired" in text:
        return "The push token has expired."
    if "too early" in text:
        return "The push token is not valid yet."
    if "audience" in text:
        return "The push token is for another audience."
    if "signature" in text:
        return "The push token's signature does not verify."
    if "iat" in text or "exp" in text:
        return "The push token lacks iat or exp."
    return "The push token is invalid."
