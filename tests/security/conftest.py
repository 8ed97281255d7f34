"""Fixtures of the security suite, shared with tests/e2e rather than copied: the App Store
purchase set-up (a local test CA, an App Store Server API key and the fake API on 127.0.0.1)
and the Google Play one (test keys, the fake Play API)."""

from pathlib import Path

import pytest

from simulators.apple_ca import TestCA
from tests.e2e.google_helpers import fake_play, google_keys  # noqa: F401  (fixtures)
from tests.e2e.test_apple_purchases import (  # noqa: F401  (fixtures, found by pytest by name)
    api_client,
    api_key,
    ca_dir,
    fake_api,
)


@pytest.fixture(scope="session")
def apple_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, Path]:
    """A local Apple test CA (its root saved for `apple_config`) for the whole suite."""
    directory = tmp_path_factory.mktemp("apple-ca-security")
    ca = TestCA.generate()
    ca.save(directory)
    return ca, directory
