"""Apple App Store: JWS verification, App Store Server API client, translation to StoreEvents."""

from __future__ import annotations

from receipts.apple.server_api import (
    AppStoreServerClient,
    StoreCredentialsRejected,
    SubscriptionStatus,
    make_auth_token,
    transaction_id_from_receipt,
)
from receipts.apple.translate import notification_events, purchase_event, transaction_event
from receipts.apple.verifier import (
    AppleNotification,
    AppleVerifier,
    VerifiedRenewalInfo,
    VerifiedTransaction,
)

__all__ = [
    "AppStoreServerClient",
    "AppleNotification",
    "AppleVerifier",
    "StoreCredentialsRejected",
    "SubscriptionStatus",
    "VerifiedRenewalInfo",
    "VerifiedTransaction",
    "make_auth_token",
    "notification_events",
    "purchase_event",
    "transaction_event",
    "transaction_id_from_receipt",
]
