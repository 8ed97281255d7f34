"""Where the cores went during a benchmark: CPU seconds (user + system) by role, from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def cpu_by_role(service_pid: int, data_dir: Path) -> dict[str, float]:
    """CPU seconds so far of receiptd (`service_pid` and its workers), of the PostgreSQL and
    Redis serving `data_dir` (their command lines name it; PostgreSQL's backends are children
    of that postmaster) and of this process (the client): where the cores went."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / tick)
    mine = {pid for pid in used if str(data_dir) in _cmdline(pid)}
    totals = {"receiptd": 0.0, "postgres": 0.0, "redis": 0.0}
    for pid, (name, seconds) in used.items():
        if name.startswith("postgres") and (pid in mine or parents.get(pid) in mine):
            totals["postgres"] += seconds
        elif name.startswith("redis") and pid in mine:
            totals["redis"] += seconds
        elif pid == service_pid or parents.get(pid) == service_pid:
            totals["receiptd"] += seconds
    totals["client"] = sum(os.times()[:2])  # this process (the load generator, in-process)
    return totals


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def start_profilers(
    pid: int, py_spy: Path | None, perf: Path | None
) -> list[subprocess.Popen[bytes]]:
    """Profilers sampling `pid` (and its workers) while a benchmark runs; none unless asked.

    `py_spy`: py-spy (a dev tool: `pip install py-spy`, not a dependency) writes raw collapsed
    stacks (`frame;frame;… count` a line) of the threads holding the GIL, so a thread waiting
    in `epoll_wait`, in a blocking queue or for a core (on a loaded machine it is still
    "running" to /proc) is not counted: Python CPU by function. `perf`: `perf record` of the
    on-CPU time of every thread (cpu-clock), kernel included, for CPU by library (`perf
    report --sort dso`): the part py-spy cannot see (syscalls, code that releases the GIL)."""
    started = []
    if py_spy is not None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        started.append(
            subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--gil",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "-o",
                    str(py_spy),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    if perf is not None:
        started.append(
            subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-F", "499", "-p", str(pid), "-o", str(perf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return started


def stop_profilers(started: list[subprocess.Popen[bytes]]) -> None:
    """Stop the `start_profilers` recordings and wait for their files."""
    for proc in started:
        proc.send_signal(signal.SIGINT)
    for proc in started:
        proc.wait(timeout=120)
