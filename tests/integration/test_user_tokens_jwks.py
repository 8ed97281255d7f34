"""App user tokens verified against a JWKS served over HTTP on 127.0.0.1 (RS256 and ES256):
cached, refetched on an unknown key id, wrong issuer/audience/expiry refused.

Token `exp` claims use the real clock on purpose: the service checks them with PyJWT against
the real clock, not the injected one (auth tokens, not store data)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import auth

ISSUER = "https://id.example.test/"


def jwk(key, kid: str) -> dict:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(key, rsa.RSAPrivateKey)
        else (jwt.algorithms.ECAlgorithm)
    )
    public = json.loads(algorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig"}


@pytest.fixture
async def identity_provider(aiohttp_server):
    keys = {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
    }
    state = {"published": ["rsa-1", "ec-1"], "fetches": 0}

    async def jwks(request: web.Request) -> web.Response:
        state["fetches"] += 1
        return web.json_response({"keys": [jwk(keys[k], k) for k in state["published"]]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app)
    return keys, state, str(server.make_url("/.well-known/jwks.json"))


def token(keys, kid: str, sub: str = "u-1", **claims) -> str:
    algorithm = "RS256" if kid.startswith("rsa") else "ES256"
    body = {"sub": sub, "aud": "receiptd", "iss": ISSUER, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, keys[kid], algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
async def jwks_client(make_client, config, identity_provider):
    _, _, url = identity_provider
    config["auth"]["user_tokens"] = {"issuer": ISSUER, "audience": "receiptd", "jwks_url": url}
    return await make_client(config)


async def test_rs256_and_es256_tokens_read_their_own_customer(
    jwks_client, identity_provider
) -> None:
    keys, state, _ = identity_provider
    for kid in ("rsa-1", "ec-1"):
        resp = await jwks_client.get("/v1/customers/u-1", headers=auth(token(keys, kid)))
        assert resp.status == 200
    assert state["fetches"] == 1  # cached
    other = await jwks_client.get("/v1/customers/u-2", headers=auth(token(keys, "rsa-1")))
    assert other.status == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example/"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 3600},
    ],
)
async def test_wrong_issuer_audience_or_expired_is_401(jwks_client, identity_provider, claims):
    keys, _, _ = identity_provider
    resp = await jwks_client.get("/v1/customers/u-1", headers=auth(token(keys, "rsa-1", **claims)))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_token_signed_by_an_unpublished_key_is_401(jwks_client, identity_provider) -> None:
    _, state, _ = identity_provider
    stranger = {"rsa-x": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    resp = await jwks_client.get("/v1/customers/u-1", headers=auth(token(stranger, "rsa-x")))
    assert resp.status == 401
    forged = jwt.encode(
        {"sub": "u-1", "aud": "receiptd", "iss": ISSUER, "exp": int(time.time()) + 600},
        stranger["rsa-x"],
        algorithm="RS256",
        headers={"kid": "rsa-1"},  # claims a published key id
    )
    resp = await jwks_client.get("/v1/customers/u-1", headers=auth(forged))
    assert resp.status == 401
    assert state["fetches"] >= 1
