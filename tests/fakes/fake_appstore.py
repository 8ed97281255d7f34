"""A fake App Store Server API on 127.0.0.1 speaking Apple's wire format, plus legacy receipts.

Serves Get Transaction Info, Get Transaction History V2 (revision/hasMore pages of 20), Get
All Subscription Statuses and Get Notification History (POST with `{startDate, endDate}` in
ms, `paginationToken` pages of 20, the window limited to 180 days back in Production and 30
in Sandbox when the fake has a clock) from signed items it is given; checks the bearer JWT
(ES256 with the configured public key, aud, bid, iss, kid); can inject failures (HTTP
status / Apple error code, optionally only for requests a predicate picks) and delays; logs
every request.

The store actions, checked field by field as Apple documents them and refused with Apple's
`{errorCode, errorMessage}`: Send Consumption Information v2 (PUT, 202 with no body;
recorded in `consumption_sent`), Extend a Subscription Renewal Date (PUT; eligible only
while the subscription's status is 1 active, at most `max_extensions_per_year` per
subscription in 365 days, a repeated requestIdentifier answered again without counting;
recorded in `extensions`), Extend Renewal Dates for All Active Subscribers (POST; recorded
in `mass_extensions`) and its status (GET: `complete: false` for the first
`mass_polls_before_complete` polls, then complete with succeededCount = the subscriptions
of that product whose status is 1 active, in the storefronts asked, and failedCount 0). The
actions change none of the signed items the fake serves: a test that wants a re-read to
show an extension registers the new items itself (`on_extension` is called with each).

`app_receipt` builds a PKCS#7 app receipt that the library's
`ReceiptUtility` parses (attributes 17 / 1703 / 1705; nothing is signed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import asn1
import jwt
from aiohttp import web

PAGE_SIZE = 20
NOT_FOUND = {"errorCode": 4040010, "errorMessage": "Transaction id not found."}
HISTORY_KEPT = {"Production": timedelta(days=180), "Sandbox": timedelta(days=30)}
EXTENSION_WINDOW = timedelta(days=365)
DAY_MS = 86_400_000
# Apple's error codes (appstoreserverlibrary.api_client.APIError) the actions answer.
GENERAL_BAD_REQUEST = 4000000
INVALID_TRANSACTION_ID = 4000006
INVALID_ORIGINAL_TRANSACTION_ID = 4000008
INVALID_EXTEND_BY_DAYS = 4000009
INVALID_EXTEND_REASON_CODE = 4000010
INVALID_REQUEST_IDENTIFIER = 4000011
INVALID_PRODUCT_ID = 4000023
INVALID_EMPTY_STOREFRONT_COUNTRY_CODE_LIST = 4000027
INVALID_STOREFRONT_COUNTRY_CODE = 4000028
INVALID_CUSTOMER_CONSENTED = 4000035
INVALID_DELIVERY_STATUS = 4000036
INVALID_SAMPLE_CONTENT_PROVIDED = 4000041
SUBSCRIPTION_EXTENSION_INELIGIBLE = 4030004
SUBSCRIPTION_MAX_EXTENSION = 4030005
FAMILY_SHARED_SUBSCRIPTION_EXTENSION_INELIGIBLE = 4030007
ORIGINAL_TRANSACTION_ID_NOT_FOUND = 4040005
STATUS_REQUEST_NOT_FOUND = 4040009
DELIVERY_STATUSES = frozenset(
    {
        "DELIVERED",
        "UNDELIVERED_QUALITY_ISSUE",
        "UNDELIVERED_WRONG_ITEM",
        "UNDELIVERED_SERVER_OUTAGE",
        "UNDELIVERED_OTHER",
    }
)
REFUND_PREFERENCES = frozenset({"DECLINE", "GRANT_FULL", "GRANT_PRORATED"})
CONSUMPTION_FIELDS = frozenset(
    {
        "customerConsented",
        "sampleContentProvided",
        "deliveryStatus",
        "consumptionPercentage",
        "refundPreference",
    }
)
EXTEND_FIELDS = frozenset({"extendByDays", "extendReasonCode", "requestIdentifier"})
MASS_EXTEND_REQUIRED = EXTEND_FIELDS | {"productId"}
MASS_EXTEND_FIELDS = MASS_EXTEND_REQUIRED | {"storefrontCountryCodes"}


@dataclass
class LoggedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    claims: dict[str, Any] | None
    status: int


@dataclass
class _Failure:
    status: int
    error_code: int | None
    times: int
    when: Callable[[web.Request], bool] | None = None


def _bad_request(code: int, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "errorMessage": message}, status=400)


def _apple_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "errorMessage": message}, status=status)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _extension_problem(body: dict[str, Any]) -> web.Response | None:
    """Apple's refusal of an extension body's values (single or mass), or None."""
    days, reason, identifier = (
        body.get("extendByDays"),
        body.get("extendReasonCode"),
        body.get("requestIdentifier"),
    )
    if not _is_int(days) or not 1 <= days <= 90:
        return _bad_request(INVALID_EXTEND_BY_DAYS, "Invalid extend by days value.")
    if not _is_int(reason) or not 0 <= reason <= 3:
        return _bad_request(INVALID_EXTEND_REASON_CODE, "Invalid extend reason code.")
    if not isinstance(identifier, str) or not 0 < len(identifier) <= 128:
        return _bad_request(INVALID_REQUEST_IDENTIFIER, "Invalid request identifier.")
    return None


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@dataclass
class Extension:
    """One renewal-date extension the fake granted."""

    original_transaction_id: str
    body: dict[str, Any]
    answer: dict[str, Any]
    at: datetime


@dataclass
class MassExtension:
    """One mass extension the fake accepted, and how often its status was asked."""

    body: dict[str, Any]
    bundle_id: str
    polls: int = 0


def _claims(jws: str) -> dict[str, Any]:
    payload = jws.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


_BID = web.RequestKey("bid", str)  # the app a request asks about


@dataclass
class FakeAppStore:
    """One environment of the App Store Server API; run two for production + sandbox.

    Like Apple, it answers about one app per request: the `bid` of the request's token
    (`bundle_id` or one of `other_bundles`, the other apps of the team) — another app's
    transactions, statuses and notifications are not found."""

    public_key: Any  # EC public key (or PEM bytes) matching the client's private key
    key_id: str
    issuer_id: str
    bundle_id: str
    environment: str = "Production"
    other_bundles: tuple[str, ...] = ()
    app_apple_id: int = 1234567890
    delay: float = 0.0
    clock: Callable[[], datetime] | None = None  # "now" for the history window's limit
    requests: list[LoggedRequest] = field(default_factory=list)
    _transactions: dict[str, str] = field(default_factory=dict)  # transactionId → JWS
    _history: list[str] = field(default_factory=list)  # the account's transactions, in order
    _statuses: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    # (first send attempt in ms, NotificationHistoryResponseItem), the notification history
    _notifications: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""
    # --- store actions: what tests read and the knobs they turn --------------------------
    # (transactionId, body) of every consumption information accepted
    consumption_sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # every extension granted (a repeated requestIdentifier is not granted twice)
    extensions: list[Extension] = field(default_factory=list)
    # every mass extension accepted (by requestIdentifier: a repeat is not accepted twice)
    mass_extensions: list[MassExtension] = field(default_factory=list)
    max_extensions_per_year: int = 2
    mass_polls_before_complete: int = 1
    on_extension: Callable[[Extension], None] | None = None

    # --- data --------------------------------------------------------------------------

    def add_transaction(self, signed_transaction: str, *, in_history: bool = True) -> None:
        """Make a signed transaction known (by its transactionId) and part of the history."""
        claims = _claims(signed_transaction)
        self._transactions[str(claims["transactionId"])] = signed_transaction
        if in_history:
            self._history.append(signed_transaction)

    def set_status(self, signed_transaction: str, signed_renewal: str | None, status: int) -> None:
        """The subscription's current status (keyed by its originalTransactionId)."""
        claims = _claims(signed_transaction)
        self._statuses[str(claims["originalTransactionId"])] = (
            status,
            signed_transaction,
            signed_renewal,
        )

    def add_notification(
        self,
        signed_payload: str,
        *,
        sent_at: datetime | None = None,
        result: str = "SUCCESS",
    ) -> None:
        """A notification Apple tried to send (first at `sent_at`, by default its signedDate)
        with the result of that attempt, for Get Notification History."""
        when = sent_at if sent_at is not None else _claims(signed_payload)["signedDate"]
        millis = int(when.timestamp() * 1000) if isinstance(when, datetime) else int(when)
        attempt = {"attemptDate": millis, "sendAttemptResult": result}
        self._notifications.append(
            (millis, {"signedPayload": signed_payload, "sendAttempts": [attempt]})
        )

    def fail_next(
        self,
        status: int,
        error_code: int | None = None,
        times: int = 1,
        when: Callable[[web.Request], bool] | None = None,
    ) -> None:
        """Answer the next `times` requests (those `when` picks) with `status` (and an Apple
        error body)."""
        self._failures.append(_Failure(status, error_code, times, when))

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on an ephemeral 127.0.0.1 port; returns the base URL."""
        app = web.Application()
        app.router.add_get("/inApps/v1/transactions/{id}", self._transaction)
        app.router.add_get("/inApps/v2/history/{id}", self._history_page)
        app.router.add_get("/inApps/v1/subscriptions/{id}", self._subscriptions)
        app.router.add_post("/inApps/v1/notifications/history", self._notification_history)
        app.router.add_put("/inApps/v2/transactions/consumption/{id}", self._consumption)
        app.router.add_post("/inApps/v1/subscriptions/extend/mass", self._mass_extend)
        app.router.add_get(
            "/inApps/v1/subscriptions/extend/mass/{product}/{identifier}", self._mass_status
        )
        app.router.add_put("/inApps/v1/subscriptions/extend/{id}", self._extend)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers ------------------------------------------------------------------------

    async def _guard(self, request: web.Request) -> web.Response | None:
        claims = self._check_auth(request)
        status = 200
        answer: web.Response | None = None
        if claims is None:
            status, answer = 401, web.Response(status=401)
        elif failure := next(
            (f for f in self._failures if f.when is None or f.when(request)), None
        ):
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            status = failure.status
            body = {"errorCode": failure.error_code, "errorMessage": "injected"}
            answer = web.json_response(body if failure.error_code else {}, status=status)
        self.requests.append(
            LoggedRequest(request.method, request.path, dict(request.query), claims, status)
        )
        request[_BID] = str(claims.get("bid")) if claims is not None else ""
        if self.delay:
            await asyncio.sleep(self.delay)
        return answer

    def _check_auth(self, request: web.Request) -> dict[str, Any] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ")
        try:
            if jwt.get_unverified_header(token).get("kid") != self.key_id:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience="appstoreconnect-v1",
                issuer=self.issuer_id,
                options={"require": ["exp", "iat", "iss", "aud", "bid"]},
            )
        except jwt.PyJWTError:
            return None
        bundles = (self.bundle_id, *self.other_bundles)
        if claims.get("bid") not in bundles or claims["exp"] - claims["iat"] > 3600:
            return None
        return claims

    def _mine(self, request: web.Request, signed: str) -> bool:
        """Whether a signed item belongs to the app the request asks about."""
        return bool(_claims(signed).get("bundleId", self.bundle_id) == request[_BID])

    def _notification_of_app(self, request: web.Request, item: dict[str, Any]) -> bool:
        """Whether a history item is a notification about the app the request asks about."""
        claims = _claims(item["signedPayload"])
        block: dict[str, Any] = next(
            (claims[b] for b in ("data", "summary") if isinstance(claims.get(b), dict)), {}
        )
        return bool(block.get("bundleId", self.bundle_id) == request[_BID])

    def _known(self, request: web.Request, any_id: str) -> bool:
        return any(
            self._mine(request, t) and any_id in {tid, _claims(t)["originalTransactionId"]}
            for tid, t in self._transactions.items()
        )

    async def _transaction(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        signed = self._transactions.get(request.match_info["id"])
        if signed is None or not self._mine(request, signed):
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response({"signedTransactionInfo": signed})

    async def _history_page(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        if not self._known(request, request.match_info["id"]):
            return web.json_response(NOT_FOUND, status=404)
        items = [t for t in self._history if self._mine(request, t)]
        if request.query.get("sort") == "DESCENDING":
            items.reverse()
        start = 0
        if "revision" in request.query:
            try:
                start = int(base64.b64decode(request.query["revision"]).decode())
            except ValueError:
                return web.json_response(
                    {"errorCode": 4000005, "errorMessage": "Invalid revision."}, status=400
                )
        end = start + PAGE_SIZE
        return web.json_response(
            {
                "revision": base64.b64encode(str(end).encode()).decode(),
                "hasMore": end < len(items),
                "bundleId": request[_BID],
                "appAppleId": self.app_apple_id,
                "environment": self.environment,
                "signedTransactions": items[start:end],
            }
        )

    async def _subscriptions(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        if not self._known(request, request.match_info["id"]):
            return web.json_response(NOT_FOUND, status=404)
        groups: dict[str, list[dict[str, Any]]] = {}
        for original_id, (status, tx, renewal) in self._statuses.items():
            if not self._mine(request, tx):
                continue
            group = str(_claims(tx).get("subscriptionGroupIdentifier", "0"))
            item: dict[str, Any] = {
                "originalTransactionId": original_id,
                "status": status,
                "signedTransactionInfo": tx,
            }
            if renewal is not None:
                item["signedRenewalInfo"] = renewal
            groups.setdefault(group, []).append(item)
        return web.json_response(
            {
                "environment": self.environment,
                "bundleId": request[_BID],
                "appAppleId": self.app_apple_id,
                "data": [
                    {"subscriptionGroupIdentifier": g, "lastTransactions": items}
                    for g, items in groups.items()
                ],
            }
        )

    async def _notification_history(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        try:
            body = await request.json()
        except ValueError:
            return _bad_request(4000000, "Invalid request.")
        start, end = body.get("startDate"), body.get("endDate")
        if not isinstance(start, int) or isinstance(start, bool):
            return _bad_request(4000015, "Invalid start date.")
        if not isinstance(end, int) or isinstance(end, bool):
            return _bad_request(4000016, "Invalid end date.")
        if start > end:
            return _bad_request(4000013, "Start date after end date.")
        if self.clock is not None:
            earliest = self.clock() - HISTORY_KEPT.get(self.environment, timedelta(days=180))
            if start < earliest.timestamp() * 1000:
                return _bad_request(4000012, "Start date too far in past.")
        # A token is bound to the request it continues (Apple's are opaque; these say where).
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        offset = 0
        if "paginationToken" in request.query:
            try:
                text = base64.urlsafe_b64decode(request.query["paginationToken"]).decode()
                mark, _, position = text.partition(":")
                offset = int(position)
            except ValueError:
                mark = ""
            if mark != fingerprint:
                return _bad_request(4000014, "Invalid pagination token.")
        items = [
            item
            for (sent, item) in sorted(self._notifications, key=lambda n: n[0])
            if start <= sent < end and self._notification_of_app(request, item)
        ]
        page = items[offset : offset + PAGE_SIZE]
        more = offset + PAGE_SIZE < len(items)
        answer: dict[str, Any] = {"notificationHistory": page, "hasMore": more}
        if more:
            token = f"{fingerprint}:{offset + PAGE_SIZE}".encode()
            answer["paginationToken"] = base64.urlsafe_b64encode(token).decode()
        return web.json_response(answer)

    # --- store actions -------------------------------------------------------------------

    def _now(self) -> datetime:
        """The fake's "now": its clock's, else the newest signed date of the items it was
        given (store time from the test's own data, never this host's wall clock)."""
        if self.clock is not None:
            return self.clock()
        signed = [
            int(_claims(jws).get("signedDate", 0))
            for jws in [*self._transactions.values(), *(s[1] for s in self._statuses.values())]
        ]
        return datetime.fromtimestamp(max(signed, default=0) / 1000, tz=UTC)

    async def _consumption(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        body = await _json_object(request)
        if body is None or set(body) - CONSUMPTION_FIELDS:
            return _bad_request(GENERAL_BAD_REQUEST, "Invalid request.")
        if body.get("customerConsented") is not True:
            return _bad_request(INVALID_CUSTOMER_CONSENTED, "Invalid customer consented.")
        if not isinstance(body.get("sampleContentProvided"), bool):
            return _bad_request(INVALID_SAMPLE_CONTENT_PROVIDED, "Invalid sample content.")
        if body.get("deliveryStatus") not in DELIVERY_STATUSES:
            return _bad_request(INVALID_DELIVERY_STATUS, "Invalid delivery status.")
        if "consumptionPercentage" in body:
            percentage = body["consumptionPercentage"]
            if not _is_int(percentage) or not 0 <= percentage <= 100_000:
                return _bad_request(GENERAL_BAD_REQUEST, "Invalid consumption percentage.")
        if "refundPreference" in body and body["refundPreference"] not in REFUND_PREFERENCES:
            return _bad_request(GENERAL_BAD_REQUEST, "Invalid refund preference.")
        transaction_id = request.match_info["id"]
        if not transaction_id.isdigit():
            return _bad_request(INVALID_TRANSACTION_ID, "Invalid transaction id.")
        signed = self._transactions.get(transaction_id)
        if signed is None or not self._mine(request, signed):
            return web.json_response(NOT_FOUND, status=404)
        self.consumption_sent.append((transaction_id, body))
        return web.Response(status=202)

    def _subscription(
        self, request: web.Request, original_id: str
    ) -> tuple[int, dict[str, Any]] | None:
        """The status and transaction claims of a subscription of the request's app."""
        known = self._statuses.get(original_id)
        if known is None or not self._mine(request, known[1]):
            return None
        return known[0], _claims(known[1])

    async def _extend(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        body = await _json_object(request)
        if body is None or set(body) != EXTEND_FIELDS:
            return _bad_request(GENERAL_BAD_REQUEST, "Invalid request.")
        if (problem := _extension_problem(body)) is not None:
            return problem
        original_id = request.match_info["id"]
        if not original_id.isdigit():
            return _bad_request(INVALID_ORIGINAL_TRANSACTION_ID, "Invalid original id.")
        subscription = self._subscription(request, original_id)
        if subscription is None:
            if self._known(request, original_id):  # bought, but not a subscription we track
                return _apple_error(403, SUBSCRIPTION_EXTENSION_INELIGIBLE, "Ineligible.")
            return _apple_error(404, ORIGINAL_TRANSACTION_ID_NOT_FOUND, "Not found.")
        granted = [e for e in self.extensions if e.original_transaction_id == original_id]
        for earlier in granted:  # the same request again: the same answer, not counted
            if earlier.body["requestIdentifier"] == body["requestIdentifier"]:
                return web.json_response(earlier.answer)
        status, claims = subscription
        if claims.get("inAppOwnershipType") == "FAMILY_SHARED":
            return _apple_error(
                403, FAMILY_SHARED_SUBSCRIPTION_EXTENSION_INELIGIBLE, "Family shared."
            )
        if status != 1:  # expired, billing retry, grace period, revoked
            return _apple_error(403, SUBSCRIPTION_EXTENSION_INELIGIBLE, "Ineligible.")
        now = self._now()
        recent = [e for e in granted if now - e.at < EXTENSION_WINDOW]
        if len(recent) >= self.max_extensions_per_year:
            return _apple_error(403, SUBSCRIPTION_MAX_EXTENSION, "Maximum extensions reached.")
        days = body["extendByDays"] + sum(e.body["extendByDays"] for e in granted)
        answer = {
            "originalTransactionId": original_id,
            "webOrderLineItemId": claims.get("webOrderLineItemId"),
            "success": True,
            "effectiveDate": int(claims.get("expiresDate", 0)) + days * DAY_MS,
        }
        extension = Extension(original_id, body, answer, now)
        self.extensions.append(extension)
        if self.on_extension is not None:
            self.on_extension(extension)
        return web.json_response(answer)

    async def _mass_extend(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        body = await _json_object(request)
        if body is None or not MASS_EXTEND_REQUIRED <= set(body) <= MASS_EXTEND_FIELDS:
            return _bad_request(GENERAL_BAD_REQUEST, "Invalid request.")
        if (problem := _extension_problem(body)) is not None:
            return problem
        product = body["productId"]
        if not isinstance(product, str) or not product:
            return _bad_request(INVALID_PRODUCT_ID, "Invalid product id.")
        if "storefrontCountryCodes" in body:
            codes = body["storefrontCountryCodes"]
            if not isinstance(codes, list) or not codes:
                return _bad_request(INVALID_EMPTY_STOREFRONT_COUNTRY_CODE_LIST, "Empty list.")
            if not all(isinstance(c, str) and len(c) == 3 and c.isupper() for c in codes):
                return _bad_request(INVALID_STOREFRONT_COUNTRY_CODE, "Invalid storefront.")
        identifier = body["requestIdentifier"]
        if self._mass_extension(request[_BID], product, identifier) is None:
            self.mass_extensions.append(MassExtension(body, request[_BID]))
        return web.json_response({"requestIdentifier": identifier})

    def _mass_extension(self, bid: str, product: str, identifier: str) -> MassExtension | None:
        return next(
            (
                m
                for m in self.mass_extensions
                if m.bundle_id == bid
                and m.body["productId"] == product
                and m.body["requestIdentifier"] == identifier
            ),
            None,
        )

    async def _mass_status(self, request: web.Request) -> web.Response:
        if (failed := await self._guard(request)) is not None:
            return failed
        info = request.match_info
        mass = self._mass_extension(request[_BID], info["product"], info["identifier"])
        if mass is None:
            return _apple_error(404, STATUS_REQUEST_NOT_FOUND, "Status request not found.")
        mass.polls += 1
        if mass.polls <= self.mass_polls_before_complete:
            return web.json_response({"requestIdentifier": info["identifier"], "complete": False})
        storefronts = mass.body.get("storefrontCountryCodes")
        succeeded = sum(
            1
            for status, tx, _renewal in self._statuses.values()
            if status == 1
            and self._mine(request, tx)
            and _claims(tx).get("productId") == info["product"]
            and (storefronts is None or _claims(tx).get("storefront") in storefronts)
        )
        return web.json_response(
            {
                "requestIdentifier": info["identifier"],
                "complete": True,
                "completeDate": int(self._now().timestamp() * 1000),
                "succeededCount": succeeded,
                "failedCount": 0,
            }
        )


# --- legacy app receipts -----------------------------------------------------------------

PKCS7_SIGNED_DATA = "1.2.840.113549.1.7.2"
PKCS7_DATA = "1.2.840.113549.1.7.1"


def _attribute(encoder: asn1.Encoder, kind: int, value: bytes) -> None:
    encoder.enter(asn1.Numbers.Sequence)
    encoder.write(kind, asn1.Numbers.Integer)
    encoder.write(1, asn1.Numbers.Integer)
    encoder.write(value, asn1.Numbers.OctetString)
    encoder.leave()


def _der(build: Any) -> bytes:
    encoder = asn1.Encoder()
    encoder.start()
    build(encoder)
    out: bytes = encoder.output()
    return out


def app_receipt(
    transaction_ids: list[str],
    *,
    bundle_id: str = "com.example.app",
    original: bool = False,
) -> str:
    """A base64 PKCS#7 app receipt listing in-app purchases with these transaction ids
    (attribute 1705 instead of 1703 when `original`). Unsigned: `ReceiptUtility` never checks."""

    def utf8(value: str) -> bytes:
        return _der(lambda e: e.write(value, asn1.Numbers.UTF8String))

    def in_app(transaction_id: str) -> bytes:
        def build(e: asn1.Encoder) -> None:
            e.enter(asn1.Numbers.Set)
            _attribute(e, 1702, utf8("1"))  # quantity-ish filler before the id
            _attribute(e, 1705 if original else 1703, utf8(transaction_id))
            e.leave()

        return _der(build)

    def payload(e: asn1.Encoder) -> None:
        e.enter(asn1.Numbers.Set)
        _attribute(e, 2, utf8(bundle_id))
        for transaction_id in transaction_ids:
            _attribute(e, 17, in_app(transaction_id))
        e.leave()

    content = _der(payload)

    def container(e: asn1.Encoder) -> None:
        e.enter(asn1.Numbers.Sequence)  # ContentInfo
        e.write(PKCS7_SIGNED_DATA, asn1.Numbers.ObjectIdentifier)
        e.enter(0, asn1.Classes.Context)
        e.enter(asn1.Numbers.Sequence)  # SignedData
        e.write(1, asn1.Numbers.Integer)
        e.enter(asn1.Numbers.Set)
        e.leave()
        e.enter(asn1.Numbers.Sequence)  # encapContentInfo
        e.write(PKCS7_DATA, asn1.Numbers.ObjectIdentifier)
        e.enter(0, asn1.Classes.Context)
        e.write(content, asn1.Numbers.OctetString)
        e.leave()
        e.leave()
        e.leave()
        e.leave()
        e.leave()

    return base64.b64encode(_der(container)).decode()
