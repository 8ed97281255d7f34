"""Operations endpoints: /healthz, /readyz, /metrics, /openapi.json."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import error_body
from api.keys import CACHE_HEALTH, POOL, REGISTRY, SETTINGS
from services.health import database_ready

routes = web.RouteTableDef()


@routes.get("/healthz")
async def get_health(request: web.Request) -> web.Response:
    """GET /healthz (no credentials): liveness; `{"status": "ok"}` whenever the process
    answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def get_ready(request: web.Request) -> web.Response:
    """GET /readyz (no credentials): `{"status": "ready"}` when the database answers within
    2 s (503 `database_unavailable` otherwise). While Redis does not answer the body says so
    (`"cache": "down"`, `cache_reason`), still 200 (reads fall back to PostgreSQL), or 503
    `cache_unavailable` with `redis.required = true`."""
    if not await database_ready(request.app.get(POOL), seconds=2):
        return web.json_response(
            error_body("database_unavailable", "the database is not reachable"), status=503
        )
    health = request.app.get(CACHE_HEALTH)
    if health is None or health.up:  # no Redis configured (`off`), or it answers
        return web.json_response({"status": "ready"})
    if request.app[SETTINGS].redis.required:
        message = f"Redis does not answer ({health.reason})"
        return web.json_response(error_body("cache_unavailable", message), status=503)
    return web.json_response({"status": "ready", "cache": "down", "cache_reason": health.reason})


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics (no credentials): the app's Prometheus registry, text exposition format."""
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    """GET /openapi.json (no credentials): the service's OpenAPI document, as JSON."""
    return web.Response(body=_openapi_json(), content_type="application/json")


@cache
def _openapi_json() -> bytes:
    text = resources.files("server").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return json.dumps(yaml.safe_load(text)).encode()
