"""The customer pages: search, one customer (entitlements and why, purchases, timeline) and
its actions, each confirmed on a page of its own before it runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from api.keys import CLOCK, CONSOLE_READS, CONSOLE_STORE, OPERATIONS, SERVICE
from console import timeline
from console.actions import ACTIONS, DURATIONS
from console.web import operator, render, signed_in
from console.why import Suspension, explain
from entitlements.access import customer_object, entitlements_of
from entitlements.errors import EntitlementError
from entitlements.grants import grant_expiry, reason_of
from entitlements.model import is_app_user_id

routes = web.RouteTableDef()
TIMELINE_LIMIT = 200


@routes.get("/console/customers")
@signed_in
async def get_search(request: web.Request) -> web.StreamResponse:
    """Find a customer by app user id, original transaction id or purchase token."""
    query = request.query.get("q", "").strip()
    matches: list[tuple[str, str]] = []
    if query:
        matches = await request.app[CONSOLE_READS].search(query)
        if len(matches) == 1:
            raise web.HTTPSeeOther(_customer_path(matches[0][0]))
    return render(request, "search.html", {"query": query, "matches": matches})


@routes.get("/console/customers/{app_user_id}")
@signed_in
async def get_customer(request: web.Request) -> web.StreamResponse:
    """GET /console/customers/{app_user_id} (signed-in operator): the customer page, its
    entitlements and why, purchases, timeline and actions (an alias shows its customer)."""
    app_user_id = _app_user_id(request)
    service = request.app[SERVICE]
    now = request.app[CLOCK]()
    record = await service.customer_record(app_user_id)
    customer = record.app_user_id  # an alias reads as its customer
    body = customer_object(record, service.catalog, now)

    facts, rows = await request.app[CONSOLE_READS].customer_details(customer, TIMELINE_LIMIT)
    suspension = None
    if body["suspended"]:
        last = facts["suspension"] or {}
        suspension = Suspension(facts["suspended_at"], last.get("actor"), last.get("reason"))
    # What the stores (and grants) say without the suspension: the reason underneath it.
    unsuspended = entitlements_of(replace(record, suspended=False), service.catalog, now)
    entitlements = [
        {"name": name, **e, "why": explain(unsuspended[name], suspension)}
        for name, e in sorted(body["entitlements"].items())
    ]
    purchases = []
    for p in [*body["subscriptions"], *body["purchases"]]:
        purchase_id = p.get("original_transaction_id") or p.get("purchase_token")
        extra = facts["purchases"].get((p["store"], purchase_id), {})
        purchases.append(p | {"purchase_id": purchase_id, **extra})
    context = {
        "app_user_id": customer,
        "asked": app_user_id,
        "facts": facts,
        "suspended": body["suspended"],
        "entitlements": entitlements,
        "purchases": purchases,
        "timeline": timeline.merge(rows, TIMELINE_LIMIT),
        "catalog": service.catalog.names(),
        "actions": ACTIONS,
        "durations": DURATIONS,
        "done": request.query.get("done"),
        "now": now,
    }
    return render(request, "customer.html", context)


@routes.post("/console/customers/{app_user_id}/actions/{action}")
@signed_in
async def post_action(request: web.Request) -> web.StreamResponse:
    """Without `confirmed`: the confirmation page. With it: the action, then the customer."""
    app_user_id = _app_user_id(request)
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound
    form = await request.post()
    fields = {k: str(form.get(k, "")) for k in ("entitlement", "duration", "reason")}
    if action.entitlement and not request.app[SERVICE].catalog.defines(fields["entitlement"]):
        return _again(request, app_user_id, action.name, fields, "Choose an entitlement.")
    if form.get("confirmed") != "yes":
        context = {"app_user_id": app_user_id, "action": action, "fields": fields}
        context["duration_label"] = DURATIONS.get(fields["duration"], fields["duration"])
        return render(request, "confirm.html", context)
    try:
        outcome = await _perform(request, app_user_id, action.name, fields)
    except EntitlementError as exc:
        return _again(request, app_user_id, action.name, fields, exc.message)
    query = urlencode({"done": outcome})
    raise web.HTTPSeeOther(f"{_customer_path(app_user_id)}?{query}")


async def _perform(
    request: web.Request, app_user_id: str, action: str, fields: dict[str, str]
) -> str:
    ops, actor = request.app[OPERATIONS], operator(request)
    body: dict[str, Any] = {"reason": fields["reason"].strip() or None}
    reason = reason_of(body)
    name = fields["entitlement"]
    if action == "grant":
        if fields["duration"]:
            body["duration"] = fields["duration"]
        expires_at = grant_expiry(body, request.app[CLOCK]())
        await ops.grant(app_user_id, name, expires_at, actor, reason)
        return f"Granted {name}."
    if action == "end_grants":
        await ops.end_grants(app_user_id, name, actor, reason)
        return f"Ended the grants of {name}."
    if action == "suspend":
        await ops.suspend(app_user_id, actor, reason)
        return "Suspended."
    if action == "unsuspend":
        await ops.unsuspend(app_user_id, actor, reason)
        return "Unsuspended."
    store = request.app[CONSOLE_STORE]
    if action == "reread":
        return await store.reread(app_user_id, actor)
    return await store.replay(app_user_id, actor)


def _again(
    request: web.Request, app_user_id: str, action: str, fields: dict[str, str], error: str
) -> web.Response:
    context = {"app_user_id": app_user_id, "action": ACTIONS[action], "fields": fields}
    context |= {"error": error, "duration_label": DURATIONS.get(fields["duration"], "")}
    return render(request, "confirm.html", context, status=422)


def _app_user_id(request: web.Request) -> str:
    value = request.match_info["app_user_id"]
    if not is_app_user_id(value):
        raise web.HTTPNotFound
    return value


def _customer_path(app_user_id: str) -> str:
    return "/console/customers/" + quote(app_user_id, safe="")
