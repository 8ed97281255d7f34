"""Bad input is a clear 400 (or the store's own verdict), never a 500 or an error-level log
line (issue 18, attack 3; contract §3 "never a 500 for bad input (deeply nested JSON
included)"). Deeply nested JSON makes Python's decoder raise RecursionError, which is not a
ValueError: every place that decodes a caller's JSON is tried here, on every route that takes
a body, over HTTP against the real app."""

from __future__ import annotations

import base64
import json
import logging
import uuid

import pytest

from simulators.google_signer import push_envelope
from tests.conftest import ADMIN_KEY, WRITER_KEY, auth, user_auth
from tests.e2e.apple_helpers import apple_config
from tests.e2e.google_helpers import google_config, push_headers

DEPTH = 100_000  # 200 KB: far below the 1 MiB body limit, far above Python's recursion limit
NESTED = ("[" * DEPTH + "]" * DEPTH).encode()
NESTED_OBJECT = ('{"a":' * DEPTH + "1" + "}" * DEPTH).encode()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# A compact JWS whose header (then payload) segment is deeply nested JSON.
NESTED_HEADER_JWS = f"{b64url(NESTED)}.{b64url(b'{}')}.c2ln"
NESTED_PAYLOAD_JWS = (
    f"{b64url(json.dumps({'alg': 'ES256', 'x5c': []}).encode())}.{b64url(NESTED)}.c2ln"
)


@pytest.fixture
async def app(make_client, config, apple_ca, fake_play, tmp_path):
    return await make_client(google_config(apple_config(config, apple_ca[1]), fake_play, tmp_path))


def no_error_logs(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


GRANTS = "/v1/customers/u-1/entitlements/premium/grants"
JSON_ROUTES = [
    ("POST", "/webhooks/apple", None),
    ("POST", "/v1/purchases", user_auth("u-1")),
    ("POST", "/v1/purchases", auth(WRITER_KEY)),
    ("POST", GRANTS, auth(ADMIN_KEY)),
    ("DELETE", GRANTS, auth(ADMIN_KEY)),
    ("POST", "/v1/customers/u-1/suspend", auth(ADMIN_KEY)),
    ("POST", "/v1/customers/u-1/unsuspend", auth(ADMIN_KEY)),
    ("POST", "/v1/customers/u-1/aliases", auth(ADMIN_KEY)),
    ("POST", "/v1/customers/u-1/aliases", user_auth("u-1")),
]


@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize(("method", "path", "headers"), JSON_ROUTES)
async def test_nested_json_is_400_on_every_json_route(
    app, caplog, method, path, headers, body
) -> None:
    caplog.set_level(logging.INFO)
    resp = await app.request(method, path, data=body, headers=headers or {})
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert answer["error"]["code"]
    assert answer["error"]["message"]
    assert no_error_logs(caplog.records) == []


async def test_nested_json_unauthenticated_is_never_a_500(app, caplog) -> None:
    caplog.set_level(logging.INFO)
    for method, path, _ in JSON_ROUTES[1:]:
        resp = await app.request(method, path, data=NESTED)
        assert resp.status in (400, 401), (path, resp.status)
    assert no_error_logs(caplog.records) == []


@pytest.mark.parametrize("jws", [NESTED_HEADER_JWS, NESTED_PAYLOAD_JWS], ids=["header", "payload"])
async def test_nested_json_inside_a_signed_payload(app, caplog, jws) -> None:
    caplog.set_level(logging.INFO)
    resp = await app.post("/webhooks/apple", json={"signedPayload": jws})
    assert resp.status in (400, 422), await resp.text()
    submission = {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws}
    resp = await app.post("/v1/purchases", json=submission, headers=auth(WRITER_KEY))
    assert resp.status in (400, 422), await resp.text()
    assert no_error_logs(caplog.records) == []


async def test_nested_json_in_a_user_token_or_alias_token(app, caplog) -> None:
    caplog.set_level(logging.INFO)
    deep = 2_000  # deeper than Python's recursion limit, short enough for a header line
    token = f"{b64url(b'[' * deep + b']' * deep)}.{b64url(b'{}')}.c2ln"
    resp = await app.get("/v1/customers/u-1", headers=auth(token))
    assert resp.status == 401
    resp = await app.post(
        "/v1/customers/u-1/aliases",
        json={"alias": "anon-1", "alias_token": NESTED_HEADER_JWS},
        headers=user_auth("u-1"),
    )
    assert resp.status == 403
    assert no_error_logs(caplog.records) == []


async def test_an_unparsable_request_is_one_warning_line(app, caplog) -> None:
    """A header line over aiohttp's 8 KiB limit is refused by its parser before any handler:
    400, and one WARNING line without a traceback (anyone can send it, as often as they like)."""
    caplog.set_level(logging.INFO)
    resp = await app.get("/v1/customers/u-1", headers={"Authorization": "Bearer " + "a" * 9000})
    assert resp.status == 400
    assert no_error_logs(caplog.records) == []
    [line] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert (line.levelname, line.exc_info) == ("WARNING", None)
    assert "LineTooLong" in line.getMessage()


async def test_google_push_nested_envelope_is_400_and_nested_message_is_rejected(
    app,
    google_keys,
    clock,
    caplog,
) -> None:
    caplog.set_level(logging.INFO)
    resp = await app.post("/webhooks/google", data=NESTED, headers=push_headers(google_keys))
    assert resp.status == 400
    body = push_envelope(NESTED, f"m-{uuid.uuid4().hex}", publish_time=clock.now)
    resp = await app.post("/webhooks/google", json=body, headers=push_headers(google_keys))
    assert (resp.status, await resp.json()) == (200, {"status": "rejected"})
    assert no_error_logs(caplog.records) == []
    console = await app.get("/console/journal")  # the poison is shown to operators safely
    assert console.status in (200, 303)
