"""Start-up policy of the Google Play settings and the acknowledgement backoff."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from config.settings import ConfigError, is_loopback, load_settings
from receipts.google.acknowledgements import purchase_ref, retry_delay

COMPLETE = {
    "package_names": ["com.example.app"],
    "pubsub_audience": "https://receiptd.example/webhooks/google",
    "pubsub_service_account": "push@example.iam.gserviceaccount.com",
}


def google_env(section: dict[str, object]) -> dict[str, str]:
    return {
        f"RECEIPTD_GOOGLE__{k.upper()}": json.dumps(v) if isinstance(v, list) else str(v)
        for k, v in section.items()
    }


def test_complete_settings_pass(tmp_path) -> None:
    """Passing means: the settings load with Google Play on and every value as given
    (credentials from the service account file, or none against a loopback fake)."""
    sa = tmp_path / "sa.json"
    sa.write_text("{}")
    for extra, credentials, api_url in (
        ({"service_account_file": str(sa)}, sa, ""),
        ({"play_api_url": "http://127.0.0.1:8091/"}, None, "http://127.0.0.1:8091/"),
    ):
        google = load_settings(None, google_env(COMPLETE | extra)).google
        assert google is not None
        assert google.package_names == ("com.example.app",)
        assert google.pubsub_audience == COMPLETE["pubsub_audience"]
        assert google.pubsub_service_account == COMPLETE["pubsub_service_account"]
        assert google.service_account_file == credentials
        assert google.play_api_url == api_url


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"pubsub_audience": ""}, "google.pubsub_audience"),
        ({"pubsub_service_account": ""}, "google.pubsub_service_account"),
        ({}, "service_account_file is required"),  # the real Play API needs credentials
        ({"play_api_url": "https://play.example/"}, "service_account_file is required"),
        ({"play_api_url": "http://127.0.0.1.evil.example/"}, "service_account_file is required"),
    ],
)
def test_missing_identity_or_credentials_refuse_to_start(overrides, named) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, google_env(COMPLETE | overrides))
    assert named in str(err.value)
    assert "google" in str(err.value)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:1/", True),
        ("http://localhost/", True),
        ("http://[::1]:80/", True),
        ("", False),
        ("https://androidpublisher.googleapis.com/", False),
        ("http://10.0.0.1/", False),
    ],
)
def test_is_loopback(url, loopback) -> None:
    assert is_loopback(url) is loopback


def test_retry_delay_doubles_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(50) == timedelta(hours=1)
    assert retry_delay(10_000) == timedelta(hours=1)


def test_purchase_ref_is_short_and_not_the_token() -> None:
    ref = purchase_ref("a-secret-purchase-token")
    assert len(ref) == 12
    assert "secret" not in ref
    assert ref == purchase_ref("a-secret-purchase-token")
