"""`receiptd simulate google <event>`: drive a running service through a Play subscription's life.

The service reads purchase state from the Play Developer API at `play_api_url`. For the
length of one push, `simulate` hosts a fake Play API on 127.0.0.1:`play_port` holding the
simulated purchase, signs a Pub/Sub OIDC token with the demo key, POSTs the push envelope
to `<url>/webhooks/google` and returns the service's answer. The purchase's history is kept
in `state_file` (JSON) so that `renew` after `purchase` extends the same token.

The demo service must be configured with the files `ensure_demo_files` writes:
    [google]
    package_names = ["com.example.app"]
    service_account_file = "<keys_dir>/google_service_account.json"  # token_uri → the fake
    play_api_url = "http://127.0.0.1:<play_port>/"
    pubsub_certs_url = "file://<keys_dir>/google_certs.json"
    pubsub_audience = "<url>/webhooks/google"   # or DEMO_AUDIENCE, as demo/receiptd.toml
    pubsub_service_account = DEMO_PUSH_EMAIL
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from simulators.fake_play import FakePlay, running_fake_play
from simulators.google_signer import (
    DEMO_PUSH_EMAIL,
    GoogleTestKeys,
    push_envelope,
    subscription_notification,
    voided_notification,
)
from simulators.play_purchases import subscription_purchase

DEMO_PACKAGE = "com.example.app"
PERIOD = timedelta(days=30)
TRIAL = timedelta(days=7)
GRACE = timedelta(days=3)

# event → (notification code, new state); purchases are handled apart.
_CHANGES: dict[str, tuple[int, str]] = {
    "renew": (2, "active"),
    "cancel": (3, "canceled"),
    "restart": (7, "active"),
    "grace": (6, "grace"),
    "hold": (5, "on_hold"),
    "recover": (1, "active"),
    "pause": (10, "paused"),
    "expire": (13, "expired"),
    "revoke": (12, "expired"),
    "voided": (0, "expired"),
}
_PURCHASES = {"purchase": "base", "trial": "trial", "purchase-trial": "trial", "intro": "intro"}
# The push audience of the demo configuration: a name, not a URL, so it holds on any port.
DEMO_AUDIENCE = "receiptd-demo"
EVENTS = tuple(_PURCHASES) + tuple(_CHANGES)


@dataclass(frozen=True, slots=True)
class DemoFiles:
    """Where the demo's Google files are."""

    certs: Path
    service_account: Path


def ensure_demo_files(keys_dir: Path, play_port: int) -> DemoFiles:
    """Create (once) the demo keys, the OIDC certs JSON and a service-account JSON whose
    token_uri is the fake Play API's token endpoint on `play_port`."""
    keys = GoogleTestKeys.load_or_create(keys_dir)
    if not (keys_dir / "google_certs.json").exists():
        keys.save(keys_dir)
    sa = keys.write_service_account_file(keys_dir, f"http://127.0.0.1:{play_port}/token")
    return DemoFiles(keys_dir / "google_certs.json", sa)


async def simulate(  # noqa: PLR0917  # the signature the CLI was promised
    event: str,
    user: str,
    product: str,
    url: str,
    keys_dir: Path,
    play_port: int,
    state_file: Path | None,
    *,
    package: str = DEMO_PACKAGE,
    audience: str | None = None,
    push_email: str = DEMO_PUSH_EMAIL,
    now: datetime,
) -> dict[str, Any]:
    """Send one simulated RTDN for `user`'s subscription to `product` at `now`; return the
    answer.

    `now` dates the simulated purchase and notification: the CLI passes the wall clock (it
    drives a service running in real time), tests pass their injected clock.

    The result is `{"http_status", "answer" (the service's JSON), "event",
    "notification_type", "purchase_token", "acknowledged"}`. Raises ValueError for an
    unknown event or a change before any purchase.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; one of: {', '.join(EVENTS)}")
    ensure_demo_files(keys_dir, play_port)
    keys = GoogleTestKeys.load(keys_dir)
    state_path = state_file or keys_dir / "google_simulation.json"
    book = json.loads(state_path.read_text()) if state_path.exists() else {}
    key = f"{package}|{user}|{product}"
    record = _advance(book.get(key), event, now)
    book[key] = record
    body = _purchase_body(record, user, product, now)
    token = record["token"]
    if event == "voided":
        notification = voided_notification(
            package, token, _order_id(record), event_time=now, product_type=1
        )
        code = None
    else:
        code = _CHANGES[event][0] if event in _CHANGES else 4
        notification = subscription_notification(package, token, code, event_time=now)
    envelope = push_envelope(notification, f"sim-{uuid.uuid4().hex[:16]}", publish_time=now)
    endpoint = url.rstrip("/") + "/webhooks/google"
    push_token = keys.sign_push_token(audience or endpoint, push_email)
    fake = FakePlay(keys=keys)
    fake.set_subscription(package, token, body)
    headers = {"Authorization": f"Bearer {push_token}"}
    async with (
        running_fake_play(fake, play_port),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(endpoint, json=envelope, headers=headers) as resp,
    ):
        status = resp.status
        answer = await _json_or_text(resp)
    acknowledged = any(a["token"] == token for a in fake.acknowledgements)
    record["acknowledged"] = record.get("acknowledged", False) or acknowledged
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(book, indent=2, sort_keys=True))
    return {
        "http_status": status,
        "answer": answer,
        "event": event,
        "notification_type": code,
        "purchase_token": token,
        "acknowledged": acknowledged,
    }


def _advance(record: dict[str, Any] | None, event: str, now: datetime) -> dict[str, Any]:
    """The simulated purchase after `event` (a new token for purchases)."""
    if event in _PURCHASES:
        linked = None
        if record is not None and record["state"] != "expired":
            linked = record["token"]  # re-signup before expiry: Google links the tokens
        phase = _PURCHASES[event]
        return {
            "token": f"sim.{secrets.token_urlsafe(24)}",
            "start": now.isoformat(),
            "expiry": (now + (TRIAL if phase == "trial" else PERIOD)).isoformat(),
            "order_seq": 0,
            "order_base": f"GPA.{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}",
            "state": "active",
            "auto_renew": True,
            "offer_phase": phase,
            "linked": linked,
            "acknowledged": False,
        }
    if record is None:
        raise ValueError(f"{event!r} needs a purchase first: simulate `purchase` before it")
    record = dict(record)
    _, state = _CHANGES[event]
    expiry = datetime.fromisoformat(record["expiry"])
    if event in {"renew", "recover"}:
        record["order_seq"] += 1
        record["offer_phase"] = "base"
        expiry = max(expiry, now) + PERIOD
    elif event == "grace":
        expiry = now + GRACE
    elif event in {"hold", "pause", "expire", "revoke", "voided"}:
        expiry = min(expiry, now - timedelta(minutes=1))
    record["expiry"] = expiry.isoformat()
    record["state"] = state
    if event in {"cancel", "expire", "revoke", "voided"}:
        record["auto_renew"] = False
    elif event in {"restart", "renew", "recover"}:
        record["auto_renew"] = True
    return record


def _order_id(record: dict[str, Any]) -> str:
    base = f"{record['order_base']}-{record['token'][-5:]}"
    return base if record["order_seq"] == 0 else f"{base}..{record['order_seq'] - 1}"


def _purchase_body(
    record: dict[str, Any], user: str, product: str, now: datetime
) -> dict[str, Any]:
    return subscription_purchase(
        record["state"],
        product_id=product,
        now=now,
        start=datetime.fromisoformat(record["start"]),
        expiry=datetime.fromisoformat(record["expiry"]),
        order_id=_order_id(record),
        auto_renew=record["auto_renew"],
        offer_phase=record["offer_phase"],
        test_purchase=True,  # simulated purchases are license-tester purchases: sandbox
        linked_token=record["linked"],
        user=user,
        acknowledged=record["acknowledged"],
    )


async def _json_or_text(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text[:500]}
