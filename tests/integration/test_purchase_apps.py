"""Purchases stored before apps were recorded (migration 0010) get their store's one app at
start-up; with several apps they are left to `receiptd replay --fix`, and the count is logged."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
from structlog.testing import capture_logs

from config.settings import Settings
from services.apps import fill_missing_apps

OLD_STATE = {"store": "app_store", "purchase_id": "p", "is_sandbox": False}


async def store_old_purchases(conn: asyncpg.Connection) -> None:
    for store, purchase_id in (("app_store", "otx-1"), ("play_store", "tok-1")):
        state = OLD_STATE | {"store": store, "purchase_id": purchase_id}
        await conn.execute(
            "INSERT INTO purchases (store, purchase_id, product_id, kind, status, period_type,"
            " will_renew, is_sandbox, state, state_updated_at)"
            " VALUES ($1, $2, 'm', 'subscription', 'active', 'normal', true, false, $3::jsonb,"
            " now())",
            store,
            purchase_id,
            json.dumps(state),
        )
    await conn.execute(  # a placeholder row (no state yet) is not a purchase to name
        "INSERT INTO purchases (store, purchase_id, product_id, kind, status, period_type,"
        " will_renew, is_sandbox, state, state_updated_at)"
        " VALUES ('app_store', 'otx-0', '', 'subscription', 'pending', 'normal', false, false,"
        " 'null'::jsonb, now())"
    )


async def apps(conn: asyncpg.Connection) -> list[tuple[str, str | None, str | None]]:
    rows = await conn.fetch("SELECT purchase_id, app, state ->> 'app' AS s FROM purchases")
    return sorted((r["purchase_id"], r["app"], r["s"]) for r in rows)


def settings(tmp_path: Path, bundles: list[str], packages: list[str]) -> Settings:
    (tmp_path / "root.der").write_bytes(b"x")
    apple_apps = [{"bundle_id": b, "app_apple_id": i} for i, b in enumerate(bundles, 1)]
    return Settings(
        apple={"apps": apple_apps, "root_certificates": [tmp_path / "root.der"]},
        google={
            "package_names": packages,
            "pubsub_audience": "a",
            "pubsub_service_account": "s",
            "play_api_url": "http://127.0.0.1:1/",
        },
        entitlements={"premium": {"products": ["m"]}},
    )


async def test_one_app_per_store_names_every_old_purchase(database_url, tmp_path) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await store_old_purchases(conn)
        one = settings(tmp_path, ["com.example.app"], ["com.example.play"])
        await fill_missing_apps(conn, one)
        expected = [
            ("otx-0", None, None),
            ("otx-1", "com.example.app", "com.example.app"),
            ("tok-1", "com.example.play", "com.example.play"),
        ]
        assert await apps(conn) == expected
        await fill_missing_apps(conn, one)  # idempotent
        assert await apps(conn) == expected
    finally:
        await conn.close()


async def test_several_apps_leave_old_purchases_to_replay_and_say_so(
    database_url, tmp_path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await store_old_purchases(conn)
        several = settings(tmp_path, ["com.example.app", "com.example.lite"], ["com.example.play"])
        with capture_logs() as logs:
            await fill_missing_apps(conn, several)
        assert await apps(conn) == [
            ("otx-0", None, None),
            ("otx-1", None, None),
            ("tok-1", "com.example.play", "com.example.play"),
        ]
        [unknown] = [e for e in logs if e["event"] == "purchase_apps_unknown"]
        assert (unknown["store"], unknown["purchases"]) == ("app_store", 1)
    finally:
        await conn.close()
