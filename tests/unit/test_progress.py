"""The one progress helper of prune, replay and reconcile: a bar redrawn in place on a
terminal, occasional plain lines elsewhere (none for a short run), driven by a fake clock."""

from __future__ import annotations

import io

from server.progress import LINE_SECONDS, REDRAW_SECONDS, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_line_with_a_bar_redrawn_at_most_every_tenth_of_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(out, tty=True, clock=clock)

    bar.update("replayed 1 of 4 purchases", 1, 4)
    bar.update("replayed 2 of 4 purchases", 2, 4)  # too soon: kept for later
    assert out.getvalue() == "\r[######------------------]  25% replayed 1 of 4 purchases\x1b[K"
    clock.now += 2 * REDRAW_SECONDS
    bar.update("replayed 3 of 4 purchases", 3, 4)
    bar.clear()  # a report line goes out on the same terminal
    bar.update("replayed 4 of 4 purchases", 4, 4)  # the end is always drawn
    bar.close()

    assert out.getvalue().split("\r")[1:] == [
        "[######------------------]  25% replayed 1 of 4 purchases\x1b[K",
        "[##################------]  75% replayed 3 of 4 purchases\x1b[K",
        "\x1b[K",
        "[########################] 100% replayed 4 of 4 purchases\x1b[K\n",
    ]


def test_a_terminal_shows_the_last_state_on_close_and_no_bar_without_a_total() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(out, tty=True, clock=clock)
    bar.update("page 1")
    bar.update("page 2")  # too soon
    bar.close()
    assert out.getvalue() == "\rpage 1\x1b[K\rpage 2\x1b[K\n"
    Progress(io.StringIO(), tty=True).close()  # nothing shown, nothing to end


def test_off_a_terminal_a_short_run_prints_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(out, tty=False, clock=clock)
    for done in range(1, 11):
        clock.now += 1
        bar.update(f"pruned {done} of 10", done, 10)
    bar.close()
    assert out.getvalue() == ""


def test_off_a_terminal_a_long_run_prints_a_plain_line_now_and_then_and_its_end() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(out, tty=False, clock=clock)
    for done in range(1, 101):
        clock.now += LINE_SECONDS / 20
        bar.update(f"checked {done}", done, 100)
    bar.clear()  # nothing to clear in a log
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "checked 20 (20%)",
        "checked 40 (40%)",
        "checked 60 (60%)",
        "checked 80 (80%)",
        "checked 100 (100%)",
    ]
    assert "\r" not in out.getvalue()
    assert "\x1b" not in out.getvalue()


def test_the_stream_decides_when_not_told() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = Progress(terminal)
    bar.update("x", 0, 0)  # an empty total is complete
    bar.close()
    assert terminal.getvalue() == "\r[########################] 100% x\x1b[K\n"
