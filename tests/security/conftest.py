"""Fixtures of the security suite, shared with tests/e2e rather than copied: the App Store
purchase set-up (a local test CA, an App Store Server API key and the fake API on 127.0.0.1)
and the Google Play one (test keys, the fake Play API)."""

from tests.e2e.google_helpers import fake_play, google_keys  # noqa: F401  (fixtures)
from tests.e2e.test_apple_purchases import (  # noqa: F401  (fixtures, found by pytest by name)
    api_client,
    api_key,
    ca_dir,
    fake_api,
)
