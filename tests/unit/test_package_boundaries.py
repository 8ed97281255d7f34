"""The serving code never needs the demo/test kit (`simulators/`) or the tests (`tests/`).

Two checks: a static scan of every import statement (including function-local ones and
`importlib.import_module("…")` literals) in the serving packages, and a fresh interpreter
that imports every serving module and builds the app, then looks at `sys.modules`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVING = (
    "api",
    "cache",
    "console",
    "receiptd",
    "receipts",
    "runtime",
    "services",
    "storage",
    "entitlements",
    "config",
    "server",
)
KIT = "simulators"
# The demo commands: the one serving module allowed to import the kit, and only lazily.
DEMO_COMMANDS = Path("server/simulate.py")

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DYNAMIC = {"import_module", "__import__"}


def imports(tree: ast.AST) -> Iterator[tuple[str, int, bool]]:
    """(top-level package, line, inside a function) for every absolute import in `tree`."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name.split(".")[0], child.lineno, in_function
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0], child.lineno, in_function
            elif isinstance(child, ast.Call) and child.args:
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = child.args[0]
                if name in _DYNAMIC and isinstance(first, ast.Constant):
                    yield str(first.value).split(".")[0], child.lineno, in_function
            yield from visit(child, in_function or isinstance(child, _FUNCTIONS))

    yield from visit(tree, False)


def scan(packages: tuple[str, ...]) -> Iterator[tuple[Path, str, int, bool]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for top, line, in_function in imports(tree):
                yield path.relative_to(ROOT), top, line, in_function


def test_serving_packages_import_neither_the_kit_nor_the_tests() -> None:
    offending = [
        f"{path}:{line} imports {top}"
        for path, top, line, in_function in scan(SERVING)
        if top == "tests" or (top == KIT and not (path == DEMO_COMMANDS and in_function))
    ]
    assert offending == []


def test_the_demo_commands_do_import_the_kit_lazily() -> None:
    # Guards the scan above against passing vacuously (a renamed file, a broken walker).
    lazy = [
        line
        for path, top, line, inside in scan(("server",))
        if path == DEMO_COMMANDS and top == KIT and inside
    ]
    assert lazy


def test_the_kit_does_not_import_the_tests() -> None:
    assert [f"{path}:{line}" for path, top, line, _ in scan((KIT,)) if top == "tests"] == []


PROBE = """
import importlib, json, pkgutil, sys
for top in {serving!r}:
    package = importlib.import_module(top)
    for module in pkgutil.walk_packages(package.__path__, top + "."):
        importlib.import_module(module.name)
from config.settings import Settings
from server.app import create_app
create_app(Settings(entitlements={{"premium": {{"products": ["p"]}}}}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("simulators", "tests"))))
"""


def test_importing_every_serving_module_and_building_the_app_loads_no_kit() -> None:
    probe = PROBE.format(serving=SERVING)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
