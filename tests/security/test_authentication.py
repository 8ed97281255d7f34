"""Authentication attacks (issue 18), each from the outside: HTTP against the real app with
real PostgreSQL and Redis.

- JWKS key-type confusion (an ES256 token naming the RSA key, and back), `alg: none`, HS256
  with the public key as the secret, odd headers: 401 with the usual body, never a 500.
- User tokens must carry iss, aud, exp and a `sub` that is a valid app user id.
- A console session is bound to its key itself: rotating the key under the same name ends it.
- Failed credentials are limited per client address (and console sign-ins per key name): a few
  dozen failures answer 429 with Retry-After, shared by every app on the same Redis; other
  clients are not blocked; without Redis the limit holds per process.

Token `exp` claims use the real clock on purpose: PyJWT checks them against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from typing import Any
from unittest import mock

import jwt
import pytest
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from api.rate_limit import client_address
from tests.conftest import (
    ADMIN_KEY,
    READER_KEY,
    USER_TOKEN_AUDIENCE,
    USER_TOKEN_ISSUER,
    USER_TOKEN_SECRET,
    auth,
    user_auth,
    user_token,
)
from tests.e2e.test_console_http import csrf_in, page, sign_in

LIMIT = 30  # the default auth.rate_limit.max_failures
WINDOW = 300  # the default auth.rate_limit.window_seconds
PROXY = {"trusted_proxies": ["127.0.0.1/32"]}  # the test client connects from 127.0.0.1


def closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: Any, claims: Any, signature: bytes = b"") -> str:
    """A JWT built by hand: headers and signatures no library would produce."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def claims(sub: str = "u-1", **extra: Any) -> dict[str, Any]:
    body = {"sub": sub, "iss": USER_TOKEN_ISSUER, "aud": USER_TOKEN_AUDIENCE}
    return body | {"exp": int(time.time()) + 600} | extra


def no_error_logs(logs: list[dict[str, Any]]) -> None:
    loud = [e for e in logs if e.get("log_level") in ("error", "critical", "exception")]
    assert loud == []


async def assert_401(resp: Any) -> None:
    assert resp.status == 401, await resp.text()
    assert (await resp.json())["error"]["code"] == "unauthenticated"


# --- JWKS key-type confusion -----------------------------------------------------------------


def public_jwk(private: Any, kid: str) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(private, rsa.RSAPrivateKey)
        else jwt.algorithms.ECAlgorithm
    )
    return {**json.loads(algorithm.to_jwk(private.public_key())), "kid": kid, "use": "sig"}


@pytest.fixture
async def idp(aiohttp_server) -> dict[str, Any]:
    """An identity provider on 127.0.0.1 publishing an RSA, a P-256, a P-384 and an HMAC key."""
    keys: dict[str, Any] = {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "ec-384": ec.generate_private_key(ec.SECP384R1()),
    }
    published = [public_jwk(k, kid) for kid, k in keys.items()]
    published.append({"kty": "oct", "k": b64(b"s" * 32), "kid": "oct-1"})

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": published})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    server = await aiohttp_server(app)
    return {"keys": keys, "url": str(server.make_url("/jwks.json"))}


@pytest.fixture
async def jwks_client(make_client, config, idp) -> Any:
    config["auth"]["user_tokens"] = {
        "issuer": USER_TOKEN_ISSUER,
        "audience": USER_TOKEN_AUDIENCE,
        "jwks_url": idp["url"],
    }
    return await make_client(config)


def signed(idp: dict[str, Any], key: str, algorithm: str, kid: str, **extra: Any) -> str:
    return jwt.encode(claims(**extra), idp["keys"][key], algorithm=algorithm, headers={"kid": kid})


async def test_the_published_keys_still_verify_their_own_tokens(jwks_client, idp) -> None:
    for key, algorithm in (("rsa-1", "RS256"), ("ec-1", "ES256")):
        token = signed(idp, key, algorithm, kid=key)
        resp = await jwks_client.get("/v1/customers/u-1", headers=auth(token))
        assert resp.status == 200


@pytest.mark.parametrize(
    ("key", "algorithm", "kid"),
    [
        ("ec-1", "ES256", "rsa-1"),  # an EC signature checked with the RSA key
        ("rsa-1", "RS256", "ec-1"),  # an RSA signature checked with the EC key
        ("rsa-1", "PS256", "rsa-1"),  # RSA, but not the algorithm the key is pinned to
        ("ec-384", "ES384", "ec-384"),  # a curve the service does not accept
        ("ec-1", "ES256", "ec-384"),
    ],
)
async def test_a_token_naming_a_key_of_another_type_is_401(
    jwks_client, idp, key, algorithm, kid
) -> None:
    with capture_logs() as logs:
        resp = await jwks_client.get(
            "/v1/customers/u-1", headers=auth(signed(idp, key, algorithm, kid))
        )
    await assert_401(resp)
    no_error_logs(logs)


async def test_alg_none_and_hmac_with_the_public_key_are_401(jwks_client, idp) -> None:
    pem = (
        idp["keys"]["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head, body = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims()
    unsigned = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
    confused = f"{unsigned}.{b64(hmac.new(pem, unsigned.encode(), hashlib.sha256).digest())}"
    hmac_secret = jwt.encode(body, "s" * 32, algorithm="HS256", headers={"kid": "oct-1"})
    tokens = [
        raw_token({"alg": "none", "kid": "rsa-1"}, body),
        raw_token({"alg": "None", "kid": "ec-1"}, body),
        confused,
        hmac_secret,  # an HMAC key in the JWKS is not a way in either
        raw_token({"alg": "RS256", "kid": ["rsa-1"]}, body, b"x"),  # kid not a string
        raw_token({"alg": "RS256"}, body, b"x"),  # no kid
        raw_token(["not", "an", "object"], body, b"x"),
        "." * 2,
    ]
    nested = b64(("[" * 2500 + "]" * 2500).encode())  # deep JSON in a header that still fits
    tokens.append(f"{nested}.{b64(b'{}')}.{b64(b'x')}")
    with capture_logs() as logs:
        for token in tokens:
            await assert_401(await jwks_client.get("/v1/customers/u-1", headers=auth(token)))
    no_error_logs(logs)


async def test_hs256_mode_refuses_none_and_asymmetric_algorithms(client) -> None:
    body = claims()
    private = ec.generate_private_key(ec.SECP256R1())
    tokens = [
        raw_token({"alg": "none"}, body),
        jwt.encode(body, private, algorithm="ES256"),
        jwt.encode(body, "another-secret-of-at-least-32-characters", algorithm="HS256"),
    ]
    head = b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    unsigned = f"{head}.{b64(json.dumps(body).encode())}"
    signature = hmac.new(USER_TOKEN_SECRET.encode(), unsigned.encode(), hashlib.sha512).digest()
    tokens.append(f"{unsigned}.{b64(signature)}")  # the right secret, another algorithm
    with capture_logs() as logs:
        for token in tokens:
            await assert_401(await client.get("/v1/customers/u-1", headers=auth(token)))
    no_error_logs(logs)


# --- user token claims -----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "sub"])
async def test_a_token_without_a_required_claim_is_401(client, missing) -> None:
    body = {k: v for k, v in claims().items() if k != missing}
    token = jwt.encode(body, USER_TOKEN_SECRET, algorithm="HS256")
    await assert_401(await client.get("/v1/customers/u-1", headers=auth(token)))


@pytest.mark.parametrize(
    "extra",
    [{"iss": "https://evil.example/"}, {"aud": "another-service"}, {"exp": int(time.time()) - 120}],
)
async def test_a_token_for_another_issuer_or_audience_or_expired_is_401(client, extra) -> None:
    token = jwt.encode(claims(**extra), USER_TOKEN_SECRET, algorithm="HS256")
    await assert_401(await client.get("/v1/customers/u-1", headers=auth(token)))


@pytest.mark.parametrize("sub", ["", "u 1", "u\t1", "u-1\n", "x" * 300, "u-1\x00"])
async def test_a_subject_that_is_no_app_user_id_is_401(client, sub) -> None:
    resp = await client.get("/v1/customers/u-1", headers=auth(user_token(sub)))
    await assert_401(resp)


async def test_a_numeric_subject_is_401(client) -> None:
    token = jwt.encode(claims() | {"sub": 42}, USER_TOKEN_SECRET, algorithm="HS256")
    await assert_401(await client.get("/v1/customers/42", headers=auth(token)))


# --- console sessions bound to the key itself ------------------------------------------------


def with_admin_key(config: dict[str, Any], key: str) -> dict[str, Any]:
    keys = [k for k in config["auth"]["api_keys"] if k["name"] != "admin"]
    new = {"name": "admin", "key": key, "scopes": ["admin"]}
    return config | {"auth": config["auth"] | {"api_keys": [new, *keys]}}


async def test_rotating_the_admin_key_under_the_same_name_ends_its_sessions(
    make_client, config
) -> None:
    old = await make_client(config)
    _, cookie = await sign_in(old)
    status, html = await page(old, "/console/customers", cookie)
    assert status == 200
    csrf = csrf_in(html)
    rotated = await make_client(with_admin_key(config, "rotated-admin-key-0123456789"))
    status, _ = await page(rotated, "/console/customers", cookie)
    assert status == 303  # sent to the sign-in form
    resp = await rotated.post(
        "/console/customers/u-rot/actions/suspend",
        data={"csrf": csrf, "confirmed": "yes"},
        headers={"Cookie": cookie},
        allow_redirects=False,
    )
    assert resp.status == 403
    resp, fresh = await sign_in(rotated, "rotated-admin-key-0123456789")
    assert resp.status == 303
    assert (await page(rotated, "/console/customers", fresh))[0] == 200
    # The same key given by its digest is the same key: its sessions stay valid.
    digest = hashlib.sha256(b"rotated-admin-key-0123456789").hexdigest()
    config_by_digest = with_admin_key(config, "x" * 16)
    config_by_digest["auth"]["api_keys"][0] = {
        "name": "admin",
        "key_sha256": digest,
        "scopes": ["admin"],
    }
    same = await make_client(config_by_digest)
    assert (await page(same, "/console/customers", fresh))[0] == 200


async def test_sessions_stored_without_a_key_binding_are_refused(client) -> None:
    """Rows from before the binding existed (migration 0008) sign nobody in."""
    from api.keys import POOL

    _, cookie = await sign_in(client)
    assert (await page(client, "/console/customers", cookie))[0] == 200
    async with client.app[POOL].acquire() as conn:
        await conn.execute("UPDATE console_sessions SET key_binding = NULL")
    assert (await page(client, "/console/customers", cookie))[0] == 303


async def test_the_session_table_keeps_neither_key_nor_its_digest(client) -> None:
    from api.keys import POOL

    await sign_in(client)
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM console_sessions")
    stored = repr(dict(row))
    assert ADMIN_KEY not in stored
    assert hashlib.sha256(ADMIN_KEY.encode()).digest() not in bytes(row["key_binding"])
    assert hashlib.sha256(ADMIN_KEY.encode()).hexdigest() not in stored


# --- rate limits on failed credentials -------------------------------------------------------


def limited(config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return config | {"auth": config["auth"] | {"rate_limit": PROXY | settings}}


def from_(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Forwarded-For": address, **(headers or {})}


async def fail_until_limited(client, address: str, attempts: int = 3 * LIMIT) -> int:
    """Bad keys from `address` until one answers 429; how many were 401 before it."""
    for n in range(attempts):
        resp = await client.get(
            "/v1/customers/u-1", headers=from_(address, auth(f"guess-{n:04d}-0123456789"))
        )
        if resp.status == 429:
            await assert_429(resp)
            return n
        await assert_401(resp)
    raise AssertionError(f"no 429 after {attempts} failures")


async def assert_429(resp: Any) -> None:
    assert resp.status == 429, await resp.text()
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    if resp.content_type == "application/json":
        assert (await resp.json())["error"]["code"] == "too_many_failures"


async def test_a_few_dozen_bad_keys_trip_the_limit_for_that_client_only(
    make_client, config
) -> None:
    client = await make_client(limited(config))
    assert await fail_until_limited(client, "203.0.113.7") == LIMIT - 1
    # Once blocked, not even a valid key is looked at from there: guessing stops.
    await assert_429(
        await client.get("/v1/customers/u-1", headers=from_("203.0.113.7", auth(ADMIN_KEY)))
    )
    # Other clients are served, and their own failures are theirs.
    resp = await client.get("/v1/customers/u-1", headers=from_("198.51.100.9", auth(ADMIN_KEY)))
    assert resp.status == 200
    await assert_401(
        await client.get("/v1/customers/u-1", headers=from_("198.51.100.9", auth("nope" * 5)))
    )


async def test_a_blocked_address_still_serves_valid_user_tokens(make_client, config) -> None:
    """App users behind one NAT: a signature cannot be guessed, so a valid user token is
    served from a blocked address; a bad one is 429 there."""
    client = await make_client(limited(config))
    await fail_until_limited(client, "203.0.113.8")
    resp = await client.get("/v1/customers/u-1", headers=from_("203.0.113.8", user_auth("u-1")))
    assert resp.status == 200
    bad = user_token("u-1", secret="x" * 40)
    await assert_429(await client.get("/v1/customers/u-1", headers=from_("203.0.113.8", auth(bad))))


async def test_failed_user_tokens_count_too(make_client, config) -> None:
    client = await make_client(limited(config))
    expired = user_token("u-1", exp_in=-3600)
    statuses = [
        (await client.get("/v1/customers/u-1", headers=from_("203.0.113.9", auth(expired)))).status
        for _ in range(LIMIT + 5)
    ]
    assert statuses[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert set(statuses[LIMIT - 1 :]) == {429}


async def test_missing_credentials_are_not_failures(make_client, config) -> None:
    client = await make_client(limited(config))
    for _ in range(LIMIT + 5):
        await assert_401(await client.get("/v1/customers/u-1", headers=from_("203.0.113.10")))


async def test_bad_alias_tokens_count_as_failed_user_tokens(make_client, config) -> None:
    client = await make_client(limited(config))
    statuses = []
    for n in range(LIMIT + 5):
        resp = await client.post(
            "/v1/customers/u-1/aliases",
            headers=from_("203.0.113.11", user_auth("u-1")),
            json={"alias": "victim", "alias_token": user_token("victim", secret=f"{n:040d}")},
        )
        statuses.append(resp.status)
    assert statuses[0] == 403
    assert statuses[-1] == 429
    assert statuses.index(429) == LIMIT - 1


async def test_the_limit_is_shared_by_every_app_on_the_same_redis(make_client, config) -> None:
    first, second = await make_client(limited(config)), await make_client(limited(config))
    for n in range(LIMIT // 2):
        await assert_401(
            await first.get("/v1/customers/u-1", headers=from_("203.0.113.12", auth(f"{n:020d}")))
        )
    assert await fail_until_limited(second, "203.0.113.12") == LIMIT - 1 - LIMIT // 2
    for key in ("another-guess-0123456789", ADMIN_KEY):  # the first app knows it too
        await assert_429(
            await first.get("/v1/customers/u-1", headers=from_("203.0.113.12", auth(key)))
        )


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    make_client, config
) -> None:
    client = await make_client(config)  # no trusted proxies: the peer (127.0.0.1) counts
    for n in range(LIMIT - 1):
        resp = await client.get(
            "/v1/customers/u-1", headers=from_(f"203.0.113.{n}", auth(f"{n:020d}"))
        )
        await assert_401(resp)
    await assert_429(
        await client.get("/v1/customers/u-1", headers=from_("198.51.100.1", auth("y" * 20)))
    )


async def test_only_the_hop_added_by_a_trusted_proxy_counts(make_client, config) -> None:
    """A client cannot escape by sending its own X-Forwarded-For: the proxy appends the real
    address, which is the rightmost untrusted hop."""
    client = await make_client(limited(config))
    for n in range(LIMIT - 1):
        forged = f"198.51.100.{n}, 203.0.113.13"
        await assert_401(
            await client.get("/v1/customers/u-1", headers=from_(forged, auth(f"{n:020d}")))
        )
    await assert_429(
        await client.get(
            "/v1/customers/u-1", headers=from_("1.2.3.4, 203.0.113.13", auth("z" * 20))
        )
    )


async def test_redis_keys_carry_a_ttl_and_no_secret_nor_address(
    make_client, config, redis_client: aredis.Redis
) -> None:
    client = await make_client(limited(config))
    guess = "secret-guess-0123456789"
    for _ in range(3):
        await client.get("/v1/customers/u-1", headers=from_("203.0.113.14", auth(guess)))
    keys = [k async for k in redis_client.scan_iter(match="*auth*")]
    assert keys
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= WINDOW
        text = key.decode() + repr(await redis_client.dump(key))
        assert guess not in text
        assert "203.0.113.14" not in text


async def test_console_sign_in_brute_force_is_limited(make_client, config) -> None:
    client = await make_client(limited(config))
    headers = from_("203.0.113.15")
    statuses = []
    for n in range(LIMIT + 2):
        resp, cookie = await sign_in(client, f"guess-{n:020d}", **headers)
        statuses.append(resp.status)
        assert cookie == ""
    assert statuses[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert statuses[-1] == 429
    await assert_429(resp)
    assert "Too many failed sign-ins" in await resp.text()
    resp, cookie = await sign_in(client, ADMIN_KEY, **headers)  # the right key, too late
    await assert_429(resp)
    assert cookie == ""
    resp, cookie = await sign_in(client, ADMIN_KEY, **from_("198.51.100.20"))
    assert resp.status == 303
    assert cookie


async def test_console_failures_and_api_failures_share_one_budget(make_client, config) -> None:
    client = await make_client(limited(config))
    for n in range(LIMIT // 2):
        resp, _ = await sign_in(client, f"guess-{n:020d}", **from_("203.0.113.16"))
        assert resp.status == 401
    assert await fail_until_limited(client, "203.0.113.16") == LIMIT - 1 - LIMIT // 2


async def test_a_non_admin_key_signing_in_counts_for_its_name(make_client, config) -> None:
    """A valid key without the admin scope is a failed sign-in for that key's name, from any
    address; the admin key (another name) is not affected."""
    client = await make_client(limited(config))
    statuses = []
    for n in range(LIMIT + 1):
        resp, _ = await sign_in(client, READER_KEY, **from_(f"203.0.113.{100 + n}"))
        statuses.append(resp.status)
    assert statuses[: LIMIT - 1] == [403] * (LIMIT - 1)
    assert statuses[-1] == 429
    await assert_429(resp)
    resp, cookie = await sign_in(client, ADMIN_KEY, **from_("203.0.113.99"))
    assert resp.status == 303
    assert cookie


async def test_without_redis_the_limit_holds_per_process(make_client, config) -> None:
    cfg = limited(config)
    cfg["redis"] = {"url": "off"}
    with capture_logs() as logs:
        client = await make_client(cfg)
        assert await fail_until_limited(client, "203.0.113.17") == LIMIT - 1
        resp = await client.get("/v1/customers/u-1", headers=from_("198.51.100.2", auth(ADMIN_KEY)))
        assert resp.status == 200
    events = [e["event"] for e in logs]
    assert events.count("auth_rate_limit_in_process") == 1


async def test_an_unreachable_redis_falls_back_and_valid_keys_still_work(
    make_client, config
) -> None:
    cfg = limited(config)
    cfg["redis"] = {"url": f"redis://127.0.0.1:{closed_port()}/0"}
    with capture_logs() as logs:
        client = await make_client(cfg)
        resp = await client.get("/v1/customers/u-1", headers=from_("198.51.100.3", auth(ADMIN_KEY)))
        assert resp.status == 200
        assert await fail_until_limited(client, "203.0.113.18") == LIMIT - 1
        resp = await client.get("/v1/customers/u-1", headers=from_("198.51.100.3", auth(ADMIN_KEY)))
        assert resp.status == 200
    events = [e["event"] for e in logs]
    assert events.count("auth_rate_limit_in_process") == 1
    no_error_logs(logs)


# --- which address is the client -------------------------------------------------------------


def counted_address(peer: str, forwarded: str | None = None, trusted: tuple[str, ...] = ()) -> str:
    transport = mock.Mock()
    transport.get_extra_info.return_value = (peer, 40000)
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/", headers=headers, transport=transport)
    networks = tuple(ipaddress.ip_network(t) for t in trusted)
    return client_address(request, networks)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "counted"),
    [
        ("203.0.113.7", None, (), "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", (), "203.0.113.7"),  # untrusted peer: header ignored
        ("10.1.2.3", "198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.1.2.3", "10.4.4.4, 10.9.9.9", ("10.0.0.0/8",), "10.4.4.4"),  # all proxies
        ("10.1.2.3", "garbage, 10.9.9.9", ("10.0.0.0/8",), "10.9.9.9"),
        ("10.1.2.3", "[2001:db8::1]:443", ("10.0.0.0/8",), "2001:db8::/64"),
        ("10.1.2.3", "198.51.100.1:5555", ("10.0.0.0/8",), "198.51.100.1"),
        ("2001:db8:1:2:3:4:5:6", None, (), "2001:db8:1:2::/64"),  # one host holds a /64
        ("::ffff:203.0.113.7", None, (), "203.0.113.7"),
    ],
)
def test_the_counted_client_address(peer, forwarded, trusted, counted) -> None:
    assert counted_address(peer, forwarded, trusted) == counted
