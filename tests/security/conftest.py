"""Fixtures of the security suite: the App Store purchase set-up of tests/e2e (a local test CA,
an App Store Server API key and the fake API on 127.0.0.1), shared rather than copied."""

from tests.e2e.test_apple_purchases import (  # noqa: F401  (fixtures, found by pytest by name)
    api_client,
    api_key,
    ca_dir,
    fake_api,
)
