"""The house of docs/architecture.md holds: data flows one way, down.

    api/, console/   entry points        → services, the core, receipts' errors and port, cache
    services/        use cases           → the core, receipts, storage, cache
    receipts/        store adapters      → the core, storage (their outbox rows)
    storage/, cache/                     → the core
    runtime/         background tasks    → the core's errors (every layer may use it)
    entitlements/    the pure core       → nothing of ours, no I/O library
    server/          composition root    → everything; imported by nobody (but the launcher)

Checked on every import the interpreter runs (function-local ones included); imports made for
type checkers only (`if TYPE_CHECKING:`) do not load anything and are left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = (
    "api",
    "cache",
    "config",
    "console",
    "entitlements",
    "migrations",
    "receiptd",
    "receipts",
    "runtime",
    "server",
    "services",
    "storage",
)
# What each package may import of ours (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "entitlements": set(),
    "migrations": set(),
    "runtime": {"entitlements"},
    "config": {"entitlements"},
    "storage": {"entitlements", "config", "runtime"},
    "cache": {"entitlements", "config", "runtime"},
    "receipts": {"entitlements", "storage", "config", "runtime"},
    "services": {"entitlements", "receipts", "storage", "cache", "config", "runtime"},
    "api": {"entitlements", "receipts", "services", "cache", "config", "runtime"},
    "console": {"api", "entitlements", "services", "cache", "config", "runtime"},
    "server": set(OURS),
    "receiptd": {"server"},
}
IO_LIBRARIES = {"aiohttp", "asyncpg", "redis", "prometheus_client", "structlog", "jwt", "google"}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module, line) of every absolute import that runs (not `if TYPE_CHECKING:` ones)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
            for alias in node.names:  # `from storage import feed` imports storage.feed
                yield f"{node.module}.{alias.name}", node.lineno
        yield from runtime_imports(node)


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name."""
    found = {}
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def graph() -> dict[str, set[tuple[str, int]]]:
    """Module → the modules of ours it imports, with the line."""
    known = modules()
    edges: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module, line in runtime_imports(tree):
            # A module's own package is loaded before it anyway: not an edge that can circle.
            if module in known and module != name and not name.startswith(f"{module}."):
                edges[name].add((module, line))
    return edges


def test_the_core_imports_no_io_and_nothing_of_ours() -> None:
    offending = []
    for path in sorted((ROOT / "entitlements").rglob("*.py")):
        for module, line in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            top = module.split(".")[0]
            if top in IO_LIBRARIES or (top in OURS and top != "entitlements"):
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offending == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    offending = [
        f"{name}:{line} imports {target}"
        for name, targets in graph().items()
        for target, line in sorted(targets)
        if (home := name.split(".")[0]) != (there := target.split(".")[0])
        and there not in MAY_IMPORT[home]
    ]
    assert offending == []


def test_nothing_imports_the_composition_root() -> None:
    offending = [
        f"{name}:{line} imports {target}"
        for name, targets in graph().items()
        for target, line in sorted(targets)
        if target.split(".")[0] == "server" and name.split(".")[0] not in {"server", "receiptd"}
    ]
    assert offending == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of `edges` meets, as the path that closes it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_module_imports_itself_back() -> None:
    edges = {name: {target for target, _line in targets} for name, targets in graph().items()}
    assert cycles(edges) == []


def test_the_checks_see_real_imports() -> None:
    """The checks above would pass on an empty graph: prove they read real code."""
    edges = graph()
    assert any(t == "storage.purchases" for t, _ in edges["services.ingest"])
    assert any(t.startswith("services.") for t, _ in edges["server.app"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
