"""Errors raised by store verification and store API clients.

    ReceiptError                      base; `retryable` says whether trying later can help
    ├── MalformedPayload              not the shape a store sends (→ 400, or `rejected`)
    ├── InvalidSubmission             an app's submission lacks or mangles its store fields (→ 400)
    ├── VerificationFailed            signature, chain or identity does not verify (→ 422)
    │   ├── WrongApp                  bundle id / app id / package name is not ours
    │   └── WrongEnvironment          an environment this service does not accept
    ├── PushAuthenticationFailed      Pub/Sub OIDC token missing or invalid (→ 401)
    ├── PurchaseNotFound              the store does not know the transaction / token (→ 422)
    ├── ProductNotOurs                the product or package is not configured (→ 422)
    ├── SubmissionNotSupported        this service cannot validate it: the store or its API
    │                                 credentials are not configured (→ 422)
    ├── StoreRequestRejected          a store refused a listing request (a page token it no
    │                                 longer knows, a time window it does not keep)
    ├── StoreActionRefused            a store refused an action on a purchase (an extension,
    │                                 a deferral, a refund): `store_code` says why (→ 422)
    └── StoreUnavailable              store API or certificate endpoint unreachable (→ 503)

A store whose section is absent answers its webhook with entitlements.errors.StoreNotConfigured
(404, contract §3); a submission for it is SubmissionNotSupported (422, contract §3).

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
        """The message for the error object: the one given, else the class's docstring."""
        return str(self.args[0])


class MalformedPayload(ReceiptError):
    """The payload is not in the format the store sends."""

    code = "malformed_payload"


class InvalidSubmission(ReceiptError):
    """The submission lacks the proof for its store."""

    code = "invalid_request"


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


class SubmissionNotSupported(ReceiptError):
    """This service cannot validate this submission: its store, or the store API access it
    needs, is not configured."""

    code = "submission_not_supported"


class StoreRequestRejected(ReceiptError):
    """The store refused the request as asked (HTTP 400): a page token it no longer knows, or
    a time window it does not keep."""

    code = "store_request_rejected"


class StoreActionRefused(ReceiptError):
    """The store refused the action on this purchase."""

    # Apple's `errorCode` (int) or Google's error reason / status (str); None when the store
    # gave none. Retrying the same request gets the same refusal.
    retryable = False
    code = "store_action_refused"

    def __init__(self, message: str | None = None, *, store_code: int | str | None = None) -> None:
        super().__init__(message)
        self.store_code = store_code


class StoreUnavailable(ReceiptError):
    """The store could not be reached; try again later."""

    retryable = True
    code = "store_unavailable"
