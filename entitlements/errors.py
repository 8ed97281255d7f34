"""Errors of the entitlements domain.

    EntitlementError                 base
    ├── UnknownEntitlement           no configuration defines this entitlement name (→ 404)
    ├── PurchaseOwnedByAnotherUser   transfer_policy "keep" refuses a re-link (→ 409)
    ├── DatabaseUnavailable          PostgreSQL cannot be reached (→ 503, retry later)
    ├── InvalidRequest               malformed body, id or parameter (→ 400)
    ├── Unauthenticated              no or bad credentials (→ 401)
    ├── TooManyFailures              too many failed credentials from this client (→ 429)
    ├── Forbidden                    credentials without the needed scope or user (→ 403)
    ├── StoreNotConfigured           the store section is absent from the config (→ 404)
    ├── AliasConflict                the alias is another customer's, or a cycle (→ 409)
    ├── GrantRejected                a well-formed grant that cannot be given (→ 422)
    ├── UnknownOffer                 no `[offers.<name>]` of that name (→ 404)
    ├── NotEligible                  the customer may not have the offer (→ 403)
    ├── OffersNotConfigured          no App Store key to sign offers with (→ 422)
    ├── ActionRejected               a store action support may not ask (→ 422, its own code)
    ├── RefundRequestNotFound        no refund request has this id (→ 404)
    └── RefundRequestNotPending      a refund request already sent or decided (→ 409)

A class's docstring is its default message.
"""

from __future__ import annotations


class EntitlementError(Exception):
    """The entitlement request could not be served."""

    code = "entitlement_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        """The message for the error object: the one given, else the class's docstring."""
        return str(self.args[0])


class UnknownEntitlement(EntitlementError):
    """No entitlement of that name is configured."""

    code = "unknown_entitlement"


class PurchaseOwnedByAnotherUser(EntitlementError):
    """The purchase belongs to another user and the transfer policy keeps it there."""

    code = "purchase_owned_by_another_user"


class DatabaseUnavailable(EntitlementError):
    """The database is unavailable; retry later."""

    code = "database_unavailable"


class InvalidRequest(EntitlementError):
    """The request is malformed."""

    code = "invalid_request"


class Unauthenticated(EntitlementError):
    """Missing or invalid credentials."""

    code = "unauthenticated"


class TooManyFailures(EntitlementError):
    """Too many failed credentials from this client; retry later."""

    code = "too_many_failures"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)  # whole seconds, for the Retry-After header


class Forbidden(EntitlementError):
    """These credentials do not allow this request."""

    code = "forbidden"


class StoreNotConfigured(EntitlementError):
    """This store is not configured on this service."""

    code = "store_not_configured"


class AliasConflict(EntitlementError):
    """The alias belongs to another customer, or the customer is itself an alias."""

    code = "alias_conflict"


class GrantRejected(EntitlementError):
    """The grant is well-formed but cannot be given (it would already have ended)."""

    code = "grant_rejected"


class RefundRequestNotFound(EntitlementError):
    """No refund request has this id."""

    code = "refund_request_not_found"


class RefundRequestNotPending(EntitlementError):
    """The refund request was already answered or decided: only a pending one can change."""

    code = "refund_request_not_pending"


class ActionRejected(EntitlementError):
    """The store action cannot be asked for this customer."""

    code = "action_rejected"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnknownOffer(EntitlementError):
    """No offer of that name is configured."""

    code = "unknown_offer"


class NotEligible(EntitlementError):
    """The customer is not eligible for this offer."""

    code = "not_eligible"


class OffersNotConfigured(EntitlementError):
    """Offers are signed with the App Store Server API key: set [apple] issuer_id, key_id
    and private_key_file."""

    code = "offers_not_configured"
