"""`receiptd replay --jobs N`: the replay in N worker processes, each checking one `Part` of
the selected purchases (stored rows by id modulo N, lost ones by a hash of their purchase id)
with its own pool and store adapters, as `receiptd replay` does in one.

    parent: the database (the embedded server stays up for the whole run), the open run of
    `replay_runs` (resumed when its arguments are these, else refused; `--restart` abandons
    it) or a new one, the report lines its saved pages gave, the total for the progress bar
    → N processes (spawn), each: its part's position and counts → `Replayer.run` from there,
      saving position, counts, the page's report lines and shared journal entries after
      every page (one transaction), and sending the lines and its count to the parent
    → the parent prints the lines and the progress of the whole run as they come; when every
      part finished, the summary of the whole run from the parts' saved counts (the shared
      entries counted once across parts), and the run is finished.

A worker that dies (killed, the database gone) or Ctrl-C leaves the run open: the same
command resumes it, each part after its last saved page.

A worker moves what it imported out of the garbage collector's sight once started
(`gc.freeze`): that lives until the process ends, and walking it made each worker's full
collections cost ~12 µs per journal entry and its interpreter's teardown at exit up to ~1 s
on a busy 2-core machine (issue 24). The parent leaves its collector alone: it may be a
process that goes on (the tests run the command in theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import queue as queues
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from pydantic import SecretStr

from cache.answers import CustomerCache, NoCache
from config.logging import configure_logging
from config.settings import Settings
from entitlements.replay import Finding
from server.bootstrap import Command, cache_for_fixes, command
from server.embedded import database_url
from server.progress import Progress
from server.stores import replay_stores
from services import replay as replay_service
from services.replay import DONE, Position, Replayer, Summary, describe, summary_line
from storage import replay as replay_db
from storage import replay_runs as runs_db
from storage.replay import Part, Selection

POLL_SECONDS = 0.2  # how often the parent looks at its workers while none sends anything
INTERRUPTED = 130  # the exit code of a run stopped with Ctrl-C (resumable)


class ArgumentsDiffer(Exception):
    """An interrupted replay run with other arguments is open."""


@dataclass(frozen=True, slots=True)
class Job:
    """What every worker of a run is given (pickled to it)."""

    settings: Settings
    selection: Selection
    fix: bool
    run_id: int
    jobs: int
    batch: int


def replay_jobs(
    settings: Settings, selection: Selection, *, fix: bool, jobs: int, restart: bool
) -> int:
    """Run `receiptd replay --jobs N` (N > 1) with loaded settings; returns the exit code."""
    workers: list[BaseProcess] = []
    bar = Progress(sys.stderr)
    try:
        return asyncio.run(
            _parent(
                settings, selection, fix=fix, jobs=jobs, restart=restart, workers=workers, bar=bar
            )
        )
    except KeyboardInterrupt:  # each part's last saved page is kept
        _stop(workers)
        bar.close()
        print(
            "\nreceiptd: replay interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return INTERRUPTED


def arguments_of(selection: Selection, *, fix: bool, jobs: int) -> dict[str, Any]:
    """A run's arguments as saved: a run resumes only with the same ones."""
    since = selection.since.isoformat() if selection.since is not None else None
    return {"since": since, "customer": selection.customer, "fix": fix, "jobs": jobs}


async def _parent(
    settings: Settings,
    selection: Selection,
    *,
    fix: bool,
    jobs: int,
    restart: bool,
    workers: list[BaseProcess],
    bar: Progress,
) -> int:
    configured = settings.database.url.get_secret_value()
    # Resolved once: the embedded server (if any) stays up until every worker is done.
    async with database_url(configured, settings.server.data_dir) as url:
        database = settings.database.model_copy(update={"url": SecretStr(url)})
        settings = settings.model_copy(update={"database": database})
        async with command(settings) as started:
            try:
                run_id, resumed = await _open(
                    started, arguments_of(selection, fix=fix, jobs=jobs), jobs, restart=restart
                )
            except ArgumentsDiffer as exc:
                print(f"receiptd: {exc}", file=sys.stderr)
                return 2
            async with started.pool.acquire() as conn:
                if resumed:
                    print(
                        "receiptd: resuming the interrupted replay run (--restart starts over)",
                        file=sys.stderr,
                    )
                    for line in await runs_db.lines(conn, run_id):
                        print(line, flush=True)
                parts = await runs_db.parts(conn, run_id)
                job = Job(settings, selection, fix, run_id, jobs, replay_service.BATCH)
                pending = [p.part for p in parts if not p.finished]
                # The workers start (a second of imports each) while the total is counted (a
                # pass over the purchases and the journal).
                inbox = _start(job, pending, workers)
                try:
                    total = await _total(conn, selection)
                except BaseException:
                    _stop(workers)  # as before they started: each keeps its saved pages
                    raise
            done = {p.part: int(p.counts.get("checked", 0)) for p in parts}
            failed = await _watch(inbox, done=done, total=total, workers=workers, bar=bar)
            bar.close()
            if failed:
                print(
                    f"receiptd: replay interrupted ({failed}); run the same command again "
                    "to resume",
                    file=sys.stderr,
                )
                return 1
            summary = await _finish(started, run_id)
        cache_note = ""
        if fix and summary.fixed:
            async with cache_for_fixes(settings) as (_cache, cache_note):
                pass  # each worker invalidated through it; the note says how that went
    print(summary_line(summary, fix=fix, cache=cache_note))
    return 0 if summary.clean else 1


async def _open(
    started: Command, arguments: dict[str, Any], jobs: int, *, restart: bool
) -> tuple[int, bool]:
    """The run to work on: (its id, whether it is resumed)."""
    async with started.pool.acquire() as conn, conn.transaction():
        now = started.clock()
        run = await runs_db.open_run(conn)
        if run is not None and (restart or run.arguments != arguments):
            if not restart:
                raise ArgumentsDiffer(
                    f"an interrupted replay run with other arguments ({_shown(run.arguments)}) "
                    "is open: run it again with those, or add --restart to abandon it"
                )
            await runs_db.end_run(conn, run.id, "abandoned", now)
            run = None
        if run is not None:
            return run.id, True
        return await runs_db.start_run(conn, arguments, jobs, now), False


def _shown(arguments: dict[str, Any]) -> str:
    shown = [f"--jobs {arguments.get('jobs')}"]
    if arguments.get("since"):
        shown.append(f"--since {arguments['since']}")
    if arguments.get("customer"):
        shown.append(f"--customer {arguments['customer']}")
    if arguments.get("fix"):
        shown.append("--fix")
    return " ".join(shown)


async def _total(conn: Any, selection: Selection) -> int:
    """How many purchases the whole run checks (as one run counts them)."""
    if selection.customer is not None:
        customer = await replay_db.customer_of(conn, selection.customer)
        selection = Selection(since=selection.since, customer=customer)
    return await replay_db.count_selected(conn, selection) + await replay_db.count_missing(
        conn, selection
    )


def _start(
    job: Job, pending: Sequence[int], workers: list[BaseProcess]
) -> multiprocessing.Queue[tuple[Any, ...]]:
    """Start a worker per unfinished part (added to `workers`); the queue they write to."""
    context = multiprocessing.get_context("spawn")
    inbox: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    for part in pending:
        worker: BaseProcess = context.Process(
            target=work, args=(job, part, inbox), name=f"receiptd-replay-{part}", daemon=True
        )
        worker.start()
        workers.append(worker)
    return inbox


async def _watch(
    inbox: multiprocessing.Queue[tuple[Any, ...]],
    *,
    done: dict[int, int],
    total: int,
    workers: list[BaseProcess],
    bar: Progress,
) -> str | None:
    """Show what the workers send until all have ended; what went wrong, if anything."""

    def show() -> None:
        checked = sum(done.values())
        bar.update(f"replayed {checked} of {max(total, checked)} purchases", checked, total)

    show()
    while True:
        try:
            message = await asyncio.to_thread(inbox.get, True, POLL_SECONDS)
        except queues.Empty:
            if not any(w.is_alive() for w in workers):
                with contextlib.suppress(queues.Empty):  # the last words of the last one
                    while True:
                        _take(inbox.get_nowait(), done, bar)
                break
            continue
        _take(message, done, bar)
        show()
    failures = [w for w in workers if w.exitcode != 0]
    if not failures:
        return None
    code = failures[0].exitcode or 0
    how = f"signal {-code}" if code < 0 else f"exit {code}"
    return f"worker {failures[0].name} ended with {how}"


def _take(message: tuple[Any, ...], done: dict[int, int], bar: Progress) -> None:
    if message[0] == "line":
        bar.clear()
        print(message[1], flush=True)
    elif message[0] == "checked":
        done[message[1]] = message[2]


def _stop(workers: Sequence[BaseProcess]) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(timeout=5)


async def _finish(started: Command, run_id: int) -> Summary:
    """The whole run's summary from its parts' saved counts; the run is finished."""
    async with started.pool.acquire() as conn, conn.transaction():
        summary = Summary()
        for state in await runs_db.parts(conn, run_id):
            part = Summary.from_counts(state.counts)
            for name, value in part.counts().items():
                setattr(summary, name, getattr(summary, name) + value)
        summary.rederived += await runs_db.count_shared(conn, run_id)
        await runs_db.end_run(conn, run_id, "finished", started.clock())
    return summary


# --- a worker -------------------------------------------------------------------------------


def work(job: Job, part: int, outbox: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    """A worker process: check part `part` of the run from its last saved page."""
    # Ctrl-C reaches the whole process group: the parent stops the workers, each keeping
    # its last saved page, without a traceback from each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the modules: see the module docstring
    configure_logging(json=not sys.stderr.isatty(), level="WARNING", stream=sys.stderr)
    asyncio.run(_work(job, part, outbox))


async def _work(job: Job, part: int, outbox: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    settings = job.settings
    async with command(settings) as started:
        pool, catalog, clock = started.pool, started.catalog, started.clock
        no_cache: tuple[CustomerCache, str] = (NoCache(), "")
        caching = cache_for_fixes(settings) if job.fix else contextlib.nullcontext(no_cache)
        async with (
            replay_stores(settings, pool, clock, catalog, inline=True) as adapters,
            caching as (cache, _note),
        ):
            async with pool.acquire() as conn:
                state = next(p for p in await runs_db.parts(conn, job.run_id) if p.part == part)
            summary = Summary.from_counts(state.counts)
            start = Position(state.position.get("source", 0), state.position.get("after"))
            lines: list[str] = []

            def report(finding: Finding, outcome: str) -> None:
                line = describe(finding, outcome)
                lines.append(line)
                outbox.put(("line", line))

            async def checkpoint(
                conn: Any, position: Position, so_far: Summary, shared: set[int]
            ) -> None:
                await runs_db.save_part(
                    conn,
                    job.run_id,
                    part,
                    position=asdict(position),
                    counts=so_far.counts(),
                    finished=False,
                    lines=lines,
                    shared=shared,
                    now=clock(),
                )
                lines.clear()
                so_far.shared.clear()  # saved: counted once across parts from the table
                outbox.put(("checked", part, so_far.checked))

            replayer = Replayer(pool, adapters, catalog, clock, cache, batch=job.batch)
            summary = await replayer.run(
                job.selection,
                fix=job.fix,
                report=report,
                part=Part(part, job.jobs),
                start=start,
                summary=summary,
                checkpoint=checkpoint,
            )
            async with pool.acquire() as conn:
                await runs_db.save_part(
                    conn,
                    job.run_id,
                    part,
                    position=asdict(DONE),
                    counts=summary.counts(),
                    finished=True,
                    lines=lines,
                    shared=summary.shared,
                    now=clock(),
                )
            outbox.put(("checked", part, summary.checked))
