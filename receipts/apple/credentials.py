"""What the App Store Server API client needs besides HTTP: its bearer token (an ES256 JWT
signed with the In-App Purchase key) and the transaction id to ask about a legacy receipt."""

from __future__ import annotations

import binascii
import time

import jwt
from appstoreserverlibrary.receipt_utility import ReceiptUtility

from receipts.errors import MalformedPayload, PurchaseNotFound

AUDIENCE = "appstoreconnect-v1"


def make_auth_token(
    *,
    issuer_id: str,
    key_id: str,
    private_key: bytes,
    bundle_id: str,
    now: float | None = None,
    lifetime_seconds: int = 300,
) -> str:
    """The bearer JWT Apple expects: ES256, header kid/typ, claims iss/iat/exp/aud/bid."""
    if not 0 < lifetime_seconds <= 3600:
        raise ValueError("Apple API tokens may live at most 60 minutes")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer_id,
        "iat": issued,
        "exp": issued + lifetime_seconds,
        "aud": AUDIENCE,
        "bid": bundle_id,
    }
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": key_id, "typ": "JWT"})


def transaction_id_from_receipt(receipt_b64: str) -> str:
    """The first transaction id in a legacy base64 app receipt (no signature check: use it
    only to ask the API). Malformed → MalformedPayload; no in-app purchase → PurchaseNotFound."""
    try:
        transaction_id = ReceiptUtility().extract_transaction_id_from_app_receipt(receipt_b64)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise MalformedPayload("The app receipt is not a valid PKCS#7 receipt") from exc
    if not transaction_id:
        raise PurchaseNotFound("The app receipt contains no in-app purchase")
    return str(transaction_id)
