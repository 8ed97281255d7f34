"""Support actions on App Store purchases: Extend a Subscription Renewal Date. Apple has no
revocation by the developer (only Apple refunds), so `revoke` is refused before any request.

Apple's reasons (`extendReasonCode`): 1 customer satisfaction, 2 other, 3 service issue or
outage. Apple allows 1 to 90 days and two extensions per subscription in 365 days; its refusals
(SubscriptionExtensionIneligibleError, SubscriptionMaxExtensionError, …) come back as
`refused` with Apple's error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entitlements.model import Store
from receipts.apple.server_api import AppStoreServerClient
from receipts.errors import (
    PurchaseNotFound,
    StoreActionRefused,
    StoreRequestRejected,
    StoreUnavailable,
)
from receipts.port import ActionOutcome, ActionTarget

REASON_CODES = {"customer_satisfaction": 1, "other": 2, "service_outage": 3}
MAX_DAYS = 90


class StoreCannotRevoke(StoreActionRefused):
    """The App Store has no revocation by the developer: only Apple refunds."""

    code = "store_cannot_revoke"


@dataclass
class AppleActions:
    """Extend on the App Store Server API (`api`: the team's client)."""

    api: AppStoreServerClient
    store: Store = field(default=Store.APP_STORE)

    async def extend(
        self, target: ActionTarget, *, days: int, reason: str, request_id: str
    ) -> ActionOutcome:
        """Extend a Subscription Renewal Date of `target` by `days`."""
        client = self.api.for_app(target.app)
        environment = "Sandbox" if target.environment == "Sandbox" else "Production"
        if target.environment not in {None, "Production", "Sandbox"}:
            return ActionOutcome("refused", f"{target.environment} purchases cannot be extended")
        try:
            answer = await client.extend_renewal_date(
                target.purchase_id,
                environment,
                days=days,
                reason_code=REASON_CODES[reason],
                request_identifier=request_id,
            )
        except (StoreActionRefused, PurchaseNotFound, StoreRequestRejected) as exc:
            code = getattr(exc, "store_code", None)
            return ActionOutcome("refused", exc.message, {"errorCode": code})
        except StoreUnavailable as exc:
            return ActionOutcome("failed", exc.message)
        if answer.get("success") is False:
            return ActionOutcome("refused", "Apple did not extend the subscription", answer)
        return ActionOutcome("requested", "Apple extended the renewal date", answer)

    async def revoke(self, target: ActionTarget, *, refund: str) -> ActionOutcome:
        """Refused: the App Store cannot revoke on the developer's request."""
        raise StoreCannotRevoke
