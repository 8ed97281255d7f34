"""`receiptd extend` as an operator runs it after an outage (issue 21, point 3): in-process
`cli.main` (its own event loop, in a thread, as from a shell) against the test's database and
the fake App Store Server API and Play Developer API over real HTTP. Apple gets one mass
extension per product (its body checked field by field by the fake) followed to completion;
Play a deferral per renewing subscription, which the customer's state shows once re-read;
an interrupted run resumes without asking any store twice."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from receipts.google.actions import PlayActions
from server import bootstrap, cli
from services import mass_extend
from storage.extend_runs import LOCK_KEY
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import PRODUCT, scenario
from tests.e2e.google_helpers import MONTHLY, YEARLY, notify

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores
query = replay_helpers.query

PRO = "com.example.pro.yearly"
LOG_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[|\{"event")')
APPLE = re.compile(
    r"^extend apple: (\d+) products?; requested (\d+), confirmed (\d+), refused (\d+), "
    r"failed (\d+)(?:, not done (\d+))?(?:; Apple extended (\d+) subscriptions? \((\d+) failed\))?$"
)
GOOGLE = re.compile(
    r"^extend google: (\d+) subscriptions?; requested (\d+), confirmed (\d+), refused (\d+), "
    r"failed (\d+)(?:, not done (\d+))?(?:; cache: .+)?$"
)
DAY_SECONDS = 86_400


class Command:
    """`receiptd extend ARGS` with `settings`; (exit code, stdout lines, stderr)."""

    def __init__(self, settings) -> None:
        self.settings = settings

    async def __call__(self, *args: str, capsys) -> tuple[int, list[str], str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["extend", *args])
        captured = capsys.readouterr()
        out = [line for line in captured.out.splitlines() if not LOG_LINE.match(line)]
        return code, out, captured.err


@pytest.fixture
def command(stores, monkeypatch) -> Command:
    # main() configures logging for the process and reads a config file: the app's settings
    # stand in (see tests/e2e/test_reconcile_command.py).
    run = Command(stores.settings)
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    monkeypatch.setattr(cli, "load_settings", lambda _path: run.settings)
    monkeypatch.setattr(bootstrap, "utc_now", stores.clock)
    monkeypatch.setattr(mass_extend, "POLL_SECONDS", 0.0)  # Apple's fake completes on poll 2
    return run


def claims(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def on_apple(s, product: str = PRODUCT) -> str:
    """A customer with an active Apple subscription of `product` (status 1 at Apple)."""
    user = str(uuid.uuid4())
    payload = scenario(s.ca, user=user, product=product).payload("subscribe", s.clock.now)
    signed_tx = payload["data"]["signedTransactionInfo"]
    s.fake_api.add_transaction(signed_tx)
    s.fake_api.set_status(signed_tx, payload["data"].get("signedRenewalInfo"), 1)
    resp = await s.client.post("/webhooks/apple", json={"signedPayload": s.ca.sign(payload)})
    assert resp.status == 200
    return user


async def on_play(s, token: str, state: str = "active", product: str = MONTHLY) -> None:
    code = 13 if state == "expired" else 4
    await notify(s.client, s.fake_play, s.keys, s.clock, code, state, token, product_id=product)


async def expiries(s) -> dict[str, Any]:
    rows = await query(
        s.database_url,
        "SELECT purchase_id, expires_at FROM purchases WHERE store = 'play_store'",
    )
    return {r["purchase_id"]: r["expires_at"] for r in rows}


def deferred(s) -> list[str]:
    return [d["token"] for d in s.fake_play.deferrals]


def mass_posts(s) -> int:
    return sum(r.method == "POST" and r.path.endswith("/extend/mass") for r in s.fake_api.requests)


async def test_apple_per_product_and_a_play_deferral_per_renewing_subscription(
    stores, command, capsys
) -> None:
    s = stores
    for product in (PRODUCT, PRODUCT, PRO):
        await on_apple(s, product)
    for token in ("tok-1", "tok-2"):
        await on_play(s, token)
    await on_play(s, "tok-y", product=YEARLY)
    await on_play(s, "tok-old", state="expired")
    before = await expiries(s)

    code, out, err = await command("--days", "7", "--reason", "service_outage", capsys=capsys)

    assert code == 0, (out, err)
    apple, google = out
    assert APPLE.match(apple).groups() == ("2", "2", "2", "0", "0", None, "3", "0")
    assert GOOGLE.match(google).group(1, 2, 3, 4, 5, 6) == ("3", "3", "3", "0", "0", None)
    # Apple: one mass extension per product, as Apple documents the body.
    bodies = sorted((m.body for m in s.fake_api.mass_extensions), key=lambda b: b["productId"])
    assert [b["productId"] for b in bodies] == [PRODUCT, PRO]
    for body in bodies:
        assert set(body) == {"extendByDays", "extendReasonCode", "requestIdentifier", "productId"}
        assert (body["extendByDays"], body["extendReasonCode"]) == (7, 3)
        assert uuid.UUID(body["requestIdentifier"])
    assert bodies[0]["requestIdentifier"] != bodies[1]["requestIdentifier"]
    assert [m.polls for m in s.fake_api.mass_extensions] == [2, 2]  # not complete, complete
    # Play: each renewing subscription deferred once; the expired one untouched; the stored
    # expiry moved (the re-read after the deferral), never by assumption.
    assert sorted(deferred(s)) == ["tok-1", "tok-2", "tok-y"]
    assert {d["body"]["deferralContext"]["deferDuration"] for d in s.fake_play.deferrals} == {
        f"{7 * DAY_SECONDS}s"
    }
    after = await expiries(s)
    for token in ("tok-1", "tok-2", "tok-y"):
        assert after[token] - before[token] == timedelta(days=7)
    assert after["tok-old"] == before["tok-old"]
    # What each store answered is kept: Apple's per product without a customer.
    rows = await query(
        s.database_url,
        "SELECT app_user_id, store, purchase_id, action, status, actor FROM store_actions "
        "ORDER BY store, purchase_id",
    )
    assert [tuple(r) for r in rows] == [
        (None, "app_store", PRODUCT, "mass_extend", "requested", "receiptd extend"),
        (None, "app_store", PRO, "mass_extend", "requested", "receiptd extend"),
        *[
            ("u-google-1", "play_store", t, "extend", "requested", "receiptd extend")
            for t in ("tok-1", "tok-2", "tok-y")
        ],
    ]
    audit = await query(
        s.database_url, "SELECT count(*) FROM audit_log WHERE actor = 'receiptd extend'"
    )
    assert audit[0][0] == 3
    runs = await query(s.database_url, "SELECT status, arguments, counts FROM extend_runs")
    [run] = runs
    assert run["status"] == "finished"
    assert json.loads(run["arguments"]) == {"days": 7, "reason": "service_outage", "product": None}
    assert json.loads(run["counts"])["play_store"]["confirmed"] == 3


async def test_product_picks_the_subscriptions(stores, command, capsys) -> None:
    s = stores
    await on_apple(s, PRODUCT)
    await on_play(s, "tok-1")
    await on_play(s, "tok-y", product=YEARLY)

    # A Play product only: no Apple item, so Play's 365-day limit applies.
    code, out, _err = await command(
        "--days", "120", "--reason", "other", "--product", YEARLY, capsys=capsys
    )
    assert code == 0
    assert APPLE.match(out[0]).group(1, 2) == ("0", "0"), out
    assert GOOGLE.match(out[1]).group(1, 2, 3) == ("1", "1", "1")
    assert deferred(s) == ["tok-y"]
    assert s.fake_play.deferrals[0]["body"]["deferralContext"]["deferDuration"] == (
        f"{120 * DAY_SECONDS}s"
    )
    assert s.fake_api.mass_extensions == []

    code, out, _err = await command(
        "--days", "3", "--reason", "customer_satisfaction", "--product", PRODUCT, capsys=capsys
    )
    assert code == 0
    assert APPLE.match(out[0]).group(1, 2, 3, 7) == ("1", "1", "1", "1")
    assert GOOGLE.match(out[1]).group(1) == "0"
    [mass] = s.fake_api.mass_extensions
    assert (mass.body["productId"], mass.body["extendReasonCode"]) == (PRODUCT, 1)
    assert deferred(s) == ["tok-y"]


async def test_an_interrupted_run_resumes_without_asking_twice(stores, command, capsys) -> None:
    s = stores
    await on_apple(s, PRODUCT)
    for token in ("tok-1", "tok-2", "tok-3"):
        await on_play(s, token)
    # Google keeps failing for tok-2's deferral, past the client's retries.
    s.fake_play.fail(503, times=4, path_contains="tok-2:defer")
    args = ("--days", "5", "--reason", "service_outage")

    code, out, err = await command(*args, capsys=capsys)

    assert code == 1
    assert APPLE.match(out[0]).group(2, 3) == ("1", "0")  # asked; not followed yet
    assert GOOGLE.match(out[1]).group(1, 2, 6) == ("3", "1", "2")
    assert err.endswith("; run the same command again to resume\n")
    assert "receiptd: extend interrupted (store_unavailable: " in err
    assert deferred(s) == ["tok-1"]
    assert mass_posts(s) == 1

    # Other arguments while it is interrupted: refused, nothing asked.
    code, out, err = await command("--days", "6", "--reason", "service_outage", capsys=capsys)
    assert (code, out) == (2, [])
    assert "was interrupted: run it again with the same arguments" in err
    assert "--days 5 --reason service_outage" in err

    code, out, err = await command(*args, capsys=capsys)

    assert code == 0, (out, err)
    assert re.match(r"^extend: resuming the run started \S+Z \(--restart starts over\)", err)
    assert APPLE.match(out[0]).group(1, 2, 3) == ("1", "1", "1")
    assert GOOGLE.match(out[1]).group(1, 2, 3, 6) == ("3", "3", "3", None)
    assert deferred(s) == ["tok-1", "tok-2", "tok-3"]  # tok-1 not asked again
    assert mass_posts(s) == 1  # the same request identifier followed, not sent again
    [mass] = s.fake_api.mass_extensions
    assert mass.polls == 2


async def test_a_request_cut_off_is_never_asked_again(stores, command, capsys, monkeypatch):
    s = stores
    await on_apple(s, PRODUCT)
    for token in ("tok-1", "tok-2", "tok-3"):
        await on_play(s, token)
    extend = PlayActions.extend

    async def cut_off(self, target, **kw):
        if target.purchase_id == "tok-1":  # Google defers; its answer never arrives
            await extend(self, target, **kw)
            raise KeyboardInterrupt
        return await extend(self, target, **kw)

    monkeypatch.setattr(PlayActions, "extend", cut_off)
    args = ("--days", "5", "--reason", "other")

    code, _out, err = await command(*args, capsys=capsys)

    assert code == 130
    assert err.endswith("receiptd: extend interrupted; run the same command again to resume\n")
    assert deferred(s) == ["tok-1"]
    # As if the process had died while asking Apple and Google about these two.
    await query(
        s.database_url,
        "UPDATE extend_items SET status = 'sending' WHERE store = 'app_store' OR key = 'tok-2'",
    )
    monkeypatch.setattr(PlayActions, "extend", extend)

    code, out, err = await command(*args, capsys=capsys)

    assert code == 1  # tok-2 may have been deferred: not asked again, reported failed
    failed, apple, google = out
    assert re.match(r"^play_store purchase [0-9a-f]{12} failed: cut off while Google", failed)
    assert "tok-2" not in "\n".join(out)
    assert APPLE.match(apple).group(2, 3) == ("1", "1")
    # tok-1's re-read shows its deferral: confirmed; tok-3 asked now.
    assert GOOGLE.match(google).group(1, 2, 3, 4, 5) == ("3", "2", "2", "0", "1")
    assert deferred(s) == ["tok-1", "tok-3"]
    assert mass_posts(s) == 1  # Apple knew the request: followed, not sent again


async def test_an_apple_request_it_never_got_is_sent_with_its_identifier(
    stores, command, capsys
) -> None:
    s = stores
    await on_apple(s, PRODUCT)
    # Apple never answers the first run's request; the run stops with the item cut off.
    s.fake_api.fail_next(503, times=3, when=lambda r: r.path.endswith("/extend/mass"))
    args = ("--days", "2", "--reason", "service_outage")
    code, out, err = await command(*args, capsys=capsys)
    assert code == 1
    assert "store_unavailable" in err
    assert s.fake_api.mass_extensions == []
    [item] = await query(s.database_url, "SELECT status, request_id FROM extend_items")
    assert item["status"] == "sending"

    code, out, err = await command(*args, capsys=capsys)

    assert code == 0, (out, err)
    [mass] = s.fake_api.mass_extensions
    assert mass.body["requestIdentifier"] == item["request_id"]
    assert APPLE.match(out[0]).group(2, 3) == ("1", "1")


async def test_apple_still_working_is_followed_by_the_next_run(stores, command, capsys) -> None:
    s = stores
    await on_apple(s, PRODUCT)
    s.fake_api.mass_polls_before_complete = 3
    args = ("--days", "7", "--reason", "service_outage", "--wait", "0")

    code, out, err = await command(*args, capsys=capsys)

    assert code == 1
    assert "Apple is still extending 1 product(s) after --wait" in err
    assert APPLE.match(out[0]).group(2, 3) == ("1", "0")

    code, out, _err = await command(*args[:-2], capsys=capsys)  # other --wait: same run
    assert code == 0
    assert APPLE.match(out[0]).group(2, 3, 7) == ("1", "1", "1")
    [mass] = s.fake_api.mass_extensions
    assert mass.polls == 4
    assert mass_posts(s) == 1


async def test_restart_starts_a_new_run(stores, command, capsys) -> None:
    s = stores
    for token in ("tok-1", "tok-2"):
        await on_play(s, token)
    s.fake_play.fail(503, times=4, path_contains="tok-2:defer")
    code, _out, _err = await command("--days", "5", "--reason", "other", capsys=capsys)
    assert code == 1

    code, out, err = await command("--days", "6", "--reason", "other", "--restart", capsys=capsys)

    assert code == 0, (out, err)
    assert re.match(r"^extend: abandoned the interrupted run started \S+Z \(--restart\)", err)
    assert deferred(s) == ["tok-1", "tok-1", "tok-2"]  # a new run asks everyone again
    runs = await query(s.database_url, "SELECT status FROM extend_runs ORDER BY id")
    assert [r["status"] for r in runs] == ["abandoned", "finished"]


async def test_bad_arguments_and_configuration(stores, command, capsys) -> None:
    s = stores
    await on_apple(s, PRODUCT)
    await on_play(s, "tok-1")

    code, out, err = await command("--days", "91", "--reason", "other", capsys=capsys)
    assert (code, out) == (2, [])
    assert err == (
        "receiptd: --days must be from 1 to 90 (Apple extends by at most 90 days; "
        "--product can pick Play products only)\n"
    )
    for bad in (
        ["--days", "0", "--reason", "other"],
        ["--days", "366", "--reason", "other"],
        ["--days", "seven", "--reason", "other"],
        ["--days", "7", "--reason", "because"],
        ["--days", "7"],
        ["--reason", "other"],
        ["--days", "7", "--reason", "other", "--rate", "0"],
        ["--days", "7", "--reason", "other", "--wait", "-1"],
    ):
        with pytest.raises(SystemExit) as exited:
            await command(*bad, capsys=capsys)
        assert exited.value.code == 2, bad
    assert await query(s.database_url, "SELECT id FROM extend_runs") == []

    command.settings = s.settings.model_copy(update={"apple": None, "google": None})
    code, out, err = await command("--days", "7", "--reason", "other", capsys=capsys)
    assert (code, out) == (2, [])
    assert err.startswith("receiptd: extend needs a store configured for actions")

    command.settings = s.settings
    holder = await asyncpg.connect(s.database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        code, _out, err = await command("--days", "7", "--reason", "other", capsys=capsys)
    finally:
        await holder.close()
    assert (code, err) == (1, "receiptd: another extend is running\n")
    assert s.fake_api.mass_extensions == []
    assert s.fake_play.deferrals == []


def test_help_lists_extend(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = capsys.readouterr().out
    assert re.search(r"^\s+extend\s+extend every renewing subscription", listed, re.M)
