"""`make mutation-integration`: mutmut over the modules whose tests need PostgreSQL and Redis.

    python tests/mutation_integration.py run | results --all true | show NAME | ...

mutmut reads one `[tool.mutmut]` table, and `make mutation` uses it for the pure core and
tests/unit/. This runs mutmut's own command line in this process with two of its settings
replaced from the same table: `only_mutate` by `integration_only_mutate` and the test
selection by `integration_test_selection`; and with tests/mutation_plugin.py loaded into every
pytest session (one Redis database per concurrent mutant). Start it under
tests/mutation_servers.py so that the tests find DATABASE_URL and REDIS_URL.

It also lets mutmut mutate aiohttp route handlers. mutmut 3 skips every decorated function,
because each mutant is a copy of the function and a copied `@routes.post(...)` would register
the route again; here a function whose decorators are all `@routes.<method>(...)` or
`@signed_in` is mutated, and its copies (the original and the mutants, which the trampoline
calls) lose their decorators: only the trampoline is registered and checks the session. Most
of the console's and the customer API's logic lives in such handlers. Written against
mutmut 3.8.1 (pinned in constraints.txt); another version stops here rather than guess.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import libcst as cst
import mutmut
from mutmut.configuration import config
from mutmut.mutation import file_mutation

MUTMUT_VERSION = "3.8.1"
PLUGIN = ["-p", "tests.mutation_plugin"]


def configure(pyproject: Path = Path("pyproject.toml")) -> None:
    table = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]
    settings = config()
    settings.only_mutate = list(table["integration_only_mutate"])
    settings.pytest_add_cli_args_test_selection = list(table["integration_test_selection"])
    settings.pytest_add_cli_args = [*settings.pytest_add_cli_args, *PLUGIN]


def is_route_handler(node: cst.CSTNode) -> bool:
    """A function decorated only with `@routes.<method>(...)` and `@signed_in`."""
    return (
        isinstance(node, cst.FunctionDef)
        and bool(node.decorators)
        and all(_route_decorator(d.decorator) for d in node.decorators)
    )


def _route_decorator(expression: cst.BaseExpression) -> bool:
    if isinstance(expression, cst.Name):
        return expression.value == "signed_in"
    return (
        isinstance(expression, cst.Call)
        and isinstance(expression.func, cst.Attribute)
        and isinstance(expression.func.value, cst.Name)
        and expression.func.value.value == "routes"
    )


def mutate_route_handlers() -> None:
    visitor = file_mutation.MutationVisitor
    skip = visitor._skip_node_and_children
    arrange = file_mutation.function_trampoline_arrangement

    def skip_node_and_children(self: Any, node: cst.CSTNode) -> bool:
        if is_route_handler(node):
            assert isinstance(node, cst.FunctionDef)
            return bool(skip(self, node.with_changes(decorators=())))
        return bool(skip(self, node))

    def function_trampoline_arrangement(
        function: cst.FunctionDef, mutants: Any, class_name: str | None
    ) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any], Sequence[str]]:
        declared, nodes, assigned, names = arrange(function, mutants, class_name)
        if is_route_handler(function):
            trampoline, *copies = nodes  # the trampoline keeps the decorators, the copies not
            nodes = [trampoline, *(c.with_changes(decorators=()) for c in copies)]
        return declared, nodes, assigned, names

    visitor._skip_node_and_children = skip_node_and_children  # type: ignore[method-assign]
    file_mutation.function_trampoline_arrangement = function_trampoline_arrangement


def main(argv: list[str]) -> int:
    if mutmut.__version__ != MUTMUT_VERSION:
        print(
            f"tests/mutation_integration.py is written for mutmut {MUTMUT_VERSION}, "
            f"not {mutmut.__version__}: check its route-handler patch",
            file=sys.stderr,
        )
        return 2
    configure()
    mutate_route_handlers()
    from mutmut.__main__ import cli  # after the patch: it sets the fork start method

    try:
        cli.main(args=argv, prog_name="mutmut", standalone_mode=False)
    except SystemExit as exc:  # mutmut exits on its own errors
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
