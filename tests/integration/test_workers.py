"""`receiptd serve` with `server.workers = 2` as a real subprocess, on the embedded default.

The parent joins the session's embedded PostgreSQL (same data dir: pgserver shares a running
cluster and stops it only with its last user) and starts an embedded Redis of its own; the
two children get their URLs. Each request is traced to the worker that answered by its
`X-Request-ID` and the `pid` of its canonical log line; one aiohttp session holding one
keep-alive connection stays on one worker (SO_REUSEPORT balances connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests import logscan
from tests.conftest import ADMIN_KEY, READER_KEY, auth
from tests.drills.served import Served, free_port, to_toml

KEYS = [
    {"name": "admin", "key": ADMIN_KEY, "scopes": ["admin"]},
    {"name": "reader", "key": READER_KEY, "scopes": ["customers:read"]},
]


class Workers(Served):
    """`receiptd serve` with `server.workers = 2`; which worker answered a request."""

    async def pid_of(self, request_id: str) -> int:
        """The worker that answered (its line is flushed at the end of its loop turn)."""
        for _ in range(100):
            for line in self.output().splitlines():
                if request_id in line and '"http_request"' in line:
                    return int(json.loads(line)["pid"])
            await asyncio.sleep(0.01)
        raise AssertionError(f"no log line for request {request_id}")


@pytest.fixture
async def workers(data_root: Path, tmp_path: Path, monkeypatch) -> AsyncIterator[Workers]:
    port = free_port()
    config = tmp_path / "receiptd.toml"
    cfg = {
        # the session's embedded PostgreSQL lives in data_root/pg/postgres: joined, not started
        "server": {"host": "127.0.0.1", "port": port, "workers": 2, "data_dir": data_root / "pg"},
        "entitlements": {"premium": {"products": ["com.example.premium.monthly"]}},
    }
    config.write_text(to_toml(cfg))
    monkeypatch.setenv("RECEIPTD_AUTH__API_KEYS", json.dumps(KEYS))
    served = Workers(config, port, tmp_path / "serve")
    served.start()
    try:
        await served.wait_ready()
        yield served
    finally:
        served.stop_quietly()
        assert logscan.findings(served.output()) == []


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, object]]:
    request_id = uuid.uuid4().hex
    headers = auth(READER_KEY) | {"X-Request-ID": request_id}
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 200
        return request_id, await resp.json()


async def _session_per_worker(served: Workers, customer: str) -> dict[int, aiohttp.ClientSession]:
    """One pinned session (one kept-alive connection) on each worker (the second may still be
    starting when the first answers)."""
    pinned: dict[int, aiohttp.ClientSession] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        request_id, _body = await _get(session, f"{served.url}/v1/customers/{customer}")
        pid = await served.pid_of(request_id)
        if pid in pinned:
            await session.close()
            await asyncio.sleep(0.02)
        else:
            pinned[pid] = session
        if len(pinned) == 2:
            return pinned
    raise AssertionError(f"connections reached {len(pinned)} worker(s) only")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


async def test_two_workers_share_the_port_see_each_others_writes_and_stop_on_sigterm(
    workers: Workers,
) -> None:
    customer = f"w-{uuid.uuid4().hex[:12]}"
    pinned = await _session_per_worker(workers, customer)
    (writer_pid, writer), (reader_pid, reader) = pinned.items()
    assert workers.process is not None
    assert workers.process.pid not in pinned  # the parent serves nothing itself
    try:
        url = f"{workers.url}/v1/customers/{customer}"
        for _ in range(2):  # the reader's worker now holds the empty answer in its cache
            request_id, body = await _get(reader, url)
            assert await workers.pid_of(request_id) == reader_pid
            assert body["entitlements"] == {}

        grant = f"{url}/entitlements/premium/grants"
        write_id = uuid.uuid4().hex
        headers = auth(ADMIN_KEY) | {"X-Request-ID": write_id}
        async with writer.post(grant, json={}, headers=headers) as resp:
            assert resp.status == 201
        written = time.monotonic()
        while True:
            request_id, body = await _get(reader, url)
            seen = time.monotonic() - written
            if body["entitlements"]:
                break
            assert seen < 0.1, "the other worker still answers from before the write"
            await asyncio.sleep(0.005)
        assert await workers.pid_of(write_id) == writer_pid != reader_pid
        assert await workers.pid_of(request_id) == reader_pid
        assert body["entitlements"]["premium"]["active"] is True  # type: ignore[index]
        assert seen < 0.1
    finally:
        for session in pinned.values():
            await session.close()

    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=30) == 0
    assert all(_gone(pid) for pid in pinned)
    assert '"workers_stopped"' in workers.output()
