"""A database (or a required Redis) that cannot be reached at start-up is one line naming
host, port, user and database and the cause, never the password; exit code 1 (issue 25)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.failures import target

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pa55"


def receiptd(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "receiptd.toml"
    config.write_text('[server]\nport = 0\n[entitlements.premium]\nproducts = ["p"]\n')
    return subprocess.run(
        [sys.executable, "-m", "receiptd", *argv, "--config", str(config)],
        cwd=ROOT,
        env=os.environ | {"RECEIPTD_SERVER__DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "migrate", "prune"])
def test_an_unreachable_database_is_one_line_without_the_password(tmp_path, command) -> None:
    url = f"postgresql://billing:{SECRET}@127.0.0.1:1/receiptd"
    done = receiptd(tmp_path, command, DATABASE_URL=url, REDIS_URL="off")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "receiptd: the database is not reachable at billing@127.0.0.1:1/receiptd: "
    )
    assert "Connect" in lines[0]  # ConnectionRefusedError, or the OS's words for it
    assert SECRET not in done.stderr + done.stdout


def test_a_required_redis_that_does_not_answer_stops_serve(tmp_path, database_url) -> None:
    done = receiptd(
        tmp_path,
        "serve",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://cache:{SECRET}@127.0.0.1:1/0",
        RECEIPTD_REDIS__REQUIRED="true",
    )
    assert done.returncode == 1, done.stderr
    [line] = [x for x in done.stderr.strip().splitlines() if x.startswith("receiptd:")]
    assert line.startswith("receiptd: Redis is not reachable at cache@127.0.0.1:1/0: ")
    assert SECRET not in done.stderr + done.stdout


def test_targets_name_no_password() -> None:
    assert target("postgresql://u:p@db.internal:5432/receiptd") == "u@db.internal:5432/receiptd"
    assert target("postgresql://u@/receiptd?host=/tmp/sock") == "u@/tmp/sock/receiptd"
    assert target("redis://:pw@cache:6379/0") == "cache:6379/0"
    assert target("unix:///tmp/redis.sock?db=2") == "/tmp/redis.sock"
