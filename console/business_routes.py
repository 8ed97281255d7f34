"""The business page: revenue per day and currency, MRR, paying subscriptions against trials
and grants, active subscriptions by entitlement and store, trial starts and conversions,
refunds and billing issues over the last days, and webhook health: how long store
notifications take to reach us, and the outbound deliveries' backlog. Also the revenue
table as CSV."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web

from api.keys import CLOCK, CONSOLE_READS, OUTBOUND, REVENUE, SERVICE
from console import business
from console.charts import line_chart
from console.web import SECURITY_HEADERS, render, signed_in
from console.why import STORE_NAMES
from services.console_reads import window
from services.outbound import state_object

routes = web.RouteTableDef()

TITLES = {
    "revenue": ("Revenue per day by currency (gross and refunded)", True),
    "mrr": ("Monthly recurring revenue by currency", False),
    "mix": ("Running today: paying subscriptions, trials and grants", True),
    "active": ("Active subscriptions by entitlement and store", False),
    "trials": ("Trial starts and conversions per day", True),
    "refunds": ("Refunds and billing issues per day", True),
    "latency": ("Store notification latency (median seconds from store time to receipt)", False),
}
MONEY = {"": None, "false": False, "true": True}  # ?sandbox=: both, real money, test money


@routes.get("/console/business")
@signed_in
async def get_business(request: web.Request) -> web.StreamResponse:
    """GET /console/business (signed-in operator): the business page, its charts and the
    outbound webhook endpoints' delivery state."""
    now = request.app[CLOCK]()
    sandbox = _sandbox(request)
    catalog = request.app[SERVICE].catalog
    rows = await request.app[CONSOLE_READS].business(now, sandbox)
    money = await _revenue(request, sandbox)
    data = business.series(rows, catalog, money)
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
                "text": s.text,
            }
        )
    outbound = request.app.get(OUTBOUND)
    endpoints = []
    if outbound is not None:
        endpoints = [state_object(e, s, now) for e, s in await outbound.states()]
    context = {
        "charts": charts,
        "endpoints": endpoints,
        "revenue": money["days"],
        "mrr": money["mrr"],
        "sandbox": request.query.get("sandbox", ""),
        "store_names": STORE_NAMES,
    }
    return render(request, "business.html", context)


@routes.get("/console/business/revenue.csv")
@signed_in
async def get_revenue_csv(request: web.Request) -> web.StreamResponse:
    """GET /console/business/revenue.csv (signed-in operator): the page's revenue table, one
    row per day, store and currency, as an attachment."""
    money = await _revenue(request, _sandbox(request))
    return web.Response(
        text=business.revenue_csv(money["days"]),
        content_type="text/csv",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="revenue.csv"'},
    )


def _sandbox(request: web.Request) -> bool | None:
    choice = request.query.get("sandbox", "")
    if choice not in MONEY:
        raise web.HTTPBadRequest(text="sandbox is true, false or empty")
    return MONEY[choice]


async def _revenue(request: web.Request, sandbox: bool | None) -> dict[str, Any]:
    """The window's revenue and MRR as of today (app clock), as GET /v1/revenue says them."""
    days = window(request.app[CLOCK]())
    first, last = days[0].astimezone(UTC).date(), days[-1].astimezone(UTC).date()
    return await request.app[REVENUE].between(first, last, sandbox)
