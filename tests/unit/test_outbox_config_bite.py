"""Outbound webhook configuration details the mutation run found untested
(services/outbound.py): the refusal of an endpoint without secrets says why, a URL without
a host is shown without inventing one, and the backoff stops doubling after 60 failures (so a
receiver down for ages, with a huge maximum, never overflows the delay)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.outbound import Endpoint, RetryPolicy, public_url


def test_an_endpoint_without_secrets_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"^an endpoint needs at least one secret$"):
        Endpoint.configure("https://h/x", [])


def test_a_url_without_a_host_is_shown_without_one() -> None:
    assert public_url("file:///var/run/hook?token=t") == "file:///var/run/hook"


def test_the_backoff_stops_doubling_after_60_failures() -> None:
    # A tiny initial delay, so that 2^60 of them is still a delay timedelta can hold.
    policy = RetryPolicy(initial_seconds=1e-6, maximum_seconds=1e13)
    capped = timedelta(seconds=1e-6 * 2.0**60)
    assert policy.delay(61, jitter=1.0) == capped
    assert policy.delay(62, jitter=1.0) == capped
    assert policy.delay(100_000, jitter=1.0) == capped
    assert policy.delay(61, jitter=0.0) == capped / 2
