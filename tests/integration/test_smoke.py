"""The app starts against real PostgreSQL and Redis and answers its operations routes."""

from __future__ import annotations


async def test_healthz_and_readyz(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ready"}
