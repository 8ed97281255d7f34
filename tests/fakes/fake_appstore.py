"""A fake App Store Server API on 127.0.0.1 speaking Apple's wire format, plus legacy receipts.

Serves Get Transaction Info, Get Transaction History V2 (revision/hasMore pages of 20), Get
All Subscription Statuses and Get Notification History (POST with `{startDate, endDate}` in
ms, `paginationToken` pages of 20, the window limited to 180 days back in Production and 30
in Sandbox when the fake has a clock) from signed items it is given; checks the bearer JWT
(ES256 with the configured public key, aud, bid, iss, kid); can inject failures (HTTP
status / Apple error code, optionally only for requests a predicate picks) and delays; logs
every request. `app_receipt` builds a PKCS#7 app receipt that the library's
`ReceiptUtility` parses (attributes 17 / 1703 / 1705; nothing is signed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asn1
import jwt
from aiohttp import web

PAGE_SIZE = 20
NOT_FOUND = {"errorCode": 4040010, "errorMessage": "Transaction id not found."}
HISTORY_KEPT = {"Production": timedelta(days=180), "Sandbox": timedelta(days=30)}


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
