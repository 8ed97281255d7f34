"""A local three-level Apple-style test CA and ES256 JWS signer (store-protocols A11 recipe).

The chain (root → intermediate with OID 1.2.840.113635.100.6.2.1 → leaf with OID
1.2.840.113635.100.6.11.1, SKI/AKI, KeyUsage) passes the library's strict chain checks, so
tests and the demo exercise exactly the production verification path with a root we own.
Never trust this root in production.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LEAF_OID = "1.2.840.113635.100.6.11.1"
INTERMEDIATE_OID = "1.2.840.113635.100.6.2.1"

_FILES = {
    "root": ("root.der", "root-key.pem"),
    "intermediate": ("intermediate.der", "intermediate-key.pem"),
    "leaf": ("leaf.der", "leaf-key.pem"),
}


def ms(when: dt.datetime) -> int:
    """Apple's wire format for a date: integer milliseconds since the epoch."""
    return int(when.timestamp() * 1000)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "receiptd test CA"),
        ]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _build(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    role: str,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if role == "root":
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        ).add_extension(_key_usage(cert_sign=True), critical=True)
    elif role == "intermediate":
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(INTERMEDIATE_OID), b"\x05\x00"),
                critical=False,
            )
        )
    else:
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(LEAF_OID), b"\x05\x00"),
                critical=False,
            )
        )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class TestCA:
    """Root, intermediate and leaf certificates with their keys; signs Apple-style JWS."""

    __test__ = False  # not a pytest test class

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(
        cls,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        leaf_not_before: dt.datetime | None = None,
        leaf_not_after: dt.datetime | None = None,
        name: str = "receiptd test",
    ) -> TestCA:
        """A fresh CA; by default valid from 2000 to 2099 so any realistic signedDate verifies."""
        start = not_before or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        end = not_after or dt.datetime(2099, 12, 31, tzinfo=dt.UTC)
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        root = _build(
            subject=f"{name} root",
            key=keys[0],
            issuer_cert=None,
            issuer_key=keys[0],
            not_before=start,
            not_after=end,
            role="root",
        )
        inter = _build(
            subject=f"{name} intermediate",
            key=keys[1],
            issuer_cert=root,
            issuer_key=keys[0],
            not_before=start,
            not_after=end,
            role="intermediate",
        )
        leaf = _build(
            subject=f"{name} leaf",
            key=keys[2],
            issuer_cert=inter,
            issuer_key=keys[1],
            not_before=leaf_not_before or start,
            not_after=leaf_not_after or end,
            role="leaf",
        )
        return cls(root, keys[0], inter, keys[1], leaf, keys[2])

    @property
    def root_der(self) -> bytes:
        """The root certificate as DER, what `AppleVerifier(root_certificates=…)` takes."""
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def x5c(self) -> list[str]:
        """The JWS header chain: standard base64 DER of leaf, intermediate, root."""
        return [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (self.leaf, self.intermediate, self.root)
        ]

    def sign(
        self,
        payload: dict[str, Any],
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        x5c: list[str] | None = None,
    ) -> str:
        """Sign `payload` as compact ES256 JWS with this CA's x5c (or forge with another key)."""
        return jwt.encode(
            payload,
            key or self.leaf_key,
            algorithm="ES256",
            headers={"x5c": self.x5c if x5c is None else x5c},
        )

    def save(self, directory: Path) -> None:
        """Write DER certificates and PEM keys (unencrypted: test material only)."""
        directory.mkdir(parents=True, exist_ok=True)
        for role, (cert_file, key_file) in _FILES.items():
            cert: x509.Certificate = getattr(self, role)
            key: ec.EllipticCurvePrivateKey = getattr(self, f"{role}_key")
            (directory / cert_file).write_bytes(cert.public_bytes(serialization.Encoding.DER))
            (directory / key_file).write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    @classmethod
    def load(cls, directory: Path) -> TestCA:
        """Read a CA written by `save`."""
        parts: dict[str, Any] = {}
        for role, (cert_file, key_file) in _FILES.items():
            parts[role] = x509.load_der_x509_certificate((directory / cert_file).read_bytes())
            key = serialization.load_pem_private_key((directory / key_file).read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            parts[f"{role}_key"] = key
        return cls(**parts)

    @classmethod
    def load_or_create(cls, directory: Path) -> TestCA:
        """The CA stored in `directory`, generating and saving one on first use."""
        if (directory / _FILES["root"][0]).exists():
            return cls.load(directory)
        ca = cls.generate()
        ca.save(directory)
        return ca


# --- realistic payloads ----------------------------------------------------------------


def transaction_payload(
    *,
    bundle_id: str,
    environment: str,
    transaction_id: str,
    original_transaction_id: str,
    product_id: str,
    purchase_date: dt.datetime,
    signed_date: dt.datetime,
    expires_date: dt.datetime | None = None,
    original_purchase_date: dt.datetime | None = None,
    product_type: str = "Auto-Renewable Subscription",
    app_account_token: str | None = None,
    ownership: str = "PURCHASED",
    transaction_reason: str = "PURCHASE",
    **extra: Any,
) -> dict[str, Any]:
    """A JWSTransactionDecodedPayload as Apple signs it; `extra` adds or overrides fields
    (offerType, offerDiscountType, revocationDate, revocationReason, isUpgraded, …)."""
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "originalTransactionId": original_transaction_id,
        "bundleId": bundle_id,
        "productId": product_id,
        "purchaseDate": ms(purchase_date),
        "originalPurchaseDate": ms(original_purchase_date or purchase_date),
        "quantity": 1,
        "type": product_type,
        "inAppOwnershipType": ownership,
        "signedDate": ms(signed_date),
        "environment": environment,
        "transactionReason": transaction_reason,
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 9990,
        "currency": "USD",
    }
    if product_type == "Auto-Renewable Subscription":
        payload["webOrderLineItemId"] = f"{transaction_id}0"
        payload["subscriptionGroupIdentifier"] = "21000000"
    if expires_date is not None:
        payload["expiresDate"] = ms(expires_date)
    if app_account_token is not None:
        payload["appAccountToken"] = app_account_token
    payload.update(extra)
    return payload


def renewal_payload(
    *,
    environment: str,
    original_transaction_id: str,
    product_id: str,
    signed_date: dt.datetime,
    auto_renew: bool = True,
    auto_renew_product_id: str | None = None,
    renewal_date: dt.datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A JWSRenewalInfoDecodedPayload; `extra` adds expirationIntent, isInBillingRetryPeriod,
    gracePeriodExpiresDate, priceIncreaseStatus, …"""
    payload: dict[str, Any] = {
        "originalTransactionId": original_transaction_id,
        "productId": product_id,
        "autoRenewProductId": auto_renew_product_id or product_id,
        "autoRenewStatus": 1 if auto_renew else 0,
        "signedDate": ms(signed_date),
        "environment": environment,
        "isInBillingRetryPeriod": False,
    }
    if renewal_date is not None:
        payload["renewalDate"] = ms(renewal_date)
    payload.update(extra)
    return payload


def notification_payload(
    *,
    notification_type: str,
    subtype: str | None,
    bundle_id: str,
    environment: str,
    signed_date: dt.datetime,
    app_apple_id: int | None = None,
    signed_transaction: str | None = None,
    signed_renewal: str | None = None,
    status: int | None = None,
    notification_uuid: str | None = None,
    block: str = "data",
    **extra: Any,
) -> dict[str, Any]:
    """A ResponseBodyV2DecodedPayload with a `data` block (or `summary`,
    `externalPurchaseToken`, `appData` when `block` says so; `extra` fills that block)."""
    inner: dict[str, Any] = {"bundleId": bundle_id}
    if app_apple_id is not None:
        inner["appAppleId"] = app_apple_id
    if block != "externalPurchaseToken":
        inner["environment"] = environment
    if block == "data":
        inner["bundleVersion"] = "1.0"
        if signed_transaction is not None:
            inner["signedTransactionInfo"] = signed_transaction
        if signed_renewal is not None:
            inner["signedRenewalInfo"] = signed_renewal
        if status is not None:
            inner["status"] = status
    inner.update(extra)
    payload: dict[str, Any] = {
        "notificationType": notification_type,
        "notificationUUID": notification_uuid or str(uuid.uuid4()),
        "version": "2.0",
        "signedDate": ms(signed_date),
        block: inner,
    }
    if subtype is not None:
        payload["subtype"] = subtype
    return payload
