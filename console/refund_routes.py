"""The refund request pages: Apple's refund requests (CONSUMPTION_REQUEST) pending first, with
the time left to answer each, one request with what was sent, and a pending request's refund
preference changed after a confirmation page (the use cases: services/refund_requests.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.keys import CLOCK, REFUND_REQUESTS
from console import payload
from console.web import operator, refused, render, signed_in
from entitlements.errors import RefundRequestNotFound, RefundRequestNotPending
from entitlements.refunds import PREFERENCES, STATUSES

routes = web.RouteTableDef()
LIMIT = 200

# What each preference asks Apple for, as the operator reads it (keys: PREFERENCES).
PREFERENCE_LABELS = {
    "decline": "Decline the refund",
    "grant_full": "Grant a full refund",
    "grant_prorated": "Grant a prorated refund",
    "none": "No preference",
}


@routes.get("/console/refund-requests")
@signed_in
async def get_refund_requests(request: web.Request) -> web.StreamResponse:
    """GET /console/refund-requests (signed-in operator): refund requests, pending first
    (nearest deadline first), then the newest; `status` keeps one status only."""
    status = request.query.get("status")
    status = status if status in STATUSES else None
    rows = await request.app[REFUND_REQUESTS].listing((status,) if status else STATUSES, LIMIT)
    now = request.app[CLOCK]()
    for row in rows:
        row["time_left"] = time_left(row["deadline"], now) if row["status"] == "pending" else None
    context = {
        "rows": rows,
        "status": status,
        "statuses": STATUSES,
        "labels": PREFERENCE_LABELS,
        "limited": len(rows) >= LIMIT,
        "limit": LIMIT,
        "now": now,
    }
    return render(request, "refund_requests.html", context)


@routes.get("/console/refund-requests/{request_id}")
@signed_in
async def get_refund_request(request: web.Request) -> web.StreamResponse:
    """GET /console/refund-requests/{id} (signed-in operator): one request, what was sent
    (or why nothing was), and while it is pending the form to change its preference; 404
    when there is no such request."""
    found = await _one(request)
    changed = request.query.get("changed") == "1"
    return render(request, "refund_request.html", _context(request, found, changed=changed))


@routes.post("/console/refund-requests/{request_id}/preference")
@signed_in
async def post_preference(request: web.Request) -> web.StreamResponse:
    """Without `confirmed`: the confirmation page. With it: the preference changed (audited),
    then the request's page. 409 once the request is no longer pending, 404 when unknown."""
    found = await _one(request)
    form = await request.post()
    preference = str(form.get("preference", ""))
    if found["status"] != "pending":
        return _not_pending(request, found)
    if preference not in PREFERENCES:
        context = _context(request, found) | {"error": "Choose a refund preference."}
        return render(request, "refund_request.html", context, status=422)
    if form.get("confirmed") != "yes":
        context = _context(request, found) | {"confirming": preference}
        return render(request, "refund_request.html", context)
    try:
        await request.app[REFUND_REQUESTS].change_preference(
            found["id"], preference, operator(request)
        )
    except RefundRequestNotPending:  # sent or decided between the page and the answer
        return _not_pending(request, await _one(request))
    raise web.HTTPSeeOther(f"{_request_path(found['id'])}?changed=1")


def time_left(deadline: str | datetime, now: datetime) -> str:
    """The time left before `deadline` as operators read it: `5 h 12 min left`, `12 min
    left`, `less than 1 min left`, or `overdue` once it passed. Whole minutes, rounded down:
    never more time than there is."""
    if isinstance(deadline, str):
        deadline = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    seconds = (deadline - now).total_seconds()
    if seconds <= 0:
        return "overdue"
    minutes = int(seconds // 60)
    if minutes == 0:
        return "less than 1 min left"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{minutes} min left"
    if minutes == 0:
        return f"{hours} h left"
    return f"{hours} h {minutes} min left"


def nothing_sent(found: Mapping[str, Any]) -> str:
    """Why a request's page shows no consumption information sent to the store."""
    status, error = found["status"], found["last_error"]
    if status == "pending":
        tried = f" The last attempt failed: {error}." if error else ""
        return f"Nothing sent yet.{tried}"
    if status == "skipped":
        return "Nothing was sent: the customer has not consented to share consumption data."
    if status == "failed":
        return f"Nothing was sent: {error or 'the request failed'}."
    return f"Nothing was sent{f': {error}' if error else ''}."


def _context(
    request: web.Request, found: dict[str, Any], *, changed: bool = False
) -> dict[str, Any]:
    pending = found["status"] == "pending"
    return {
        "r": found,
        "time_left": time_left(found["deadline"], request.app[CLOCK]()) if pending else None,
        "sent": payload.pretty(found["sent"]) if found["sent"] is not None else None,
        "nothing_sent": nothing_sent(found) if found["sent"] is None else None,
        "preferences": PREFERENCES,
        "labels": PREFERENCE_LABELS,
        "changed": changed,
        "confirming": None,
    }


async def _one(request: web.Request) -> dict[str, Any]:
    try:
        return await request.app[REFUND_REQUESTS].one(request.match_info["request_id"])
    except RefundRequestNotFound:
        raise web.HTTPNotFound from None


def _not_pending(request: web.Request, found: Mapping[str, Any]) -> web.Response:
    message = (
        f"This refund request is {found['status']}, no longer pending: "
        "its refund preference can no longer change."
    )
    return refused(request, message, 409)


def _request_path(request_id: str) -> str:
    return "/console/refund-requests/" + quote(request_id, safe="")
