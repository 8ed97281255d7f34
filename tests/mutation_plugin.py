"""A pytest plugin for mutation runs against one PostgreSQL and one Redis shared by every
mutant (`make mutation-integration`: tests/mutation_servers.py starts them, and
tests/mutation_integration.py loads this plugin with `-p tests.mutation_plugin`).

mutmut runs two mutants at a time, each in a pytest session of its own (a forked worker).
PostgreSQL isolates them already (each test clones its own database); Redis does not: tests
flush it and read customers under the same ids. So each session takes a Redis database number
of its own (a slot held by a file lock next to the Redis socket until the process exits), and
drops the template database it migrated, which would otherwise pile up, one per mutant.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

_REDIS_DATABASES = 16  # redis-server's default
_BASE = "MUTATION_REDIS_URL"  # REDIS_URL as tests/mutation_servers.py gave it
_slots: dict[int, tuple[int, int]] = {}  # pid -> (fd, database) held by that process
_templates: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    base = os.environ.setdefault(_BASE, os.environ.get("REDIS_URL", ""))
    if base.startswith("unix://"):
        os.environ["REDIS_URL"] = f"{base}?db={_database(Path(urlsplit(base).path).parent)}"


def _database(lock_dir: Path) -> int:
    """A Redis database number no other live session uses (kept for this process's life)."""
    held = _slots.get(os.getpid())
    if held is not None:
        return held[1]
    # A forked worker inherits its parent's lock: it never unlocks it, only takes another.
    for number in range(_REDIS_DATABASES):
        fd = os.open(lock_dir / f"db-{number}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _slots[os.getpid()] = (fd, number)
        return number
    raise RuntimeError(f"all {_REDIS_DATABASES} Redis databases are taken")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    result = yield
    if fixturedef.argname == "template_db" and isinstance(result, str):
        _templates.append(result)
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    url = os.environ.get("DATABASE_URL")
    names, _templates[:] = list(_templates), []
    if url and names:
        asyncio.run(_drop(url, names))


async def _drop(url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
