"""Local stand-ins for Google's keys: push OIDC tokens, a service account, push bodies.

`GoogleTestKeys` holds two RSA keys with self-signed certificates: `oidc` plays Google's
OIDC signer (its certificate is served in the oauth2/v1/certs format), `service_account`
plays our Play Developer API service account (its JSON key points `token_uri` at a fake
token endpoint). Nothing here is secure; it exists for tests and the offline demo.

Times: push bodies (publishTime, eventTimeMillis) are store data and take their time from
the caller (a test's injected clock). Auth material alone reads the real clock: the OIDC
token's iat/exp are checked by google-auth against the real clock, whatever the service's
injected clock says.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.auth.crypt
import google.auth.jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

GOOGLE_ISSUER = "https://accounts.google.com"
DEMO_PUSH_EMAIL = "rtdn-push@receiptd-demo.iam.gserviceaccount.com"
DEMO_SERVICE_ACCOUNT_EMAIL = "play-api@receiptd-demo.iam.gserviceaccount.com"
DEMO_SUBSCRIPTION = "projects/receiptd-demo/subscriptions/play-rtdn"
_KEY_FILES = {"oidc": "google_oidc_key.pem", "service_account": "google_service_account_key.pem"}


@dataclass(frozen=True, slots=True)
class RsaKey:
    """An RSA private key with a self-signed certificate and a key id."""

    kid: str
    private_pem: bytes
    cert_pem: bytes

    @classmethod
    def generate(cls, kid: str, common_name: str = "receiptd test signer") -> RsaKey:
        """A fresh 2048-bit key and a certificate valid from yesterday for ten years."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        # Real clock: auth material, not store data. google-auth reads only the public key
        # from this certificate (it never checks the validity dates), so the dates matter to
        # no verification; they are merely plausible.
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid, private_pem, cert.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def from_pem(cls, data: bytes) -> RsaKey:
        """Read back what `to_pem` wrote: the private key, then the certificate."""
        text = data.decode()
        kid = text.split("\n", 1)[0].removeprefix("# kid: ").strip()
        marker = "-----BEGIN CERTIFICATE-----"
        key_part, _, cert_part = text.partition(marker)
        private = key_part.split("\n", 1)[1].encode()
        return cls(kid, private, (marker + cert_part).encode())

    def to_pem(self) -> bytes:
        """The kid, private key and certificate in one file."""
        return f"# kid: {self.kid}\n".encode() + self.private_pem + self.cert_pem

    def signer(self) -> google.auth.crypt.RSASigner:
        """A google-auth signer for this key, carrying its kid."""
        return _signer(self.private_pem, self.kid)


@dataclass(frozen=True, slots=True)
class GoogleTestKeys:
    """The two keys a Google test set-up needs (see the module docstring)."""

    oidc: RsaKey
    service_account: RsaKey

    @classmethod
    def generate(cls) -> GoogleTestKeys:
        """Fresh keys with distinct kids."""
        suffix = base64.b32encode(secrets.token_bytes(8)).decode().strip("=").lower()
        return cls(
            RsaKey.generate(f"oidc-{suffix}", "receiptd fake Google OIDC"),
            RsaKey.generate(f"sa-{suffix}", "receiptd fake service account"),
        )

    def save(self, directory: Path) -> None:
        """Write both keys (private, mode 0600) and the certs JSON into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        for attr, filename in _KEY_FILES.items():
            path = directory / filename
            path.write_bytes(getattr(self, attr).to_pem())
            path.chmod(0o600)
        (directory / "google_certs.json").write_text(json.dumps(self.certs_json()))

    @classmethod
    def load(cls, directory: Path) -> GoogleTestKeys:
        """Read keys written by `save`."""
        keys = {a: RsaKey.from_pem((directory / f).read_bytes()) for a, f in _KEY_FILES.items()}
        return cls(**keys)

    @classmethod
    def load_or_create(cls, directory: Path) -> GoogleTestKeys:
        """The keys in `directory`, generating and saving them on first use."""
        if all((directory / f).exists() for f in _KEY_FILES.values()):
            return cls.load(directory)
        keys = cls.generate()
        keys.save(directory)
        return keys

    def certs_json(self) -> dict[str, str]:
        """The OIDC certificate in Google's oauth2/v1/certs format: {kid: PEM cert}."""
        return {self.oidc.kid: self.oidc.cert_pem.decode()}

    def sign_push_token(
        self,
        audience: str,
        email: str,
        *,
        issuer: str = GOOGLE_ISSUER,
        expires_in: int = 3600,
        kid: str | None = None,
        email_verified: bool = True,
        extra: dict[str, Any] | None = None,
        key: RsaKey | None = None,
    ) -> str:
        """An OIDC token like the one Pub/Sub puts in a push's Authorization header.

        `key` signs with another key (a wrong signer); `kid` overrides the header's key id;
        a negative `expires_in` makes an expired token.
        """
        signer_key = key or self.oidc
        # Real clock on purpose: the service verifies iat/exp with google-auth, which compares
        # them with the real clock, not with the service's injected clock.
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": "104857600000000000000",
            "sub": "104857600000000000000",
            "email": email,
            "email_verified": email_verified,
            "iat": min(now, now + expires_in - 60),
            "exp": now + expires_in,
            "iss": issuer,
        }
        claims.update(extra or {})
        signer = _signer(signer_key.private_pem, signer_key.kid)
        token: bytes = google.auth.jwt.encode(  # type: ignore[no-untyped-call]
            signer, claims, key_id=kid or signer_key.kid
        )
        return token.decode()

    def service_account_info(
        self, token_uri: str, email: str = DEMO_SERVICE_ACCOUNT_EMAIL
    ) -> dict[str, str]:
        """A service-account JSON key (as a dict) whose token_uri is a fake token endpoint."""
        return {
            "type": "service_account",
            "project_id": "receiptd-demo",
            "private_key_id": self.service_account.kid,
            "private_key": self.service_account.private_pem.decode(),
            "client_email": email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }

    def write_service_account_file(self, directory: Path, token_uri: str) -> Path:
        """Write `service_account_info(token_uri)` as google_service_account.json (0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "google_service_account.json"
        path.write_text(json.dumps(self.service_account_info(token_uri), indent=2))
        path.chmod(0o600)
        return path


@functools.lru_cache(maxsize=32)
def _signer(private_pem: bytes, kid: str) -> google.auth.crypt.RSASigner:
    """Loading an RSA key validates it (tens of ms): load each key once."""
    signer: google.auth.crypt.RSASigner = google.auth.crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
        private_pem, key_id=kid
    )
    return signer


# --- push bodies -----------------------------------------------------------------------


def push_envelope(
    notification: dict[str, Any] | bytes,
    message_id: str,
    *,
    publish_time: datetime,
    subscription: str = DEMO_SUBSCRIPTION,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pub/Sub push body (wrapped format) as Pub/Sub sends it: both id spellings.

    `publish_time` is required: pass the test's clock (store data, never the wall clock).
    `notification` bytes are sent as they are (for poison tests); a dict is JSON-encoded.
    """
    raw = notification if isinstance(notification, bytes) else json.dumps(notification).encode()
    published = publish_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    message: dict[str, Any] = {
        "data": base64.b64encode(raw).decode(),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": published,
        "publish_time": published,
    }
    if attributes:
        message["attributes"] = attributes
    return {"message": message, "subscription": subscription}


def _developer_notification(package: str, event_time: datetime) -> dict[str, Any]:
    return {
        "version": "1.0",
        "packageName": package,
        "eventTimeMillis": str(int(event_time.timestamp() * 1000)),
    }


def subscription_notification(
    package: str,
    token: str,
    notification_type: int,
    *,
    event_time: datetime,
    subscription_id: str | None = None,
) -> dict[str, Any]:
    """A DeveloperNotification with a subscriptionNotification (legacy subscriptionId optional)."""
    body: dict[str, Any] = {
        "version": "1.0",
        "notificationType": notification_type,
        "purchaseToken": token,
    }
    if subscription_id is not None:
        body["subscriptionId"] = subscription_id
    return _developer_notification(package, event_time) | {"subscriptionNotification": body}


def one_time_notification(
    package: str, token: str, sku: str, notification_type: int = 1, *, event_time: datetime
) -> dict[str, Any]:
    """A DeveloperNotification with a oneTimeProductNotification (1 purchased, 2 cancelled)."""
    body = {
        "version": "1.0",
        "notificationType": notification_type,
        "purchaseToken": token,
        "sku": sku,
    }
    return _developer_notification(package, event_time) | {"oneTimeProductNotification": body}


def voided_notification(
    package: str,
    token: str,
    order_id: str,
    *,
    event_time: datetime,
    product_type: int = 1,
    refund_type: int = 1,
) -> dict[str, Any]:
    """A DeveloperNotification with a voidedPurchaseNotification (product type 1 = subscription)."""
    body = {
        "purchaseToken": token,
        "orderId": order_id,
        "productType": product_type,
        "refundType": refund_type,
    }
    return _developer_notification(package, event_time) | {"voidedPurchaseNotification": body}


def console_test_notification(package: str, *, event_time: datetime) -> dict[str, Any]:
    """The notification Play Console sends with "Send test notification"."""
    test = {"testNotification": {"version": "1.0"}}
    return _developer_notification(package, event_time) | test
