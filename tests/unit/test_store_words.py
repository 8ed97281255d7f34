"""Store words stop inside `receipts/` (conventions: data flows one way).

Outside the store adapters nothing reads store JSON, imports a store constant or knows
which store module speaks: the handlers talk to `receipts.port` and `receipts.errors` only,
and the submission and webhook handlers (`api/purchases.py`, `api/webhooks.py`) do not import each
other.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = (
    "api",
    "cache",
    "runtime",
    "services",
    "storage",
    "entitlements",
    "config",
    "server",
    "console",
)
# Store JSON field names and RTDN/App Store codes that must not appear in code out there.
STORE_WORDS = {
    "lineItems",
    "signedDate",
    "cancelTime",
    "startTime",
    "revocationDate",
    "appAccountToken",
    "linkedPurchaseToken",
    "obfuscatedExternalAccountId",
    "testPurchase",
    "signedPayload",
    "signedTransactionInfo",
    "signedRenewalInfo",
    "notificationType",
    "notificationUUID",
    "originalTransactionId",
    "purchaseToken",
    "subscriptionState",
    "subscriptionNotification",
    "voidedPurchaseNotification",
    "eventTimeMillis",
    "expiryTime",
    "expiresDate",
    "autoRenewStatus",
    "SUBSCRIPTION_REVOKED",
    "SUBSCRIPTION_PURCHASED",
    "ONE_TIME_PRODUCT_PURCHASED",
    "ONE_TIME_PRODUCT_CANCELED",
    "VOIDED_PRODUCT_TYPE_SUBSCRIPTION",
    "REFUND_TYPE_FULL",
    "REFUND_TYPE_PARTIAL",
}
# The store adapters are built by the composition root only.
ADAPTER_MODULES = ("receipts.apple", "receipts.google")
MAY_BUILD_ADAPTERS = {Path("server/stores.py"), Path("api/keys.py"), Path("server/simulate.py")}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            ids.add(id(first.value))
    return ids


def words(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Identifiers, attribute names, imported names and string literals (not docstrings)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id, node.lineno
        elif isinstance(node, ast.Attribute):
            yield node.attr, node.lineno
        elif isinstance(node, ast.alias):
            yield node.name.split(".")[-1], getattr(node, "lineno", 0)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            yield node.value, node.lineno


def modules(packages: tuple[str, ...]) -> Iterator[tuple[Path, ast.AST]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def test_no_store_words_outside_receipts() -> None:
    """Not in code, and not even in docstrings or comments: a grep finds none."""
    pattern = re.compile(r"\b(" + "|".join(sorted(STORE_WORDS)) + r")\b")
    found = [
        f"{path.relative_to(ROOT)}:{number} {match.group(1)}"
        for package in OUTSIDE
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in pattern.finditer(line)
    ]
    assert found == []


def test_only_the_composition_root_knows_the_store_modules() -> None:
    found = [
        f"{path}:{line} imports {module}"
        for path, tree in modules(OUTSIDE)
        for module, line in imported(tree)
        if module.startswith(ADAPTER_MODULES) and path not in MAY_BUILD_ADAPTERS
    ]
    assert found == []


HANDLERS = {"purchases", "webhooks"}


def test_purchases_and_webhooks_do_not_import_each_other() -> None:
    found = [
        f"{path}:{line} imports {module}"
        for path, tree in modules(("api",))
        if path.stem in HANDLERS
        for module, line in imported(tree)
        if module in {f"api.{name}" for name in HANDLERS - {path.stem}}
    ]
    assert found == []


def test_the_scan_sees_store_words_where_they_belong() -> None:
    """The checks above would pass on an empty scan: prove they read real code."""
    inside = {word for _path, tree in modules(("receipts",)) for word, _ in words(tree)}
    assert {"lineItems", "signedPayload", "SUBSCRIPTION_REVOKED"} <= inside
    roots = {m for _p, tree in modules(("server",)) for m, _ in imported(tree)}
    assert "receipts.google.adapter" in roots
