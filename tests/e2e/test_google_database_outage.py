"""POST /webhooks/google while PostgreSQL is unreachable: 503 (Pub/Sub redelivers), nothing
acknowledged to Play, and the redelivery with the same messageId is processed in full."""

from __future__ import annotations

from simulators.google_signer import push_envelope, subscription_notification
from tests.e2e import google_helpers
from tests.e2e.google_helpers import PACKAGE, USER, customer, google_config, push_headers, rows, sub
from tests.proxy import TcpProxy

fake_play = google_helpers.fake_play
google_keys = google_helpers.google_keys


async def test_database_down_is_503_and_the_redelivery_is_processed(
    fake_play, google_keys, make_client, config, tmp_path, clock, database_url
) -> None:
    proxy = TcpProxy.for_postgres(database_url)
    await proxy.start()
    try:
        config["database"]["url"] = proxy.postgres_url(database_url)
        client = await make_client(google_config(config, fake_play, tmp_path))
        fake_play.set_subscription(
            PACKAGE, "tok-db", sub(clock, "active", "tok-db", acknowledged=False)
        )
        note = subscription_notification(PACKAGE, "tok-db", 4, event_time=clock.now)
        envelope = push_envelope(note, "m-db-down", publish_time=clock.now)
        await proxy.down()
        resp = await client.post(
            "/webhooks/google", json=envelope, headers=push_headers(google_keys)
        )
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "database_unavailable"
        assert fake_play.acknowledgements == []  # nothing acknowledged that is not stored
        await proxy.up()
        resp = await client.post(
            "/webhooks/google", json=envelope, headers=push_headers(google_keys)
        )
        assert (resp.status, await resp.json()) == (200, {"status": "processed"})
        assert (await customer(client, USER))["entitlements"]["premium"]["active"] is True
        assert len(await rows(database_url, "SELECT * FROM store_notifications")) == 1
        assert len(fake_play.acknowledgements) == 1
    finally:
        await proxy.down()
