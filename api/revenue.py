"""`GET /v1/revenue?from=2026-11-01&to=2026-11-30` (admin; contract §3, "Revenue"): per day,
store and currency the gross, refunded, charges and refunds, and MRR per currency as of `to`.
Amounts are decimal strings in the store's currency, never converted. `sandbox=true` (test
purchases only) or `sandbox=false` (real money only); both by default."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from api.auth import caller
from api.http import json_response
from api.keys import REVENUE
from entitlements.errors import InvalidRequest

routes = web.RouteTableDef()

MAX_DAYS = 3700  # about ten years in one answer


@routes.get("/v1/revenue")
async def get_revenue(request: web.Request) -> web.Response:
    """Revenue per day and MRR (admin)."""
    principal = await caller(request)
    principal.require_admin()
    first, last = _day(request, "from"), _day(request, "to")
    if last < first:
        raise InvalidRequest("to must not be before from")
    if (last - first).days >= MAX_DAYS:
        raise InvalidRequest(f"at most {MAX_DAYS} days at once")
    flag = request.query.get("sandbox")
    if flag not in {None, "true", "false"}:
        raise InvalidRequest("sandbox must be true or false")
    sandbox = None if flag is None else flag == "true"
    return json_response(await request.app[REVENUE].between(first, last, sandbox))


def _day(request: web.Request, name: str) -> date:
    value = request.query.get(name)
    if value is None:
        raise InvalidRequest(f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date, YYYY-MM-DD") from None
