"""The start-up warning for a remote database or Redis whose server is not verified (issue 25):
which URLs verify, which do not, and the one line per URL that says so, without a password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from config.settings import Settings
from server.tls import database_unverified, redis_unverified, warn_unverified


@pytest.mark.parametrize(
    ("url", "env", "warned"),
    [
        ("postgresql://u:p@db.internal:5432/r", {}, "sslmode=prefer"),
        ("postgresql://u:p@db.internal/r?sslmode=require", {}, "sslmode=require"),
        ("postgresql://u:p@db.internal/r?sslmode=disable", {}, "sslmode=disable"),
        ("postgresql://u:p@db.internal/r", {"PGSSLMODE": "allow"}, "sslmode=allow"),
        ("postgresql://u:p@db.internal/r?sslmode=verify-full&sslrootcert=/ca.pem", {}, None),
        ("postgresql://u:p@db.internal/r?sslmode=verify-ca", {}, None),
        ("postgresql://u:p@db.internal/r", {"PGSSLMODE": "verify-full"}, None),
        ("postgresql://u:p@localhost/r", {}, None),
        ("postgresql://u:p@127.0.0.1:5432/r", {}, None),
        ("postgresql://u:p@[::1]:5432/r", {}, None),
        ("postgresql://u@/r?host=/var/run/postgresql", {}, None),
    ],
)
def test_database_urls(url, env, warned) -> None:
    reason = database_unverified(url, env)
    if warned is None:
        assert reason is None
    else:
        assert reason is not None
        assert warned in reason


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("redis://cache.internal:6379/0", "plaintext"),
        ("rediss://cache.internal:6379/0?ssl_cert_reqs=none", "ssl_cert_reqs=none"),
        ("rediss://cache.internal:6379/0?ssl_cert_reqs=optional", "ssl_cert_reqs=optional"),
        ("rediss://cache.internal:6379/0", None),
        ("rediss://cache.internal:6379/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required", None),
        ("redis://localhost:6379/0", None),
        ("redis://127.0.0.1:6379/0", None),
        ("unix:///tmp/redis.sock", None),
    ],
)
def test_redis_urls(url, warned) -> None:
    reason = redis_unverified(url)
    if warned is None:
        assert reason is None
    else:
        assert reason is not None
        assert warned in reason


def settings(**kwargs: dict[str, object]) -> Settings:
    return Settings(entitlements={"premium": {"products": ["p"]}}, **kwargs)


def test_one_warning_per_unverified_url_without_the_password() -> None:
    configured = settings(
        database={
            "url": "postgresql://app:s3cret@db.internal:5432/r",
            "migration_url": "postgresql://owner:0wner@db.internal:5432/r?sslmode=verify-full",
        },
        redis={"url": "redis://:r3dis@cache.internal:6379/0"},
    )
    with capture_logs() as logs:
        warn_unverified(configured)
    assert [(e["event"], e["to"], e["target"]) for e in logs] == [
        ("connection_not_verified", "database", "app@db.internal:5432/r"),
        ("connection_not_verified", "redis", "cache.internal:6379/0"),
    ]
    assert all(e["log_level"] == "warning" for e in logs)
    assert not any(secret in str(logs) for secret in ("s3cret", "0wner", "r3dis"))
    with capture_logs() as logs:  # migrate: the migration URL, which verifies; no Redis
        warn_unverified(configured, migration=True, redis=False)
    assert logs == []


def test_embedded_and_off_say_nothing() -> None:
    with capture_logs() as logs:
        warn_unverified(settings(redis={"url": "off"}))
    assert logs == []


def test_the_documented_deployment_urls_verify_their_servers() -> None:
    """docs/operations.md "Deploy" and k8s/README.md: the Secret examples use verified TLS."""
    root = Path(__file__).parents[2]
    for doc in ("docs/operations.md", "k8s/README.md"):
        text = (root / doc).read_text(encoding="utf-8")
        databases = re.findall(r"postgresql://[^'`\s]+", text)
        caches = re.findall(r"rediss?://[^'`\s]+", text)
        assert databases, doc
        assert caches, doc
        for url in databases:
            assert database_unverified(url, {}) is None, (doc, url)
        for url in caches:
            assert redis_unverified(url) is None, (doc, url)
