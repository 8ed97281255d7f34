"""Whether a database or Redis URL verifies the server it talks to, for the start-up warning.

asyncpg's default (`sslmode=prefer`) encrypts when the server offers TLS but checks neither
the certificate nor the host name, and `redis://` is plaintext: over a network either lets
anyone on the path read receipts and impersonate the server. A local target (a unix socket,
localhost) needs no TLS (docs/configuration.md, TLS).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

import structlog

from config.settings import Settings
from server.failures import target

_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
_VERIFYING_SSLMODES = frozenset({"verify-full", "verify-ca"})


def _is_local(host: str | None) -> bool:
    return (host or "").lower() in _LOCAL_HOSTS or (host or "").startswith("/")


def database_unverified(url: str, env: Mapping[str, str] = os.environ) -> str | None:
    """Why a PostgreSQL URL does not verify a remote server (None when it does, or is local).
    `sslmode` from the URL, else PGSSLMODE (asyncpg reads it), else asyncpg's `prefer`."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0]
    if _is_local(host):
        return None
    mode = (query.get("sslmode") or [env.get("PGSSLMODE", "")])[0] or "prefer"
    if mode in _VERIFYING_SSLMODES:
        return None
    return f"sslmode={mode} does not verify the server's certificate; use sslmode=verify-full"


def redis_unverified(url: str) -> str | None:
    """Why a Redis URL does not verify a remote server (None when it does, is local, or off)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or _is_local(parts.hostname):
        return None
    if parts.scheme == "redis":
        return "redis:// is plaintext; use rediss:// (with ssl_ca_certs for a private CA)"
    reqs = (parse_qs(parts.query).get("ssl_cert_reqs") or ["required"])[0].lower()
    if reqs != "required":
        return f"ssl_cert_reqs={reqs} does not verify the server's certificate"
    return None


def warn_unverified(settings: Settings, *, migration: bool = False, redis: bool = True) -> None:
    """One warning per configured remote URL that does not verify its server: the database
    (or, with `migration`, the migration URL when set) and, with `redis`, Redis."""
    database = settings.database.url.get_secret_value()
    if migration:
        database = settings.database.migration_url.get_secret_value() or database
    urls: list[tuple[str, str, Callable[[str], str | None]]] = [
        ("database", database, database_unverified)
    ]
    if redis:
        urls.append(("redis", settings.redis.url.get_secret_value(), redis_unverified))
    for what, url, check in urls:
        reason = check(url) if url and url.lower() != "off" else None
        if reason:
            # A logger of this moment's configuration (called once, at start-up).
            structlog.get_logger(__name__).warning(
                "connection_not_verified", to=what, target=target(url), reason=reason
            )
