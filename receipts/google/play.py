"""The Play Developer API (androidpublisher v3) client: aiohttp REST with service-account tokens.

Direct REST rather than google-api-python-client: truly async, pooled connections on the
shared session, our own timeouts and retries. Paths are exactly the real API's, relative
to `root_url` (default https://androidpublisher.googleapis.com/), so a fake can stand in.
Failures map to receipts.errors: 429/5xx/network → retried, then `StoreUnavailable`;
400/404 → `PurchaseNotFound` (for the voided purchases list: `StoreRequestRejected`); 410 on
a subscription → `gone_subscription()` (expired long ago); 401/403 → `PlayAccessDenied`.
Messages never contain purchase tokens. With a `limiter` (reconciliation), every HTTP
attempt waits for its slot.

The store actions (subscriptionsv2 defer and revoke, orders.refund) map Google's refusals —
HTTP 400, 409 or 412: a deferral of a subscription that cannot be deferred, a stale etag, an
order too old or already refunded — to `StoreActionRefused`, its `store_code` the reason of
Google's error (else its status); an unknown token or order (404/410) is `PurchaseNotFound`.
Like every call they are retried on 429/5xx, so a lost answer to a deferral comes back as a
refusal (the etag has moved on): re-read the subscription to learn what happened.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.service_account
import requests

from receipts.errors import (
    PurchaseNotFound,
    StoreActionRefused,
    StoreRequestRejected,
    StoreUnavailable,
)
from receipts.google.translate import gone_subscription
from receipts.rate_limit import RateLimiter

PLAY_API_URL = "https://androidpublisher.googleapis.com/"
SCOPE = "https://www.googleapis.com/auth/androidpublisher"
_REFRESH_EARLY = timedelta(minutes=5)
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_REFUSALS = frozenset({400, 409, 412})  # what a store action's refusal answers
_REFUNDS = {"full": "fullRefund", "prorated": "proratedRefund"}


class PlayAccessDenied(StoreUnavailable):
    """The Play Developer API refused our credentials: check the service account and its
    permissions in Play Console."""

    # A StoreUnavailable (503, retryable): the fault is our configuration, not the purchase,
    # so Pub/Sub should keep redelivering until an operator fixes it, and the app retries.
    code = "store_access_denied"


class AccessTokens:
    """OAuth2 access tokens of a service account, refreshed ~5 minutes before expiry.

    The refresh is google-auth's synchronous HTTP call, run in a thread under a lock so
    concurrent requests share one refresh.
    """

    def __init__(self, credentials: google.oauth2.service_account.Credentials) -> None:
        self._credentials = credentials
        self._lock = asyncio.Lock()
        # One HTTP session for refreshes (used under the lock, so one thread at a time).
        self._http = requests.Session()

    def close(self) -> None:
        """Close the refresh HTTP session."""
        self._http.close()

    @classmethod
    def from_service_account_info(cls, info: dict[str, Any]) -> AccessTokens:
        """From a parsed service-account JSON key."""
        creds = google.oauth2.service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        return cls(creds)

    @classmethod
    def from_service_account_file(cls, path: Path) -> AccessTokens:
        """From a service-account JSON key file (read once, at start-up)."""
        return cls.from_service_account_info(json.loads(path.read_text()))

    def _fresh(self) -> bool:
        creds = self._credentials
        if not creds.token or creds.expiry is None:
            return False
        expiry = creds.expiry.replace(tzinfo=UTC)  # google-auth keeps naive UTC
        return bool(datetime.now(UTC) < expiry - _REFRESH_EARLY)

    async def token(self, *, force: bool = False) -> str:
        """A valid access token; `force` refreshes even if the cached one looks valid."""
        stale = self._credentials.token
        if self._fresh() and not force:
            return str(stale)
        async with self._lock:
            # Another task may have refreshed while we waited.
            if self._fresh() and not (force and self._credentials.token == stale):
                return str(self._credentials.token)
            request = google.auth.transport.requests.Request(session=self._http)
            try:
                await asyncio.to_thread(self._credentials.refresh, request)
            except google.auth.exceptions.RefreshError as exc:
                if getattr(exc, "retryable", False):
                    raise StoreUnavailable("Google's token endpoint failed.") from exc
                raise PlayAccessDenied("Google refused the service account credentials.") from exc
            except google.auth.exceptions.TransportError as exc:
                raise StoreUnavailable("Google's token endpoint is unreachable.") from exc
            return str(self._credentials.token)


class PlayClient:
    """Reads, acknowledges and acts on purchases. Share one per process; it holds no connections of
    its own (they belong to the session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: AccessTokens | None,
        *,
        root_url: str = PLAY_API_URL,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        allow_anonymous: bool = False,
        limiter: RateLimiter | None = None,
    ) -> None:
        if tokens is None and not allow_anonymous:
            raise ValueError("PlayClient needs service-account credentials")
        self._session = session
        self._tokens = tokens
        self._root = (root_url or PLAY_API_URL).rstrip("/") + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._limiter = limiter

    def close(self) -> None:
        """Release the token refresher's HTTP session (the aiohttp session is the caller's)."""
        if self._tokens is not None:
            self._tokens.close()

    # --- API -----------------------------------------------------------------------------

    async def get_subscription(self, package: str, token: str) -> dict[str, Any]:
        """purchases.subscriptionsv2.get → SubscriptionPurchaseV2 JSON.

        HTTP 410 (expired more than ~60 days ago) returns `gone_subscription()`, which
        translates to EXPIRED.
        """
        path = f"{self._app(package)}/purchases/subscriptionsv2/tokens/{_q(token)}"
        status, body = await self._call("GET", path, gone_ok=True)
        return gone_subscription() if status == 410 else body

    async def acknowledge_subscription(self, package: str, product_id: str, token: str) -> None:
        """purchases.subscriptions.acknowledge (v1: there is no v2 acknowledge)."""
        path = (
            f"{self._app(package)}/purchases/subscriptions/{_q(product_id)}"
            f"/tokens/{_q(token)}:acknowledge"
        )
        await self._call("POST", path, json_body={})

    async def get_product(self, package: str, product_id: str, token: str) -> dict[str, Any]:
        """purchases.products.get → ProductPurchase (v1) JSON."""
        path = f"{self._app(package)}/purchases/products/{_q(product_id)}/tokens/{_q(token)}"
        _, body = await self._call("GET", path)
        return body

    async def acknowledge_product(self, package: str, product_id: str, token: str) -> None:
        """purchases.products.acknowledge."""
        path = (
            f"{self._app(package)}/purchases/products/{_q(product_id)}"
            f"/tokens/{_q(token)}:acknowledge"
        )
        await self._call("POST", path, json_body={})

    async def list_voided_purchases(
        self,
        package: str,
        *,
        start: datetime,
        end: datetime,
        page_token: str | None = None,
        max_results: int = 1000,
    ) -> dict[str, Any]:
        """purchases.voidedpurchases.list, subscriptions included (`type=1`), quantity-based
        partial refunds not (Google's default): `{voidedPurchases: [VoidedPurchase],
        tokenPagination: {nextPageToken}}`. Google ignores the window once a page token is
        given. A token or window Play refuses (HTTP 400) is StoreRequestRejected."""
        params = {
            "startTime": str(int(start.timestamp() * 1000)),
            "endTime": str(int(end.timestamp() * 1000)),
            "maxResults": str(max_results),
            "type": "1",
        }
        if page_token:
            params["token"] = page_token
        path = f"{self._app(package)}/purchases/voidedpurchases"
        try:
            _, body = await self._call("GET", path, params=params)
        except PurchaseNotFound as exc:
            raise StoreRequestRejected(
                exc.message.replace("does not know this purchase", "refused the request")
            ) from None
        return body

    # --- store actions -------------------------------------------------------------------

    async def defer_subscription(
        self, package: str, token: str, *, etag: str, defer_seconds: int
    ) -> dict[str, Any]:
        """purchases.subscriptionsv2.defer: move every item's expiry `defer_seconds` later.
        `etag` is the one of the subscriptionsv2.get answer the deferral is based on; Google
        refuses a stale one (StoreActionRefused). Returns Google's answer,
        `{itemExpiryTimeDetails: [{productId, expiryTime}]}`."""
        if not isinstance(etag, str) or not etag:
            raise ValueError("defer_subscription needs the etag of the subscription read")
        if not isinstance(defer_seconds, int) or isinstance(defer_seconds, bool):
            raise ValueError("defer_seconds must be a whole number of seconds")
        if defer_seconds <= 0:
            raise ValueError("defer_seconds must be positive")
        path = f"{self._app(package)}/purchases/subscriptionsv2/tokens/{_q(token)}:defer"
        body = {"deferralContext": {"etag": etag, "deferDuration": f"{defer_seconds}s"}}
        _, answer = await self._call("POST", path, json_body=body, action=True)
        return answer

    async def revoke_subscription(self, package: str, token: str, *, refund: str) -> None:
        """purchases.subscriptionsv2.revoke: access ends now, with a `refund` of "full" (the
        latest charge of each item) or "prorated" (the time left); anything else is a
        ValueError."""
        refund_type = _REFUNDS.get(refund)
        if refund_type is None:
            raise ValueError(f"refund must be one of {sorted(_REFUNDS)}, not {refund!r}")
        path = f"{self._app(package)}/purchases/subscriptionsv2/tokens/{_q(token)}:revoke"
        body: dict[str, Any] = {"revocationContext": {refund_type: {}}}
        await self._call("POST", path, json_body=body, action=True)

    async def refund_order(self, package: str, order_id: str, *, revoke: bool) -> None:
        """orders.refund of a subscription or one-time order; `revoke` also ends access now
        (and every future payment of a subscription). Google refuses orders older than three
        years (StoreActionRefused); an order it does not know is PurchaseNotFound."""
        path = f"{self._app(package)}/orders/{_q(order_id)}:refund"
        params = {"revoke": "true" if revoke else "false"}
        await self._call("POST", path, params=params, action=True)

    # --- transport -----------------------------------------------------------------------

    @staticmethod
    def _app(package: str) -> str:
        return f"androidpublisher/v3/applications/{_q(package)}"

    async def _headers(self, *, force: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._tokens is not None:
            headers["Authorization"] = f"Bearer {await self._tokens.token(force=force)}"
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        gone_ok: bool = False,
        params: dict[str, str] | None = None,
        action: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        url = self._root + path
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            headers = await self._headers(force=reauthenticated)
            if self._limiter is not None:
                await self._limiter.wait()
            try:
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=self._timeout,
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= self._attempts:
                    raise StoreUnavailable("The Play Developer API is unreachable.") from exc
                await self._sleep(attempt, None)
                continue
            if 200 <= status < 300:
                return status, _json_object(raw)
            if status == 410 and gone_ok:
                return status, {}
            if status == 401 and not reauthenticated and self._tokens is not None:
                reauthenticated = True  # the token may have been revoked early: refresh once
                continue
            if status in (401, 403):
                reason = _google_reason(raw)
                raise PlayAccessDenied(
                    f"The Play Developer API refused our credentials ({status} {reason})."
                )
            if action and status in _REFUSALS:
                status_name, why = _google_error(raw)
                raise StoreActionRefused(
                    f"The Play Developer API refused the request ({status} "
                    f"{status_name or 'error'}: {why or 'no reason given'}).",
                    store_code=why or status_name,
                )
            if status in (400, 404, 410):
                raise PurchaseNotFound(
                    f"The Play Developer API does not know this purchase ({status} "
                    f"{_google_reason(raw)})."
                )
            if status in _RETRYABLE or status >= 500:
                if attempt >= self._attempts:
                    raise StoreUnavailable(
                        f"The Play Developer API kept failing ({status} {_google_reason(raw)})."
                    )
                await self._sleep(attempt, retry_after)
                continue
            raise StoreUnavailable(f"The Play Developer API answered {status}.")

    async def _sleep(self, attempt: int, retry_after: str | None) -> None:
        """Exponential backoff with full jitter; a short Retry-After is honoured."""
        delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)  # noqa: S311  # jitter, not cryptography
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), self._max_backoff))
        await asyncio.sleep(delay)


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise StoreUnavailable("The Play Developer API answered with invalid JSON.") from exc
    if not isinstance(body, dict):
        raise StoreUnavailable("The Play Developer API answered with a non-object.")
    return body


def _google_reason(raw: bytes) -> str:
    """The `status`/`reason` of Google's error body; never its message (it may echo input)."""
    status, reason = _google_error(raw)
    return status or reason or "error"


def _google_error(raw: bytes) -> tuple[str | None, str | None]:
    """The `status` and first `errors[].reason` of Google's error body (None when absent);
    never its message: it may echo input (tokens, order ids)."""
    try:
        error = json.loads(raw).get("error", {})
        reasons = [e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError):
        return None, None
    status = error.get("status")
    reason = next((r for r in reasons if isinstance(r, str) and r), None)
    return (status if isinstance(status, str) and status else None), reason
