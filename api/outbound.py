"""The delivery state of the outbound webhooks: `GET /v1/webhooks` (admin)."""

from __future__ import annotations

from aiohttp import web

from api.auth import caller
from api.http import json_response
from api.keys import CLOCK, OUTBOUND
from services.outbound import state_object

routes = web.RouteTableDef()


@routes.get("/v1/webhooks")
async def get_webhooks(request: web.Request) -> web.Response:
    """Each configured endpoint: cursor, backlog, last success and last error."""
    (await caller(request)).require_admin()
    states = await request.app[OUTBOUND].states()
    now = request.app[CLOCK]()
    return json_response({"endpoints": [state_object(e, s, now) for e, s in states]})
