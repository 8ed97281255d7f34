"""`make mutation`'s summary: the mutation score per module from `mutmut results --all true`.

Reads mutmut's lines (`    entitlements.state.x_view__mutmut_3: survived`) on stdin, prints a
table per module and overall, lists the mutants not killed, and exits 1 when the overall score
is below `--min` percent. Score = killed / (total - skipped), as mutmut's own badge counts it: a
timeout counts as killed (the mutant made the tests hang); a mutant that no test reaches
("no tests") counts as not killed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

# mutmut names a mutant <module>.x_<function>__mutmut_<n> or <module>.xǁ<Class>ǁ<method>__mutmut_<n>
_LINE = re.compile(r"^\s+(?P<name>\S+?)\.x[_ǁ]\S*__mutmut_\d+: (?P<status>.+)$")
_KILLED = ("killed", "timeout", "caught by type check")


def score(counts: Counter[str]) -> tuple[int, int, float]:
    """(killed, counted, percent) of one module's or all mutants."""
    killed = sum(counts[s] for s in _KILLED)
    counted = sum(counts.values()) - counts["skipped"]
    return killed, counted, 100.0 * killed / counted if counted else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=0.0, help="fail below this overall score")
    args = parser.parse_args()

    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for line in sys.stdin:
        match = _LINE.match(line.rstrip("\n"))
        if match is None:
            continue
        by_module[match["name"]][match["status"]] += 1
        if match["status"] not in _KILLED:
            survivors.append(f"{match['status']:>10}  {line.split(':')[0].strip()}")
    if not by_module:
        print("no mutants found: run `mutmut run` first", file=sys.stderr)
        return 1

    total: Counter[str] = Counter()
    header = (
        f"{'module':<30} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8}"
        f" {'skipped':>7} {'score':>7}"
    )
    print(header)
    print("-" * len(header))
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        _print_row(module, counts)
    print("-" * len(header))
    _print_row("overall", total)
    if survivors:
        print(f"\nnot killed ({len(survivors)}):")
        print("\n".join(survivors))
    _, _, overall = score(total)
    if overall < args.min:
        print(f"\nmutation score {overall:.1f} % is below {args.min:.0f} %", file=sys.stderr)
        return 1
    return 0


def _print_row(name: str, counts: Counter[str]) -> None:
    killed, counted, percent = score(counts)
    untested = counts["no tests"]
    survived = counted - killed - untested  # survived, suspicious, segfault, not checked
    print(
        f"{name:<30} {sum(counts.values()):>7} {killed:>6} {survived:>8} {untested:>8}"
        f" {counts['skipped']:>7} {percent:>6.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
