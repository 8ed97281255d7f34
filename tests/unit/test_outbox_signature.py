"""The outbound webhook signature: sign with the first key, verify against every known key,
and the receiver example in docs/api.md agrees with the module."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from entitlements.outbox_signature import SigningKey, digest, parse_key, sign, verify

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
OLD = parse_key("k1:old-secret-0123456789")
NEW = parse_key("k2:new-secret-0123456789")
BODY = b'{"app_user_id":"u-1","id":"e-1","sequence":1}'
T = 1_800_000_000

Verifier = Callable[[str, bytes, list[bytes], float], bool]


def module_verify(header: str, body: bytes, secrets: list[bytes], now: float) -> bool:
    return verify(header, body, secrets, now=now)


def readme_verify(header: str, body: bytes, secrets: list[bytes], now: float) -> bool:
    """The receiver example of docs/api.md, run as written with its SECRETS replaced."""
    text = API_DOC.read_text(encoding="utf-8")
    section = text[text.index("### Outbound webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(code.group(1), namespace)  # our own documentation
    namespace["SECRETS"] = secrets
    check = namespace["verify"]
    assert callable(check)
    return bool(check(header, body, now))


VERIFIERS = [pytest.param(module_verify, id="module"), pytest.param(readme_verify, id="readme")]


def test_the_header_is_t_kid_v1_over_t_dot_body() -> None:
    header = sign(BODY, NEW, T)
    assert header == f"t={T},kid=k2,v1={digest(NEW.secret, T, BODY)}"
    expected = hmac.new(b"new-secret-0123456789", f"{T}.".encode() + BODY, hashlib.sha256)
    assert header.endswith("v1=" + expected.hexdigest())


@pytest.mark.parametrize("check", VERIFIERS)
def test_a_receiver_holding_two_keys_accepts_either_during_rotation(check: Verifier) -> None:
    both = [NEW.secret, OLD.secret]
    assert check(sign(BODY, NEW, T), BODY, both, T)  # after rotation: the new key signs
    assert check(sign(BODY, OLD, T), BODY, both, T)  # before it: the old key signed
    # A receiver that has not learnt the new key yet rejects it: add keys to receivers first.
    assert not check(sign(BODY, NEW, T), BODY, [OLD.secret], T)
    assert check(sign(BODY, OLD, T), BODY, [OLD.secret], T)


@pytest.mark.parametrize("check", VERIFIERS)
def test_tampering_staleness_and_garbage_are_rejected(check: Verifier) -> None:
    keys = [NEW.secret, OLD.secret]
    header = sign(BODY, NEW, T)
    assert not check(header, BODY + b" ", keys, T)  # body changed
    assert not check(header.replace(f"t={T}", f"t={T + 1}"), BODY, keys, T)  # t changed
    assert check(header, BODY, keys, T + 300)  # within five minutes
    assert not check(header, BODY, keys, T + 301)  # a replay of an old delivery
    assert not check(header, BODY, keys, T - 301)  # from the future
    for bad in ("", "t=,v1=", "garbage", f"t=x{T},v1=00", f"t={T}", "t=²,v1=ab", f"t={T},v1=é"):
        assert not check(bad, BODY, keys, T)


def test_keys_are_key_id_colon_secret_and_never_shown() -> None:
    key = parse_key("k-2.x_y:a:b:c")
    assert key == SigningKey("k-2.x_y", b"a:b:c")  # the secret may hold colons
    assert "a:b:c" not in repr(key)
    for bad in ("nocolon-s3cr3t", ":s3cr3t", "kid:", "k id:s3cr3t", "k,1:s3cr3t"):
        with pytest.raises(ValueError) as err:
            parse_key(bad)
        assert "s3cr3t" not in str(err.value)
