"""The journal pages: recent store notifications (rejected first) with filters and paging,
and one notification decoded. Its raw payload is shown only when asked for, and never after
retention pruned it (it is gone from the database then)."""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web

from api.keys import CONSOLE_READS, OPERATIONS
from console import payload
from console.web import SESSION, operator, render, signed_in

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
PAGE_SIZE = 50
STORES = ("app_store", "play_store")
RESULTS = ("rejected", "ignored", "processed")
# Verdicts under which the service had verified the message's signature when it came in.
VERIFIED = ("processed", "ignored")


@routes.get("/console/journal")
@signed_in
async def get_journal(request: web.Request) -> web.StreamResponse:
    """GET /console/journal (signed-in operator): one page of journaled store messages,
    filtered by `store`, `type` and `result`."""
    store = _choice(request.query.get("store"), STORES)
    result = _choice(request.query.get("result"), RESULTS)
    kind = request.query.get("type", "").strip() or None
    app = request.query.get("app", "").strip() or None
    page = max(_int(request.query.get("page"), 1), 1)

    journal = await request.app[CONSOLE_READS].journal(
        store=store,
        notification_type=kind,
        result=result,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        app=app,
    )
    total, rows, types = journal.total, journal.rows, journal.types
    chosen = (("store", store), ("app", app), ("type", kind), ("result", result))
    filters = {k: v for k, v in chosen if v}
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    context = {
        "rows": rows,
        "total": total,
        "more": journal.more,
        "page": page,
        "pages": pages,
        "filters": filters,
        "types": types,
        "apps": journal.apps,
        "stores": STORES,
        "results": RESULTS,
        "prev_url": _page_url(filters, page - 1) if page > 1 else None,
        "next_url": _page_url(filters, page + 1) if page < pages else None,
    }
    return render(request, "journal.html", context)


@routes.get("/console/journal/{entry_id:\\d+}")
@signed_in
async def get_entry(request: web.Request) -> web.StreamResponse:
    """GET /console/journal/{entry_id} (signed-in operator): one journaled message, decoded
    when it was verified; its raw payload too with `raw=1` (logged, and noted in its
    customer's audit log); 404 when there is no such entry."""
    entry_id = int(request.match_info["entry_id"])
    entry = await request.app[CONSOLE_READS].journal_entry(entry_id)
    if entry is None:
        raise web.HTTPNotFound
    raw, owner = entry.pop("payload"), entry.pop("owner")
    verified = entry["result"] in VERIFIED
    show_raw = raw is not None and request.query.get("raw") == "1"
    if show_raw:
        # Raw payloads carry personal data: who looked, and at whose, is kept.
        log.info("console_payload_shown", journal_entry=entry_id, key=request[SESSION].key_name)
        if owner is not None:
            details = {"journal_entry": entry_id}
            await request.app[OPERATIONS].note(owner, "view_payload", operator(request), details)
    context = {
        "entry": entry,
        "pruned": raw is None,
        "verified": verified,
        "decoded": payload.pretty(payload.decode(raw)) if raw is not None and verified else None,
        "reads": payload.pretty(entry["reads"]) if entry["reads"] is not None else None,
        "raw": raw if show_raw else None,
    }
    return render(request, "journal_entry.html", context)


def _choice(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None


def _int(value: str | None, default: int) -> int:
    return int(value) if value is not None and value.isdigit() and len(value) < 9 else default


def _page_url(filters: dict[str, str], page: int) -> str:
    return "/console/journal?" + urlencode({**filters, "page": page})
