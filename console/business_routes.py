"""The business page: active subscriptions by entitlement and store, trial starts and
conversions, refunds and billing issues over the last days, and webhook health: how long
store notifications take to reach us, and the outbound deliveries' backlog."""

from __future__ import annotations

from aiohttp import web

from api.keys import CLOCK, CONSOLE_READS, OUTBOUND, SERVICE
from console import business
from console.charts import line_chart
from console.web import render, signed_in
from services.outbound import state_object

routes = web.RouteTableDef()

TITLES = {
    "active": ("Active subscriptions by entitlement and store", False),
    "trials": ("Trial starts and conversions per day", True),
    "refunds": ("Refunds and billing issues per day", True),
    "latency": ("Store notification latency (median seconds from store time to receipt)", False),
}


@routes.get("/console/business")
@signed_in
async def get_business(request: web.Request) -> web.StreamResponse:
    """GET /console/business (signed-in operator): the business page, its charts and the
    outbound webhook endpoints' delivery state."""
    now = request.app[CLOCK]()
    catalog = request.app[SERVICE].catalog
    data = business.series(await request.app[CONSOLE_READS].business(now), catalog)
    charts = []
    for key, (title, bars) in TITLES.items():
        s = data[key]
        charts.append(
            {
                "id": key,
                "title": title,
                "svg": line_chart(title, s.days, s.values, bars=bars),
                "days": s.days,
                "values": s.values,
            }
        )
    outbound = request.app.get(OUTBOUND)
    endpoints = []
    if outbound is not None:
        endpoints = [state_object(e, s, now) for e, s in await outbound.states()]
    return render(request, "business.html", {"charts": charts, "endpoints": endpoints})
