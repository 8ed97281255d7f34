"""The one table from our error classes to HTTP statuses and the contract's error object."""

from __future__ import annotations

from aiohttp import web

from entitlements import errors as ent
from receipts import errors as rec

# Most specific first: the first matching class wins.
STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (ent.InvalidRequest, 400),
    (ent.Unauthenticated, 401),
    (ent.TooManyFailures, 429),
    (ent.Forbidden, 403),
    (ent.NotEligible, 403),
    (ent.UnknownOffer, 404),
    (ent.OffersNotConfigured, 422),
    (ent.UnknownEntitlement, 404),
    (ent.StoreNotConfigured, 404),
    (ent.RefundRequestNotFound, 404),
    (ent.RefundRequestNotPending, 409),
    (ent.PurchaseOwnedByAnotherUser, 409),
    (ent.AliasConflict, 409),
    (ent.GrantRejected, 422),
    (ent.ActionRejected, 422),
    (ent.DatabaseUnavailable, 503),
    (rec.MalformedPayload, 400),
    (rec.InvalidSubmission, 400),
    (rec.PushAuthenticationFailed, 401),
    (rec.VerificationFailed, 422),
    (rec.PurchaseNotFound, 422),
    (rec.ProductNotOurs, 422),
    (rec.SubmissionNotSupported, 422),
    (rec.StoreUnavailable, 503),
    (rec.ReceiptError, 422),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "service_unavailable",
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The contract's error object: `{"error": {"code": code, "message": message}}`."""
    return {"error": {"code": code, "message": message}}


def status_for(exc: Exception) -> int | None:
    """The HTTP status of one of our errors, or None when it is not ours."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return None


def describe_http(exc: web.HTTPException) -> tuple[str, str]:
    """Code and message for aiohttp's own HTTP exceptions (unknown route, 405, 413)."""
    if exc.status == 413:
        return "body_too_large", "request body exceeds 1 MiB"
    if exc.status == 404:
        return "not_found", "no such route"
    return _HTTP_CODES.get(exc.status, "http_error"), exc.reason
