"""`receiptd serve` as a real subprocess for the drills that stop the service itself (SIGTERM,
SIGKILL), and a bounded webhook load against it (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def to_toml(config: Mapping[str, Any], prefix: str = "") -> str:
    """The small TOML subset the drills' settings need: tables of scalars and lists."""
    lines, tables = [], []
    for key, value in config.items():
        if isinstance(value, Mapping):
            tables.append(to_toml(value, f"{prefix}{key}."))
        else:
            lines.append(f"{key} = {_value(value)}")
    head = [f"[{prefix[:-1]}]"] if prefix and lines else []
    return "\n".join([*head, *lines, *tables]) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans are written alike


@dataclass
class Served:
    """One `receiptd serve` process on `port`, its output in `log`."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    outputs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["RECEIPTD_CONFIG"] = str(self.config)
        output = self.log.with_suffix(f".{len(self.outputs)}.log")
        self.outputs.append(output)
        with output.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "receiptd", "serve"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_ready(self, seconds: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"receiptd exited at start-up:\n{self.output()}")
                try:
                    async with session.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"receiptd was not ready within {seconds} s:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait_exit(self, seconds: float) -> int:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"receiptd did not exit within {seconds} s")
            await asyncio.sleep(0.05)
        return code

    def stop_quietly(self) -> None:
        """Teardown: nothing of ours is left running, whatever the test did."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.outputs if p.exists())


@dataclass
class Answer:
    """What a store saw for one delivery: a status and body, or no answer at all."""

    status: int | None = None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> Answer:
    try:
        async with session.post(url, json=body, headers=headers) as resp:
            return Answer(resp.status, await resp.json(content_type=None))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Answer(error=type(exc).__name__)


async def load(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[Mapping[str, Any]],
    answered: asyncio.Event,
    after: int,
) -> list[Answer]:
    """POST every body (as many at once as the session's connector allows); set `answered`
    once `after` of them got a 2xx."""
    done = 0

    async def one(body: Mapping[str, Any]) -> Answer:
        nonlocal done
        answer = await deliver(session, url, body)
        if answer.ok:
            done += 1
            if done >= after:
                answered.set()
        return answer

    return list(await asyncio.gather(*(one(b) for b in bodies)))


def in_background(work: Awaitable[T]) -> asyncio.Future[T]:
    """Run `work` while the drill goes on; the caller awaits the returned future."""
    return asyncio.ensure_future(work)
