"""The numbers behind the business page: daily series over the last 30 days (the rows come
from services/console_reads.py: purchases, the change feed and the journal)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from console.why import STORE_NAMES
from entitlements.access import Catalog
from services.console_reads import BusinessRows


@dataclass(frozen=True, slots=True)
class Series:
    """Days (oldest first) and, per label, one value a day."""

    days: list[datetime]
    values: dict[str, list[float]]


def series(rows: BusinessRows, catalog: Catalog) -> dict[str, Series]:
    """Every chart's series from the page's rows (services/console_reads.py)."""
    days, active, transitions, latency = rows.days, rows.active, rows.transitions, rows.latency
    return {
        "active": _active(days, active, catalog),
        "trials": _daily(
            days, transitions, {"trial starts": "trials", "conversions": "conversions"}
        ),
        "refunds": _daily(
            days, transitions, {"refunds": "refunds", "billing issues": "billing_issues"}
        ),
        "latency": _latency(days, latency),
    }


def _active(days: list[datetime], rows: list[dict[str, Any]], catalog: Catalog) -> Series:
    index = {d: i for i, d in enumerate(days)}
    values: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(days))
    for row in rows:
        if catalog.defines(row["entitlement"]):
            label = f"{row['entitlement']} · {STORE_NAMES.get(row['store'], row['store'])}"
            values[label][index[row["day"]]] += row["active"]
    return Series(days, dict(sorted(values.items())))


def _daily(days: list[datetime], rows: list[dict[str, Any]], columns: Mapping[str, str]) -> Series:
    by_date = {row["day"].date(): row for row in rows}
    values = {
        label: [float(by_date[d.date()][column]) if d.date() in by_date else 0.0 for d in days]
        for label, column in columns.items()
    }
    return Series(days, values)


def _latency(days: list[datetime], rows: list[dict[str, Any]]) -> Series:
    values: dict[str, list[float]] = {}
    positions = {d.date(): i for i, d in enumerate(days)}
    for row in rows:
        label = STORE_NAMES.get(row["store"], row["store"])
        line = values.setdefault(label, [0.0] * len(days))
        i = positions.get(row["day"].date())
        if i is not None:
            line[i] = round(float(row["median_seconds"]), 1)
    return Series(days, dict(sorted(values.items())))
