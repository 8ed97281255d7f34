"""The per-request metrics and the canonical line, as Prometheus and a log reader see them."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.middleware import HttpMetrics
from config import logging as receiptd_logging
from config.logging import canonical_line, configure_logging, utc_timestamp

ROUTE = "/v1/customers/{app_user_id}"


def exposition(metrics_registry: CollectorRegistry) -> list[str]:
    return generate_latest(metrics_registry).decode().splitlines()


def test_counts_by_route_method_and_status() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for _ in range(3):
        metrics.observe(ROUTE, "GET", 200, 0.0004)
    metrics.observe(ROUTE, "GET", 401, 0.0004)
    lines = exposition(registry)
    assert f'receiptd_http_requests_total{{method="GET",route="{ROUTE}",status="200"}} 3.0' in lines
    assert f'receiptd_http_requests_total{{method="GET",route="{ROUTE}",status="401"}} 1.0' in lines


def test_latency_buckets_are_cumulative_with_le_semantics() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for seconds in (0.0005, 0.001, 0.003, 0.2, 30.0):  # 0.001 is "le 0.001"; 30 s only +Inf
        metrics.observe("/healthz", "GET", 200, seconds)
    lines = exposition(registry)
    prefix = 'receiptd_http_request_duration_seconds_bucket{le="'
    suffix = '",method="GET",route="/healthz"}'
    buckets = {
        line[len(prefix) : line.index('"', len(prefix))]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(prefix) and line.split(" ")[0].endswith(suffix)
    }
    assert buckets["0.001"] == 2
    assert buckets["0.0025"] == 2
    assert buckets["0.005"] == 3
    assert buckets["0.25"] == 4
    assert buckets["10.0"] == 4
    assert buckets["+Inf"] == 5
    count = 'receiptd_http_request_duration_seconds_count{method="GET",route="/healthz"} 5.0'
    assert count in lines
    total = next(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("receiptd_http_request_duration_seconds_sum{")
    )
    assert total == pytest.approx(30.2045)


def test_one_registry_refuses_a_second_set_of_the_same_metrics() -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        HttpMetrics(registry)


def test_utc_timestamp_matches_the_iso_form_to_the_microsecond() -> None:
    for epoch in (0.0, 1_796_000_000.5, 1_796_000_000.999999, 1_796_000_001.000001):
        expected = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert utc_timestamp(epoch) == expected


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    fast, fast_fd = receiptd_logging._fast, receiptd_logging._fast_fd
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    receiptd_logging._fast, receiptd_logging._fast_fd = fast, fast_fd


FIELDS = {"request_id": "r-1", "method": "GET", "route": ROUTE, "status": 200, "pid": 7}


def test_the_line_goes_straight_to_a_descriptor_in_order(restore_logging: None) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        configure_logging(json=True, stream=stream)
        logging.getLogger("receiptd.test").info("before")
        canonical_line("http_request", dict(FIELDS))
        logging.getLogger("receiptd.test").info("after")
    with os.fdopen(read_end) as out:
        lines = [json.loads(line) for line in out.read().splitlines()]
    assert [line["event"] for line in lines] == ["before", "http_request", "after"]
    line = lines[1]
    assert {k: line[k] for k in FIELDS} == FIELDS
    assert line["level"] == "info"
    assert line["logger"] == "receiptd.http"
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None


def test_a_stream_without_a_descriptor_gets_the_same_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    canonical_line("http_request", dict(FIELDS))
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "http_request"
    assert line["request_id"] == "r-1"


def test_an_unwritable_stream_never_fails_the_request(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: every write is EPIPE
    with os.fdopen(write_end, "w") as stream:
        configure_logging(json=True, stream=stream)
        canonical_line("http_request", dict(FIELDS))  # must not raise
    assert "could not write" in capsys.readouterr().err
