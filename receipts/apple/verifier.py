"""Verification of Apple-signed JWS (notifications, transactions, renewal info) into typed values.

Wraps the library's synchronous `SignedDataVerifier`: one per accepted environment, chosen
from the *unverified* payload's environment claim (used only to pick a verifier; the chosen
verifier then checks signature, chain, bundle id, app id and environment in full). Library
`VerificationException`s become `receipts.errors` classes here.

The per-environment verifiers are `fast_jws.verifier_class()` instances: on the checked
releases the library's verifier with its own faster PyJWT decoder (PyJWT's module functions,
which the user-token check also uses, stay as shipped).

Offloading: to `executor` (the loop's default when None) only with online checks on, when
verification does blocking OCSP I/O; offline (or with `inline`, which `receiptd replay`
sets) it runs on the calling thread. Offline it is pure CPU, almost all of it holding the
GIL (PyJWT, cattrs; ≈0.6 ms per notification with its nested items: chain cache, fast
decoder, each JWS decoded once), so a worker thread never freed the loop: the loop waited
for the GIL while the worker held it (and, after each socket call, up to the 5 ms switch
interval). What the hop added was its own CPU: the submit, waking the worker, GIL hand-offs
and waking the loop, ~0.4-0.5 ms per notification under load (bench/apple_ingest.py
--py-spy, issue 24), as much as the verification itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import JWSRenewalInfoDecodedPayload
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import JWSTransactionDecodedPayload
from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import ResponseBodyV2DecodedPayload
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from receipts.apple.chain_cache import CachingChainVerifier
from receipts.apple.fast_jws import FastSignedDataVerifier, verifier_class
from receipts.errors import (
    MalformedPayload,
    StoreUnavailable,
    VerificationFailed,
    WrongApp,
    WrongEnvironment,
)

T = TypeVar("T")

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")

ENVIRONMENTS = frozenset({"Production", "Sandbox", "Xcode", "LocalTesting"})
UNSIGNED_ENVIRONMENTS = frozenset({"Xcode", "LocalTesting"})  # the library skips verification


@dataclass(frozen=True, slots=True)
class VerifiedTransaction:
    """A verified JWSTransaction: the library model plus the full decoded JSON."""

    payload: JWSTransactionDecodedPayload
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedRenewalInfo:
    """A verified JWSRenewalInfo: the library model plus the full decoded JSON."""

    payload: JWSRenewalInfoDecodedPayload
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class AppleNotification:
    """A verified Notifications V2 payload with its nested transaction and renewal info.

    `raw` keeps fields the library models drop; `notification_type` and `subtype` are the
    raw strings, so subtypes unknown to the library (CREATED, ACTIVE_TOKEN_REMINDER) survive.
    """

    payload: ResponseBodyV2DecodedPayload
    raw: dict[str, Any] = field(repr=False)
    transaction: VerifiedTransaction | None = None
    renewal: VerifiedRenewalInfo | None = None

    @property
    def notification_type(self) -> str | None:
        """The raw notificationType (None only for a payload without one)."""
        return self.payload.rawNotificationType

    @property
    def subtype(self) -> str | None:
        """The raw subtype, including values the library enum does not know."""
        return self.payload.rawSubtype

    @property
    def notification_uuid(self) -> str | None:
        """Apple's id of this notification; retries keep it (the idempotency key)."""
        return self.payload.notificationUUID

    @property
    def signed_at(self) -> datetime | None:
        """When Apple signed the notification."""
        signed = self.payload.signedDate
        return None if signed is None else datetime.fromtimestamp(signed / 1000, tz=UTC)

    @property
    def environment(self) -> str | None:
        """The environment the notification verified for."""
        return notification_environment(self.raw)


_STATUS_ERRORS: dict[VerificationStatus, type[Exception]] = {
    VerificationStatus.INVALID_APP_IDENTIFIER: WrongApp,
    VerificationStatus.INVALID_ENVIRONMENT: WrongEnvironment,
    VerificationStatus.RETRYABLE_VERIFICATION_FAILURE: StoreUnavailable,
}

_STRUCTURE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError)


def translate_verification_error(exc: VerificationException) -> Exception:
    """Our error for a library verification status (the message names the status only)."""
    cls = _STATUS_ERRORS.get(exc.status, VerificationFailed)
    if cls is StoreUnavailable:
        return StoreUnavailable("Apple certificate status could not be checked; retry later")
    return cls(f"Apple signed data does not verify ({exc.status.name})")


def notification_environment(decoded: dict[str, Any]) -> str | None:
    """The environment a notification claims, read the way the library reads it."""
    for block in ("data", "summary", "externalPurchaseToken", "appData"):
        inner = decoded.get(block)
        if not isinstance(inner, dict):
            continue
        if block == "externalPurchaseToken":
            purchase_id = inner.get("externalPurchaseId")
            if isinstance(purchase_id, str) and purchase_id.startswith("SANDBOX"):
                return "Sandbox"
            return "Production"
        env = inner.get("environment")
        return env if isinstance(env, str) else None
    return None


def notification_bundle(decoded: dict[str, Any]) -> str | None:
    """The app (bundle id) a notification claims, read where the library reads it."""
    for block in ("data", "summary", "externalPurchaseToken", "appData"):
        inner = decoded.get(block)
        if isinstance(inner, dict):
            bundle = inner.get("bundleId")
            return bundle if isinstance(bundle, str) else None
    return None


def peek(jws: str) -> dict[str, Any]:
    """Decode a compact JWS payload *without* verifying it (to route it).

    Garbage → MalformedPayload. Only base64url characters are accepted, so for any token the
    library later verifies this is the same JSON PyJWT decodes (and cheaper than PyJWT's
    per-character check).
    """
    return peek_payload(jws)[1]


def peek_payload(jws: str) -> tuple[bytes, dict[str, Any]]:
    """`peek`, with the payload bytes it parsed."""
    if not isinstance(jws, str):
        raise MalformedPayload("Not a compact JWS")
    parts = jws.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise MalformedPayload("Not a compact JWS")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        decoded = json.loads(payload)
    except (ValueError, binascii.Error, RecursionError) as exc:  # Recursion: nested too deeply
        raise MalformedPayload("Not a compact JWS") from exc
    if not isinstance(decoded, dict):
        raise MalformedPayload("JWS payload is not a JSON object")
    return payload, decoded


def _remember(verifier: SignedDataVerifier, payload: bytes, parsed: dict[str, Any]) -> None:
    """Let a fast verifier use `peek`'s parse of the payload it is about to decode (the same
    bytes, parsed by the same `json.loads`) instead of parsing it again."""
    if isinstance(verifier, FastSignedDataVerifier):
        verifier.remember_payload(payload, parsed)


def _to_der(cert: bytes) -> bytes:
    if cert.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    x509.load_der_x509_certificate(cert)  # fail at start-up, not on the first webhook
    return cert


class AppleVerifier:
    """Verifies Apple JWS against the configured roots and environments, for the app the
    signed data names: `bundle_id` (with `app_apple_id`) and any `other_apps` of the team.
    Data naming another bundle id is checked against the first app, so the library refuses
    it (422, invalid app identifier)."""

    def __init__(  # noqa: PLR0917 - the documented constructor is positional
        self,
        bundle_id: str,
        app_apple_id: int | None,
        environments: Sequence[str],
        root_certificates: Sequence[bytes],
        online_checks: bool,
        executor: concurrent.futures.Executor | None = None,
        *,
        chain_cache_size: int = 64,
        allow_unsigned: bool = False,
        other_apps: Sequence[tuple[str, int | None]] = (),
        inline: bool = False,
    ) -> None:
        unknown = set(environments) - ENVIRONMENTS
        if unknown or not environments:
            raise ValueError(
                f"apple.environments must be a non-empty subset of {sorted(ENVIRONMENTS)}"
            )
        unsigned = sorted(set(environments) & UNSIGNED_ENVIRONMENTS)
        if unsigned and not allow_unsigned:
            # Apple's library returns Xcode / LocalTesting payloads without checking any
            # signature: listing one would accept anything anyone writes (issue 18).
            raise ValueError(
                f"apple.environments: {', '.join(unsigned)} data is unsigned; it is accepted "
                "only with apple.allow_xcode = true (development)"
            )
        if unsigned and "Production" in environments:
            raise ValueError(
                "apple.allow_xcode: unsigned Xcode / LocalTesting data is never accepted "
                "together with Production"
            )
        apps = [(bundle_id, app_apple_id), *other_apps]
        if "Production" in environments and any(app_id is None for _b, app_id in apps):
            raise ValueError("apple.app_apple_id is required when Production is accepted")
        roots = [_to_der(c) for c in root_certificates]
        if not roots and not set(environments) <= UNSIGNED_ENVIRONMENTS:
            raise ValueError("apple.root_certificates must name at least one root certificate")
        self.bundle_id = bundle_id
        self.bundle_ids = tuple(b for b, _app_id in apps)
        self.environments = tuple(environments)
        self.online_checks = online_checks
        self._executor = executor
        # Only blocking I/O (OCSP) goes to the executor: CPU-bound checks hold the GIL on any
        # thread, so the hop would cost more than it frees (module docstring, issue 24).
        self._inline = inline or not online_checks
        # Per app, per environment: the library checks one bundle id and one environment.
        self._apps: dict[str, dict[str, SignedDataVerifier]] = {}
        self.chain_cache: CachingChainVerifier | None = None
        verifier_cls = verifier_class()
        for bundle, app_id in apps:
            verifiers = self._apps.setdefault(bundle, {})
            for env in environments:
                verifier = verifier_cls(roots, online_checks, Environment(env), bundle, app_id)
                if self.chain_cache is None:
                    self.chain_cache = CachingChainVerifier(
                        verifier._chain_verifier, roots, chain_cache_size
                    )
                verifier._chain_verifier = self.chain_cache  # type: ignore[assignment]
                verifiers[env] = verifier
        self._verifiers = self._apps[bundle_id]  # the first app's
        signed = [e for e in self.environments if e not in UNSIGNED_ENVIRONMENTS]
        # A claim of an environment we do not accept is checked by a real verifier, so that
        # the answer is "bad signature" or "wrong environment" only after verification.
        self._fallback_environment = signed[0] if signed else self.environments[0]

    # --- async API ---------------------------------------------------------------------

    async def verify_notification(self, signed_payload: str) -> AppleNotification:
        """Verify a Notifications V2 `signedPayload` and its nested signed items."""
        return await self._run(self.verify_notification_sync, signed_payload)

    async def verify_transaction(self, jws: str) -> VerifiedTransaction:
        """Verify a signed transaction (JWSTransaction) from a notification, the app or the API."""
        return await self._run(self.verify_transaction_sync, jws)

    async def verify_transactions(self, items: Sequence[str]) -> list[VerifiedTransaction]:
        """Verify many signed transactions in one executor job (API history pages)."""
        return await self._run(lambda xs: [self.verify_transaction_sync(x) for x in xs], items)

    async def verify_renewal_info(self, jws: str) -> VerifiedRenewalInfo:
        """Verify a signed renewal info (JWSRenewalInfo)."""
        return await self._run(self.verify_renewal_info_sync, jws)

    async def _run(self, fn: Callable[[Any], T], arg: Any) -> T:
        if self._inline:
            return fn(arg)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, arg))

    # --- sync core (runs inline or on an executor thread) --------------------------------

    def verify_notification_sync(self, signed_payload: str) -> AppleNotification:
        """Blocking form of `verify_notification`."""
        payload_bytes, raw = peek_payload(signed_payload)
        verifier = self._pick(notification_environment(raw), notification_bundle(raw))
        _remember(verifier, payload_bytes, raw)
        payload = self._call(verifier.verify_and_decode_notification, signed_payload)
        transaction = renewal = None
        data = payload.data
        if data is not None and data.signedTransactionInfo is not None:
            transaction = self._transaction(verifier, data.signedTransactionInfo)
        if data is not None and data.signedRenewalInfo is not None:
            renewal = self._renewal(verifier, data.signedRenewalInfo)
        return AppleNotification(payload, raw, transaction, renewal)

    def verify_transaction_sync(self, jws: str) -> VerifiedTransaction:
        """Blocking form of `verify_transaction`."""
        return self._transaction(None, jws)

    def verify_renewal_info_sync(self, jws: str) -> VerifiedRenewalInfo:
        """Blocking form of `verify_renewal_info`."""
        return self._renewal(None, jws)

    def _transaction(self, verifier: SignedDataVerifier | None, jws: str) -> VerifiedTransaction:
        payload, raw = peek_payload(jws)
        verifier = verifier or self._pick(raw.get("environment"), raw.get("bundleId"))
        _remember(verifier, payload, raw)
        return VerifiedTransaction(
            self._call(verifier.verify_and_decode_signed_transaction, jws), raw
        )

    def _renewal(self, verifier: SignedDataVerifier | None, jws: str) -> VerifiedRenewalInfo:
        payload, raw = peek_payload(jws)
        # Renewal info names no app: the library checks its environment only.
        verifier = verifier or self._pick(raw.get("environment"), None)
        _remember(verifier, payload, raw)
        return VerifiedRenewalInfo(self._call(verifier.verify_and_decode_renewal_info, jws), raw)

    def _pick(self, environment: object, bundle: object) -> SignedDataVerifier:
        verifiers = self._apps.get(bundle) if isinstance(bundle, str) else None
        verifiers = verifiers or self._verifiers  # another app: the library refuses it
        if isinstance(environment, str) and environment in verifiers:
            return verifiers[environment]
        return verifiers[self._fallback_environment]

    @staticmethod
    def _call(method: Callable[[str], T], jws: str) -> T:
        try:
            return method(jws)
        except VerificationException as exc:
            raise translate_verification_error(exc) from exc
        except _STRUCTURE_ERRORS as exc:
            # Signed correctly but not the shape of the model (cattrs could not structure it).
            raise MalformedPayload("Apple signed data has an unexpected shape") from exc
