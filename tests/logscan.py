"""The log scan: no key, token, receipt or signed payload in any log line of the test suite.

Everything a test phase writes (stdout, stderr, and stdlib log records: structlog's lines in
every configuration the suite uses) is captured by pytest and attached to the phase's
report; `scan_report` (called by the `pytest_runtest_makereport` hook in tests/conftest.py)
scans those sections and turns the phase into a failure naming what leaked, with the secret
itself masked. Output of the `receiptd serve` subprocesses of the drills is scanned by the
drills (`findings`). What counts as a leak:

- a registered secret: the test API keys and user-token secret, and every Play purchase
  token (of six characters or more) the tests hand to the fake Play API (`register`);
- a JWS or JWT (`eyJ….eyJ…`): Apple signed payloads and transactions, user tokens, Pub/Sub
  OIDC tokens;
- a long base64 run (an Apple app receipt, a signature, a certificate chain);
- a PEM private key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

_MIN_SECRET_LENGTH = 6  # shorter test tokens ("t", "p1") would match ordinary words
_SECRETS: set[str] = set()

PATTERNS: dict[str, re.Pattern[str]] = {
    "a JWS/JWT": re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}"),
    "a long base64 blob": re.compile(r"[A-Za-z0-9+/_-]{120,}={0,2}"),
    "a PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def register(*secrets: str | None) -> None:
    """Values that must never appear in a log line (short ones are ignored)."""
    _SECRETS.update(s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH)


_compiled: tuple[int, re.Pattern[str] | None] = (0, None)


def _secrets_pattern() -> re.Pattern[str] | None:
    """One alternation of every registered secret (rebuilt when one is added)."""
    global _compiled  # noqa: PLW0603 - a cache of the module's registry
    if _compiled[0] != len(_SECRETS):
        ordered = sorted(_SECRETS, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        _compiled = (len(_SECRETS), pattern)
    return _compiled[1]


def _mask(line: str, start: int, end: int) -> str:
    shown = line[max(0, start - 60) : start] + "<…>" + line[end : end + 60]
    return shown.strip()


def _looks_encoded(blob: str) -> bool:
    # A base64 run mixes cases and digits; a long path or identifier of words does not.
    return (
        any(c.isupper() for c in blob)
        and any(c.islower() for c in blob)
        and any(c.isdigit() for c in blob)
    )


def findings(text: str) -> list[str]:
    """Each leak in `text`, described with the secret masked (never repeated)."""
    found = []
    secrets = _secrets_pattern()
    for number, line in enumerate(text.splitlines(), 1):
        if secrets is not None:
            for match in secrets.finditer(line):
                masked = _mask(line, match.start(), match.end())
                found.append(f"line {number}: a registered secret: {masked}")
        for what, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                if what == "a long base64 blob" and not _looks_encoded(match.group()):
                    continue
                found.append(f"line {number}: {what}: {_mask(line, match.start(), match.end())}")
    return found


def scan_sections(sections: Iterable[tuple[str, str]], when: str) -> list[str]:
    """Findings in a report's captured sections of phase `when` ("Captured stdout call", …)."""
    found = []
    for title, content in sections:
        if title.endswith(f" {when}"):
            found += [f"{title}, {f}" for f in findings(content)]
    return found


def scan_report(report: pytest.TestReport) -> None:
    """Fail the phase whose captured output leaks a secret (a failed phase stays failed)."""
    leaks = scan_sections(report.sections, report.when or "")
    if not leaks:
        return
    message = "log scan: a secret reached the logs\n" + "\n".join(leaks[:20])
    if report.failed:
        report.sections.append(("log scan", message))
        return
    report.outcome = "failed"
    report.longrepr = message
