"""Real store data from `../shared/realdata` (never copied into the repository).

The folder is found at `$RECEIPTD_REALDATA`, else `<project>/../shared/realdata`. When it is
absent (a bare clone outside CI) every conformance test skips with one clear reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def realdata_dir() -> Path:
    configured = os.environ.get("RECEIPTD_REALDATA")
    return Path(configured) if configured else PROJECT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real-data folder, or a skip naming where it was looked for."""
    folder = realdata_dir()
    if not (folder / "README.md").is_file():
        pytest.skip(f"real store data not found at {folder} (set RECEIPTD_REALDATA)")
    return folder
