"""The embedded default: with no URLs, real PostgreSQL and Redis start in data_dir, keep
their data across a restart, and stop cleanly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from api.reads import SERVICE
from config.settings import Settings
from server.app import create_app
from tests.conftest import READER_KEY, auth, scratch_dir
from tests.factories import subscription_event


async def test_embedded_servers_survive_a_restart(aiohttp_client, clock) -> None:
    with tempfile.TemporaryDirectory(prefix="rcd-emb-", dir=scratch_dir()) as tmp:
        data_dir = Path(tmp)
        settings = Settings(
            server={"data_dir": data_dir},
            entitlements={"premium": {"products": ["com.example.premium.monthly"]}},
            auth={"api_keys": [{"name": "r", "key": READER_KEY, "scopes": ["customers:read"]}]},
        )
        client = await aiohttp_client(create_app(settings, clock=clock))
        await client.app[SERVICE].ingest(
            None, [subscription_event(purchased_at=clock.now)], submitted_by="u-1"
        )
        await client.get("/v1/customers/u-1", headers=auth(READER_KEY))  # fills the cache
        await client.close()
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert not (data_dir / "redis" / "redis.sock").exists()  # redis stopped
        assert (data_dir / "redis" / "dump.rdb").exists()  # and saved its data

        client = await aiohttp_client(create_app(settings, clock=clock))
        resp = await client.get("/v1/customers/u-1", headers=auth(READER_KEY))
        assert (await resp.json())["entitlements"]["premium"]["active"] is True
        await client.close()
