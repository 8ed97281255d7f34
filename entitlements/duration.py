"""ISO 8601 durations (`P1M`, `P1Y2M`, `P7D`, `PT12H`, `P2W`) and calendar arithmetic with them.

Years and months are calendar units: one month after Jan 31 is Feb 28 (or 29), the last day
of the shorter month, as the stores count subscription periods. Weeks, days, hours, minutes
and seconds are exact. Whole numbers only; a duration of zero is refused.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_PATTERN = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_MAX_UNITS = 10_000  # far beyond any real period; keeps arithmetic inside datetime's range


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration: months (years count 12) plus an exact part."""

    months: int = 0
    exact: timedelta = timedelta(0)
    text: str = ""

    def after(self, start: datetime) -> datetime:
        """`start` plus this duration (month arithmetic clamps to the month's last day)."""
        total = start.month - 1 + self.months
        year, month = start.year + total // 12, total % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day) + self.exact

    def __str__(self) -> str:
        return self.text


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration; ValueError with a human message otherwise."""
    match = _PATTERN.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in {"P", "PT"} or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P1M, P1Y, P7D or PT12H")
    units = {name: int(value or 0) for name, value in match.groupdict().items()}
    if any(value > _MAX_UNITS for value in units.values()):
        raise ValueError(f"{text!r} is too long a duration")
    months = units["years"] * 12 + units["months"]
    exact = timedelta(
        weeks=units["weeks"],
        days=units["days"],
        hours=units["hours"],
        minutes=units["minutes"],
        seconds=units["seconds"],
    )
    if months == 0 and exact == timedelta(0):
        raise ValueError(f"{text!r} is a duration of zero")
    return Duration(months=months, exact=exact, text=text.strip().upper())
