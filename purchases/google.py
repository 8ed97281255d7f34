"""Google Play submissions: package, product and purchase token, validated with the Play API.

The app's claim is only the pointer: the state is what subscriptionsv2.get / products.get
say. Subscription or one-time product: the optional `product_type` field ("subscription" /
"one_time") says which; without it, see `webhooks.google_play.read_submitted`. A purchase
that needs acknowledging is recorded before the commit and acknowledged right after it
(`acknowledge_submitted`), with the webhook's retry task as the safety net.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from entitlements.api import CLOCK, SERVICE
from entitlements.errors import InvalidRequest
from entitlements.model import StoreEvent
from entitlements.service import TransactionWrite
from receipts.errors import NotConfigured, ProductNotOurs
from webhooks.google_play import GOOGLE_PLAY, read_submitted

FIELDS = ("package_name", "product_id", "purchase_token")
PRODUCT_TYPES = ("subscription", "one_time")
_MAX_LENGTH = {"package_name": 255, "product_id": 255, "purchase_token": 4096}


def play_submission(submission: dict[str, Any]) -> tuple[str, str, str, str | None]:
    """package_name, product_id, purchase_token and product_type of a body (400 otherwise)."""
    values = []
    for name in FIELDS:
        value = submission.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_LENGTH[name]:
            raise InvalidRequest(f"{name} must be a non-empty string for play_store")
        values.append(value)
    product_type = submission.get("product_type")
    if product_type is not None and product_type not in PRODUCT_TYPES:
        raise InvalidRequest("product_type must be subscription or one_time")
    return values[0], values[1], values[2], product_type


async def google_purchase_events(
    app: web.Application, submission: dict[str, Any]
) -> tuple[list[StoreEvent], TransactionWrite | None]:
    """Verified StoreEvents for a Play submission, and the write of its pending
    acknowledgements (to commit with them)."""
    package, product_id, token, product_type = play_submission(submission)
    google = app.get(GOOGLE_PLAY)
    if google is None:
        raise NotConfigured("Google Play is not configured on this service")
    if package not in google.package_names:
        raise ProductNotOurs("this package is not configured on this service")
    if not google.knows_product(product_id, app[SERVICE].catalog):
        raise ProductNotOurs("this product is not configured on this service")
    read = await read_submitted(
        google, package, product_id, token, app[CLOCK](), product_type=product_type
    )
    return read.events, google.acks.writer(read.acks)


async def acknowledge_submitted(app: web.Application, submission: dict[str, Any]) -> None:
    """After the commit: acknowledge what `google_purchase_events` recorded (never raises)."""
    google = app.get(GOOGLE_PLAY)
    if google is not None:
        await google.acks.settle(submission["package_name"], submission["purchase_token"])
