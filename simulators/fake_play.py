"""A small fake of Google's Play Developer API, OAuth2 token endpoint and OIDC certs, on 127.0.0.1.

Paths are the real ones, so both our aiohttp client and the official
google-api-python-client (with `api_endpoint` pointed here) talk to it unchanged. It also
lists voided purchases (`purchases.voidedpurchases.list`: startTime/endTime in ms on the void
time, `type`, `includeQuantityBasedPartialRefund`, `maxResults`, `tokenPagination`). Access
tokens are stateless (an HMAC over the expiry, keyed by the service account's
certificate), so a token issued by one FakePlay instance is accepted by another with the
same keys: the demo service keeps its cached token across `simulate` runs.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import google.auth.exceptions
import google.auth.jwt
from aiohttp import web

from simulators.google_signer import GoogleTestKeys
from simulators.play_purchases import product_purchase, subscription_purchase

__all__ = ["Failure", "FakePlay", "product_purchase", "running_fake_play", "subscription_purchase"]

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_API = "/androidpublisher/v3/applications/{package}/purchases"
VOIDED_KEPT = timedelta(days=30)
_STATUS_NAMES = {
    400: ("INVALID_ARGUMENT", "invalid"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "permissionDenied"),
    404: ("NOT_FOUND", "notFound"),
    410: ("NOT_FOUND", "purchaseTokenNoLongerValid"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}


def google_error(status: int, message: str) -> web.Response:
    """A response with Google's JSON error body shape."""
    name, reason = _STATUS_NAMES.get(status, ("UNKNOWN", "unknown"))
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
    (the "now" the voided purchases window is checked against); read `acknowledgements` and
    `requests`."""

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
    requests: list[_Recorded] = field(default_factory=list)
    token_requests: int = 0
    certs_requests: int = 0
    certs: dict[str, str] | None = None
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

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
        """Make `subscriptionsv2.get(package, token)` return `purchase`."""
        self.subscriptions[(package, token)] = copy.deepcopy(purchase)
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
        self.acknowledgements.append(
            {"kind": kind, "package": package, "product_id": product, "token": token, "body": body}
        )
        return web.Response(status=204)

    async def _ack_sub(self, request: web.Request) -> web.Response:
        return await self._acknowledge(request, "subscription")

    async def _ack_product(self, request: web.Request) -> web.Response:
        return await self._acknowledge(request, "product")


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
