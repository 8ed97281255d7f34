"""Facts of the external contract (shared/contract.md §3) that tests check against, written
out independently of the production code on purpose."""

from __future__ import annotations

# The fields of an entitlement object, and of every subscription/purchase entry.
ENTITLEMENT_FIELDS = {
    "active",
    "status",
    "period_type",
    "will_renew",
    "expires_at",
    "grace_period_expires_at",
    "product_id",
    "store",
    "is_sandbox",
    "purchased_at",
    "unsubscribe_detected_at",
    "billing_issue_detected_at",
    "revoked_at",
}
