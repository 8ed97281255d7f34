"""Rendering k8s/ for the deploy tests: `kubectl kustomize` of each overlay, once per session.

kubectl is $KUBECTL, else the one on PATH, else Debian's kubernetes-client that
`make deploy-tools` unpacks under .venv/tools when the machine has none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "production")
KUBECTL_DEBIAN = ROOT / ".venv/tools/kubernetes-client/usr/bin/kubectl"

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl to render with (see the module docstring)."""
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if found:
        return found
    if KUBECTL_DEBIAN.is_file():
        return str(KUBECTL_DEBIAN)
    pytest.fail("no kubectl: `make deploy-tools` unpacks Debian's kubernetes-client")


@cache
def render(directory: Path) -> tuple[Manifest, ...]:
    """Every object `kubectl kustomize directory` prints."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def manifests(overlay: str) -> tuple[Manifest, ...]:
    return render(K8S / "overlays" / overlay)
