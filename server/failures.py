"""Start-up failures in one line: a database or (with `redis.required`) a Redis that cannot
be reached, named by host, port, user and database and the cause — never the password. The
CLI prints the line and exits 1 (contract §3, Operations)."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import redis.asyncio as aredis

# What "cannot connect" looks like: the network, TLS, authentication, a missing database or
# privilege (asyncpg's server errors), a timeout.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ssl.SSLError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    aredis.RedisError,
)


class StartupFailure(Exception):
    """The service cannot start; the message is the whole story, in one line."""


def target(url: str) -> str:
    """`user@host:port/database` of a URL (unix sockets by their path), without a password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0] or parts.path or "localhost"
    if parts.scheme.startswith("unix"):
        host = parts.path
    port = f":{parts.port}" if parts.port else ""
    user = unquote(parts.username) if parts.username else (query.get("user") or [""])[0]
    database = "" if parts.scheme.startswith("unix") else parts.path.lstrip("/")
    where = f"{host}{port}" + (f"/{database}" if database and host != parts.path else "")
    return f"{user}@{where}" if user else where


def cause(exc: BaseException, *secrets: str) -> str:
    """The error's class and words on one line, any of `secrets` blanked out."""
    text = " ".join(str(exc).split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unreachable(what: str, url: str, exc: BaseException) -> StartupFailure:
    """`<what> is not reachable at <target>: <cause>`."""
    password = unquote(urlsplit(url).password or "")
    return StartupFailure(f"{what} is not reachable at {target(url)}: {cause(exc, password)}")
