"""Operations and limits: readiness, database outage (503, never 500), metrics, body limit,
OpenAPI, logs without secrets."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from api.reads import SERVICE
from tests.conftest import ADMIN_KEY, READER_KEY, auth
from tests.factories import subscription_event
from tests.proxy import TcpProxy


@pytest.fixture
async def db_proxy(database_url):
    proxy = TcpProxy.for_postgres(database_url)
    await proxy.start()
    yield proxy
    await proxy.down()


async def test_database_outage_is_503_then_recovers(make_client, config, db_proxy, clock) -> None:
    config["database"]["url"] = db_proxy.postgres_url(config["database"]["url"])
    config["redis"]["url"] = "off"
    client = await make_client(config)
    await client.app[SERVICE].ingest(
        None, [subscription_event(purchased_at=clock.now)], submitted_by="u-1"
    )
    await db_proxy.down()
    resp = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "database_unavailable"
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
    await db_proxy.up()
    resp = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert resp.status == 200
    assert (await resp.json())["entitlements"]["premium"]["active"] is True
    assert (await client.get("/readyz")).status == 200


async def test_body_over_one_mebibyte_is_413(client) -> None:
    too_big = io.BytesIO(b"x" * (1024 * 1024 + 1))
    resp = await client.post(
        "/webhooks/apple", data=too_big, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"


async def test_metrics_count_requests_by_route_and_status(client) -> None:
    await client.get("/healthz")
    await client.get("/v1/customers/u-1")
    text = await (await client.get("/metrics")).text()
    assert 'receiptd_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert (
        'receiptd_http_requests_total{method="GET",route="/v1/customers/{app_user_id}",'
        'status="401"} 1.0'
    ) in text
    assert "receiptd_http_request_duration_seconds_bucket" in text


async def test_openapi_document_describes_exactly_the_served_routes(client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    served = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        # The operator console is HTML for browsers, not part of the JSON API.
        and not route.resource.canonical.startswith("/console")
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented


async def test_request_id_is_echoed_and_logged_without_secrets(client, clock) -> None:
    with capture_logs() as logs:
        resp = await client.get(
            "/v1/customers/u-1", headers={**auth(ADMIN_KEY), "X-Request-ID": "req-123"}
        )
    assert resp.headers["X-Request-ID"] == "req-123"
    [line] = [e for e in logs if e["event"] == "http_request"]
    assert line["request_id"] == "req-123"
    assert line["status"] == 200
    assert ADMIN_KEY not in json.dumps(logs, default=str)


async def test_as_of_is_utc_rfc3339(client, clock) -> None:
    clock.advance(microseconds=123456, days=1)
    body = await (await client.get("/v1/customers/x", headers=auth(READER_KEY))).json()
    assert body["as_of"] == (clock.now - timedelta(microseconds=123456)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
