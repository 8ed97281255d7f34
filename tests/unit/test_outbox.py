"""Outbound webhook pieces without I/O: endpoint identity, display URL, retry policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.outbound import Endpoint, RetryPolicy, endpoint_key, public_url


def test_backoff_doubles_from_initial_up_to_maximum_with_half_to_full_jitter() -> None:
    policy = RetryPolicy(initial_seconds=5, maximum_seconds=3600)
    top = [policy.delay(n, jitter=0.999999).total_seconds() for n in range(1, 14)]
    assert [round(t) for t in top] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        1280,
        2560,
        3600,
        3600,
        3600,
    ]
    assert [policy.delay(n, jitter=0.0) for n in (1, 2, 12)] == [
        timedelta(seconds=2.5),
        timedelta(seconds=5),
        timedelta(seconds=1800),
    ]
    assert policy.delay(1, jitter=0.5) == timedelta(seconds=3.75)
    assert policy.delay(10_000, jitter=0.0) == timedelta(seconds=1800)  # no overflow
    assert policy.delay(0, jitter=0.0) == timedelta(seconds=2.5)


def test_an_endpoint_is_known_by_a_hash_of_its_url() -> None:
    url = "https://billing.internal/receiptd"
    assert endpoint_key(url) == endpoint_key(url)
    assert len(endpoint_key(url)) == 16
    assert endpoint_key(url) != endpoint_key(url + "/")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://billing.internal/receiptd", "https://billing.internal/receiptd"),
        ("https://u:pw@billing.internal:8443/r?token=t#f", "https://billing.internal:8443/r"),
        ("http://[::1]:9000/hook", "http://[::1]:9000/hook"),
    ],
)
def test_the_displayed_url_drops_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_an_endpoint_signs_with_its_first_key_and_hides_secrets() -> None:
    endpoint = Endpoint.configure(
        "https://u:pw@h/x", ["k2:new-secret-0123456789", "k1:old-secret-0123456789"]
    )
    assert endpoint.signing_key.key_id == "k2"
    assert [k.key_id for k in endpoint.keys] == ["k2", "k1"]
    text = repr(endpoint)
    assert "secret-0123456789" not in text
    assert "pw" not in text
    with pytest.raises(ValueError):
        Endpoint.configure("https://h/x", [])
