"""App Store submissions: a StoreKit 2 signed transaction, a transaction id, or a receipt."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from entitlements.errors import InvalidRequest
from entitlements.model import StoreEvent
from entitlements.service import TransactionWrite
from receipts.apple import transaction_event, transaction_id_from_receipt
from receipts.errors import MalformedPayload, NotConfigured, VerificationFailed
from webhooks.apple import APPLE_API, APPLE_TERMS, APPLE_VERIFIER

PROOFS = ("signed_transaction", "transaction_id", "receipt")


async def apple_purchase_events(
    app: web.Application, submission: dict[str, Any]
) -> tuple[list[StoreEvent], TransactionWrite | None]:
    """Verified StoreEvents for an App Store submission (no extra writes).

    With App Store Server API credentials, the transaction's subscription statuses and the
    account's whole history are pulled too, so the stored state is complete and every
    purchase in it is linked to the submitting user (restore semantics).
    """
    given = [p for p in PROOFS if submission.get(p) is not None]
    if len(given) != 1 or not isinstance(submission[given[0]], str) or not submission[given[0]]:
        raise InvalidRequest("give exactly one of signed_transaction, transaction_id or receipt")
    proof = given[0]
    verifier = app.get(APPLE_VERIFIER)
    if verifier is None:
        raise NotConfigured("the App Store is not configured on this service")
    client = app.get(APPLE_API)
    events: list[StoreEvent] = []
    environment = None
    if proof == "signed_transaction":
        try:
            verified = await verifier.verify_transaction(submission[proof])
        except MalformedPayload as exc:
            # Present but not a verifiable Apple JWS: the proof does not verify (422).
            raise VerificationFailed(exc.message) from None
        events.append(transaction_event(verified))
        transaction_id = str(verified.raw.get("transactionId"))
        environment = verified.raw.get("environment")
    elif proof == "receipt":
        transaction_id = transaction_id_from_receipt(submission[proof])
    else:
        transaction_id = submission[proof]
    if client is None:
        if proof != "signed_transaction":
            raise NotConfigured(
                "App Store Server API credentials are not configured; submit signed_transaction"
            )
        return app[APPLE_TERMS].apply(events), None
    events += await client.fetch_purchase_events(transaction_id, environment_hint=environment)
    return app[APPLE_TERMS].apply(events), None
