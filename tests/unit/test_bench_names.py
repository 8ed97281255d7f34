"""bench/ scripts run with bench/ first on sys.path: a script named like one of the project's
packages (`storage`, `services`, …) would shadow it for every other script there (bench/read.py
imports storage.migrations)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_bench_script_shadows_a_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")}
    assert scripts & packages == set()
