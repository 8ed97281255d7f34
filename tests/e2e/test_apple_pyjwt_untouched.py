"""A running app leaves PyJWT exactly as PyJWT ships it: the faster decoder is local to the
Apple verifiers (receipts/apple/fast_jws.py), so the user-token check runs PyJWT's own code.

Two references: the objects captured when this module is imported (during collection, before
any app of the session starts), and a fresh interpreter's description of the same names (which
would also catch a change made before this import).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt import api_jws, api_jwt

from api.keys import APPLE
from receipts.apple.fast_jws import FastSignedDataVerifier
from simulators.apple_ca import TestCA
from tests.conftest import user_token
from tests.e2e.apple_helpers import apple_config, scenario


def pyjwt_objects() -> dict[str, Any]:
    """Every PyJWT name the library or api/auth.py reaches, and what PyJWS/PyJWT hold."""
    names = {f"jwt.{name}": getattr(jwt, name) for name in jwt.__all__}
    for module in (api_jws, api_jwt):
        names |= {f"{module.__name__}.{k}": v for k, v in vars(module).items() if callable(v)}
    names["api_jws._jws_global_obj"] = api_jws._jws_global_obj
    names["api_jwt._jwt_global_obj"] = api_jwt._jwt_global_obj
    names["api_jwt._jwt_global_obj._jws"] = api_jwt._jwt_global_obj._jws
    for cls in (api_jws.PyJWS, api_jwt.PyJWT):
        names |= {f"{cls.__qualname__}.{k}": v for k, v in vars(cls).items()}
    for obj in (api_jws._jws_global_obj, api_jwt._jwt_global_obj):
        names |= {f"{type(obj).__qualname__} global.{k}": v for k, v in vars(obj).items()}
    return names


SHIPPED = pyjwt_objects()  # at import, before any app of the session exists


def pyjwt_view() -> dict[str, str]:
    """A description of PyJWT's wiring that two interpreters can compare (runs in both)."""
    import hashlib

    import jwt
    from jwt import api_jws, api_jwt

    def code_bytes(code) -> bytes:  # bytecode and constants, nested code included
        consts = [
            code_bytes(c) if hasattr(c, "co_code") else repr(c).encode() for c in code.co_consts
        ]
        return code.co_code + b"|".join(consts)

    def describe(obj: object) -> str:
        fn = getattr(obj, "__func__", obj)  # bound methods, staticmethods
        code = getattr(fn, "__code__", None)
        if code is None:
            return f"{type(obj).__module__}.{type(obj).__qualname__}"
        digest = hashlib.sha256(code_bytes(code)).hexdigest()[:16]
        owner = getattr(obj, "__self__", None)
        bound = "" if owner is None else f" of {type(owner).__module__}.{type(owner).__qualname__}"
        return f"{type(obj).__name__} {fn.__module__}.{fn.__qualname__} {digest}{bound}"

    jws, jwt_obj = api_jws._jws_global_obj, api_jwt._jwt_global_obj
    view = {f"jwt.{name}": describe(getattr(jwt, name)) for name in jwt.__all__}
    for module in (api_jws, api_jwt):
        view |= {
            f"{module.__name__}.{k}": describe(v) for k, v in vars(module).items() if callable(v)
        }
    for cls in (api_jws.PyJWS, api_jwt.PyJWT):
        view |= {
            f"{cls.__qualname__}.{k}": describe(v)
            for k, v in vars(cls).items()
            if k not in {"__dict__", "__weakref__", "__doc__", "__module__"}
        }
    view |= {
        "global PyJWS": f"{type(jws).__module__}.{type(jws).__qualname__} {sorted(vars(jws))}",
        "global PyJWT": f"{type(jwt_obj).__module__}.{type(jwt_obj).__qualname__}"
        f" {sorted(vars(jwt_obj))}",
        "global PyJWS algorithms": repr(sorted(jws._algorithms)),
        "global PyJWS options": repr(sorted(jws.options.items())),
        "global PyJWT options": repr(sorted(jwt_obj.options.items())),
        "global PyJWT uses global PyJWS": repr(jwt_obj._jws is jws),
        "jwt.decode is the global PyJWT's": repr(jwt.decode.__self__ is jwt_obj),
        "jwt.get_unverified_header is the global PyJWS's": repr(
            jwt.get_unverified_header.__self__ is jws
        ),
    }
    return view


@pytest.fixture(scope="module")
def fresh_view() -> dict[str, str]:
    """`pyjwt_view()` in an interpreter that imported nothing but PyJWT."""
    source = inspect.getsource(pyjwt_view) + "\nimport json\nprint(json.dumps(pyjwt_view()))\n"
    done = subprocess.run(
        [sys.executable, "-I", "-c", source], capture_output=True, text=True, check=True
    )
    view = json.loads(done.stdout)
    assert "PyJWS._decode_base64url_segment" in view
    return view


@pytest.fixture(scope="module")
def apple_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    ca_dir = tmp_path_factory.mktemp("apple-ca")
    ca = TestCA.generate()
    ca.save(ca_dir)
    return ca, ca_dir


async def test_running_app_leaves_pyjwt_as_shipped(
    make_client, config, apple_ca, clock, fresh_view
) -> None:
    ca, ca_dir = apple_ca
    client = await make_client(apple_config(config, ca_dir))
    # The fast path is really in use (else this test would prove nothing).
    verifiers = client.app[APPLE].verifier._verifiers
    assert {type(v) for v in verifiers.values()} == {FastSignedDataVerifier}

    # Apple verification through the webhook: notification, nested transaction and renewal.
    s = scenario(ca)
    resp = await client.post("/webhooks/apple", json=s.body("subscribe", clock.now))
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    # The user-token check (api/auth.py, module-level jwt.decode) beside Apple verification.
    resp = await client.get(
        f"/v1/customers/{s.state.user}",
        headers={"Authorization": f"Bearer {user_token(s.state.user)}"},
    )
    assert resp.status == 200
    assert (await resp.json())["entitlements"]["premium"]["active"] is True
    resp = await client.get(
        f"/v1/customers/{s.state.user}",
        headers={"Authorization": f"Bearer {user_token(s.state.user)[:-4]}AAAA"},
    )
    assert resp.status == 401

    now = pyjwt_objects()
    assert now.keys() == SHIPPED.keys()
    changed = [name for name, obj in now.items() if obj is not SHIPPED[name]]
    assert changed == []
    assert api_jws.PyJWS._decode_base64url_segment.__module__ == "jwt.api_jws"
    assert type(api_jws._jws_global_obj) is api_jws.PyJWS
    assert type(api_jwt._jwt_global_obj) is api_jwt.PyJWT
    assert pyjwt_view() == fresh_view
