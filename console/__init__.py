"""The operator console at /console (contract §3 "Operator console"): server-rendered pages
to find a customer and see why they have or lack access, act on them, read the journal of
store notifications and watch the business. No build step: Jinja2 templates, one stylesheet
and one small script, served from this package.

    web.py                    templates, the session cookie, sign-in checks, CSRF
    auth_routes.py            sign-in with an admin API key, sign-out
    customer_routes.py        search, the customer page, confirmed actions (actions.py)
    journal_routes.py         the journal and one decoded notification (payload.py)
    business_routes.py        the business charts (business.py, charts.py)
    refund_routes.py          refund requests, what was sent, a pending one's preference
    (their reads and sessions: services/console_reads.py; the SQL: storage/console*.py)
    why.py, timeline.py       plain-language reasons and the merged timeline (pure)
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from api.keys import CONSOLE_TEMPLATES
from console import auth_routes, business_routes, customer_routes, journal_routes, refund_routes
from console.why import STORE_NAMES, when

HERE = Path(__file__).parent


def setup(app: web.Application) -> None:
    """Add the console's routes, static files and templates to `app`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda value: "—" if value is None else when(value)
    env.filters["store"] = lambda value: STORE_NAMES.get(value, value)
    app[CONSOLE_TEMPLATES] = env
    for module in (auth_routes, customer_routes, journal_routes, refund_routes, business_routes):
        app.add_routes(module.routes)
    app.router.add_static("/console/static", HERE / "static", name="console_static")
