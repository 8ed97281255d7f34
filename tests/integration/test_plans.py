"""Plans checked in the suite (issue 24 point 2): every SQL statement the service issues —
request paths, background loops, CLIs — EXPLAINed on a database shaped like a few years of
production (tests/plan_seed.py); none reads a large table whole — sequentially, or along a
whole index that no LIMIT stops (plan_seed.full_scans) — but for the deliberate full passes
of FULL_PASSES and the KNOWN ones not fixed here, each with why.

The statements are found, not listed: every module-level SQL constant of storage/*.py and
every SQL literal inside its functions. One added without a case in `cases` (or a reason in
NOT_EXPLAINED) fails `test_every_statement_has_a_plan_case`; SQL outside storage/ fails it
too. EXPLAIN plans the statement for the arguments given and never runs it."""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from entitlements.model import Store
from entitlements.refunds import OPEN, STATUSES
from storage import extend_runs, journal, migrations, purchases, reconcile
from tests import plan_seed as seed
from tests.plan_seed import customer, purchase_id, store

plan_database = seed.plan_database  # the fixture: the seeded database, shared
ROOT = Path(__file__).resolve().parents[2]
# The packages of the service; SQL may live in storage/ only.
PACKAGES = (
    "api",
    "cache",
    "config",
    "console",
    "entitlements",
    "receiptd",
    "receipts",
    "runtime",
    "server",
    "services",
    "simulators",
)
SQL = re.compile(
    r"\s*(SELECT\b|INSERT\s+INTO\b|UPDATE\s+\w+(\s+(AS\s+)?\w+)?\s+SET\b|DELETE\s+FROM\b"
    r"|WITH\s+(RECURSIVE\s+)?\w+\s+AS\b)"
)

# Found but not EXPLAINed, with why.
NOT_EXPLAINED = {
    # Fragments: no statement on their own; EXPLAINed within the statements they make up.
    "purchases._RECORD_COLUMNS": "fragment of SELECT_CUSTOMER_RECORD(_ALIASES)",
    "console_metrics.ADD_FEED_DAYS_LOCKED": "CTE of purchases.APPEND_LAST_EVENT (feed_lock)",
    "customers.ENTRIES_OF": (
        "fragment of EXPORT_NOTIFICATIONS, DROP_PAYLOADS and console.TIMELINE_NOTIFICATIONS"
    ),
    "replay._CANDIDATES": "fragment of COUNT_SELECTED and SELECT_PAGE",
    "purchases._LOCK_AND_ADVANCE": "fragment of APPEND_EVENT and APPEND_LAST_EVENT",
    "purchases._APPENDED": "fragment of APPEND_EVENT and APPEND_LAST_EVENT",
}
# Variants ("module.NAME [variant]") that read a large table whole on purpose, with why.
_JOURNAL_COUNT = (
    "the console's journal page counts the entries matching its filters up to "
    "console.COUNT_LIMIT + 1 (a LIMIT under the count): unfiltered it stops there; a filter "
    "that matches few entries may still read the journal through to find them"
)
_REPLAY_ALL = "`receiptd replay` without a filter checks everything: one pass over it"
FULL_PASSES = {
    # (Unfiltered, the count's LIMIT stops the scan: not a full pass, whichever plan.)
    "console.JOURNAL_COUNT [rejected]": _JOURNAL_COUNT,
    "console.JOURNAL_COUNT [one store and app]": _JOURNAL_COUNT,
    "reconcile.COUNT_STALE [from the start]": (
        "once per `receiptd reconcile` run, for its progress; the run then re-reads each of "
        "these subscriptions from its store, which costs far more than counting them"
    ),
    "replay.COUNT_SELECTED [all]": _REPLAY_ALL + " (every purchase, counted for the progress)",
    "replay.COUNT_MISSING [all]": _REPLAY_ALL + " (the journal, for purchases without a row)",
    "replay.MISSING_PAGE [all]": _REPLAY_ALL + " (lost rows are rare: a page reads on to fill)",
    "replay.COUNT_UNJOURNALED [all]": _REPLAY_ALL + " (owner records no entry names)",
}
# Known whole reads not fixed here, with what would fix them. storage/replay.py is being
# reworked concurrently (replay's parallel parts); its selection is that work's to change.
_REPLAY_MISSING = (
    "counting lost purchases for the progress total (once per run): the entries are chosen by "
    "index (the customer's purchase ids, `received_at`), but the planner, unable to size "
    "them, checks that their purchases have no row by a hash anti join over every purchase"
)
KNOWN = {
    "replay.COUNT_MISSING [--customer]": _REPLAY_MISSING,
    "replay.COUNT_MISSING [--since]": _REPLAY_MISSING,
    # services/outbound.py observes an endpoint's backlog after every pass of its loop.
    "outbox.STATES": (
        "the oldest pending event's time (min(e.created_at) over the backlog) joins every "
        "pending delivery to its event, which the planner does by hashing the whole feed once "
        "a backlog is a few thousand; min(feed_id)'s created_at would do if created_at "
        "followed the feed's order, which nothing guarantees (a clock step back)"
    ),
}

Variants = dict[str, tuple[Any, ...]]

C = customer(7)  # owns purchases 21, 22, 23; alias a1 was merged into it
ALIAS = seed.alias(1)
APP, PLAY = 21, 23  # an App Store purchase and a Play subscription of C
ENTRY = APP + 1  # a journal entry naming purchase APP (entry j + 1 names purchase j)
SNAPSHOT = json.dumps({"premium": {"active": True, "store": "app_store", "status": "active"}})


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def one(*args: Any) -> Variants:
    return {"": args}


def _notification(now: datetime, k: int) -> tuple[Any, ...]:
    """INSERT_NOTIFICATION's 13 arguments: a new store message about purchase k."""
    return (
        store(k),
        "m-new",
        "DID_RENEW",
        None,
        now,
        purchase_id(k),
        "processed",
        None,
        "{}",
        now,
        None,
        [purchase_id(k)],
        "com.example.ios",
    )


def _purchase(now: datetime, k: int) -> tuple[Any, ...]:
    """UPDATE_PURCHASE's 21 arguments: purchase k renewed."""
    return (
        store(k),
        purchase_id(k),
        "com.example.premium.monthly",
        "subscription",
        "active",
        "normal",
        True,
        now + timedelta(days=30),
        None,
        now - timedelta(days=90),
        False,
        None,
        None,
        None,
        "purchased",
        False,
        '{"app": "com.example.ios"}',
        now,
        C,
        "9.99",
        "USD",
    )


def _rollup(now: datetime) -> tuple[list[Any], ...]:
    """feed_daily's (and the money rollups') columns of one change."""
    return ([now.date()], ["premium"], ["app_store"], [1], [0], [0], [0], [0])


def cases(now: datetime) -> dict[str, Variants]:
    """Every statement with realistic arguments (named rows exist in the seed)."""
    day = timedelta(days=1)
    token = bytes(32)
    first, last = (now - 29 * day).date(), now.date()
    charge = (
        ["app_store"],
        [purchase_id(APP)],
        ["ch-new"],
        ["com.example.premium.monthly"],
        ["com.example.ios"],
        [False],
        [Decimal("9.99")],
        ["USD"],
        [now],
        [now + 30 * day],
        [Decimal(1)],
        [None],
        now,
    )
    revenue = ([last], ["app_store"], ["USD"], [False], [Decimal("9.99")], [Decimal(0)], [1], [0])
    request = _uuid(f"rr{seed.REFUND_REQUESTS - 1}")
    return {
        # --- console: sessions, search, a customer's page, the journal ----------------------
        "console.INSERT_SESSION": one(token, "admin", token, "csrf", now, now + day),
        "console.SELECT_SESSION": one(token, now),
        "console.DELETE_SESSION": one(token),
        "console.DELETE_EXPIRED_SESSIONS": one(now),
        "console.SEARCH": {
            "app user id": (C,),
            "transaction id": (purchase_id(APP),),
            "purchase token": (purchase_id(PLAY),),
        },
        "console.CUSTOMER_ROW": one(C),
        "console.ALIASES": one(C),
        "console.PURCHASE_EXTRAS": one(C),
        "console.LAST_SUSPENSION": one(C),
        "console.TIMELINE_NOTIFICATIONS": one(C, 200),
        "console.TIMELINE_EVENTS": one(C, 200),
        "console.TIMELINE_OFFERS": one(C, 200),
        "console.TIMELINE_REFUND_REQUESTS": one(C, 200),
        "console.TIMELINE_AUDIT": one(C, 200),
        "console.JOURNAL_COUNT": {
            "all": (None, None, None, None, 10_001),
            "rejected": (None, None, "rejected", None, 10_001),
            "one store and app": ("play_store", None, None, "com.example.android", 10_001),
        },
        "console.JOURNAL_PAGE": {
            "first page": (None, None, None, 50, 0, None),
            "third page": (None, None, None, 50, 100, None),
            "rejected": (None, None, "rejected", 50, 0, None),
            "one type": ("app_store", "DID_RENEW", None, 50, 0, None),
            "one app": (None, None, None, 50, 0, "com.example.android"),
        },
        "console.JOURNAL_APPS": one(),
        "console.JOURNAL_TYPES": one(),
        "console.JOURNAL_ENTRY": one(ENTRY),
        # --- the business page (its rollups) -------------------------------------------------
        "console_metrics.ACTIVE_CHANGES": one(first, last),
        "console_metrics.TRANSITIONS": one(first, last),
        "console_metrics.MRR_CHANGES": one(first, last, None),
        "console_metrics.RUNNING_TRIALS": {"all": (now, None), "real money": (now, False)},
        "console_metrics.OPEN_GRANTS": one(now),
        "console_metrics.LATENCY_BY_DAY": one(now - 29 * day, now),
        "console_metrics.LATENCY_KEPT": one(first, last),
        "console_metrics.KEEP_LATENCY": one([first], ["app_store"], [1.5], [3]),
        # --- customers: operator actions, merge, export, erasure ---------------------------
        "customers.ALIAS_OWNER": one(ALIAS),
        "customers.CUSTOMER_EXISTS": one(C),
        "customers.LOCK_CUSTOMER_ROW": one(C),
        "customers.INSERT_GRANT": one(C, "premium", now, now + 30 * day),
        "customers.END_GRANTS": one(C, "premium", now),
        "customers.SUSPEND": one(C, now),
        "customers.UNSUSPEND": one(C, now),
        "customers.INSERT_AUDIT": one(now, "key:support", "suspend", C, "req-1", "{}"),
        "customers.MOVE_PURCHASES": one(C, customer(8), now),
        "customers.MOVE_GRANTS": one(C, customer(8)),
        "customers.MOVE_ALIASES": one(C, customer(8)),
        "customers.MOVE_RECORDED_OWNERS": one(C, customer(8)),
        "customers.INSERT_ALIAS": one(customer(8), C, now),
        "customers.DELETE_CUSTOMER": one(customer(8)),
        "customers.EXPORT_CUSTOMER": one(C),
        "customers.EXPORT_ALIASES": one(C),
        "customers.EXPORT_PURCHASES": one(C),
        "customers.EXPORT_GRANTS": one(C),
        "customers.EXPORT_EVENTS": one([C, ALIAS]),
        "customers.EXPORT_AUDIT": one([C, ALIAS]),
        "customers.EXPORT_OWNERSHIP": one([C, ALIAS]),
        "customers.EXPORT_NOTIFICATIONS": one(C),
        "customers.INSERT_PSEUDONYM": one(C, "erased-1", now),
        "customers.DROP_PAYLOADS": one(C, now),
        "customers.CHECKPOINT_PURCHASES": one(C, now),
        "customers.DELETE_GRANTS": one(C),
        "customers.RENAME_EVENTS": one(C, "erased-1"),
        "customers.RENAME_AUDIT": one(C, "erased-1"),
        "customers.RENAME_ACTOR": one(f"user:{C}", "user:erased-1"),
        "customers.RENAME_RECORDED_OWNERS": one(C, "erased-1"),
        "customers.DELETE_ALIASES": one(C),
        "customers.LOCK_PURCHASES_OF": one([C, customer(8)]),
        "customers.EXPORT_CONSENT": one([C, ALIAS]),
        "customers.EXPORT_REFUND_REQUESTS": one([C, ALIAS]),
        "customers.RENAME_REFUND_REQUESTS": one(C, "erased-1"),
        "customers.RENAME_STORE_ACTIONS": one(C, "erased-1"),
        "customers.RENAME_OFFER_SIGNATURES": one(C, "erased-1"),
        "customers.EXPORT_OFFER_SIGNATURES": one([C, ALIAS]),
        "customers.EXPORT_STORE_ACTIONS": one([C, ALIAS]),
        "customers.DELETE_CONSENT": one(C),
        "database.ping()": one(),
        # --- receiptd extend ---------------------------------------------------------------
        "extend_runs.TRY_LOCK": one(extend_runs.LOCK_KEY),
        "extend_runs.UNLOCK": one(extend_runs.LOCK_KEY),
        "extend_runs.OPEN_RUN": one(),
        "extend_runs.START_RUN": one('{"days": 7}', now),
        "extend_runs.SAVE_COUNTS": one(1, "{}", now),
        "extend_runs.FINISH": one(1, "{}", now),
        "extend_runs.ABANDON": one(1, now),
        "extend_runs.ADD_ITEM": one(
            1,
            "play_store",
            seed.play_token(PLAY),
            "com.example.android",
            "Production",
            "com.example.premium.monthly",
            C,
            None,
            "req-1",
            now,
        ),
        "extend_runs.ITEMS": one(1),
        "extend_runs.MARK": one(1, "confirmed", "", "{}", now),
        "extend_runs.RENEWING_APPLE": {
            "every product": (None, "app_store"),
            "one product": ("com.example.premium.monthly", "app_store"),
        },
        "extend_runs.RENEWING_PLAY": {
            "every product": (None, "play_store"),
            "one product": ("com.example.premium.monthly", "play_store"),
        },
        "extend_runs.EXPIRY_OF": one(seed.play_token(PLAY)),
        # --- the change feed (GET /v1/events) ----------------------------------------------
        "feed.PAGE": {
            "at the start": (0, 100),
            "in the middle": (seed.EVENTS // 2, 100),
            "at the end": (seed.EVENTS, 100),
        },
        # --- retention (the loop and receiptd prune) ---------------------------------------
        "journal.TRY_LOCK": one(journal.RETENTION_LOCK_KEY),
        "journal.LOCK": one(journal.RETENTION_LOCK_KEY),
        "journal.UNLOCK": one(journal.RETENTION_LOCK_KEY),
        "journal.COUNT_PRUNABLE": one(now - 30 * day),
        "journal.PRUNE_BATCH": one(now - 30 * day, now, 1000),
        # --- receiptd migrate (nothing pending: the DML-only start) -------------------------
        "migrations.APPLIED": one(),
        "migrations.TABLE_EXISTS": one(),
        "migrations.RECORD": one(18, "plan_indexes"),
        "migrations.LOCK": one(migrations.MIGRATION_LOCK_KEY),
        "migrations.UNLOCK": one(migrations.MIGRATION_LOCK_KEY),
        # --- money: charges, refunds and their rollups (ingest), /v1/revenue ----------------
        "money.INSERT_CHARGES": one(*charge),
        "money.SET_REFUND": one("app_store", purchase_id(APP), "ch21", now),
        "money.ADD_REVENUE": one(*revenue),
        "money.ADD_MRR": one(*revenue[:5], [1]),
        "money.ADD_REVENUE_AND_MRR": one(*revenue, *revenue[:5], [1]),
        "money.REVENUE_DAYS": one(first, last, None),
        "money.MRR_AS_OF": one(last, None),
        # --- offers ------------------------------------------------------------------------
        "offers.STATES": one(C),
        "offers.OFFER_SNAPSHOTS": one(C, "premium"),
        "offers.INSERT": one(
            C, "winback", "com.example.premium.monthly", "jws", "n-1", None, True, now
        ),
        # --- outbound webhooks (the delivery loop, GET /v1/ops/webhooks) --------------------
        "outbox.REGISTER": one("new", now),
        "outbox.HAND": {"up to date": ("orders", now, 500), "behind": ("crm", now, 500)},
        "outbox.CLAIM": {
            "up to date": ("orders", now, now + timedelta(minutes=1), 32),
            "backlog": ("crm", now, now + timedelta(minutes=1), 32),
        },
        "outbox.DELIVERED": one("crm", seed.EVENTS, now),
        "outbox.FAILED": one("crm", seed.EVENTS, 3, now + timedelta(minutes=5), "HTTP 503", now),
        "outbox.STATES": one(["orders", "crm"], now),
        # --- Play acknowledgements (after ingest, and the retry loop) -----------------------
        "play_acknowledgements.INSERT_ACK": one(
            "subscription",
            "com.example.android",
            "com.example.premium.monthly",
            seed.play_token(PLAY),
            now,
            now,
        ),
        "play_acknowledgements.CLAIM_FRESH": one(
            "com.example.android", seed.play_token(8), now + timedelta(minutes=1)
        ),
        "play_acknowledgements.CLAIM_DUE": one(now, now + timedelta(minutes=1), 100),
        "play_acknowledgements.DELETE_ACK": one(1),
        "play_acknowledgements.RESCHEDULE_ACK": one(1, now + timedelta(minutes=5), "HTTP 503"),
        # --- ingest: journal, purchase, customer, feed --------------------------------------
        "purchases.RESOLVE_ALIASES": one([C, ALIAS]),
        "purchases.ALIASES_OF": one([C]),
        "purchases.ERASED_AMONG": one([C, customer(8)]),
        "purchases.SELECT_CUSTOMER_RECORD": {"customer": (C,), "alias": (ALIAS,)},
        "purchases.SELECT_CUSTOMER_RECORD_ALIASES": one(C),
        "purchases.INSERT_NOTIFICATION": one(*_notification(now, APP)),
        "purchases.LOCK_PURCHASE": one(store(APP), purchase_id(APP)),
        "purchases.INSERT_NOTIFICATION_LOCK_PURCHASE": one(
            *_notification(now, APP), store(APP), purchase_id(APP)
        ),
        "purchases.UPDATE_PURCHASE": one(*_purchase(now, APP)),
        "purchases.NOTIFICATION_SEEN": one("app_store", "m-new"),
        "purchases.ENSURE_CUSTOMER": one(C),
        "purchases.ENSURE_CUSTOMER_SAVE_PURCHASE": one(*_purchase(now, APP), C),
        "purchases.SAVE_PURCHASE_RECORD_OWNER": one(*_purchase(now, APP), ENTRY),
        "purchases.ENSURE_CUSTOMER_SAVE_PURCHASE_RECORD_OWNER": one(*_purchase(now, APP), C, ENTRY),
        "purchases.LOCK_CUSTOMER": one(C),
        "purchases.LOCK_CREATED_CUSTOMER_RECORD": one(C),
        "purchases.APPEND_EVENT": one(
            uuid.uuid4(), C, "renewal", SNAPSHOT, now, purchases.FEED_LOCK_KEY
        ),
        "purchases.APPEND_LAST_EVENT": one(
            uuid.uuid4(), C, "renewal", SNAPSHOT, now, purchases.FEED_LOCK_KEY, *_rollup(now)
        ),
        "purchases.FILL_APPS": one("app_store", "com.example.ios"),
        "purchases.FILL_JOURNAL_APPS": one("app_store", "com.example.ios"),
        "purchases.COUNT_WITHOUT_APP": one("app_store"),
        # --- receiptd reconcile ------------------------------------------------------------
        "reconcile.TRY_LOCK": one(reconcile.LOCK_KEYS[Store.APP_STORE]),
        "reconcile.UNLOCK": one(reconcile.LOCK_KEYS[Store.APP_STORE]),
        "reconcile.OPEN_RUN": one("app_store"),
        "reconcile.START_RUN": one("app_store", "{}", None, now, now),
        "reconcile.SAVE": one(1, "{}", 10, 1, 1, 0, now),
        "reconcile.CLOSE": one(1, now, "finished"),
        "reconcile.LAST_CLEAN_UNTIL": one("app_store"),
        "reconcile.STATES_OF": one("app_store", [purchase_id(APP), purchase_id(APP + 1)]),
        "reconcile.CUSTOMER_PURCHASES": one(C),
        "reconcile.HELD": one("app_store", purchase_id(APP)),
        "reconcile.COUNT_STALE": {
            "from the start": ("app_store", now - day, 0),
            "resumed": ("play_store", now - day, seed.PURCHASES // 2),
        },
        "reconcile.STALE_PAGE": {
            "first page": ("app_store", now - day, 0, 100),
            "resumed": ("play_store", now - day, seed.PURCHASES // 2, 100),
        },
        # --- refund requests (ingest, the sending loop, the API and console) ----------------
        "refund_requests.INSERT": one(
            uuid.uuid4(),
            "app_store",
            "rn-new",
            C,
            purchase_id(APP),
            "3-new",
            "com.example.coins.100",
            "com.example.ios",
            "Production",
            None,
            None,
            now,
            now + timedelta(hours=12),
            "pending",
            now,
            None,
            now,
        ),
        "refund_requests.CLOSE": one(
            "app_store", purchase_id(APP), "3-1", "refunded", now, list(OPEN)
        ),
        "refund_requests.CLAIM": one(now, now + timedelta(minutes=1), 16),
        "refund_requests.FINISH": one(request, "sent", now, "{}", None),
        "refund_requests.RETRY": one(request, now + timedelta(minutes=1), "HTTP 503"),
        "refund_requests.EXPIRE": one(now, "deadline passed"),
        "refund_requests.SET_PREFERENCE": one(request, "decline"),
        "refund_requests.PENDING_STATS": one(),
        "refund_requests.UPSERT_CONSENT": one(C, True, now),
        "refund_requests.PURCHASE_OWNER": one("app_store", purchase_id(APP)),
        "refund_requests.one()": one(request),
        "refund_requests.listing()": {
            "every status": (list(STATUSES), 200),
            "pending": (["pending"], 200),
            "refunded": (["refunded"], 200),
        },
        "refund_requests.of_customer()": one(C),
        "refund_requests.consent()": one(C),
        # --- receiptd replay (and its --customer, --since, --jobs) --------------------------
        **_replay(now),
        # --- store actions -----------------------------------------------------------------
        "store_actions.HELD": one(C),
        "store_actions.INSERT": one(
            uuid.uuid4(),
            C,
            "app_store",
            purchase_id(APP),
            "extend",
            "{}",
            "requested",
            "",
            "{}",
            "key:support",
            now,
        ),
        "store_actions.EXTENSIONS_SINCE": one(
            "app_store", [purchase_id(APP), purchase_id(APP + 1)], now - 365 * day
        ),
    }


def _replay(now: datetime) -> dict[str, Variants]:
    since = now - timedelta(days=2)
    # (customer, since) of `receiptd replay`, `--customer`, `--since`.
    selections = {"all": (None, None), "--customer": (C, None), "--since": (None, since)}
    middle = seed.NOTIFICATIONS // 2
    return {
        "replay.JOURNAL_COMPLETE_SINCE": one(5),
        "replay.CUSTOMER_OF": one(ALIAS),
        "replay.COUNT_SELECTED": selections,
        "replay.SELECT_PAGE": {
            name: (*selection, seed.PURCHASES // 2, 200, 1, 0)
            for name, selection in selections.items()
        }
        | {"--jobs 4": (None, None, seed.PURCHASES // 2, 200, 4, 1)},
        "replay.COUNT_MISSING": selections,
        "replay.MISSING_PAGE": {
            name: (*selection, middle, 200, "", 1, 0) for name, selection in selections.items()
        },
        "replay.COUNT_UNJOURNALED": selections,
        "replay.UNJOURNALED_PAGE": {
            name: (*selection, "app_store", 200, "", 1, 0) for name, selection in selections.items()
        },
        "replay.SELECT_ENTRIES": one("app_store", [purchase_id(APP)]),
        "replay.LOCK_PURCHASE": one("app_store", purchase_id(APP)),
        "replay.LATEST_ENTRY": one("app_store", purchase_id(APP)),
        "replay.RESTORE_CREATED_AT": one("app_store", purchase_id(APP), now),
        "replay_runs.OPEN_RUN": one(),
        "replay_runs.END_RUN": one(1, "finished", now),
        "replay_runs.START_RUN": one("{}", now),
        "replay_runs.START_PARTS": one(1, 4, now),
        "replay_runs.PARTS": one(1),
        "replay_runs.SAVE_PART": one(1, 0, "{}", "{}", False, now),
        "replay_runs.SAVE_LINES": one(1, ["a line"]),
        "replay_runs.SAVE_SHARED": one(1, [ENTRY]),
        "replay_runs.LINES": one(1),
        "replay_runs.COUNT_SHARED": one(1),
        "replay_runs.TOUCH_RUN": one(1, now),
    }


# --- the statements, found ---------------------------------------------------------------


def _literals(tree: ast.AST) -> list[tuple[str, str]]:
    """(enclosing function, text) of each SQL string literal inside a function; docstrings
    are no SQL."""
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and SQL.match(node.value)
                ):
                    found.append((function.name, node.value))
    return found


def statements() -> dict[str, str]:
    """Every SQL statement of storage/: "module.NAME" for a module-level constant (as its
    value is composed at import), "module.function()" for a literal inside a function."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "storage").glob("*.py")):
        module = importlib.import_module(f"storage.{path.stem}")
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                value = getattr(module, target.id, None) if isinstance(target, ast.Name) else None
                if isinstance(value, str) and SQL.match(value):
                    found[f"{path.stem}.{target.id}"] = value
        for function, text in _literals(tree):
            name = f"{path.stem}.{function}()"
            assert name not in found, f"{name}: one SQL literal per function, or name it"
            found[name] = text
    return found


def sql_outside_storage() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for function, text in _literals(ast.parse(path.read_text())):
                found.append(f"{path.relative_to(ROOT)}:{function}: {text.strip()[:40]}")
    return found


def test_every_statement_has_a_plan_case(clock) -> None:
    found = set(statements())
    planned = set(cases(clock.now))
    assert found - planned - set(NOT_EXPLAINED) == set(), "SQL without a plan case"
    assert planned - found == set(), "plan cases of statements that are gone"
    assert set(NOT_EXPLAINED) <= found
    assert planned.isdisjoint(NOT_EXPLAINED)
    variants = {f"{name} [{v}]" if v else name for name, vs in cases(clock.now).items() for v in vs}
    assert set(FULL_PASSES) | set(KNOWN) <= variants, "FULL_PASSES or KNOWN names no case"
    assert set(FULL_PASSES).isdisjoint(KNOWN)
    assert sql_outside_storage() == [], "SQL lives in storage/ (conventions: Adapters)"


async def test_no_statement_reads_a_large_table_whole(plan_database: seed.Seeded) -> None:
    found = statements()
    offenders: dict[str, list[str]] = {}
    lapsed = []
    conn = await asyncpg.connect(plan_database.url, command_timeout=120)
    try:
        for name, variants in cases(plan_database.now).items():
            for variant, args in variants.items():
                key = f"{name} [{variant}]" if variant else name
                plan = await seed.plan_of(conn, found[name], args)
                scans = seed.full_scans(plan, plan_database.partial)
                allowed = key in FULL_PASSES or key in KNOWN
                if scans and not allowed:
                    offenders[key] = scans
                elif allowed and not scans:
                    lapsed.append(key)
    finally:
        await conn.close()
    assert offenders == {}, f"large tables read whole: {offenders}"
    assert lapsed == [], f"no longer read whole: remove them from FULL_PASSES / KNOWN: {lapsed}"
