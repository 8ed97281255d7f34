"""Shared set-up for Apple end-to-end tests: a test CA trusted by the app's config."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario, Lifecycle

BUNDLE_ID = "com.example.app"
APP_APPLE_ID = 1234567890
PRODUCT = "com.example.premium.monthly"


def apple_config(config: dict[str, Any], ca_dir: Path, **overrides: Any) -> dict[str, Any]:
    """`config` with an [apple] section trusting the test CA in `ca_dir`."""
    config["apple"] = {
        "bundle_id": BUNDLE_ID,
        "app_apple_id": APP_APPLE_ID,
        "environments": ["Production", "Sandbox"],
        "root_certificates": [str(ca_dir / "root.der")],
        **overrides,
    }
    config["entitlements"]["premium"]["products"] += [
        f"{PRODUCT}.upgrade",
        f"{PRODUCT}.lite",
        "com.example.lifetime",
        "com.example.coins",
        "com.example.season",
    ]
    return config


def scenario(
    ca: TestCA,
    *,
    user: str | None = None,
    product: str = PRODUCT,
    environment: str = "Sandbox",
    bundle_id: str = BUNDLE_ID,
    app_apple_id: int | None = APP_APPLE_ID,
) -> AppleScenario:
    return AppleScenario(
        ca,
        Lifecycle(user=user or str(uuid.uuid4()), product=product),
        bundle_id=bundle_id,
        app_apple_id=app_apple_id,
        environment=environment,
    )
