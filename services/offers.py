"""Offers signed for the app (contract §3, "Offers signed for the app"; issue 23).

Apple's promotional offers must be signed by the developer's server with the In-App Purchase
key. The official library signs (its PromotionalOfferV2SignatureCreator for the JWS form,
PromotionalOfferSignatureCreator for the older nonce/timestamp form,
IntroductoryOfferEligibilitySignatureCreator for introductory-offer eligibility); this module
decides first whether the customer may have the offer (entitlements/offers.py) from what
receiptd holds — both stores, every app — and records every signature it issues
(offer_signatures: exported with the customer, shown on the console's timeline).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import asyncpg
import structlog
from appstoreserverlibrary.jws_signature_creator import (
    IntroductoryOfferEligibilitySignatureCreator,
    PromotionalOfferV2SignatureCreator,
)
from appstoreserverlibrary.promotional_offer import PromotionalOfferSignatureCreator

from config.settings import OfferSettings
from entitlements import offers as rules
from entitlements.access import entitlements_of
from entitlements.errors import (
    InvalidRequest,
    NotEligible,
    OffersNotConfigured,
    UnknownOffer,
)
from entitlements.model import Clock
from services.ingest import EntitlementService
from storage import offers as db
from storage import replay as replay_db
from storage.database import run

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The App Store Server API key that signs offers, and the apps it may sign for (the
    first is the default)."""

    issuer_id: str
    key_id: str
    private_key: bytes
    bundle_ids: tuple[str, ...]


class Offers:
    """Promotional and introductory offers, decided and signed."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        service: EntitlementService,
        offers: Mapping[str, OfferSettings],
        key: SigningKey | None,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._service = service
        self._offers = dict(offers)
        self._key = key
        self._clock = clock

    async def promotional(
        self,
        app_user_id: str,
        offer_name: str,
        product_id: str,
        *,
        legacy: bool = False,
        transaction_id: str | None = None,
        app: str | None = None,
    ) -> dict[str, Any]:
        """The signed promotional offer `offer_name` for `product_id`, when the customer is
        eligible (NotEligible with the reason otherwise)."""
        offer = self._offers.get(offer_name)
        if offer is None:
            raise UnknownOffer(f"no offer named {offer_name!r} is configured")
        if product_id not in offer.products:
            raise InvalidRequest(
                f"product_id must be one of the offer's products: {', '.join(offer.products)}"
            )
        key, bundle_id = self._signing(app)
        now = self._clock()
        record = await self._service.customer_record(app_user_id)
        names = self._service.catalog.entitlements_for(product_id)
        verdict = rules.promotional(
            offer.eligible,
            offer.lapsed_days,
            entitlements_of(record, self._service.catalog, now),
            names,
            suspended=record.suspended,
            now=now,
        )
        if not verdict.eligible:
            log.info("offer_refused", offer=offer_name, reason=verdict.reason)
            raise NotEligible(verdict.reason)
        if legacy:
            nonce = uuid.uuid4()
            timestamp = int(now.timestamp() * 1000)
            signature = _legacy_creator(key, bundle_id).create_signature(
                product_id, offer.offer_id, record.app_user_id, nonce, timestamp
            )
            answer: dict[str, Any] = {
                "key_id": key.key_id,
                "nonce": str(nonce),
                "timestamp": timestamp,
                "signature": signature,
            }
            issued = str(nonce)
        else:
            jws = _v2_creator(key, bundle_id).create_signature(
                product_id, offer.offer_id, transaction_id
            )
            answer = {"signature": jws}
            issued = _nonce_of(jws)
        await self._record(
            record.app_user_id,
            offer_name,
            product_id,
            format_="legacy" if legacy else "jws",
            nonce=issued,
            transaction_id=transaction_id,
            eligible=True,
        )
        return answer

    async def introductory(
        self, app_user_id: str, product_id: str, transaction_id: str, app: str | None = None
    ) -> dict[str, Any]:
        """Apple's introductory-offer eligibility JWS for `product_id`, decided from the
        customer's history of that product's entitlement in both stores."""
        names = self._service.catalog.entitlements_for(product_id)
        if not names:
            raise InvalidRequest(f"{product_id!r} gives no configured entitlement")
        key, bundle_id = self._signing(app)
        products = frozenset(
            p for name in names for p in self._service.catalog.products_by_entitlement[name]
        )

        async def history(conn: asyncpg.Connection) -> tuple[str, rules.Verdict]:
            customer = await replay_db.customer_of(conn, app_user_id)
            states = await db.purchase_states(conn, customer)
            shown = [
                s for name in sorted(names) for s in await db.offer_snapshots(conn, customer, name)
            ]
            return customer, rules.introductory(states, products, shown)

        customer, verdict = await run(self._pool, history)
        jws = _introductory_creator(key, bundle_id).create_signature(
            product_id, verdict.eligible, transaction_id
        )
        await self._record(
            customer,
            "introductory",
            product_id,
            format_="jws",
            nonce=_nonce_of(jws),
            transaction_id=transaction_id,
            eligible=verdict.eligible,
        )
        return {"signature": jws, "eligible": verdict.eligible, "reason": verdict.reason}

    def _signing(self, app: str | None) -> tuple[SigningKey, str]:
        if self._key is None:
            raise OffersNotConfigured
        if app is None:
            return self._key, self._key.bundle_ids[0]
        if app not in self._key.bundle_ids:
            raise InvalidRequest(
                f"app must be a configured bundle id: {', '.join(self._key.bundle_ids)}"
            )
        return self._key, app

    async def _record(
        self,
        customer: str,
        offer: str,
        product_id: str,
        *,
        format_: str,
        nonce: str,
        transaction_id: str | None,
        eligible: bool | None,
    ) -> None:
        now = self._clock()
        await run(
            self._pool,
            lambda conn: db.record(
                conn,
                app_user_id=customer,
                offer=offer,
                product_id=product_id,
                format_=format_,
                nonce=nonce,
                transaction_id=transaction_id,
                eligible=eligible,
                at=now,
            ),
        )
        log.info("offer_signed", offer=offer, format=format_)


# The library's creators parse the PEM key when built: once per key and app, not per request.
@cache
def _legacy_creator(key: SigningKey, bundle_id: str) -> PromotionalOfferSignatureCreator:
    return PromotionalOfferSignatureCreator(key.private_key, key.key_id, bundle_id)


@cache
def _introductory_creator(
    key: SigningKey, bundle_id: str
) -> IntroductoryOfferEligibilitySignatureCreator:
    return IntroductoryOfferEligibilitySignatureCreator(
        key.private_key, key.key_id, key.issuer_id, bundle_id
    )


@cache
def _v2_creator(key: SigningKey, bundle_id: str) -> PromotionalOfferV2SignatureCreator:
    return PromotionalOfferV2SignatureCreator(key.private_key, key.key_id, key.issuer_id, bundle_id)


def _nonce_of(jws: str) -> str:
    """The `nonce` claim of a JWS this service just signed (its id in our records)."""
    part = jws.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return str(claims["nonce"])
