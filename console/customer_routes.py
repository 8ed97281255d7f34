"""The customer pages: search, one customer (entitlements and why, purchases, timeline) and
its actions, each confirmed on a page of its own before it runs. The store actions (extend,
revoke) say what each store answered; one the service refuses asks no store and shows the
refusal."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from api.keys import CLOCK, CONSOLE_READS, CONSOLE_STORE, OPERATIONS, SERVICE, SUPPORT_ACTIONS
from console import timeline
from console.actions import (
    ACTIONS,
    DURATIONS,
    MAX_DAYS,
    REFUNDS,
    STORE_REASONS,
    Action,
    answers,
    extendable,
    revocable,
)
from console.web import operator, refused, render, signed_in
from console.why import Suspension, explain
from entitlements.access import customer_object, entitlements_of
from entitlements.audit import Actor
from entitlements.errors import ActionRejected, EntitlementError
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
        "reasons": STORE_REASONS,
        "refunds": REFUNDS,
        "max_days": MAX_DAYS,
        "revocable": revocable(record.purchases, now),
        "done": request.query.get("done"),
        "now": now,
    }
    return render(request, "customer.html", context)


@routes.post("/console/customers/{app_user_id}/actions/{action}")
@signed_in
async def post_action(request: web.Request) -> web.StreamResponse:
    """Without `confirmed`: the confirmation page. With it: the action, then the customer
    (a store action the service refuses: the refusal, nothing asked)."""
    app_user_id = _app_user_id(request)
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound
    form = await request.post()
    fields = {k: str(form.get(k, "")) for k in action.fields}
    problem = _problem(request, action, fields)
    if problem is not None:
        return await _confirmation(request, app_user_id, action, fields, problem)
    if form.get("confirmed") != "yes":
        return await _confirmation(request, app_user_id, action, fields)
    try:
        outcome = await _perform(request, app_user_id, action.name, fields)
    except ActionRejected as exc:
        message = f"Nothing was asked of the stores and nothing changed: {exc.message}."
        return refused(request, message, 422)
    except EntitlementError as exc:
        return await _confirmation(request, app_user_id, action, fields, exc.message)
    query = urlencode({"done": outcome})
    raise web.HTTPSeeOther(f"{_customer_path(app_user_id)}?{query}")


def _problem(request: web.Request, action: Action, fields: dict[str, str]) -> str | None:
    """What the form lacks before anything is confirmed or run, if anything."""
    if action.entitlement and not request.app[SERVICE].catalog.defines(fields["entitlement"]):
        return "Choose an entitlement."
    if action.days and _days(fields["days"]) is None:
        return f"Days must be a whole number from 1 to {MAX_DAYS}."
    if action.days and fields["reason"] not in STORE_REASONS:
        return "Choose a reason."
    if action.refund and not fields["purchase"]:
        return "Choose a Google Play purchase."
    if action.refund and fields["refund"] not in REFUNDS:
        return "Choose a refund."
    return None


async def _confirmation(
    request: web.Request,
    app_user_id: str,
    action: Action,
    fields: dict[str, str],
    error: str | None = None,
) -> web.Response:
    """The confirmation page; with `error`, asking again (422)."""
    # A duration the form does not offer shows as given; after a refusal, only a known one.
    duration = DURATIONS.get(fields["duration"], "" if error else fields["duration"])
    context: dict[str, Any] = {"app_user_id": app_user_id, "action": action, "fields": fields}
    context |= {"error": error, "duration_label": duration, "targets": []}
    context |= {"reasons": STORE_REASONS, "refunds": REFUNDS}
    if action.days or action.refund:  # which purchases the stores will be asked about
        purchases = (await request.app[SERVICE].customer_record(app_user_id)).purchases
        if action.days:
            context["targets"] = extendable(purchases)
        else:
            wanted = fields["purchase"]
            now = request.app[CLOCK]()
            found = revocable(purchases, now)
            context["targets"] = [p for p in found if p.purchase_id == wanted]
    return render(request, "confirm.html", context, status=422 if error else 200)


async def _perform(
    request: web.Request, app_user_id: str, action: str, fields: dict[str, str]
) -> str:
    ops, actor = request.app[OPERATIONS], operator(request)
    if action in ("extend", "revoke"):
        return await _ask_stores(request, app_user_id, action, fields, actor)
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


async def _ask_stores(
    request: web.Request, app_user_id: str, action: str, fields: dict[str, str], actor: Actor
) -> str:
    """Extend or revoke through the stores (the service writes the audit row); what each
    store answered."""
    support = request.app[SUPPORT_ACTIONS]
    if action == "extend":
        days = int(fields["days"])
        answered = await support.extend(app_user_id, days, fields["reason"], actor)
        return (
            f"Extension by {days} day(s) asked — {answers(answered)}. "
            "Access changes only when the store confirms."
        )
    answered = await support.revoke(app_user_id, fields["purchase"], fields["refund"], actor)
    return f"Revocation asked — {answers(answered)}. Access ends only when the store confirms."


def _days(value: str) -> int | None:
    try:
        days = int(value)
    except ValueError:
        return None
    return days if 1 <= days <= MAX_DAYS else None


def _app_user_id(request: web.Request) -> str:
    value = request.match_info["app_user_id"]
    if not is_app_user_id(value):
        raise web.HTTPNotFound
    return value


def _customer_path(app_user_id: str) -> str:
    return "/console/customers/" + quote(app_user_id, safe="")
