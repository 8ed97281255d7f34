"""A small fake of Google's Play Developer API, OAuth2 token endpoint and OIDC certs, on 127.0.0.1.

Paths are the real ones, so both our aiohttp client and the official
google-api-python-client (with `api_endpoint` pointed here) talk to it unchanged. It also
lists voided purchases (`purchases.voidedpurchases.list`: startTime/endTime in ms on the void
time, `type`, `includeQuantityBasedPartialRefund`, `maxResults`, `tokenPagination`). Access
tokens are stateless (an HMAC over the expiry, keyed by the service account's
certificate), so a token issued by one FakePlay instance is accepted by another with the
same keys: the demo service keeps its cached token across `simulate` runs.

Store actions, bodies checked field by field against the discovery document and refused
with Google's JSON errors:
- `subscriptionsv2:defer` — exactly `{deferralContext: {etag, deferDuration: "<n>s",
  validateOnly?}}`; the etag must be the current one (else 409 ABORTED); only an ACTIVE or
  CANCELED subscription with time left can be deferred (else 400 FAILED_PRECONDITION). It
  moves every line item's expiryTime and answers `itemExpiryTimeDetails` (validateOnly:
  answers, changes nothing). Recorded in `deferrals`.
- `subscriptionsv2:revoke` — exactly `{revocationContext: {fullRefund: {}} | {proratedRefund:
  {}}}` (the fake does not model itemBasedRefund: 400). Access ends now: the state becomes
  SUBSCRIPTION_STATE_EXPIRED, every line item expires now, auto-renewal stops, and the order
  is listed as a voided purchase (voidedSource 1, developer). An expired subscription cannot
  be revoked (400 FAILED_PRECONDITION). Recorded in `revocations`.
- `orders/{orderId}:refund?revoke=` — no body; the order is a subscription line item's
  latestSuccessfulOrderId or a product purchase's orderId (else 404); an order refunded
  already, or a product bought more than three years ago, is refused (400
  FAILED_PRECONDITION). With revoke=true a subscription is revoked as above and a product
  purchase reads purchaseState 1 (cancelled). Recorded in `refunds`; listed as voided.
Every subscriptionsv2 answer carries an `etag`: the purchase's own (the builders give one),
else one made up; every change the fake makes (acknowledge, defer, revoke, refund), and a
`set_subscription` that changes a purchase but keeps its etag, gives it a new one. "Now" is
`clock` when set, else the real clock.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.exceptions
import google.auth.jwt
from aiohttp import web

from simulators.google_signer import GoogleTestKeys
from simulators.play_purchases import (
    product_purchase,
    rfc3339,
    subscription_purchase,
    voided_purchase,
)

__all__ = ["Failure", "FakePlay", "product_purchase", "running_fake_play", "subscription_purchase"]

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_APP = "/androidpublisher/v3/applications/{package}"
_API = _APP + "/purchases"
VOIDED_KEPT = timedelta(days=30)
REFUNDABLE_FOR = timedelta(days=3 * 365)  # orders older than three years cannot be refunded
_DURATION = re.compile(r"([0-9]+)s")
_DEFERRABLE = frozenset({"SUBSCRIPTION_STATE_ACTIVE", "SUBSCRIPTION_STATE_CANCELED"})
_EXPIRED = "SUBSCRIPTION_STATE_EXPIRED"
_REFUND_TYPES = frozenset({"fullRefund", "proratedRefund"})
_STATUS_NAMES = {
    400: ("INVALID_ARGUMENT", "invalid"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "permissionDenied"),
    404: ("NOT_FOUND", "notFound"),
    409: ("ABORTED", "aborted"),
    410: ("NOT_FOUND", "purchaseTokenNoLongerValid"),
    412: ("FAILED_PRECONDITION", "conditionNotMet"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}


def google_error(
    status: int, message: str, *, status_name: str | None = None, reason: str | None = None
) -> web.Response:
    """A response with Google's JSON error body shape (`status_name` and `reason` default to
    those Google gives with the HTTP status)."""
    name, default_reason = _STATUS_NAMES.get(status, ("UNKNOWN", "unknown"))
    name, reason = status_name or name, reason or default_reason
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": name,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    return web.json_response(body, status=status)


@dataclass
class Failure:
    """Answer the next `times` API requests (token/certs endpoints excluded) whose path and
    query contain `path_contains` with `status`; status 0 means stall (no answer) until the
    client gives up or the fake stops."""

    status: int
    times: int = 1
    path_contains: str = ""


@dataclass
class _Recorded:
    method: str
    path: str
    authorized: bool
    body: dict[str, Any] | None = None


@dataclass
class FakePlay:
    """The fake. Set `subscriptions[(package, token)]`, `products[(package, product, token)]`,
    `gone` tokens (HTTP 410), voided purchases (`add_voided`), `failures`, `delay`, `clock`
    (the "now" the voided purchases window and the store actions use); read
    `acknowledgements`, `deferrals`, `revocations`, `refunds` and `requests`."""

    keys: GoogleTestKeys | None = None
    require_auth: bool = True
    delay: float = 0.0
    certs_max_age: int = 300
    stall_seconds: float = 10.0
    subscriptions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    products: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    voided: dict[str, list[tuple[dict[str, Any], bool]]] = field(default_factory=dict)
    clock: Callable[[], datetime] | None = None
    failures: list[Failure] = field(default_factory=list)
    deny: bool = False
    acknowledgements: list[dict[str, Any]] = field(default_factory=list)
    # {"package", "token", "body", "expiry_times"} of every deferral done (not validateOnly)
    deferrals: list[dict[str, Any]] = field(default_factory=list)
    # {"package", "token", "refund" ("fullRefund"/"proratedRefund"), "body"} of every revoke
    revocations: list[dict[str, Any]] = field(default_factory=list)
    # {"package", "order_id", "revoke" (bool), "query" (as sent)} of every order refunded
    refunds: list[dict[str, Any]] = field(default_factory=list)
    requests: list[_Recorded] = field(default_factory=list)
    token_requests: int = 0
    certs_requests: int = 0
    certs: dict[str, str] | None = None
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _etag_changes: int = 0

    # --- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (routes only; `start` serves it)."""
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/oauth2/v1/certs", self._certs)
        app.router.add_get(_API + "/subscriptionsv2/tokens/{token}", self._get_subscription)
        app.router.add_post(_API + "/subscriptions/{product}/tokens/{action}", self._ack_sub)
        app.router.add_get(_API + "/products/{product}/tokens/{token}", self._get_product)
        app.router.add_post(_API + "/products/{product}/tokens/{action}", self._ack_product)
        app.router.add_get(_API + "/voidedpurchases", self._voided_purchases)
        app.router.add_post(_API + "/subscriptionsv2/tokens/{action}", self._subscription_action)
        app.router.add_post(_APP + "/orders/{action}", self._refund_order)
        return app

    async def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (`port` 0 picks a free one); returns the base URL with '/'."""
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{bound_port}/"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; stalled requests are released first."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def token_uri(self) -> str:
        """The OAuth2 token endpoint to put in a service-account JSON."""
        return f"{self.base_url}token"

    @property
    def certs_url(self) -> str:
        """The OIDC certs endpoint (Google's oauth2/v1/certs format)."""
        return f"{self.base_url}oauth2/v1/certs"

    # --- state helpers -------------------------------------------------------------------

    def set_subscription(self, package: str, token: str, purchase: dict[str, Any]) -> None:
        """Make `subscriptionsv2.get(package, token)` return `purchase` (with a new etag if it
        changes the purchase but keeps the etag it had)."""
        new = copy.deepcopy(purchase)
        old = self.subscriptions.get((package, token))
        if (
            old is not None
            and "etag" in new
            and new["etag"] == old.get("etag")
            and _without_etag(new) != _without_etag(old)
        ):
            self._new_etag(new)
        self.subscriptions[(package, token)] = new
        self.gone.discard(token)

    def set_product(self, package: str, product_id: str, token: str, body: dict[str, Any]) -> None:
        """Make `products.get(package, product_id, token)` return `body`."""
        self.products[(package, product_id, token)] = copy.deepcopy(body)

    def add_voided(self, package: str, item: dict[str, Any], *, subscription: bool = True) -> None:
        """A VoidedPurchase of `package` (listed with `type=1` only when a `subscription`)."""
        self.voided.setdefault(package, []).append((copy.deepcopy(item), subscription))

    def fail(self, status: int, times: int = 1, path_contains: str = "") -> None:
        """Inject `times` failures with `status` (0 = stall)."""
        self.failures.append(Failure(status, times, path_contains))

    def now(self) -> datetime:
        """The fake's "now": `clock` when set, else the real clock."""
        return self.clock() if self.clock is not None else datetime.now(UTC)

    def _new_etag(self, purchase: dict[str, Any]) -> None:
        """Give a changed purchase an etag it never had."""
        self._etag_changes += 1
        digest = hashlib.sha256(json.dumps(_without_etag(purchase), sort_keys=True).encode())
        purchase["etag"] = f"etag-{self._etag_changes}-{digest.hexdigest()[:12]}"

    def api_requests(self) -> Iterator[_Recorded]:
        """Recorded Play API requests (not token or certs requests)."""
        return (r for r in self.requests if r.path.startswith("/androidpublisher/"))

    # --- auth ----------------------------------------------------------------------------

    def _secret(self) -> bytes:
        material = self.keys.service_account.cert_pem if self.keys else b"anonymous"
        return hashlib.sha256(b"fake-play-access-token:" + material).digest()

    def _issue(self, lifetime: int) -> str:
        # Access tokens use the real clock on purpose: google-auth, in the service, dates the
        # token it caches (`expires_in`) by the real clock, so the fake must judge it by the
        # same clock. Auth material, not store data: purchase bodies come from the caller.
        expiry = str(int(time.time()) + lifetime)
        mac = hmac.new(self._secret(), expiry.encode(), hashlib.sha256).hexdigest()[:32]
        return f"ya29.fake.{expiry}.{mac}"

    def _valid_access_token(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer ya29.fake."):
            return False
        expiry, _, mac = header.removeprefix("Bearer ya29.fake.").partition(".")
        good = hmac.new(self._secret(), expiry.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(mac, good) and expiry.isdigit() and int(expiry) > time.time()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self.keys is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        sa = self.keys.service_account
        try:
            claims = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
                str(form.get("assertion", "")),
                certs={sa.kid: sa.cert_pem},
                # google-auth always addresses Google's endpoint, whatever the token_uri
                audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return web.json_response(body, status=400)
        if "androidpublisher" not in str(claims.get("scope", "")):
            return web.json_response({"error": "invalid_scope"}, status=400)
        return web.json_response(
            {"access_token": self._issue(3600), "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _certs(self, request: web.Request) -> web.Response:
        self.certs_requests += 1
        certs = (
            self.certs if self.certs is not None else (self.keys.certs_json() if self.keys else {})
        )
        headers = {"Cache-Control": f"public, max-age={self.certs_max_age}, must-revalidate"}
        return web.json_response(certs, headers=headers)

    # --- API -----------------------------------------------------------------------------

    async def _gate(self, request: web.Request, body: dict[str, Any] | None) -> web.Response | None:
        """Record, delay, inject failures, check auth. A response means: answer this."""
        authorized = self._valid_access_token(request.headers.get("Authorization"))
        self.requests.append(_Recorded(request.method, request.path, authorized, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        for failure in self.failures:
            if failure.times > 0 and failure.path_contains in request.path_qs:
                failure.times -= 1
                if failure.status == 0:
                    await self._stall()
                return google_error(failure.status or 503, "Injected failure.")
        if self.require_auth and not authorized:
            return google_error(401, "Request is missing required authentication credential.")
        if self.deny:
            return google_error(403, "The current user has insufficient permissions.")
        return None

    async def _stall(self) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.stall_seconds)

    def _missing(self, token: str) -> web.Response:
        if token in self.gone:
            return google_error(410, "The subscription purchase is no longer available.")
        return google_error(404, "The purchase token was not found.")

    async def _get_subscription(self, request: web.Request) -> web.Response:
        if (early := await self._gate(request, None)) is not None:
            return early
        package, token = request.match_info["package"], request.match_info["token"]
        purchase = self.subscriptions.get((package, token))
        if purchase is None or token in self.gone:
            return self._missing(token)
        if "etag" not in purchase:
            self._new_etag(purchase)
        return web.json_response(purchase)

    async def _get_product(self, request: web.Request) -> web.Response:
        if (early := await self._gate(request, None)) is not None:
            return early
        info = request.match_info
        body = self.products.get((info["package"], info["product"], info["token"]))
        if body is None:
            return self._missing(info["token"])
        return web.json_response(body | {"purchaseToken": info["token"]})

    async def _voided_purchases(self, request: web.Request) -> web.Response:
        if (early := await self._gate(request, None)) is not None:
            return early
        query = request.query
        try:
            limit = min(int(query.get("maxResults", "1000")), 1000)
            if "token" in query:  # Google ignores the window once a page token is given
                window = json.loads(base64.urlsafe_b64decode(query["token"]))
            else:
                window = self._voided_window(query)
        except ValueError as exc:
            return google_error(400, f"Invalid value: {exc}")
        start, end, offset = window["start"], window["end"], window["offset"]
        listed = sorted(
            (
                item
                for item, subscription in self.voided.get(request.match_info["package"], [])
                if start <= int(item["voidedTimeMillis"]) <= end
                and (window["type"] == 1 or not subscription)
                and (window["partial"] or "voidedQuantity" not in item)
            ),
            key=lambda item: int(item["voidedTimeMillis"]),
        )
        answer: dict[str, Any] = {}
        if page := listed[offset : offset + limit]:  # Google leaves empty lists out
            answer["voidedPurchases"] = page
        if offset + limit < len(listed):
            token = json.dumps(window | {"offset": offset + limit}).encode()
            answer["tokenPagination"] = {"nextPageToken": base64.urlsafe_b64encode(token).decode()}
        return web.json_response(answer)

    def _voided_window(self, query: Any) -> dict[str, Any]:
        """The window asked (defaults: the last 30 days; without a clock: everything)."""
        now, earliest = 2**62, 0
        if self.clock is not None:
            now = int(self.clock().timestamp() * 1000)
            earliest = now - int(VOIDED_KEPT.total_seconds() * 1000)
        start = int(query.get("startTime", earliest))
        end = int(query.get("endTime", now))
        if start < earliest or end > now:
            raise ValueError("startTime is older than 30 days or endTime is in the future")
        if start > end:
            raise ValueError("startTime is after endTime")
        partial = query.get("includeQuantityBasedPartialRefund", "false") == "true"
        kind = int(query.get("type", "0"))
        return {"start": start, "end": end, "offset": 0, "type": kind, "partial": partial}

    async def _acknowledge(self, request: web.Request, kind: str) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        if (early := await self._gate(request, body)) is not None:
            return early
        info = request.match_info
        token, _, verb = info["action"].rpartition(":")
        if verb != "acknowledge" or not token:
            return google_error(404, "Unknown method.")
        package, product = info["package"], info["product"]
        if kind == "subscription":
            purchase = self.subscriptions.get((package, token))
            found = purchase is not None and _line_item_product(purchase, product)
        else:
            purchase = self.products.get((package, product, token))
            found = purchase is not None
        if purchase is None or not found:
            return self._missing(token)
        purchase["acknowledgementState"] = (
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" if kind == "subscription" else 1
        )
        if kind == "subscription":
            self._new_etag(purchase)
        self.acknowledgements.append(
            {"kind": kind, "package": package, "product_id": product, "token": token, "body": body}
        )
        return web.Response(status=204)

    async def _ack_sub(self, request: web.Request) -> web.Response:
        return await self._acknowledge(request, "subscription")

    async def _ack_product(self, request: web.Request) -> web.Response:
        return await self._acknowledge(request, "product")

    # --- store actions -------------------------------------------------------------------

    async def _subscription_action(self, request: web.Request) -> web.Response:
        body, readable = await _read_json(request)
        if (early := await self._gate(request, body)) is not None:
            return early
        token, _, verb = request.match_info["action"].rpartition(":")
        if verb not in {"defer", "revoke"} or not token:
            return google_error(404, "Unknown method.")
        if not readable or not isinstance(body, dict):
            return google_error(400, "Invalid JSON payload received.")
        package = request.match_info["package"]
        purchase = self.subscriptions.get((package, token))
        if purchase is None or token in self.gone:
            return self._missing(token)
        if verb == "defer":
            return self._defer(package, token, purchase, body)
        return self._revoke(package, token, purchase, body)

    def _defer(
        self, package: str, token: str, purchase: dict[str, Any], body: dict[str, Any]
    ) -> web.Response:
        context = body.get("deferralContext")
        if set(body) != {"deferralContext"} or not isinstance(context, dict):
            return google_error(400, "deferralContext is required.")
        if (
            not {"etag", "deferDuration"}
            <= set(context)
            <= {
                "etag",
                "deferDuration",
                "validateOnly",
            }
        ):
            return google_error(400, "Invalid deferralContext: etag and deferDuration only.")
        etag, duration = context["etag"], context["deferDuration"]
        validate_only = context.get("validateOnly", False)
        match = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
        if not isinstance(etag, str) or not etag or match is None or int(match[1]) <= 0:
            return google_error(400, "Invalid value at 'deferral_context'.")
        if not isinstance(validate_only, bool):
            return google_error(400, "Invalid value at 'deferral_context.validate_only'.")
        if etag != purchase.get("etag"):
            return google_error(409, "The etag does not match the subscription's current one.")
        now = self.now()
        items = purchase.get("lineItems", [])
        if purchase.get("subscriptionState") not in _DEFERRABLE or not any(
            _parse_time(i["expiryTime"]) > now for i in items if "expiryTime" in i
        ):
            return google_error(
                400,
                "The subscription cannot be deferred in its current state.",
                status_name="FAILED_PRECONDITION",
                reason="failedPrecondition",
            )
        shift = timedelta(seconds=int(match[1]))
        details = [
            {
                "productId": item.get("productId"),
                "expiryTime": rfc3339(_parse_time(item["expiryTime"]) + shift),
            }
            for item in items
            if "expiryTime" in item
        ]
        if not validate_only:
            for item, detail in zip((i for i in items if "expiryTime" in i), details, strict=True):
                item["expiryTime"] = detail["expiryTime"]
            self._new_etag(purchase)
            self.deferrals.append(
                {"package": package, "token": token, "body": body, "expiry_times": details}
            )
        return web.json_response({"itemExpiryTimeDetails": details})

    def _revoke(
        self, package: str, token: str, purchase: dict[str, Any], body: dict[str, Any]
    ) -> web.Response:
        context = body.get("revocationContext")
        if (
            set(body) != {"revocationContext"}
            or not isinstance(context, dict)
            or len(context) != 1
            or next(iter(context)) not in _REFUND_TYPES
            or next(iter(context.values())) != {}
        ):
            return google_error(
                400, "revocationContext needs exactly one of fullRefund, proratedRefund."
            )
        if purchase.get("subscriptionState") in {
            _EXPIRED,
            "SUBSCRIPTION_STATE_PENDING",
            "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED",
        }:
            return google_error(
                400,
                "The subscription is not active.",
                status_name="FAILED_PRECONDITION",
                reason="failedPrecondition",
            )
        self._end_subscription(package, token, purchase, None)
        self.revocations.append(
            {"package": package, "token": token, "refund": next(iter(context)), "body": body}
        )
        return web.json_response({})

    def _end_subscription(
        self, package: str, token: str, purchase: dict[str, Any], order: str | None
    ) -> None:
        """Access ends now: expired, every item expiring now, no renewal, and `order` (by
        default the latest order of its first item) listed as voided."""
        now = self.now()
        purchase["subscriptionState"] = _EXPIRED
        for item in purchase.get("lineItems", []):
            item["expiryTime"] = rfc3339(now)
            if isinstance(item.get("autoRenewingPlan"), dict):
                item["autoRenewingPlan"]["autoRenewEnabled"] = False
        self._new_etag(purchase)
        order = order or next(
            (
                i["latestSuccessfulOrderId"]
                for i in purchase.get("lineItems", [])
                if "latestSuccessfulOrderId" in i
            ),
            None,
        )
        if order is not None:
            self.add_voided(package, voided_purchase(token, order, now, voidedSource=1))

    async def _refund_order(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if (early := await self._gate(request, None)) is not None:
            return early
        order_id, _, verb = request.match_info["action"].rpartition(":")
        if verb != "refund" or not order_id:
            return google_error(404, "Unknown method.")
        if raw.strip() not in {b"", b"{}"}:
            return google_error(400, "orders.refund takes no request body.")
        revoke = request.query.get("revoke", "false")
        if revoke not in {"true", "false"}:
            return google_error(400, f"Invalid value at 'revoke' ({revoke}).")
        package = request.match_info["package"]
        found = self._order(package, order_id)
        if found is None:
            return google_error(404, "The order was not found.")
        kind, token, purchase, bought = found
        if any(r["package"] == package and r["order_id"] == order_id for r in self.refunds):
            return google_error(
                400,
                "The order has already been refunded.",
                status_name="FAILED_PRECONDITION",
                reason="failedPrecondition",
            )
        now = self.now()
        if bought is not None and now - bought > REFUNDABLE_FOR:
            return google_error(
                400,
                "Orders older than three years cannot be refunded.",
                status_name="FAILED_PRECONDITION",
                reason="failedPrecondition",
            )
        if (
            revoke == "true"
            and kind == "subscription"
            and purchase["subscriptionState"] != _EXPIRED
        ):
            self._end_subscription(package, token, purchase, order_id)
        else:
            if revoke == "true" and kind == "product":
                purchase["purchaseState"] = 1
            self.add_voided(
                package,
                voided_purchase(token, order_id, now, voidedSource=1),
                subscription=kind == "subscription",
            )
        self.refunds.append(
            {
                "package": package,
                "order_id": order_id,
                "revoke": revoke == "true",
                "query": dict(request.query),
            }
        )
        return web.Response(status=204)

    def _order(
        self, package: str, order_id: str
    ) -> tuple[str, str, dict[str, Any], datetime | None] | None:
        """(kind, token, purchase, when bought) of the purchase an order id belongs to."""
        for (pkg, token), purchase in self.subscriptions.items():
            items = purchase.get("lineItems", [])
            if pkg == package and any(i.get("latestSuccessfulOrderId") == order_id for i in items):
                # when a renewal order was placed is not in the purchase: not checked
                return "subscription", token, purchase, None
        for (pkg, _product, token), body in self.products.items():
            if pkg == package and body.get("orderId") == order_id:
                millis = body.get("purchaseTimeMillis")
                bought = datetime.fromtimestamp(int(millis) / 1000, UTC) if millis else None
                return "product", token, body, bought
        return None


async def _read_json(request: web.Request) -> tuple[Any, bool]:
    """The request's JSON body and whether it parsed (an empty body is `None`, True)."""
    raw = await request.read()
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _without_etag(purchase: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in purchase.items() if k != "etag"}


def _line_item_product(purchase: dict[str, Any], product_id: str) -> bool:
    return any(i.get("productId") == product_id for i in purchase.get("lineItems", []))


@asynccontextmanager
async def running_fake_play(fake: FakePlay, port: int = 0) -> AsyncIterator[FakePlay]:
    """`async with running_fake_play(FakePlay(keys=...)) as fake:` serves it for the block."""
    await fake.start(port)
    try:
        yield fake
    finally:
        await fake.stop()
