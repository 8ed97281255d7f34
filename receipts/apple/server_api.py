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
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from entitlements.model import EventKind, StoreEvent
from receipts.apple.credentials import make_auth_token, transaction_id_from_receipt
from receipts.apple.translate import purchase_event, transaction_event
from receipts.apple.verifier import AppleVerifier, VerifiedRenewalInfo, VerifiedTransaction
from receipts.errors import (
    MalformedPayload,
    PurchaseNotFound,
    ReceiptError,
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
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return await self._send_once(method, env, path, params, body, refused=refused)
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
    ) -> dict[str, Any]:
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
        if status == 200:
            if not isinstance(body, dict):
                raise MalformedPayload("Apple API answered with a non-object body")
            return body
        code = body.get("errorCode") if isinstance(body, dict) else None
        if status == 429 or status >= 500 or code in _RETRYABLE_CODES:
            raise _Retry
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


def _segment(transaction_id: str) -> str:
    """A transaction id as one URL path segment; anything else cannot be an Apple id."""
    if not transaction_id or not transaction_id.isascii() or not transaction_id.isalnum():
        raise PurchaseNotFound("Not an Apple transaction id")
    return transaction_id
