"""Errors raised by store verification and store API clients.

    ReceiptError                      base; `retryable` says whether trying later can help
    ├── MalformedPayload              not the shape a store sends (→ 400, or `rejected`)
    ├── VerificationFailed            signature, chain or identity does not verify (→ 422)
    │   ├── WrongApp                  bundle id / app id / package name is not ours
    │   └── WrongEnvironment          an environment this service does not accept
    ├── PushAuthenticationFailed      Pub/Sub OIDC token missing or invalid (→ 401)
    ├── PurchaseNotFound              the store does not know the transaction / token (→ 422)
    ├── ProductNotOurs                the product or package is not configured (→ 422)
    ├── NotConfigured                 the store, or its API credentials, is not configured (→ 422)
    └── StoreUnavailable              store API or certificate endpoint unreachable (→ 503)

A class's docstring is its default message. Messages never contain tokens, receipts or JWS.
"""

from __future__ import annotations


class ReceiptError(Exception):
    """The store data could not be used."""

    retryable: bool = False
    code: str = "receipt_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class MalformedPayload(ReceiptError):
    """The payload is not in the format the store sends."""

    code = "malformed_payload"


class VerificationFailed(ReceiptError):
    """The signed data does not verify."""

    code = "verification_failed"


class WrongApp(VerificationFailed):
    """The signed data belongs to another app."""

    code = "wrong_app"


class WrongEnvironment(VerificationFailed):
    """The signed data comes from an environment this service does not accept."""

    code = "wrong_environment"


class PushAuthenticationFailed(ReceiptError):
    """The push request is not authenticated by a valid Google OIDC token."""

    code = "unauthenticated"


class PurchaseNotFound(ReceiptError):
    """The store does not know this purchase."""

    code = "purchase_not_found"


class ProductNotOurs(ReceiptError):
    """The product or package is not one this service is configured for."""

    code = "product_not_configured"


class NotConfigured(ReceiptError):
    """This store, or the API access this request needs, is not configured."""

    code = "store_not_configured"


class StoreUnavailable(ReceiptError):
    """The store could not be reached; try again later."""

    retryable = True
    code = "store_unavailable"
