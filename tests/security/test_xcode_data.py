"""Unsigned Apple data (issue 18): Apple's library checks no signature for the Xcode and
LocalTesting environments, so listing one in `apple.environments` accepted a payload anyone
wrote. Contract §2: accepted only with `allow_xcode = true` (development), never together with
Production; start-up refuses those environments otherwise, naming the keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from config.settings import ConfigError, load_settings
from simulators.apple_ca import notification_payload, transaction_payload
from tests.conftest import READER_KEY, auth
from tests.e2e.apple_helpers import BUNDLE_ID, PRODUCT, apple_config


def write_config(tmp_path, root, **apple) -> str:
    lines = [
        "[apple]",
        f'bundle_id = "{BUNDLE_ID}"',
        f'root_certificates = ["{root}"]',
        *(f"{k} = {v}" for k, v in apple.items()),
    ]
    path = tmp_path / "receiptd.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("apple", "named"),
    [
        ({"environments": '["Xcode"]'}, "apple.environments"),
        ({"environments": '["Sandbox", "LocalTesting"]'}, "apple.environments"),
        ({"environments": '["Sandbox", "Xcode"]', "allow_xcode": "false"}, "allow_xcode"),
        (
            {
                "environments": '["Production", "Xcode"]',
                "app_apple_id": "1234567890",
                "allow_xcode": "true",
            },
            "allow_xcode",
        ),
    ],
)
def test_start_up_refuses_unsigned_environments_without_allow_xcode(
    tmp_path, apple_ca, apple, named
) -> None:
    path = write_config(tmp_path, apple_ca[1] / "root.der", **apple)
    with pytest.raises(ConfigError, match=named) as refused:
        load_settings(path, environ={})
    assert "apple" in str(refused.value)


def test_allow_xcode_is_accepted_for_development(tmp_path, apple_ca) -> None:
    path = write_config(
        tmp_path, apple_ca[1] / "root.der", environments='["Sandbox", "Xcode"]', allow_xcode="true"
    )
    assert load_settings(path, environ={}).apple.allow_xcode is True


async def test_a_forged_xcode_notification_is_refused_by_default(
    make_client, config, apple_ca, clock
) -> None:
    """Without Xcode configured (the only start-up that passes without allow_xcode), an
    "Xcode" payload signed by anyone is 422 and stores nothing."""
    client = await make_client(apple_config(config, apple_ca[1]))
    forger = ec.generate_private_key(ec.SECP256R1())
    transaction = apple_ca[0].sign(
        transaction_payload(
            bundle_id=BUNDLE_ID,
            environment="Xcode",
            transaction_id="x-1",
            original_transaction_id="x-1",
            product_id=PRODUCT,
            purchase_date=clock.now,
            signed_date=clock.now,
            expires_date=clock.now,
            appAccountToken="0b7d6f5e-2f6a-4b8e-9a51-5f3b2f4d1c11",
        ),
        key=forger,
    )
    notification = notification_payload(
        notification_type="SUBSCRIBED",
        subtype="INITIAL_BUY",
        bundle_id=BUNDLE_ID,
        environment="Xcode",
        signed_date=clock.now,
        app_apple_id=None,
        signed_transaction=transaction,
    )
    resp = await client.post(
        "/webhooks/apple", json={"signedPayload": apple_ca[0].sign(notification, key=forger)}
    )
    assert resp.status == 422
    read = await client.get(
        "/v1/customers/0b7d6f5e-2f6a-4b8e-9a51-5f3b2f4d1c11", headers=auth(READER_KEY)
    )
    assert (await read.json())["subscriptions"] == []
