"""Several apps in one deployment (issue 20): the settings' two forms, the verifier routing
each signed item to the app it names, and the app a purchase keeps."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings
from entitlements.model import EventKind, Store, StoreEvent
from entitlements.ownership import Held, decide, keys_to_lock
from entitlements.state import apply, view
from receipts.apple.adapter import AppleStore
from receipts.apple.terms import NonRenewingTerms
from receipts.apple.translate import notification_events, transaction_event
from receipts.apple.verifier import AppleVerifier
from receipts.errors import VerificationFailed
from receipts.google.adapter import GooglePlayStore
from simulators.apple_ca import TestCA, notification_payload, renewal_payload
from simulators.apple_scenarios import AppleScenario, Lifecycle

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
APP, LITE, OTHER = "com.example.app", "com.example.app.lite", "com.example.stranger"
TWO_APPS = f"""
[apple]
environments = ["Sandbox", "Production"]
root_certificates = ["root.der"]
[[apple.apps]]
bundle_id = "{APP}"
app_apple_id = 1234567890
[[apple.apps]]
bundle_id = "{LITE}"
app_apple_id = 1234567891
"""


def settings(tmp_path: Path, text: str):
    (tmp_path / "root.der").write_bytes(b"x")
    path = tmp_path / "receiptd.toml"
    path.write_text(text)
    return load_settings(path, {})


def test_several_apps_and_the_one_app_shorthand(tmp_path) -> None:
    apple = settings(tmp_path, TWO_APPS).apple
    assert apple is not None
    assert [(a.bundle_id, a.app_apple_id) for a in apple.configured_apps] == [
        (APP, 1234567890),
        (LITE, 1234567891),
    ]
    one = (
        TWO_APPS.split("[[apple.apps]]", maxsplit=1)[0] + f'bundle_id = "{APP}"\napp_apple_id = 1\n'
    )
    apple = settings(tmp_path, one).apple
    assert apple is not None
    assert [(a.bundle_id, a.app_apple_id) for a in apple.configured_apps] == [(APP, 1)]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (  # both forms at once
            lambda t: t.replace("[apple]\n", f'[apple]\nbundle_id = "{APP}"\n'),
            "apple.bundle_id / apple.app_apple_id (one app) and [[apple.apps]]",
        ),
        (
            lambda t: t.replace("[apple]\n", "[apple]\napp_apple_id = 5\n"),
            "are exclusive",
        ),
        (lambda t: t.split("[[apple.apps]]")[0], "apple.bundle_id is required"),
        (lambda t: t.replace(LITE, APP), f"[[apple.apps]] names {APP} more than once"),
        (
            lambda t: t.replace("app_apple_id = 1234567891\n", ""),
            f"app_apple_id is required when Production is accepted (apps {LITE})",
        ),
        (lambda t: t.replace(f'bundle_id = "{LITE}"', 'bundle_id = ""'), "apple.apps.1.bundle_id"),
    ],
)
def test_app_settings_problems_name_the_keys(tmp_path, change, named) -> None:
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, change(TWO_APPS))
    assert named in str(err.value)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.generate()


def test_each_app_verifies_its_own_data_and_a_stranger_is_refused(ca: TestCA) -> None:
    verifier = AppleVerifier(APP, 1, ["Sandbox"], [ca.root_der], False, other_apps=[(LITE, 2)])
    assert verifier.bundle_ids == (APP, LITE)
    for bundle in (APP, LITE):
        scenario = AppleScenario(ca, Lifecycle(user="u-1", product="m"), bundle_id=bundle)
        note = verifier.verify_notification_sync(scenario.body("subscribe", NOW)["signedPayload"])
        [event] = notification_events(note)
        assert event.app == bundle
        signed = scenario.payload("renew", NOW)["data"]["signedTransactionInfo"]
        assert verifier.verify_transaction_sync(signed).payload.bundleId == bundle
    stranger = AppleScenario(ca, Lifecycle(user="u-1", product="m"), bundle_id=OTHER)
    with pytest.raises(VerificationFailed):
        verifier.verify_notification_sync(stranger.body("subscribe", NOW)["signedPayload"])
    signed = stranger.payload("renew", NOW)["data"]["signedTransactionInfo"]
    with pytest.raises(VerificationFailed):
        verifier.verify_transaction_sync(signed)


def event(app: str | None, at: dt.datetime) -> StoreEvent:
    return StoreEvent(Store.PLAY_STORE, "tok", EventKind.STATE_REFRESHED, at, False, app=app)


def test_a_purchase_keeps_the_first_app_a_statement_names() -> None:
    first = apply(None, event(LITE, NOW))
    assert first.app == LITE
    assert view(first).app == LITE
    assert apply(first, event(APP, NOW + dt.timedelta(1))).app == LITE
    unnamed = apply(None, event(None, NOW))
    assert unnamed.app is None
    assert apply(unnamed, event(APP, NOW)).app == APP


def test_a_replaced_purchase_seen_first_through_its_replacement_is_in_the_same_app() -> None:
    replacing = replace(event(LITE, NOW), purchase_id="tok-new", supersedes="tok-old")
    held = {key: Held(None, None) for key in keys_to_lock([replacing])}
    decision = decide(held, [replacing], submitted_by=None, policy="transfer")
    states = {w.state.purchase_id: w.state for w in decision.writes}
    assert states["tok-old"].app == LITE  # the placeholder of the replaced token
    assert states["tok-old"].superseded_by == "tok-new"
    assert states["tok-new"].app == LITE


def test_a_held_purchase_is_read_again_in_its_own_app(ca: TestCA) -> None:
    """Reconciliation's and the console's re-reads ask the purchase's app; a purchase stored
    before apps were kept is asked of each app in turn."""
    google = GooglePlayStore(
        None,  # type: ignore[arg-type] - re-read requests touch no dependency
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        frozenset({APP, LITE}),
        frozenset(),
        frozenset(),
    )
    assert [r["package_name"] for r in google.reread_requests("tok|p", None, LITE)] == [LITE]
    assert [r["package_name"] for r in google.reread_requests("tok", None, None)] == [APP, LITE]
    verifier = AppleVerifier(APP, 1, ["Sandbox"], [ca.root_der], False, other_apps=[(LITE, 2)])
    apple = AppleStore(verifier, None, NonRenewingTerms({}))
    assert [r["app"] for r in apple.reread_requests("otx", "Sandbox", LITE)] == [LITE]
    assert [r["app"] for r in apple.reread_requests("otx", "Sandbox", None)] == [APP, LITE]
    one = AppleStore(
        AppleVerifier(APP, 1, ["Sandbox"], [ca.root_der], False), None, NonRenewingTerms({})
    )
    assert one.reread_requests("otx", "Sandbox", APP) == [
        {"read": "statuses", "original_transaction_id": "otx", "environment": "Sandbox"}
    ]  # one app: the request as before, so journaled requests replay unchanged


def test_apple_statements_name_their_app_with_or_without_a_transaction(ca: TestCA) -> None:
    verifier = AppleVerifier(APP, 1, ["Sandbox"], [ca.root_der], False, other_apps=[(LITE, 2)])
    scenario = AppleScenario(ca, Lifecycle(user="u-1", product="m"), bundle_id=LITE)
    signed = scenario.payload("renew", NOW)["data"]["signedTransactionInfo"]
    # A bare transaction (a submission, an API read): the app is the transaction's bundleId.
    assert transaction_event(verifier.verify_transaction_sync(signed)).app == LITE
    # A notification carrying only renewal info: the app is the notification's bundleId.
    renewal = ca.sign(
        renewal_payload(
            environment="Sandbox",
            original_transaction_id="otx-9",
            product_id="m",
            signed_date=NOW,
            auto_renew=False,
        )
    )
    body = notification_payload(
        notification_type="DID_CHANGE_RENEWAL_STATUS",
        subtype="AUTO_RENEW_DISABLED",
        bundle_id=LITE,
        app_apple_id=2,
        environment="Sandbox",
        signed_date=NOW,
        signed_renewal=renewal,
    )
    [event] = notification_events(verifier.verify_notification_sync(ca.sign(body)))
    assert event.transaction is None
    assert event.app == LITE
