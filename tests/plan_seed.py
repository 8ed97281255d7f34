"""A database shaped like a few years of production, for the plan tests
(tests/integration/test_plans.py, test_business_rollups.py): every large table filled
server-side in one pass (generate_series: no rows cross the wire), one ANALYZE, and the
check that an EXPLAIN reads no large table whole.

Shapes follow production, since the planner's choice depends on them: most purchases expired
and a few live, most journal payloads pruned, a backlog behind one webhook endpoint, a few
pending refund requests among many decided ones. Rows are derived from their index `i` by
the helpers below, so a test names existing rows (`customer(7)`, `purchase_id(12)`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.conftest import clock_start, with_database

CUSTOMERS = 25_000
ALIASES = 3_000
PURCHASES = 3 * CUSTOMERS  # three per customer (a few have no owner)
NOTIFICATIONS = 150_000  # two journal entries per purchase
EVENTS = 150_000  # six change-feed events per customer
CHARGES = 90_000
GRANTS = 6_000
AUDIT = 40_000
BACKLOG = 20_000  # deliveries piled up behind the endpoint "crm", which is down
ACKS = 30_000  # a Play outage's worth of pending acknowledgements
REFUND_REQUESTS = 15_000
PENDING_REFUNDS = 40  # the newest requests: still pending
STORE_ACTIONS = 15_000
OFFER_SIGNATURES = 20_000
CONSENTS = 3_000
KEPT_PAYLOAD_ENTRIES = 14_400  # the newest entries (30 days) still keep their payloads
LOST = 30  # purchases the journal names without a row, and as many only an owner record names

# The tables that grow with customers or history: none of them may be read whole. (The runs'
# tables of the CLIs hold one run's rows, read per run: extend_items, replay_lines.)
LARGE = (
    "audit_log",
    "charges",
    "customer_aliases",
    "customer_consents",
    "customer_events",
    "customers",
    "grants",
    "offer_signatures",
    "play_acknowledgements",
    "purchase_owners",
    "purchases",
    "refund_requests",
    "store_actions",
    "store_notifications",
    "webhook_deliveries",
)


# --- the rows, by index (the SQL below computes the same) -----------------------------------


def customer(i: int) -> str:
    return f"c{i}"


def alias(i: int) -> str:
    return f"a{i}"


def is_app_store(k: int) -> bool:
    """Purchase k's store: three in five on the App Store."""
    return k % 5 < 3


def store(k: int) -> str:
    return "app_store" if is_app_store(k) else "play_store"


def play_token(k: int) -> str:
    return f"tok{k}.{hashlib.md5(str(k).encode()).hexdigest()}"  # (a name, not security)


def purchase_id(k: int) -> str:
    """An original transaction id; a Play token, or `token|product` for an add-on line item
    (k % 50 == 4: the add-on of purchase k - 1's token)."""
    if is_app_store(k):
        return str(2_000_000_000_000_000 + k)
    if k % 50 == 4:
        return f"{play_token(k - 1)}|com.example.addon"
    return play_token(k)


def owner(k: int) -> str | None:
    """Purchase k's customer (one in forty is linked to nobody)."""
    return None if k % 40 == 39 else customer(k // 3)


_STORE = "CASE WHEN {i} % 5 < 3 THEN 'app_store' ELSE 'play_store' END"
_TOKEN = "'tok' || ({i}) || '.' || md5(({i})::text)"
_PURCHASE_ID = (
    "CASE WHEN {i} % 5 < 3 THEN (2000000000000000 + {i})::text"
    " WHEN {i} % 50 = 4 THEN " + _TOKEN.format(i="{i} - 1") + " || '|com.example.addon'"
    " ELSE " + _TOKEN + " END"
)
_OWNER = "CASE WHEN {i} % 40 = 39 THEN NULL ELSE 'c' || (({i}) / 3) END"
_APP = "CASE WHEN {i} % 5 < 3 THEN 'com.example.ios' ELSE 'com.example.android' END"


def _purchase(expression: str, i: str) -> str:
    return expression.format(i=f"({i})")


# $1 is the test's `now` in every statement.
SEED = [
    f"""
INSERT INTO customers (app_user_id, created_at, updated_at, suspended_at, event_sequence,
    snapshot, erased_at)
SELECT 'c' || i, $1 - (i % 900) * interval '1 day', $1 - (i % 60) * interval '1 day',
       CASE WHEN i % 500 = 0 THEN $1 - interval '3 days' END, {EVENTS // CUSTOMERS},
       jsonb_build_object('premium', jsonb_build_object(
           'active', i % 5 = 0, 'store', {_STORE.format(i="i")},
           'status', CASE WHEN i % 5 = 0 THEN 'active' ELSE 'expired' END,
           'period_type', CASE WHEN i % 17 = 0 THEN 'trial' ELSE 'normal' END,
           'expires_at', to_char($1 + (i % 30 - 15) * interval '1 day',
                                 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'grace_period_expires_at', NULL)),
       CASE WHEN i % 400 = 0 THEN $1 - interval '10 days' END
FROM generate_series(0, {CUSTOMERS - 1}) AS i
""",
    f"""
INSERT INTO customer_aliases (alias, app_user_id, created_at)
SELECT 'a' || i, 'c' || (i * 7 % {CUSTOMERS}), $1 - (i % 700) * interval '1 day'
FROM generate_series(0, {ALIASES - 1}) AS i
""",
    # h: a pseudo-random 0..99 per purchase. Most expired, a fifth live, a few in trial.
    f"""
INSERT INTO purchases (id, store, purchase_id, app_user_id, product_id, kind, status,
    period_type, will_renew, expires_at, grace_period_expires_at, purchased_at, is_sandbox,
    revoked_at, superseded, state, state_updated_at, linked_at, created_at, updated_at, app,
    price_amount, price_currency)
SELECT i + 1, {_STORE.format(i="i")}, {_purchase(_PURCHASE_ID, "i")}, {_OWNER.format(i="i")},
       CASE kind WHEN 'subscription'
                 THEN 'com.example.premium.' || (ARRAY['monthly', 'yearly'])[i % 2 + 1]
                 WHEN 'consumable' THEN 'com.example.coins.100' ELSE 'com.example.lifetime' END,
       kind, status,
       CASE WHEN h % 17 = 0 THEN 'trial' WHEN h % 23 = 0 THEN 'intro' ELSE 'normal' END,
       status = 'active' AND kind = 'subscription',
       CASE WHEN kind <> 'subscription' THEN NULL
            WHEN status = 'expired' OR status = 'revoked' THEN $1 - (i % 700) * interval '1 day'
            ELSE $1 + (i % 30 + 1) * interval '1 day' END,
       CASE WHEN status = 'grace_period' THEN $1 + interval '3 days' END,
       $1 - ({PURCHASES} - i) * interval '10 minutes', i % 20 = 0,
       CASE WHEN status = 'revoked' THEN $1 - (i % 700) * interval '1 day' END, i % 37 = 0,
       jsonb_build_object('store', {_STORE.format(i="i")},
           'purchase_id', {_purchase(_PURCHASE_ID, "i")},
           'environment', CASE WHEN i % 20 = 0 THEN 'Sandbox' ELSE 'Production' END,
           'app', {_APP.format(i="i")}, 'updated_at', $1,
           'transactions', jsonb_build_array(md5(i::text), md5((i + 1)::text),
                                             md5((i + 2)::text))),
       $1 - (i % 400) * interval '1 hour', $1 - ({PURCHASES} - i) * interval '10 minutes',
       $1 - ({PURCHASES} - i) * interval '10 minutes', $1 - (i % 400) * interval '1 hour',
       CASE WHEN i % 100 = 7 THEN NULL ELSE {_APP.format(i="i")} END,
       CASE WHEN h % 17 = 0 THEN '0' ELSE '9.99' END, CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END
FROM generate_series(0, {PURCHASES - 1}) AS i,
     LATERAL (SELECT (i * 7919) % 100 AS h) AS r,
     LATERAL (SELECT CASE i % 10 WHEN 9 THEN 'consumable' WHEN 8 THEN 'non_consumable'
                                 ELSE 'subscription' END AS kind) AS k,
     LATERAL (SELECT CASE WHEN kind = 'consumable' THEN 'expired'
                          WHEN kind = 'non_consumable' THEN 'active'
                          WHEN h < 65 THEN 'expired' WHEN h < 85 THEN 'active'
                          WHEN h < 87 THEN 'grace_period' WHEN h < 90 THEN 'billing_retry'
                          WHEN h < 92 THEN 'on_hold' WHEN h < 96 THEN 'revoked'
                          ELSE 'expired' END AS status) AS s
""",
    # Entry j names purchase j % PURCHASES; one in 31 was rejected (no purchase), one in 13
    # ignored; one in 97 applied to two purchases (an App Store submission's history). Older
    # than 30 days: payload pruned.
    f"""
INSERT INTO store_notifications (id, store, message_id, received_at, notification_type,
    subtype, signed_at, purchase_id, result, reason, payload, payload_pruned_at, reads,
    purchase_ids, app)
SELECT j + 1, {_STORE.format(i="k")}, md5('m' || j), received_at,
       CASE WHEN j % 10 = 0 THEN 'SUBMISSION' WHEN j % 10 = 1 THEN 'RECONCILE'
            WHEN k % 5 < 3 THEN (ARRAY['DID_RENEW', 'SUBSCRIBED', 'DID_CHANGE_RENEWAL_STATUS',
                                       'EXPIRED'])[j % 4 + 1]
            ELSE (ARRAY['SUBSCRIPTION_RENEWED', 'SUBSCRIPTION_PURCHASED',
                        'SUBSCRIPTION_CANCELED'])[j % 3 + 1] END,
       CASE WHEN j % 7 = 0 THEN 'AUTO_RENEW_DISABLED' END, received_at - interval '4 seconds',
       CASE WHEN j % 31 <> 0 THEN {_purchase(_PURCHASE_ID, "k")} END,
       CASE WHEN j % 31 = 0 THEN 'rejected' WHEN j % 13 = 0 THEN 'ignored' ELSE 'processed' END,
       CASE WHEN j % 31 = 0 THEN 'signature did not verify' END,
       CASE WHEN kept THEN repeat(md5(j::text), 40) END,
       CASE WHEN NOT kept THEN received_at + interval '30 days' END,
       CASE WHEN kept AND j % 10 = 1 THEN jsonb_build_object('transactions', md5(j::text)) END,
       CASE WHEN j % 31 = 0 OR j % 13 = 0 THEN '{{}}'::text[]
            WHEN j % 97 = 0 THEN ARRAY[{_purchase(_PURCHASE_ID, "k")},
                                       {_purchase(_PURCHASE_ID, "(k + 5) % " + str(PURCHASES))}]
            ELSE ARRAY[{_purchase(_PURCHASE_ID, "k")}] END,
       CASE WHEN j % 100 = 5 THEN NULL ELSE {_APP.format(i="k")} END
FROM generate_series(0, {NOTIFICATIONS - 1}) AS j,
     LATERAL (SELECT j % {PURCHASES} AS k,
                     $1 - ({NOTIFICATIONS} - j) * interval '3 minutes' AS received_at,
                     {NOTIFICATIONS} - j <= {KEPT_PAYLOAD_ENTRIES} AS kept) AS x
""",
    # Lost purchases: the journal names them, no row has them.
    f"""
INSERT INTO store_notifications (id, store, message_id, received_at, purchase_id, result,
    purchase_ids, signed_at, notification_type)
SELECT {NOTIFICATIONS} + j + 1, 'app_store', md5('lost' || j), $1 - (j * 9) * interval '1 day',
       '399' || j, 'processed', ARRAY['399' || j], $1 - (j * 9) * interval '1 day', 'DID_RENEW'
FROM generate_series(0, {LOST - 1}) AS j
""",
    # Who each ingest decided owned the purchase: one per purchase (its first entry), a
    # second for one in five; one in fifty copied from purchases when the record began (no
    # entry); and lost purchases only this record names.
    f"""
INSERT INTO purchase_owners (store, purchase_id, app_user_id, notification_id,
    purchase_created_at)
SELECT {_STORE.format(i="k")}, {_purchase(_PURCHASE_ID, "k")}, {_OWNER.format(i="k")},
       CASE WHEN k % 50 = 1 AND o < {PURCHASES} THEN NULL ELSE entry END,
       $1 - ({PURCHASES} - k) * interval '10 minutes'
FROM generate_series(0, {PURCHASES + PURCHASES // 5 - 1}) AS o,
     LATERAL (SELECT CASE WHEN o < {PURCHASES} THEN o ELSE (o - {PURCHASES}) * 5 END AS k) AS x,
     LATERAL (SELECT CASE WHEN o < {PURCHASES} THEN k + 1 ELSE k + {PURCHASES} + 1 END
                  AS entry) AS y
UNION ALL
SELECT 'app_store', '499' || j, 'c' || j, NULL, $1 - interval '800 days'
FROM generate_series(0, {LOST - 1}) AS j
""",
    f"""
INSERT INTO customer_events (id, event_id, app_user_id, sequence, type, created_at,
    entitlements)
SELECT e + 1, md5('e' || e)::uuid, 'c' || (e % {CUSTOMERS}), e / {CUSTOMERS} + 1,
       (ARRAY['purchase', 'renewal', 'expiration', 'cancellation', 'billing_issue'])[e % 5 + 1],
       $1 - ({EVENTS} - e) * interval '3 minutes',
       jsonb_build_object('premium', jsonb_build_object(
           'active', e % 3 <> 0, 'store', 'app_store', 'status', 'active',
           'period_type', CASE WHEN e % 11 = 0 THEN 'trial' ELSE 'normal' END,
           'expires_at', '2026-12-01T00:00:00Z', 'grace_period_expires_at', NULL))
FROM generate_series(0, {EVENTS - 1}) AS e
""",
    f"""
INSERT INTO charges (store, purchase_id, charge_id, product_id, app, is_sandbox, amount,
    currency, charged_at, period_end, months, refunded_at, refunded_amount, created_at)
SELECT {_STORE.format(i="k")}, {_purchase(_PURCHASE_ID, "k")}, 'ch' || c,
       'com.example.premium.monthly', {_APP.format(i="k")}, k % 20 = 0, 9.99,
       CASE WHEN k % 3 = 0 THEN 'EUR' ELSE 'USD' END, charged_at, charged_at + interval '1 month',
       1, CASE WHEN c % 97 = 0 THEN charged_at + interval '2 days' END,
       CASE WHEN c % 97 = 0 THEN 9.99 END, charged_at
FROM generate_series(0, {CHARGES - 1}) AS c,
     LATERAL (SELECT c % {PURCHASES} AS k,
                     $1 - ({CHARGES} - c) * interval '5 minutes' AS charged_at) AS x
""",
    f"""
INSERT INTO grants (app_user_id, entitlement, starts_at, expires_at, ended_at, created_at)
SELECT 'c' || (g * 5 % {CUSTOMERS}), (ARRAY['premium', 'pro'])[g % 2 + 1],
       $1 - (g % 400) * interval '1 day',
       CASE WHEN g % 3 = 0 THEN NULL ELSE $1 + (g % 60 - 40) * interval '1 day' END,
       CASE WHEN g % 2 = 0 THEN $1 - (g % 300) * interval '1 day' END,
       $1 - (g % 400) * interval '1 day'
FROM generate_series(0, {GRANTS - 1}) AS g
""",
    f"""
INSERT INTO audit_log (created_at, actor, action, app_user_id, request_id, details)
SELECT $1 - ({AUDIT} - a) * interval '15 minutes',
       CASE WHEN a % 4 = 0 THEN 'user:c' || (a % {CUSTOMERS}) ELSE 'key:support' END,
       (ARRAY['grant', 'suspend', 'unsuspend', 'transfer', 'extend', 'export'])[a % 6 + 1],
       'c' || (a * 3 % {CUSTOMERS}), md5('r' || a), jsonb_build_object('reason', 'ticket ' || a)
FROM generate_series(0, {AUDIT - 1}) AS a
""",
    f"""
INSERT INTO webhook_endpoints (endpoint_key, feed_cursor, created_at, last_attempt_at,
    last_success_at, last_error, last_error_at)
VALUES ('orders', {EVENTS}, $1 - interval '400 days', $1, $1, NULL, NULL),
       ('crm', {EVENTS - BACKLOG}, $1 - interval '300 days', $1, $1 - interval '41 days',
        'HTTP 503', $1)
""",
    # The events "crm" has not taken since it went down, and the last few of "orders" in flight.
    f"""
INSERT INTO webhook_deliveries (endpoint_key, feed_id, handed_at, attempts, next_attempt_at,
    leased_until, last_attempt_at, last_error)
SELECT 'crm', f, $1 - interval '1 day', 1 + f % 9, $1 + (f % 120) * interval '1 minute',
       NULL, $1 - interval '1 hour', 'HTTP 503'
FROM generate_series({EVENTS - BACKLOG + 1}, {EVENTS}) AS f
UNION ALL
SELECT 'orders', f, $1, 1, $1, $1 + interval '30 seconds', $1, NULL
FROM generate_series({EVENTS - 19}, {EVENTS}) AS f
""",
    f"""
INSERT INTO play_acknowledgements (kind, package_name, product_id, purchase_token,
    created_at, attempts, next_attempt_at, last_error)
SELECT CASE WHEN k % 10 < 8 THEN 'subscription' ELSE 'product' END, 'com.example.android',
       'com.example.premium.monthly', {_TOKEN.format(i="k")}, $1 - (a % 72) * interval '1 hour',
       a % 6, $1 + (a % 240 - 120) * interval '1 minute', 'HTTP 503'
FROM generate_series(0, {ACKS - 1}) AS a, LATERAL (SELECT a * 5 + 3 AS k) AS x
""",
    f"""
INSERT INTO refund_requests (id, store, notification_id, app_user_id, purchase_id,
    transaction_id, product_id, app, environment, reason, consumption_percentage,
    requested_at, deadline, status, attempts, next_attempt_at, sent_at, decided_at,
    created_at)
SELECT md5('rr' || r)::uuid, 'app_store', md5('rn' || r), {_OWNER.format(i="k")},
       {_purchase(_PURCHASE_ID, "k")}, '3' || r, 'com.example.coins.100', 'com.example.ios',
       'Production', 'UNINTENDED_PURCHASE', r % 100, requested_at,
       requested_at + interval '12 hours', status, CASE WHEN status = 'pending' THEN 0 ELSE 1 END,
       requested_at, CASE WHEN status <> 'pending' THEN requested_at + interval '1 minute' END,
       CASE WHEN status IN ('refunded', 'declined') THEN requested_at + interval '2 days' END,
       requested_at
FROM generate_series(0, {REFUND_REQUESTS - 1}) AS r,
     LATERAL (SELECT r * 5 % {PURCHASES} AS k,
                     $1 - ({REFUND_REQUESTS} - r) * interval '40 minutes' AS requested_at,
                     CASE WHEN {REFUND_REQUESTS} - r <= {PENDING_REFUNDS} THEN 'pending'
                          ELSE (ARRAY['sent', 'refunded', 'declined', 'sent', 'skipped',
                                      'failed'])[r % 6 + 1] END AS status) AS x
""",
    f"""
INSERT INTO store_actions (id, app_user_id, store, purchase_id, action, request, status,
    detail, answer, actor, created_at)
SELECT md5('sa' || s)::uuid, {_OWNER.format(i="k")}, {_STORE.format(i="k")},
       {_purchase(_PURCHASE_ID, "k")}, (ARRAY['extend', 'refund', 'revoke'])[s % 3 + 1],
       '{{"days": 7}}', 'requested', '', '{{}}', 'key:support',
       $1 - ({STORE_ACTIONS} - s) * interval '30 minutes'
FROM generate_series(0, {STORE_ACTIONS - 1}) AS s, LATERAL (SELECT s * 3 AS k) AS x
""",
    f"""
INSERT INTO offer_signatures (app_user_id, offer, product_id, format, nonce, transaction_id,
    eligible, created_at)
SELECT 'c' || (s * 3 % {CUSTOMERS}), 'winback', 'com.example.premium.monthly', 'jws',
       md5('n' || s), '2' || s, s % 2 = 0, $1 - ({OFFER_SIGNATURES} - s) * interval '20 minutes'
FROM generate_series(0, {OFFER_SIGNATURES - 1}) AS s
""",
    f"""
INSERT INTO customer_consents (app_user_id, consumption_data, updated_at)
SELECT 'c' || (c * 7 % {CUSTOMERS}), c % 4 <> 0, $1 - (c % 300) * interval '1 day'
FROM generate_series(0, {CONSENTS - 1}) AS c
""",
]
# Ids given explicitly above: their sequences go on from there.
SEQUENCES = """
SELECT setval('purchases_id_seq', (SELECT max(id) FROM purchases)),
       setval('store_notifications_id_seq', (SELECT max(id) FROM store_notifications)),
       setval('customer_events_id_seq', (SELECT max(id) FROM customer_events))
"""


# Every index and key of the schema, to set aside while the rows go in: building an index
# from sorted rows takes a fraction of the time of inserting 150,000 random keys into it.
KEYS = """
SELECT conrelid::regclass::text AS tbl, conname, contype, pg_get_constraintdef(oid) AS def
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f')
ORDER BY contype = 'f', conname
"""
INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                                                   AND c.contype IN ('p', 'u'))
ORDER BY 1
"""


async def seed(conn: asyncpg.Connection, now: datetime) -> None:
    """Fill the large tables (and what they reference) as of `now`, then ANALYZE once. The
    keys and indexes are dropped for the load and made again as they were."""
    keys = await conn.fetch(KEYS)
    indexes = await conn.fetch(INDEXES)
    async with conn.transaction():
        # A throwaway database: nothing is lost if the server stops before the WAL is flushed.
        await conn.execute("SET LOCAL synchronous_commit = off")
        for key in reversed(keys):  # foreign keys first
            await conn.execute(f'ALTER TABLE {key["tbl"]} DROP CONSTRAINT "{key["conname"]}"')
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")
        for statement in SEED:
            # $1 typed where it is used: alone, `$1 - interval '1 day'` would be an interval.
            await conn.execute(statement.replace("$1", "$1::timestamptz"), now)
        await conn.execute(SEQUENCES)
        for key in keys:
            await conn.execute(
                f'ALTER TABLE {key["tbl"]} ADD CONSTRAINT "{key["conname"]}" {key["def"]}'
            )
        for index in indexes:
            await conn.execute(index["def"])
    assert (await conn.fetch(KEYS), await conn.fetch(INDEXES)) == (keys, indexes)
    await conn.execute("ANALYZE")


# Nodes through which a Limit above still stops the scan of their outer (first) input early.
_STREAMING = {"Gather Merge", "LockRows", "Merge Join", "Nested Loop", "Result", "Subquery Scan"}


PARTIAL_INDEXES = "SELECT indexrelid::regclass::text FROM pg_index WHERE indpred IS NOT NULL"


def full_scans(
    plan: dict[str, Any], partial: frozenset[str] = frozenset(), bounded: bool = False
) -> list[str]:
    """The large tables a plan (EXPLAIN's JSON) reads whole: sequentially (unless a Limit
    stops a scan that filters nothing), or along a whole index (no index condition; a
    `partial` index holds only the rows its predicate picks) when no Limit stops that walk
    early (`bounded`: a Limit above, through streaming nodes' outer inputs only)."""
    found = []
    relation = plan.get("Relation Name")
    if relation in LARGE:
        if plan["Node Type"] == "Seq Scan" and not (bounded and "Filter" not in plan):
            found.append(relation)
        elif plan["Node Type"] in ("Index Scan", "Index Only Scan") and not (
            "Index Cond" in plan or plan["Index Name"] in partial or bounded
        ):
            found.append(f"{relation} (all of {plan['Index Name']})")
    for child in plan.get("Plans", []):
        outer = child.get("Parent Relationship") == "Outer"
        stops = plan["Node Type"] == "Limit" or (
            bounded and outer and plan["Node Type"] in _STREAMING
        )
        found += full_scans(child, partial, stops)
    return found


async def partial_indexes(conn: asyncpg.Connection) -> frozenset[str]:
    """The names of the schema's partial indexes (see `full_scans`)."""
    return frozenset(r[0] for r in await conn.fetch(PARTIAL_INDEXES))


async def plan_of(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """EXPLAIN's plan of `sql` with `args` (planned for these values; never executed)."""
    [row] = await conn.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    plan: dict[str, Any] = json.loads(row[0])[0]["Plan"]
    return plan


@dataclass(frozen=True, slots=True)
class Seeded:
    """The seeded database: its URL, the `now` it was seeded as of, its partial indexes."""

    url: str
    now: datetime
    partial: frozenset[str]


@pytest.fixture(scope="session")
async def plan_database(pg_server_url: str, template_db: str) -> AsyncIterator[Seeded]:
    """A database cloned from the migrated template and seeded as of the test clock's start,
    once per session: the plan tests only EXPLAIN, so they share it. Each module naming this
    fixture gets its own instance; the first seeds, the others find the database (it takes
    its name only once seeded)."""
    name = f"plans_{template_db}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        if not await admin.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name
        ):
            await admin.execute(f'CREATE DATABASE "{name}_seeding" TEMPLATE "{template_db}"')
            conn = await asyncpg.connect(with_database(pg_server_url, f"{name}_seeding"))
            try:
                await seed(conn, clock_start())
            finally:
                await conn.close()
            await admin.execute(f'ALTER DATABASE "{name}_seeding" RENAME TO "{name}"')
    finally:
        await admin.close()
    url = with_database(pg_server_url, name)
    conn = await asyncpg.connect(url)
    try:
        partial = await partial_indexes(conn)
    finally:
        await conn.close()
    yield Seeded(url, clock_start(), partial)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
