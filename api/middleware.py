"""Request middleware: request id + canonical log line, metrics, and the error table."""

from __future__ import annotations

import json
import os
import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from itertools import accumulate

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from api.errors import describe_http, error_body, status_for
from config.logging import canonical_line

log = structlog.get_logger("receiptd.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BUCKET_LABELS = [repr(float(bound)) for bound in _LATENCY_BUCKETS] + ["+Inf"]  # "le" values


class _Timing:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class HttpMetrics:
    """Request counts and latency by route and status, in an app-owned registry.

    Counted in plain dicts on the event loop (one `observe` is a dict look-up, an add and a
    bisect) and turned into Prometheus families only when scraped: prometheus_client's own
    Counter and Histogram take a lock per value, which was a visible share of a cached read.
    The exposition is the same: `receiptd_http_requests_total{method,route,status}` and
    `receiptd_http_request_duration_seconds_{bucket,sum,count}{method,route}`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._timings: dict[tuple[str, str], _Timing] = {}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request to `route` with `method` answered `status` in `seconds`."""
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        timing = self._timings.get((route, method))
        if timing is None:
            timing = self._timings[(route, method)] = _Timing()
        timing.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        timing.total += seconds

    def describe(self) -> list[Metric]:
        """The metric families without samples (what the registry asks on `register`)."""
        return list(self._families(samples=False))

    def collect(self) -> list[Metric]:
        """The metric families with every count and latency so far (a scrape)."""
        return list(self._families(samples=True))

    def _families(self, *, samples: bool) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "receiptd_http_requests",
            "HTTP requests by route, method and status",
            labels=["route", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "receiptd_http_request_duration_seconds",
            "HTTP request latency by route and method",
            labels=["route", "method"],
        )
        if samples:
            for (route, method, status), count in list(self._counts.items()):
                requests.add_metric([route, method, str(status)], count)
            for (route, method), timing in list(self._timings.items()):
                cumulative = accumulate(timing.buckets)
                latency.add_metric(
                    [route, method],
                    list(zip(_BUCKET_LABELS, cumulative, strict=True)),
                    timing.total,
                )
        yield requests
        yield latency


def uuid4_hex() -> str:
    """`uuid.uuid4().hex` without building the UUID object (the same 122 random bits)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(error_body(code, message)).encode(),
        content_type="application/json",
    )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def build_middleware(metrics: HttpMetrics) -> Middleware:
    """One middleware, outermost: every response, including errors, is measured and logged."""

    pid = os.getpid()  # which worker answered (`receiptd serve --workers N`)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid4_hex()
        # aiohttp runs each request in a task of its own, on a copy of the connection task's
        # context: what is bound here ends with the request, nothing to clear or unbind.
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = await _handle(request, handler)
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics.observe(route, request.method, response.status, elapsed)
        response.headers["X-Request-ID"] = request_id
        canonical_line(
            "http_request",
            {
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 2),
                "pid": pid,
            },
        )
        return response

    return middleware


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app._client_max_size
    if request.content_length is not None and request.content_length > limit:
        # Refuse before routing or reading; chunked bodies are capped when read.
        return _error(413, "body_too_large", "request body exceeds 1 MiB")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = describe_http(exc)
        return _error(exc.status, code, message)
    except Exception as exc:
        status = status_for(exc)
        if status is None:
            log.exception("unhandled_error", error=type(exc).__name__)
            return _error(500, "internal_error", "internal error")
        code = getattr(exc, "code", "error")
        message = getattr(exc, "message", str(exc))
        if status >= 500:
            log.warning("dependency_unavailable", code=code)
        response = _error(status, code, message)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            response.headers["Retry-After"] = str(retry_after)
        return response
