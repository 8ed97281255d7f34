"""structlog set-up: one pipeline for our loggers and stdlib ones (aiohttp, asyncpg).

JSON lines in production, console rendering when `json` is false. Context variables
(request_id, …) are merged first so every line of a request carries them.

The canonical `http_request` line (one per request) has a fast path in JSON mode,
`canonical_line`: the same fields and format, rendered by orjson and written straight to the
handler's stream under its lock, bypassing structlog's and the stdlib's per-record work
(measured: ~1/3 of a cached read's CPU). When the stream is a file descriptor (stdout in
production) the line is one `os.write` of its own: no buffer to flush later, so no callback
is scheduled on the event loop per request (an extra loop turn: ~12 µs of CPU per request at
3,000 req/s, bench/read.py); the handler flushes after every other record, so lines stay in
order. A stream without a descriptor (tests) gets write + flush. Elsewhere (console, level
above INFO, logging not configured by this module) it is an ordinary structlog call.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from typing import Any, TextIO

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def configure_logging(
    *, json: bool = True, level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger once, at process start (to stdout
    unless `stream` is given: a command whose report is its stdout logs elsewhere)."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    global _fast, _fast_fd  # noqa: PLW0603  (set once at process start)
    _fast = handler if json and root.isEnabledFor(logging.INFO) else None
    _fast_fd = _descriptor(handler.stream)
    # Our middleware writes one canonical line per request; aiohttp's would repeat it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pgserver logs every pg_ctl command line at INFO; only its problems matter here.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    quiet_malformed_requests()


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line over 8 KiB, a bad request line)
    at ERROR with a traceback, before any handler or middleware runs. That is the client's
    mistake, and anyone can send it as often as they like: one WARNING line naming the
    parser's verdict, no traceback, so it can neither flood the logs nor page anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "bad_http_request: %s (%s)"
            record.args = (type(exc).__name__, exc.code)
            record.exc_info = None
            record.exc_text = None
        return True


_MALFORMED = _MalformedRequests()


def quiet_malformed_requests() -> None:
    """Install the `_MalformedRequests` filter on aiohttp's server logger (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if _MALFORMED not in logger.filters:
        logger.addFilter(_MALFORMED)


_fast: logging.StreamHandler[TextIO] | None = None
_fast_fd: int | None = None
_slow_log = structlog.get_logger("receiptd.http")


def _descriptor(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def canonical_line(event: str, fields: dict[str, Any]) -> None:
    """Log `event` with `fields` at INFO as logger `receiptd.http` (see the module doc)."""
    handler = _fast
    if handler is None or handler not in logging.getLogger().handlers:
        _slow_log.info(event, **fields)
        return
    fields["event"] = event
    fields["level"] = "info"
    fields["logger"] = "receiptd.http"
    fields["timestamp"] = utc_timestamp(time.time())
    line = orjson.dumps(fields) + b"\n"
    lock = handler.lock
    assert lock is not None  # created by the handler's constructor
    with lock:
        try:
            if _fast_fd is not None:
                _write_all(_fast_fd, line)
            else:
                handler.stream.write(line.decode())
                handler.flush()
        except (OSError, ValueError):  # a closed or full stream: as the stdlib handler would,
            _unwritable(line)  # report it, but never fail the request over its log line


def _unwritable(line: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"--- Logging error --- could not write: {line.decode().rstrip()}\n")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


_second: tuple[int, str] = (-1, "")


def utc_timestamp(now: float) -> str:
    """`now` (epoch seconds) as RFC 3339 UTC with microseconds, like structlog's ISO stamp."""
    global _second  # noqa: PLW0603  (a one-entry memo; lines of one second share the prefix)
    whole, micros = divmod(round(now * 1_000_000), 1_000_000)  # rounded as datetime does
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{micros:06d}Z"
