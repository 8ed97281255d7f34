"""The rendered-answer cache: how long an answer holds (`next_change`), what is rendered, and
when the per-process cache refuses to serve or store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from cache.local import LocalReads
from cache.render import body_of, decode, encode, entitlements_in, holds_at, render
from entitlements.access import Catalog, CustomerRecord, Grant, customer_object, next_change
from entitlements.model import PeriodType, PurchaseKind, PurchaseView, Status, Store
from tests.conftest import clock_start

NOW = clock_start()
CATALOG = Catalog({"premium": frozenset({"p"})})


def purchase(
    status: Status, expires: datetime | None, grace: datetime | None = None
) -> PurchaseView:
    return PurchaseView(
        store=Store.APP_STORE,
        purchase_id="otx-1",
        product_id="p",
        kind=PurchaseKind.SUBSCRIPTION,
        status=status,
        period_type=PeriodType.NORMAL,
        will_renew=True,
        expires_at=expires,
        grace_period_expires_at=grace,
        purchased_at=NOW - timedelta(days=3),
        is_sandbox=False,
        unsubscribe_detected_at=None,
        billing_issue_detected_at=None,
        revoked_at=None,
    )


def record(*purchases: PurchaseView, grants: tuple[Grant, ...] = ()) -> CustomerRecord:
    return CustomerRecord(app_user_id="u-1", suspended=False, purchases=purchases, grants=grants)


def test_next_change_is_the_first_future_instant_that_flips_active_or_status() -> None:
    soon, later = NOW + timedelta(hours=1), NOW + timedelta(days=2)
    assert next_change(record(purchase(Status.ACTIVE, later)), NOW) == later
    grace = record(purchase(Status.GRACE_PERIOD, NOW - timedelta(days=1), grace=soon))
    assert next_change(grace, NOW) == soon
    grant = Grant(1, "premium", starts_at=soon, expires_at=later, ended_at=None)
    assert next_change(record(purchase(Status.ACTIVE, later), grants=(grant,)), NOW) == soon
    assert next_change(record(purchase(Status.ACTIVE, None)), NOW) is None  # lifetime
    assert next_change(record(purchase(Status.ACTIVE, NOW)), NOW) is None  # already flipped


def test_the_answer_is_the_same_at_every_instant_before_next_change() -> None:
    """The property the cache relies on: rendered once, right until `next_change`."""
    expires = NOW + timedelta(hours=1)
    rec = record(purchase(Status.ACTIVE, expires))
    first = render(rec, CATALOG, NOW)
    assert first.valid_until == expires
    for moment in (NOW + timedelta(minutes=59, seconds=59), expires):
        again = render(rec, CATALOG, moment)
        assert (again.etag == first.etag) is (moment < expires)


def test_rendered_body_is_the_customer_object_with_the_requests_as_of() -> None:
    rec = record(purchase(Status.ACTIVE, NOW + timedelta(days=1)))
    rendered = render(rec, CATALOG, NOW)
    later = NOW + timedelta(seconds=5)
    body = json.loads(body_of(rendered, later))
    assert body.pop("as_of") == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body == customer_object(rec, CATALOG, NOW)
    assert list(json.loads(body_of(rendered, later)))[:3] == ["app_user_id", "as_of", "suspended"]


def test_local_reads_serve_only_while_enabled_valid_and_not_invalidated() -> None:
    rec = record(purchase(Status.ACTIVE, NOW + timedelta(hours=1)))
    rendered = render(rec, CATALOG, NOW)
    local = LocalReads(max_age=60)
    local.put("u-1", rendered, local.token())
    assert local.get("u-1", NOW) is None  # no healthy channel: nothing stored
    local.enabled = True
    token = local.token()
    local.drop(["u-2"])  # an invalidation between the read and the store
    local.put("u-1", rendered, token)
    assert local.get("u-1", NOW) is None
    local.put("u-1", rendered, local.token())
    assert local.get("u-1", NOW + timedelta(minutes=59)) is not None
    assert local.get("u-1", NOW - timedelta(seconds=1)) is None  # before it was rendered
    local.put("u-1", rendered, local.token())
    assert local.get("u-1", NOW + timedelta(hours=1)) is None  # expired: rendered again
    local.put("u-1", rendered, local.token())
    local.drop(["u-1"])
    assert local.get("u-1", NOW) is None
    local.put("u-1", rendered, local.token())
    local.enabled = False  # the channel was lost
    assert local.get("u-1", NOW) is None


def test_the_redis_form_names_nobody_but_an_aliases_customer() -> None:
    """The id read is left out of what Redis stores (erasure); an answer read through an
    alias keeps the customer it stands for."""
    rendered = render(record(purchase(Status.ACTIVE, NOW + timedelta(hours=1))), CATALOG, NOW)
    assert b"u-1" not in encode(rendered, "u-1")
    assert decode(encode(rendered, "u-1"), "u-1") == rendered
    through_alias = encode(rendered, "anon-1")
    assert b"u-1" in through_alias
    assert decode(through_alias, "anon-1") == rendered


def test_the_redis_form_round_trips_and_holds_only_in_its_window() -> None:
    expires = NOW + timedelta(hours=1)
    rec = record(purchase(Status.ACTIVE, expires))
    rendered = render(rec, CATALOG, NOW)
    again = decode(encode(rendered, "u-1"), "u-1")
    assert again == rendered
    assert entitlements_in(again) == customer_object(rec, CATALOG, NOW)["entitlements"]
    assert holds_at(again, NOW + timedelta(minutes=59))
    assert not holds_at(again, expires)
    assert not holds_at(again, NOW - timedelta(seconds=1))
