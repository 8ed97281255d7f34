"""Apple's `SignedDataVerifier` with its own, faster PyJWT decoder (PyJWT's globals untouched).

PyJWT 2.15 rejects non-alphabet bytes in each JWS segment with a per-byte Python generator
(`any(c not in ALPHABET for c in segment)`); profiling showed it is ~83 % of the time spent
verifying an Apple notification (3 JWS, ~1.5 kB each, every segment decoded three times by
the library). `bytes.translate(None, ALPHABET)` deletes the alphabet bytes in C: whatever is
left is junk. `FastPyJWS` is PyJWS with only that check replaced.

The library's `_decode_signed_object` calls the module-level `jwt.decode` and
`jwt.get_unverified_header`, which every other PyJWT user in the process shares (the app
user-token check in api/auth.py among them). So instead of changing PyJWT for the whole
process, `FastSignedDataVerifier` repeats the library's `_decode_signed_object` step for
step with a private `PyJWT`/`FastPyJWS` pair wired like PyJWT's module-level pair. It is used
only on the PyJWT and app-store-server-library releases it was checked against
(`verifier_class`); any other release gets the library class unchanged, with a warning.

The library's steps decode each JWS three times (`decode` without the signature,
`get_unverified_header`, `decode` with the key: each splits the token, base64-decodes and
checks every segment, parses the header, 12 kB for a notification whose header carries the
x5c chain) and parse the leaf key's PEM every time. The private pair keeps three memories,
each handing back only what the same step computed from equal input, so every verdict, value
and error stays the library's (a failure is never kept; a memory is one entry, right from
any thread: an entry that is not equal to the input is not used):

    FastPyJWS._load             the last token's split, decoded segments and parsed header
    FastPyJWT._decode_payload   the last payload's JSON object (`remember` adds the parse
                                `receipts.apple.verifier.peek` made of the same bytes)
    KeptKeyES256.prepare_key    the prepared key per PEM text (a handful of leaves)

A kept parse is a shared dict: nothing on the path mutates one (cattrs reads it; the
verifier's `raw` is kept as parsed).

tests/unit/test_apple_fast_jws.py proves the segment check decides exactly like PyJWT's
(hypothesis) and the verifier exactly like the library's (differential, valid and broken
JWS, each verified twice); tests/e2e/test_apple_pyjwt_untouched.py that a running app leaves
PyJWT as shipped.
"""

from __future__ import annotations

import binascii
import time
from importlib import metadata
from typing import Any

import jwt
import structlog
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)
from jwt import api_jws
from jwt.algorithms import ECAlgorithm
from jwt.exceptions import DecodeError
from jwt.utils import base64url_decode, base64url_encode

log = structlog.get_logger(__name__)

# Re-check (the tests say how) before adding a release: a new PyJWT may change the segment
# check or the decode path, a new library the steps of `_decode_signed_object`.
CHECKED_PYJWT = frozenset({"2.15.0", "2.15.1"})
CHECKED_LIBRARY = frozenset({"3.1.2"})

BASE64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
KEPT_KEYS = 64  # prepared leaf keys kept (Apple signs with a handful of leaves at a time)

_Loaded = tuple[bytes, bytes, dict[str, Any], bytes]  # PyJWS._load: payload, input, header, sig


class KeptKeyES256(ECAlgorithm):
    """PyJWT's ES256 keeping the keys it prepared from PEM text (a failure is not kept)."""

    def __init__(self) -> None:
        super().__init__(ECAlgorithm.SHA256)
        self._kept: dict[str | bytes, Any] = {}

    def prepare_key(self, key: Any) -> Any:
        """`ECAlgorithm.prepare_key`, once per PEM text."""
        if not isinstance(key, str | bytes):
            return super().prepare_key(key)
        prepared = self._kept.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._kept) >= KEPT_KEYS:
                self._kept.clear()
            self._kept[key] = prepared
        return prepared


class FastPyJWS(api_jws.PyJWS):
    """PyJWS whose base64url segment check runs in C, which keeps the last token it loaded
    and the ES256 keys it prepared; every other step is PyJWT's own."""

    def __init__(self) -> None:
        super().__init__()
        self._loaded: tuple[str | bytes, _Loaded] | None = None
        self._algorithms["ES256"] = KeptKeyES256()  # this instance's table, not PyJWT's

    def _load(self, jwt: str | bytes) -> _Loaded:
        """`PyJWS._load`, once for the same token (its next decodes)."""
        last = self._loaded
        if last is not None and type(last[0]) is type(jwt) and last[0] == jwt:
            return last[1]
        loaded = super()._load(jwt)
        self._loaded = (jwt, loaded)
        return loaded

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        """PyJWS._decode_base64url_segment (PyJWT 2.15, MIT) with the alphabet test in C."""
        padding = 0
        stripped = segment
        while stripped.endswith(b"="):
            stripped = stripped[:-1]
            padding += 1
            if padding > 2:
                raise DecodeError(f"Invalid {name} padding")

        if padding and len(segment) % 4 != 0:
            raise DecodeError(f"Invalid {name} padding")

        if len(stripped) % 4 == 1 or stripped.translate(None, BASE64URL_ALPHABET):
            raise DecodeError(f"Invalid {name} padding")

        try:
            decoded = base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise DecodeError(f"Invalid {name} padding") from err

        if base64url_encode(decoded) != stripped:
            raise DecodeError(f"Invalid {name} padding")

        return decoded


class FastPyJWT(jwt.PyJWT):
    """PyJWT parsing the payload JSON once per payload bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed: tuple[bytes, dict[str, Any]] | None = None

    def remember(self, payload: bytes, parsed: dict[str, Any]) -> None:
        """`parsed` is `json.loads(payload)`, a JSON object (a parse made elsewhere)."""
        self._parsed = (payload, parsed)

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        """`PyJWT._decode_payload`, once for the same payload bytes."""
        payload = decoded["payload"]
        last = self._parsed
        if last is not None and type(payload) is bytes and last[0] == payload:
            return last[1]
        parsed: dict[str, Any] = super()._decode_payload(decoded)
        if type(payload) is bytes:
            self._parsed = (payload, parsed)
        return parsed


class FastSignedDataVerifier(SignedDataVerifier):
    """The library's verifier decoding with its own `FastPyJWS` / `FastPyJWT` pair instead of
    PyJWT's globals."""

    def __init__(
        self,
        root_certificates: list[bytes],
        enable_online_checks: bool,
        environment: Environment,
        bundle_id: str,
        app_apple_id: int | None = None,
    ) -> None:
        super().__init__(
            root_certificates, enable_online_checks, environment, bundle_id, app_apple_id
        )
        # Wired as PyJWT wires `jwt.decode` / `jwt.get_unverified_header`
        # (api_jwt: `_jwt_global_obj = PyJWT(); _jwt_global_obj._jws = _jws_global_obj`).
        self._fast_jws = FastPyJWS()
        self._fast_jwt = FastPyJWT()
        self._fast_jwt._jws = self._fast_jws

    def remember_payload(self, payload: bytes, parsed: dict[str, Any]) -> None:
        """Hand the decoder a parse of a payload made elsewhere: `parsed` is
        `json.loads(payload)` and a JSON object (`peek`'s of the token about to be verified)."""
        if isinstance(self._fast_jwt, FastPyJWT):
            self._fast_jwt.remember(payload, parsed)

    def _decode_signed_object(self, signed_obj: str) -> dict[str, Any]:
        # app-store-server-library 3.1.2 `SignedDataVerifier._decode_signed_object` (MIT,
        # Apple Inc.), step for step, bare `Exception`s and messages included (they become
        # the `__cause__` of the VerificationException); only `jwt.` became the private
        # decoder.
        try:
            decoded_jwt = self._fast_jwt.decode(signed_obj, options={"verify_signature": False})
            if self._environment in (Environment.XCODE, Environment.LOCAL_TESTING):
                # Not signed by the App Store: the library skips verification, and the public
                # method calling this checks the environment.
                return decoded_jwt
            unverified_headers: dict[str, Any] = self._fast_jws.get_unverified_header(signed_obj)
            x5c_header: list[str] | None = unverified_headers.get("x5c")
            if x5c_header is None or len(x5c_header) == 0:
                raise Exception("x5c claim was empty")
            algorithm_header: str | None = unverified_headers.get("alg")
            if algorithm_header is None or algorithm_header != "ES256":
                raise Exception("Algorithm was not ES256")
            signed_date = (
                decoded_jwt.get("signedDate")
                if decoded_jwt.get("signedDate") is not None
                else decoded_jwt.get("receiptCreationDate")
            )
            effective_date = (
                time.time()
                if self._enable_online_checks or signed_date is None
                else int(signed_date) // 1000
            )
            signing_key = self._chain_verifier.verify_chain(
                x5c_header,
                self._enable_online_checks,
                effective_date,  # type: ignore[arg-type]  # a float, as the library passes
            )
            return self._fast_jwt.decode(signed_obj, signing_key, algorithms=["ES256"])
        except VerificationException:
            raise
        except Exception as exc:  # the library turns every other failure into this status
            raise VerificationException(VerificationStatus.VERIFICATION_FAILURE) from exc


def verifier_class() -> type[SignedDataVerifier]:
    """`FastSignedDataVerifier` on the checked releases, else the library's class (logged)."""
    pyjwt = jwt.__version__
    try:
        library = metadata.version("app-store-server-library")
    except metadata.PackageNotFoundError:
        library = "unknown"
    if (
        pyjwt in CHECKED_PYJWT
        and library in CHECKED_LIBRARY
        and getattr(api_jws, "_BASE64URL_ALPHABET", None) == BASE64URL_ALPHABET
    ):
        return FastSignedDataVerifier
    log.warning("apple_jws_fast_path_not_used", pyjwt=pyjwt, app_store_server_library=library)
    return SignedDataVerifier
