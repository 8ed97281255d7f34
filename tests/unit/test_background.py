"""runtime/background.py: one lifecycle for every background loop."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from entitlements.errors import DatabaseUnavailable
from runtime.background import BackgroundTask, Periodic


async def test_start_is_idempotent_and_stop_cancels() -> None:
    started = 0
    release = asyncio.Event()

    async def run() -> None:
        nonlocal started
        started += 1
        await release.wait()

    task = BackgroundTask("probe", run)
    task.start()
    task.start()
    await asyncio.sleep(0)
    assert started == 1
    assert task.running
    await task.stop()
    assert not task.running
    await task.stop()  # stopping twice is harmless


async def test_a_crash_is_logged_with_the_task_name() -> None:
    async def run() -> None:
        raise RuntimeError("boom")

    task = BackgroundTask("probe", run)
    with capture_logs() as logs:
        task.start()
        while task.running:
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the done callback
    crashed = [e for e in logs if e["event"] == "background_task_crashed"]
    assert crashed
    assert crashed[0]["task"] == "probe"
    assert crashed[0]["error"] == "RuntimeError"
    task.start()  # an ended task can be started again
    assert task.running
    await task.stop()


async def test_a_periodic_loop_survives_failed_passes_and_waits_what_a_pass_says() -> None:
    passes: list[str] = []
    third = asyncio.Event()
    outcomes = [DatabaseUnavailable(), ValueError("bad pass"), 0.0]

    async def step() -> float:
        outcome = outcomes.pop(0) if outcomes else 3600.0
        passes.append(type(outcome).__name__)
        if isinstance(outcome, Exception):
            raise outcome
        if not outcomes:
            third.set()
        return outcome

    loop = Periodic("probe", step, first=0, idle=0, failed="probe_pass_failed", endpoint="e1")
    with capture_logs() as logs:
        loop.start()
        await asyncio.wait_for(third.wait(), 5)
        while len(passes) < 4:  # a pass that asks no wait is followed at once
            await asyncio.sleep(0)
        await loop.stop()
    assert passes == ["DatabaseUnavailable", "ValueError", "float", "float"]
    failed = [e for e in logs if e["event"] == "probe_pass_failed"]
    assert len(failed) == 1
    assert failed[0]["endpoint"] == "e1"
    assert not loop.running


async def test_stop_ends_a_loop_whose_pass_swallows_the_cancellation() -> None:
    entered = asyncio.Event()

    async def step() -> float:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError from None  # as a library racing its own timeout may do
        return 0.0

    loop = Periodic("probe", step, first=0, idle=0, failed="probe_pass_failed")
    loop.start()
    await asyncio.wait_for(entered.wait(), 5)
    with capture_logs() as logs:
        await asyncio.wait_for(loop.stop(), 5)
    assert not loop.running
    assert [e for e in logs if e["event"] == "probe_pass_failed"] == []
