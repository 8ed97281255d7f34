"""The cleanup context of the serving process's payload retention, and its metric."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Counter

from api.keys import CLOCK, POOL, REGISTRY, RETENTION, SETTINGS
from services.retention import PayloadPruner


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Prune raw store payloads periodically while the app runs (stopped before the pool)."""
    pruned = Counter(
        "receiptd_raw_payloads_pruned",
        "Raw store payloads dropped from the journal after the retention period",
        registry=app[REGISTRY],
    )
    pruner = PayloadPruner(
        app[POOL],
        app[CLOCK],
        app[SETTINGS].retention.raw_payload_days,
        on_pruned=pruned.inc,
    )
    app[RETENTION] = pruner
    pruner.start()
    try:
        yield
    finally:
        await pruner.stop()
