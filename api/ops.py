"""Operations endpoints: /healthz, /readyz, /metrics, /openapi.json."""

from __future__ import annotations

import asyncio
import json
from functools import cache
from importlib import resources

import asyncpg
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import error_body
from api.keys import POOL, REGISTRY

routes = web.RouteTableDef()


@routes.get("/healthz")
async def get_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def get_ready(request: web.Request) -> web.Response:
    pool = request.app.get(POOL)
    try:
        if pool is None:
            raise ConnectionError("no database pool")
        async with asyncio.timeout(2):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return web.json_response(
            error_body("database_unavailable", "the database is not reachable"), status=503
        )
    return web.json_response({"status": "ready"})


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=_openapi_json(), content_type="application/json")


@cache
def _openapi_json() -> bytes:
    text = resources.files("server").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return json.dumps(yaml.safe_load(text)).encode()
