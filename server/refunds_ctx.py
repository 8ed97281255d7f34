"""The cleanup context of refund requests: the use cases on `app[REFUND_REQUESTS]`, the loop
that answers Apple's consumption requests, and its metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from api.keys import APPLE, CLOCK, POOL, REFUND_ANSWERS, REFUND_REQUESTS, REGISTRY, SETTINGS
from config.settings import RefundRequestSettings, Settings
from services.refund_requests import (
    ConsumptionAnswers,
    RefundRequests,
    RefundSettings,
    SendConsumption,
)


def refund_settings(settings: Settings) -> RefundSettings:
    """What the use cases need of `[apple.refund_requests]` (its defaults without [apple])."""
    found = settings.apple.refund_requests if settings.apple else RefundRequestSettings()
    return RefundSettings(
        answer=found.answer,
        preference=found.preference,
        sample_content_provided=found.sample_content_provided,
    )


def refund_delay(settings: Settings) -> timedelta:
    """How long a new refund request waits before its first send (`delay_minutes`)."""
    found = settings.apple.refund_requests if settings.apple else RefundRequestSettings()
    return timedelta(minutes=found.delay_minutes)


async def refunds_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store adapters and the pool: answer refund requests while the app runs."""
    config = refund_settings(app[SETTINGS])
    pool, clock = app[POOL], app[CLOCK]
    app[REFUND_REQUESTS] = RefundRequests(pool, clock, config)
    send: SendConsumption | None = None
    api = app[APPLE].api if APPLE in app else None
    if api is not None:
        client = api

        async def send_to_apple(
            bundle_id: str | None, transaction_id: str, environment: str, body: dict[str, Any]
        ) -> None:
            await client.for_app(bundle_id).send_consumption_information(
                transaction_id, environment, body
            )

        send = send_to_apple
    registry = app[REGISTRY]
    sends = Counter(
        "receiptd_refund_request_sends",
        "Refund requests handled by result: sent, skipped (no consent), retried, failed",
        ["result"],
        registry=registry,
    )
    pending = Gauge(
        "receiptd_refund_requests_pending", "Refund requests not yet answered", registry=registry
    )
    deadline = Gauge(
        "receiptd_refund_requests_deadline_seconds",
        "Seconds left to the nearest deadline among pending refund requests (0: none pending;"
        " negative: missed)",
        registry=registry,
    )

    def on_pending(count: int, left: float | None) -> None:
        pending.set(count)
        deadline.set(left if left is not None else 0.0)

    answers = ConsumptionAnswers(
        pool,
        clock,
        config,
        send,
        on_result=lambda result: sends.labels(result).inc(),
        on_pending=on_pending,
    )
    app[REFUND_ANSWERS] = answers
    answers.start()
    try:
        yield
    finally:
        await answers.stop()
