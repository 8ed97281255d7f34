"""Shared set-up for Apple end-to-end tests: a test CA trusted by the app's config."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulators.apple_ca import TestCA
from simulators.apple_scenarios import AppleScenario, Lifecycle

KEY_ID = "TESTKEY123"  # the App Store Server API key the tests' fakes trust
ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"
BUNDLE_ID = "com.example.app"
APP_APPLE_ID = 1234567890
PRODUCT = "com.example.premium.monthly"


def saved_ca(directory: Path) -> tuple[TestCA, Path]:
    """A fresh test CA saved in `directory` (root.der for the config), and the directory."""
    ca = TestCA.generate()
    ca.save(directory)
    return ca, directory


def api_key_file(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """A fresh In-App Purchase (ES256) key and its PKCS#8 PEM file in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / "AuthKey.p8"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return key, path


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
