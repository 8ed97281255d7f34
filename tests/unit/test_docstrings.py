"""Every public function, method and class of the serving packages has a docstring.

Public: a name without a leading `_`, at module level or in a public class (nested classes
included). A class's private members, and anything inside a private class, are not public.
Functions nested in a function body are local helpers, not public: not checked. Definitions
under a module- or class-level `if`/`try`/`with` count like any other. No other exclusion:
the methods of a `typing.Protocol` (bodies of `...`) need one too, since that docstring is
all an implementer reads of the contract.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "api",
    "cache",
    "config",
    "console",
    "entitlements",
    "receipts",
    "runtime",
    "server",
    "services",
    "storage",
)
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _definitions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, Definition]]:
    """(qualified name, node) of each public definition in `node`'s body, classes' included."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, Definition):
            if child.name.startswith("_"):
                continue  # private, and so is everything inside it
            name = prefix + child.name
            yield name, child
            if isinstance(child, ast.ClassDef):
                yield from _definitions(child, name + ".")
            # A function's body is not walked: what it defines is local, not public.
        elif isinstance(child, ast.stmt):
            yield from _definitions(child, prefix)  # an `if`, `try` or `with` block


def _walk() -> Iterator[tuple[str, Definition]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            where = path.relative_to(ROOT).as_posix()
            for name, node in _definitions(tree):
                yield f"{where}:{node.lineno} {name}", node


def test_every_public_definition_has_a_docstring() -> None:
    found = list(_walk())
    missing = [where for where, node in found if ast.get_docstring(node) is None]
    assert len(found) > 500, f"the walk found only {len(found)} definitions: wrong root?"
    assert not missing, f"{len(missing)} public definition(s) without a docstring:\n" + "\n".join(
        missing
    )
