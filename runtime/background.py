"""One lifecycle for every background task of the service: started once (idempotent), stopped
by cancelling and awaiting it, and a crash logged rather than lost.

    BackgroundTask(name, run)     any long-running coroutine (a pub/sub listener, a repair
                                  loop): `start`, `stop`, `running`
    Periodic(name, step, ...)     the shape of the polling loops (outbound webhooks, Play
                                  acknowledgements, payload retention): wait `first`, then
                                  call `step` forever; `step` returns how long to wait before
                                  the next pass; a pass that fails waits `idle` — the database
                                  away quietly (storage.database.run logged it), anything
                                  else logged with its traceback — and the loop lives on

Stopping cancels a pass in flight: each caller documents what that leaves (a lease that lapses,
a transaction that rolls back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from entitlements.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

STOP_RETRY_SECONDS = 1.0  # how long `stop` waits for a cancelled task before cancelling again


class BackgroundTask:
    """A named task running `run()` while started."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Started and not ended."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task unless it runs already."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
            self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        """Cancel the task and wait until it ended. A cancellation that the task's code
        swallows (a library turning it into a timeout, a broad `except`) is repeated."""
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RETRY_SECONDS)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error(
                "background_task_crashed",
                task=self._name,
                error=type(error).__name__,
                exc_info=error,
            )


class Periodic(BackgroundTask):
    """A polling loop: `step` once per pass, waiting what it returns (see the module doc)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[float]],
        *,
        first: float,
        idle: float,
        failed: str,
        **log_fields: Any,
    ) -> None:
        super().__init__(name, self._loop)
        self._step = step
        self._first = first
        self._idle = idle
        self._failed = failed
        self._fields = log_fields

    async def _loop(self) -> None:
        await asyncio.sleep(self._first)
        while True:
            try:
                wait = await self._step()
                self._raise_if_cancelling()
            except DatabaseUnavailable:
                self._raise_if_cancelling()
                wait = self._idle  # logged by storage.database.run; try again at the next poll
            except Exception:  # keep the loop alive whatever one pass hit
                self._raise_if_cancelling()
                log.exception(self._failed, **self._fields)
                wait = self._idle
            if wait > 0:
                await asyncio.sleep(wait)

    @staticmethod
    def _raise_if_cancelling() -> None:
        """End the loop when it was asked to stop, even if the pass swallowed the request."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
