"""Where the cores went during a benchmark: CPU seconds (user + system) by role, from /proc."""

from __future__ import annotations

import os
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
