"""The faster base64url segment check decides exactly like PyJWT's own."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.exceptions import DecodeError

from receipts import jws_speed

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def outcome(fn, segment: bytes):
    try:
        return ("ok", fn(segment, "payload"))
    except DecodeError as exc:
        return ("error", str(exc))


segments = st.one_of(
    st.binary(max_size=40),  # arbitrary junk
    st.binary(max_size=60).map(base64.urlsafe_b64encode),  # padded
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")),
    st.binary(max_size=60).map(base64.b64encode),  # standard alphabet: + /
    st.text(alphabet=ALPHABET.decode() + "=+/!. \n", max_size=50).map(str.encode),
)


@settings(max_examples=2000, deadline=None)
@given(segments)
def test_same_decision_as_pyjwt(segment: bytes) -> None:
    assert outcome(jws_speed.decode_base64url_segment, segment) == outcome(
        jws_speed.ORIGINAL, segment
    )


@pytest.mark.parametrize(
    "segment", [b"", b"a", b"ab", b"ab==", b"ab=", b"abc=", b"a===", b"!!!!", b"YWJj", b"YW\x00J"]
)
def test_edge_cases(segment: bytes) -> None:
    assert outcome(jws_speed.decode_base64url_segment, segment) == outcome(
        jws_speed.ORIGINAL, segment
    )


def test_installs_on_the_checked_release() -> None:
    from jwt import api_jws

    before = api_jws.PyJWS._decode_base64url_segment
    try:
        assert jws_speed.install() is True
        assert api_jws.PyJWS._decode_base64url_segment is jws_speed.decode_base64url_segment
    finally:
        api_jws.PyJWS._decode_base64url_segment = staticmethod(before)
