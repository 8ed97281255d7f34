"""Async App Store Server API client (aiohttp) with our own ES256 auth JWT and sandbox fallback.

Every signed item the API returns is verified with `AppleVerifier` before use. Errors become
`receipts.errors` classes: unknown transactions → PurchaseNotFound; 429/5xx/retryable codes and
network failures → StoreUnavailable after a small bounded retry; rejected credentials →
StoreCredentialsRejected (a non-retryable StoreUnavailable: the purchase may be fine, our
configuration is not).

Every GET goes through `_fetch`: the HTTP call itself, or, on a client made by `recording`,
the same call through a `receipts.recording.ReadRecorder` that journals the raw answer (and
in replay serves the journaled one instead). Get Notification History (a POST, for
`receiptd reconcile`) is not recorded: each notification it lists is journaled itself.
With a `limiter` (reconciliation), every HTTP attempt waits for its slot.

The store actions (Send Consumption Information, Extend a Subscription Renewal Date, the
mass extension and its status) go to the one environment named (no fallback) and are not
recorded: they are acts, not reads. Their request bodies are the official library's models,
serialised by its converter, so they are what `AppStoreServerAPIClient` would send. Apple's
refusals (HTTP 400, or 403 with an `errorCode`) → StoreActionRefused naming Apple's error;
404 → PurchaseNotFound; 401 (or 403 without an error code) → StoreCredentialsRejected.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from appstoreserverlibrary.api_client import APIError
from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.ExtendReasonCode import ExtendReasonCode
from appstoreserverlibrary.models.ExtendRenewalDateRequest import ExtendRenewalDateRequest
from appstoreserverlibrary.models.LibraryUtility import _get_cattrs_converter
from appstoreserverlibrary.models.MassExtendRenewalDateRequest import (
    MassExtendRenewalDateRequest,
)
from appstoreserverlibrary.models.RefundPreference import RefundPreference

from entitlements.model import EventKind, StoreEvent
from receipts.apple.credentials import make_auth_token, transaction_id_from_receipt
from receipts.apple.translate import purchase_event, transaction_event
from receipts.apple.verifier import AppleVerifier, VerifiedRenewalInfo, VerifiedTransaction
from receipts.errors import (
    MalformedPayload,
    PurchaseNotFound,
    ReceiptError,
    StoreActionRefused,
    StoreRequestRejected,
    StoreUnavailable,
)
from receipts.rate_limit import RateLimiter
from receipts.recording import Failures, ReadRecorder

__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AppStoreServerClient",
    "StoreCredentialsRejected",
    "SubscriptionStatus",
    "apple_error_name",
    "consumption_request",
    "make_auth_token",
    "status_events",
    "transaction_id_from_receipt",
]

PRODUCTION_URL = "https://api.storekit.apple.com"
SANDBOX_URL = "https://api.storekit-sandbox.apple.com"

# 404 codes that mean "not in this environment": try the other one (store-protocols A8).
_OTHER_ENVIRONMENT_CODES = frozenset({4040010, 4040005})
_RETRYABLE_CODES = frozenset({4040002, 4040004, 4040006, 4290000, 5000001})
_MAX_HISTORY_PAGES = 1000  # 20 000 transactions; a guard against a server that never ends
NOTIFICATION_HISTORY = "/inApps/v1/notifications/history"
CONSUMPTION = "/inApps/v2/transactions/consumption/{}"
EXTEND = "/inApps/v1/subscriptions/extend/{}"
MASS_EXTEND = "/inApps/v1/subscriptions/extend/mass"
MASS_EXTEND_STATUS = "/inApps/v1/subscriptions/extend/mass/{}/{}"
# Send Consumption Information v2: its fields, and those Apple requires (ConsumptionRequest).
_CONSUMPTION_FIELDS = frozenset(
    {
        "customerConsented",
        "sampleContentProvided",
        "deliveryStatus",
        "consumptionPercentage",
        "refundPreference",
    }
)
_CONSUMPTION_REQUIRED = frozenset({"customerConsented", "sampleContentProvided", "deliveryStatus"})
_MAX_CONSUMPTION_PERCENTAGE = 100_000  # milliunits: 100 %
# Product ids and request identifiers we put in a path: App Store Connect's product id
# characters, never "." or ".." alone (they would move up the path).
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")


class StoreCredentialsRejected(StoreUnavailable):
    """The App Store Server API rejected our credentials (check issuer_id, key_id, key)."""

    retryable = False
    code = "store_credentials_rejected"


class _Get(Protocol):
    """A GET of an API path in one environment → the JSON object answered."""

    def __call__(
        self, env: str, path: str, params: Mapping[str, str] | None = None
    ) -> Awaitable[dict[str, Any]]: ...


class _Retry(Exception):
    """A transient failure worth another attempt."""


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """One `lastTransactions` item of Get All Subscription Statuses, verified."""

    status: int | None
    transaction: VerifiedTransaction | None
    renewal: VerifiedRenewalInfo | None
    environment: str


def status_events(statuses: list[SubscriptionStatus]) -> list[StoreEvent]:
    """StoreEvents for Get All Subscription Statuses items (renewal info + store status)."""
    return [
        purchase_event(
            item.transaction,
            item.renewal,
            kind=EventKind.STATE_REFRESHED,
            status=item.status,
            environment=item.environment,
        )
        for item in statuses
        if item.transaction is not None or item.renewal is not None
    ]


class AppStoreServerClient:
    """App Store Server API on a shared `aiohttp.ClientSession` (owned by the caller).

    `production_url` / `sandbox_url` default to Apple's hosts; the `api_base_url` setting
    replaces both (tests pass two distinct fakes).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        verifier: AppleVerifier,
        *,
        issuer_id: str,
        key_id: str,
        private_key: bytes,
        bundle_id: str,
        production_url: str = PRODUCTION_URL,
        sandbox_url: str = SANDBOX_URL,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._session = session
        self._verifier = verifier
        self._issuer_id = issuer_id
        self._key_id = key_id
        self._private_key = private_key
        self._bundle_id = bundle_id
        self._urls = {
            "Production": production_url.rstrip("/"),
            "Sandbox": sandbox_url.rstrip("/"),
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._limiter = limiter
        self._token: tuple[str, float] | None = None
        self._per_app: dict[str, AppStoreServerClient] = {bundle_id: self}  # shared by clones
        self._fetch: _Get = self._get

    @property
    def environment_urls(self) -> Mapping[str, str]:
        """The base URL of each environment ("Production", "Sandbox")."""
        return dict(self._urls)

    @property
    def bundle_id(self) -> str:
        """The app this client asks about (the `bid` claim of its tokens)."""
        return self._bundle_id

    def for_app(self, bundle_id: str | None) -> AppStoreServerClient:
        """This client asking about the app `bundle_id` (None: this client's app): the same
        session and team key, tokens with that app's `bid` (each app has its own token)."""
        if bundle_id is None or bundle_id == self._bundle_id:
            return self
        clone = self._per_app.get(bundle_id)
        if clone is None:
            clone = copy.copy(self)
            clone._bundle_id = bundle_id
            clone._token = None
            clone._fetch = clone._get
            self._per_app[bundle_id] = clone
        return clone

    def recording(self, recorder: ReadRecorder) -> AppStoreServerClient:
        """This client with every GET asked through `recorder` (one resolve or submit). It
        shares this client's session, credentials and token."""
        clone = copy.copy(self)

        async def fetch(
            env: str, path: str, params: Mapping[str, str] | None = None
        ) -> dict[str, Any]:
            request = {"environment": env, "path": path, "query": dict(params or {})}
            return await recorder.read(
                "apple.get", request, lambda: self._get(env, path, params), _RECORDED_FAILURES
            )

        clone._fetch = fetch
        return clone

    def __repr__(self) -> str:  # never show the key
        return f"AppStoreServerClient(bundle_id={self._bundle_id!r}, issuer_id={self._issuer_id!r})"

    # --- endpoints -----------------------------------------------------------------------

    async def get_transaction_info(
        self, transaction_id: str, environment_hint: str | None = None
    ) -> VerifiedTransaction:
        """Get Transaction Info, verified; tries the other environment on "not found"."""
        body, _env = await self._get_any_env(
            f"/inApps/v1/transactions/{_segment(transaction_id)}", environment_hint
        )
        signed = body.get("signedTransactionInfo")
        if not isinstance(signed, str):
            raise MalformedPayload("Apple API answer lacks signedTransactionInfo")
        return await self._verifier.verify_transaction(signed)

    async def get_transaction_history(
        self, transaction_id: str, environment_hint: str | None = None
    ) -> list[VerifiedTransaction]:
        """Get Transaction History V2, every page, verified, oldest first."""
        path = f"/inApps/v2/history/{_segment(transaction_id)}"
        body, env = await self._get_any_env(path, environment_hint, {"sort": "ASCENDING"})
        return await self._history_from(path, body, env)

    async def get_all_subscription_statuses(
        self, transaction_id: str, environment_hint: str | None = None
    ) -> list[SubscriptionStatus]:
        """Get All Subscription Statuses: the last transaction of every subscription group."""
        path = f"/inApps/v1/subscriptions/{_segment(transaction_id)}"
        body, env = await self._get_any_env(path, environment_hint)
        return await self._statuses_from(body, env)

    async def fetch_purchase_events(
        self, transaction_id: str, environment_hint: str | None = None
    ) -> list[StoreEvent]:
        """Everything needed to store a submitted purchase completely: the transaction, the
        current status of every subscription (renewal info + store status) and the full
        transaction history of the account, as StoreEvents (the transaction's first)."""
        tx_path = f"/inApps/v1/transactions/{_segment(transaction_id)}"
        body, env = await self._get_any_env(tx_path, environment_hint)
        signed = body.get("signedTransactionInfo")
        if not isinstance(signed, str):
            raise MalformedPayload("Apple API answer lacks signedTransactionInfo")
        transaction = await self._verifier.verify_transaction(signed)
        history_path = f"/inApps/v2/history/{_segment(transaction_id)}"
        status_body, first_page = await asyncio.gather(
            self._fetch(env, f"/inApps/v1/subscriptions/{_segment(transaction_id)}"),
            self._fetch(env, history_path, {"sort": "ASCENDING"}),
        )
        statuses, history = await asyncio.gather(
            self._statuses_from(status_body, env),
            self._history_from(history_path, first_page, env),
        )
        events = [transaction_event(transaction)]
        events += [transaction_event(t) for t in history]
        return events + status_events(statuses)

    async def notification_history(
        self, env: str, start: datetime, end: datetime, pagination_token: str | None
    ) -> dict[str, Any]:
        """One page of Get Notification History in `env`, raw: `{notificationHistory:
        [{signedPayload, sendAttempts}], hasMore, paginationToken}`. A page token or window
        Apple refuses (HTTP 400) is StoreRequestRejected."""
        params = {"paginationToken": pagination_token} if pagination_token else None
        body = {"startDate": _millis(start), "endDate": _millis(end)}
        return await self._send(
            "POST", env, NOTIFICATION_HISTORY, params, body, refused=StoreRequestRejected
        )

    # --- store actions -------------------------------------------------------------------

    async def send_consumption_information(
        self, transaction_id: str, environment: str, body: Mapping[str, Any]
    ) -> None:
        """Send Consumption Information (v2) for a consumable's refund request, in
        `environment` ("Production" or "Sandbox"; no fallback). `body` is Apple's JSON
        (customerConsented, which must be true, sampleContentProvided, deliveryStatus,
        consumptionPercentage in milliunits, refundPreference); a body Apple's model does not
        admit is StoreRequestRejected, raised before any request. Apple answers 202."""
        path = CONSUMPTION.format(_segment(transaction_id))
        json_body = consumption_request(body)
        await self._act("PUT", environment, path, json_body, expect_body=False)

    async def extend_renewal_date(
        self,
        original_transaction_id: str,
        environment: str,
        *,
        days: int,
        reason_code: int,
        request_identifier: str,
    ) -> dict[str, Any]:
        """Extend a Subscription Renewal Date by `days` (Apple allows 1-90, twice per year)
        for `reason_code` (0 undeclared, 1 customer satisfaction, 2 other, 3 service issue):
        Apple's answer `{originalTransactionId, webOrderLineItemId, success, effectiveDate}`.
        The same `request_identifier` asked again gets the same answer. A reason code the
        library's model does not know is StoreRequestRejected, before any request; Apple
        judges the rest: its refusals are StoreActionRefused with its error code."""
        request = ExtendRenewalDateRequest(
            extendByDays=_integer("days", days),
            extendReasonCode=_reason(reason_code),
            requestIdentifier=_text("request_identifier", request_identifier),
        )
        path = EXTEND.format(_segment(original_transaction_id))
        return await self._act("PUT", environment, path, _wire(request))

    async def mass_extend(
        self,
        environment: str,
        *,
        product_id: str,
        days: int,
        reason_code: int,
        request_identifier: str,
        storefront_country_codes: Sequence[str] | None = None,
    ) -> None:
        """Extend Subscription Renewal Dates for All Active Subscribers of `product_id` (in
        the `storefront_country_codes` given, else everywhere). Apple accepts the request and
        works on it later: follow it with `mass_extend_status`, which is why the request
        identifier must be a safe path segment (letters, digits, ".", "_", "-"; ≤ 128)."""
        if storefront_country_codes is not None and (
            isinstance(storefront_country_codes, str)
            or not all(isinstance(c, str) for c in storefront_country_codes)
        ):
            raise StoreRequestRejected("storefront_country_codes must be a list of codes")
        request = MassExtendRenewalDateRequest(
            extendByDays=_integer("days", days),
            extendReasonCode=_reason(reason_code),
            requestIdentifier=_name_segment("request_identifier", request_identifier),
            productId=_name_segment("product_id", product_id),
            storefrontCountryCodes=(
                None if storefront_country_codes is None else list(storefront_country_codes)
            ),
        )
        await self._act("POST", environment, MASS_EXTEND, _wire(request))

    async def mass_extend_status(
        self, environment: str, product_id: str, request_identifier: str
    ) -> dict[str, Any]:
        """Get Status of Subscription Renewal Date Extensions: `{requestIdentifier, complete,
        completeDate, succeededCount, failedCount}` of one mass extension."""
        path = MASS_EXTEND_STATUS.format(
            _name_segment("product_id", product_id),
            _name_segment("request_identifier", request_identifier),
        )
        return await self._act("GET", environment, path, None)

    async def _act(
        self,
        method: str,
        environment: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        expect_body: bool = True,
    ) -> dict[str, Any]:
        """One store action in `environment` (no fallback, not recorded)."""
        if environment not in self._urls:
            raise ValueError(f"Not an App Store Server API environment: {environment!r}")
        return await self._send(
            method,
            environment,
            path,
            None,
            body,
            refused=StoreActionRefused,
            expect_body=expect_body,
        )

    # --- response handling ---------------------------------------------------------------

    async def _history_from(
        self, path: str, body: Mapping[str, Any], env: str
    ) -> list[VerifiedTransaction]:
        signed: list[str] = []
        for _page in range(_MAX_HISTORY_PAGES):
            items = body.get("signedTransactions") or []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise MalformedPayload("Apple API history page is malformed")
            signed += items
            revision = body.get("revision")
            if not body.get("hasMore"):
                break
            if not isinstance(revision, str) or not revision:
                raise MalformedPayload("Apple API history page has more but no revision")
            body = await self._fetch(env, path, {"sort": "ASCENDING", "revision": revision})
        else:
            raise StoreUnavailable("Apple API transaction history did not end")
        return await self._verifier.verify_transactions(signed)

    async def _statuses_from(self, body: Mapping[str, Any], env: str) -> list[SubscriptionStatus]:
        out: list[SubscriptionStatus] = []
        for group in body.get("data") or []:
            for item in (group or {}).get("lastTransactions") or []:
                tx = item.get("signedTransactionInfo")
                rn = item.get("signedRenewalInfo")
                status = item.get("status")
                out.append(
                    SubscriptionStatus(
                        status=status if isinstance(status, int) else None,
                        transaction=await self._verifier.verify_transaction(tx)
                        if isinstance(tx, str)
                        else None,
                        renewal=await self._verifier.verify_renewal_info(rn)
                        if isinstance(rn, str)
                        else None,
                        environment=env,
                    )
                )
        return out

    # --- HTTP ----------------------------------------------------------------------------

    async def _get_any_env(
        self, path: str, hint: str | None, params: Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any], str]:
        """GET in the hinted environment (production when unknown), then the other one when
        the first answers 404 "not found in this environment"."""
        first = "Sandbox" if hint in {"Sandbox", "Xcode", "LocalTesting"} else "Production"
        order = [first, "Production" if first == "Sandbox" else "Sandbox"]
        for env in order:
            try:
                return await self._fetch(env, path, params), env
            except _NotHere:
                continue
        raise PurchaseNotFound("Apple does not know this transaction")

    async def _get(
        self, env: str, path: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._send("GET", env, path, params)

    async def _send(
        self,
        method: str,
        env: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        refused: type[ReceiptError] = PurchaseNotFound,
        expect_body: bool = True,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return await self._send_once(
                    method, env, path, params, body, refused=refused, expect_body=expect_body
                )
            except _Retry as exc:
                if attempt >= self._retries:
                    raise StoreUnavailable("The App Store Server API is unavailable") from exc
                await asyncio.sleep(self._backoff * (2**attempt))
                attempt += 1

    async def _send_once(
        self,
        method: str,
        env: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        *,
        refused: type[ReceiptError],
        expect_body: bool = True,
    ) -> dict[str, Any]:
        """One HTTP attempt. 200 with a JSON object is the answer; without `expect_body`, a
        200 or 202 with an empty body is fine too (`{}`)."""
        if self._limiter is not None:
            await self._limiter.wait()
        headers = {"Authorization": f"Bearer {self._auth_token()}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method,
                self._urls[env] + path,
                params=params,
                json=json_body,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                try:
                    body: Any = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry from exc
        if status == 200 or (status == 202 and not expect_body):
            if isinstance(body, dict):
                return body
            if body is None and not expect_body:
                return {}
            raise MalformedPayload("Apple API answered with a non-object body")
        code = body.get("errorCode") if isinstance(body, dict) else None
        if status == 429 or status >= 500 or code in _RETRYABLE_CODES:
            raise _Retry
        if refused is StoreActionRefused:
            _refuse_action(status, code)
        if status in {401, 403}:
            raise StoreCredentialsRejected
        if status == 404 and code in _OTHER_ENVIRONMENT_CODES:
            raise _NotHere
        if status in {400, 404}:
            if refused is PurchaseNotFound:
                raise PurchaseNotFound("Apple does not know this transaction")
            raise refused(f"The App Store Server API refused the request (HTTP {status}, {code})")
        raise StoreUnavailable(f"The App Store Server API answered HTTP {status}")

    def _auth_token(self) -> str:
        now = time.time()
        if self._token is not None and self._token[1] - now > 60:
            return self._token[0]
        token = make_auth_token(
            issuer_id=self._issuer_id,
            key_id=self._key_id,
            private_key=self._private_key,
            bundle_id=self._bundle_id,
            now=now,
        )
        self._token = (token, now + 300)
        return token


class _NotHere(Exception):
    """404 meaning "not in this environment"."""


# What `_get_any_env` acts on (try the other environment) and what ends a submission as a
# 422/503, as the journal names them.
_RECORDED_FAILURES: Failures = {
    "not_in_environment": _NotHere,
    "purchase_not_found": PurchaseNotFound,
    "store_unavailable": StoreUnavailable,
}


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def apple_error_name(code: int | str | None) -> str:
    """Apple's name of an `errorCode` (4030005 → "SubscriptionMaxExtensionError"), from the
    official library's `APIError`; "error <code>" for a code it does not know."""
    try:
        member = APIError(int(code)) if isinstance(code, int) else None
    except ValueError:
        member = None
    if member is None:
        return f"error {code}"
    words = member.name.removesuffix("_ERROR").split("_")
    return "".join(word.capitalize() for word in words) + "Error"


def _refuse_action(status: int, code: object) -> None:
    """Raise what an action's final, non-success answer means (or return: not a refusal)."""
    store_code = code if isinstance(code, int | str) and not isinstance(code, bool) else None
    if status == 404:
        named = apple_error_name(store_code) if store_code is not None else "HTTP 404"
        raise PurchaseNotFound(f"The App Store does not know what the action is on ({named})")
    if status == 400 or (status == 403 and store_code is not None):
        named = apple_error_name(store_code) if store_code is not None else "no error code"
        raise StoreActionRefused(
            f"Apple refused the request: {named} (HTTP {status})", store_code=store_code
        )


def consumption_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` checked against Apple's ConsumptionRequest (exactly its fields, their types and
    enums, consumptionPercentage 0-100000, customerConsented true) and serialised as the
    official library does; StoreRequestRejected naming the first problem otherwise."""
    if not isinstance(body, Mapping):
        raise StoreRequestRejected("Consumption information must be a JSON object")
    unknown = sorted(set(body) - _CONSUMPTION_FIELDS)
    missing = sorted(_CONSUMPTION_REQUIRED - set(body))
    if unknown or missing:
        raise StoreRequestRejected(
            f"Consumption information: unknown fields {unknown}, missing fields {missing}"
        )
    for flag in ("customerConsented", "sampleContentProvided"):
        if not isinstance(body[flag], bool):
            raise StoreRequestRejected(f"Consumption information: {flag} must be a boolean")
    if body["customerConsented"] is not True:
        raise StoreRequestRejected("Consumption information needs the customer's consent")
    delivery = body["deliveryStatus"]
    if not isinstance(delivery, str) or delivery not in DeliveryStatus:
        raise StoreRequestRejected("Consumption information: unknown deliveryStatus")
    percentage = body.get("consumptionPercentage")
    if percentage is not None and (
        not isinstance(percentage, int)
        or isinstance(percentage, bool)
        or not 0 <= percentage <= _MAX_CONSUMPTION_PERCENTAGE
    ):
        raise StoreRequestRejected(
            "Consumption information: consumptionPercentage must be 0-100000 (milliunits)"
        )
    preference = body.get("refundPreference")
    if preference is not None and (
        not isinstance(preference, str) or preference not in RefundPreference
    ):
        raise StoreRequestRejected("Consumption information: unknown refundPreference")
    request = ConsumptionRequest(
        customerConsented=True,
        sampleContentProvided=body["sampleContentProvided"],
        deliveryStatus=DeliveryStatus(delivery),
        consumptionPercentage=percentage,
        refundPreference=RefundPreference(preference) if preference is not None else None,
    )
    return _wire(request)


def _wire(
    model: ConsumptionRequest | ExtendRenewalDateRequest | MassExtendRenewalDateRequest,
) -> dict[str, Any]:
    """A library request model as the JSON object its client sends (no null fields)."""
    # A class is hashable; mypy confuses it with the attrs instances' `__hash__ = None`.
    converter = _get_cattrs_converter(type(model))  # type: ignore[arg-type]
    wire: dict[str, Any] = converter.unstructure(model)
    return wire


def _integer(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreRequestRejected(f"{name} must be an integer")
    return value


def _reason(value: object) -> ExtendReasonCode:
    """An extension reason the library's model admits (0-3)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in ExtendReasonCode:
        return ExtendReasonCode(value)
    raise StoreRequestRejected("reason_code must be 0, 1, 2 or 3 (Apple's extendReasonCode)")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise StoreRequestRejected(f"{name} must be a string")
    return value


def _name_segment(name: str, value: object) -> str:
    """A product id or request identifier as one URL path segment."""
    if not isinstance(value, str) or not _SAFE_SEGMENT.fullmatch(value) or not value.strip("."):
        raise StoreRequestRejected(f"{name} must be letters, digits, '.', '_' or '-'")
    return value


def _segment(transaction_id: str) -> str:
    """A transaction id as one URL path segment; anything else cannot be an Apple id."""
    if not transaction_id or not transaction_id.isascii() or not transaction_id.isalnum():
        raise PurchaseNotFound("Not an Apple transaction id")
    return transaction_id
