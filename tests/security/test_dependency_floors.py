"""Dependency floors (issue 18): `pyproject.toml` must not admit a release with an advisory we
know of, and `constraints.txt` (what the tests install) must satisfy the floors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

# (the last release with an advisory named in pyproject.toml, the first without)
FIXED = {
    "aiohttp": ("3.14.2", "3.14.3"),
    "pyjwt": ("2.12.1", "2.13.0"),
    "cryptography": ("49.0.0", "50.0.0"),
    "jinja2": ("3.1.5", "3.1.6"),
}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        found[requirement.name.lower()] = requirement
    return found


def pins() -> dict[str, Version]:
    found = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = Version(version.strip())
    return found


@pytest.mark.parametrize(("name", "releases"), sorted(FIXED.items()))
def test_no_vulnerable_release_is_admitted(name: str, releases: tuple[str, str]) -> None:
    vulnerable, fixed = releases
    specifier = requirements()[name].specifier
    assert not specifier.contains(vulnerable, prereleases=True)
    assert specifier.contains(fixed, prereleases=True)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_the_tested_pins_satisfy_the_floors(name: str) -> None:
    assert requirements()[name].specifier.contains(pins()[name], prereleases=True)
