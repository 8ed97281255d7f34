"""The cleanup context of outbound webhook delivery, and its metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.keys import CLOCK, HTTP, OUTBOUND, POOL, REGISTRY, SETTINGS
from config.settings import WebhookSettings
from services.outbound import Endpoint, OutboundDelivery, RetryPolicy


class PrometheusDeliveryMetrics:
    """receiptd_webhook_pending, _oldest_pending_seconds (gauges) and _attempts_total, each
    labelled with the endpoint id (a hash of the URL, never the URL itself)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._pending = Gauge(
            "receiptd_webhook_pending",
            "Change-feed events not yet delivered to the endpoint",
            ["endpoint"],
            registry=registry,
        )
        self._oldest = Gauge(
            "receiptd_webhook_oldest_pending_seconds",
            "Age of the oldest event not yet delivered to the endpoint (0 when none)",
            ["endpoint"],
            registry=registry,
        )
        self._attempts = Counter(
            "receiptd_webhook_attempts",
            "Delivery attempts by result: success, http_error, timeout, connection_error",
            ["endpoint", "result"],
            registry=registry,
        )

    def attempted(self, endpoint: str, result: str) -> None:
        """Count one delivery attempt and its result."""
        self._attempts.labels(endpoint=endpoint, result=result).inc()

    def observed(self, endpoint: str, pending: int, oldest_pending_seconds: float) -> None:
        """Set the endpoint's backlog gauges."""
        self._pending.labels(endpoint=endpoint).set(pending)
        self._oldest.labels(endpoint=endpoint).set(oldest_pending_seconds)


def endpoints_from(settings: WebhookSettings) -> list[Endpoint]:
    """The configured `[[webhooks.outbound]]` endpoints with their signing secrets."""
    return [
        Endpoint.configure(o.url.get_secret_value(), [s.get_secret_value() for s in o.secrets])
        for o in settings.outbound
    ]


async def outbound_ctx(app: web.Application) -> AsyncIterator[None]:
    """Deliver the change feed to the configured endpoints while the app runs (stopped
    before the pool and the HTTP session close)."""
    settings = app[SETTINGS].webhooks
    delivery = OutboundDelivery(
        app[POOL],
        app[HTTP],
        app[CLOCK],
        endpoints_from(settings),
        RetryPolicy(settings.retry_initial_seconds, settings.retry_max_seconds),
        timeout_seconds=settings.timeout_seconds,
        metrics=PrometheusDeliveryMetrics(app[REGISTRY]),
    )
    app[OUTBOUND] = delivery
    await delivery.register()
    delivery.start()
    try:
        yield
    finally:
        await delivery.stop()
