"""Progress of the long commands (`prune`, `replay`, `reconcile`) on stderr.

On a terminal: one line redrawn in place, with a bar when the total is known
(`[#########---------------]  37% replayed 74 of 200 purchases`). Otherwise (a log, a pipe,
a cron mail): a plain line now and then, the first only once a run has lasted LINE_SECONDS,
so short runs add nothing to their output, and a last one at the end of a run that
printed any. No dependency: the standard library's `\\r` and one ANSI erase-line code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1  # a terminal line is redrawn at most this often (the last state always)
LINE_SECONDS = 30.0  # off a terminal: at most one line this often
_ERASE_TO_END = "\x1b[K"


class Progress:
    """Progress on `stream` (a bar on a terminal, occasional plain lines elsewhere)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._last = clock()  # when a line was last written (off a terminal: the start)
        self._pending: str | None = None  # the newest state not written yet
        self._shown = False  # a terminal line is on screen
        self._lines = 0  # plain lines written

    def update(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """The newest state: `text`, and `done` of `total` when the total is known."""
        now = self._clock()
        if self._tty:
            line = _with_bar(text, done, total)
            finished = total is not None and done is not None and done >= total
            if self._shown and now - self._last < REDRAW_SECONDS and not finished:
                self._pending = line
                return
            self._draw(line, now)
        else:
            line = _with_percent(text, done, total)
            if now - self._last < LINE_SECONDS:
                self._pending = line
                return
            self._write_line(line, now)

    def clear(self) -> None:
        """Make room for other output on a terminal (the next update redraws the line)."""
        if self._shown:
            self._stream.write("\r" + _ERASE_TO_END)
            self._stream.flush()
            self._shown = False

    def close(self) -> None:
        """Show the last state (on a terminal, or after earlier plain lines) and end it."""
        pending, self._pending = self._pending, None
        if self._tty:
            if pending is not None:
                self._draw(pending, self._clock())
            if self._shown:
                self._stream.write("\n")
                self._stream.flush()
                self._shown = False
        elif pending is not None and self._lines:
            self._write_line(pending, self._clock())

    def _draw(self, line: str, now: float) -> None:
        self._stream.write("\r" + line + _ERASE_TO_END)
        self._stream.flush()
        self._shown, self._last, self._pending = True, now, None

    def _write_line(self, line: str, now: float) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
        self._lines, self._last, self._pending = self._lines + 1, now, None


def _fraction(done: int | None, total: int | None) -> float | None:
    if done is None or total is None:
        return None
    return 1.0 if total <= 0 else max(0.0, min(1.0, done / total))


def _with_bar(text: str, done: int | None, total: int | None) -> str:
    fraction = _fraction(done, total)
    if fraction is None:
        return text
    filled = round(fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return f"[{bar}] {round(fraction * 100):3d}% {text}"


def _with_percent(text: str, done: int | None, total: int | None) -> str:
    fraction = _fraction(done, total)
    return text if fraction is None else f"{text} ({round(fraction * 100)}%)"
