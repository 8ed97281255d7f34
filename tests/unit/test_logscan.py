"""The log scan bites: it flags each kind of leak (masked), leaves ordinary log lines alone,
and fails a passing test whose output leaks (through the real hook, in an inner pytest run)."""

from __future__ import annotations

import base64
import json

import pytest

from tests import logscan
from tests.conftest import ADMIN_KEY, USER_TOKEN_SECRET

pytest_plugins = ["pytester"]

JWS = (
    "eyJhbGciOiJFUzI1NiIsIng1YyI6WyJNSUlC.eyJub3RpZmljYXRpb25UeXBlIjoiU1VCU0NSSUJFRCJ9.c2lnbmF0dXJl"
)
RECEIPT = base64.b64encode(bytes(range(256)) * 2).decode()


def line(**fields: object) -> str:
    return json.dumps({"event": "http_request", "level": "info", **fields})


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (line(authorization=f"Bearer {ADMIN_KEY}"), "a registered secret"),
        (f"2026-11-25 [info] token={USER_TOKEN_SECRET}", "a registered secret"),
        (line(signed_payload=JWS), "a JWS/JWT"),
        (line(receipt=RECEIPT), "a long base64 blob"),
        (line(key="-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE"), "a PEM private key"),
    ],
)
def test_each_kind_of_leak_is_flagged_and_masked(text: str, what: str) -> None:
    [finding] = logscan.findings(text)
    assert what in finding
    for secret in (ADMIN_KEY, USER_TOKEN_SECRET, JWS, RECEIPT):
        assert secret not in finding


def test_a_registered_play_token_is_flagged() -> None:
    logscan.register("tok-logscan-unit-1", "t")  # "t" is too short to be scanned for
    assert logscan.findings("purchase tok-logscan-unit-1 read")
    assert logscan.findings("t is a letter") == []


def test_ordinary_log_lines_pass() -> None:
    ordinary = [
        line(request_id="7764a69eddcc4a579bf21db77d2d8b9e", route="/v1/customers/{app_user_id}"),
        line(notification_uuid="a8a557c1-ca89-409c-8ae6-c987911cedb3", purchase_ref="1b50329d3d31"),
        line(digest="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        line(pgdata="/tmp/rcd-drill-6v40g7x4/pg/postgres/some/long/path/of/words/only" * 3),
        "2026-12-02 00:14:01 [warning  ] dependency_unavailable code=database_unavailable",
    ]
    assert logscan.findings("\n".join(ordinary)) == []


def test_a_report_of_a_passing_phase_that_leaks_fails() -> None:
    report = pytest.TestReport(
        "t.py::test_x",
        ("t.py", 1, "test_x"),
        {},
        "passed",
        None,
        "call",
        sections=[
            ("Captured stdout setup", line(key=JWS)),  # another phase: its own report's
            ("Captured stdout call", line(ok=True)),
            ("Captured log call", f"WARNING x: key {ADMIN_KEY}"),
        ],
    )
    logscan.scan_report(report)
    assert report.failed
    assert "Captured log call" in str(report.longrepr)
    assert "Captured stdout setup" not in str(report.longrepr)
    assert ADMIN_KEY not in str(report.longrepr)


def test_the_hook_fails_a_test_that_logs_a_key(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from tests.conftest import pytest_configure, pytest_runtest_makereport  # noqa: F401"
    )
    pytester.makepyfile(
        f"""
        import structlog

        def test_clean():
            structlog.get_logger().info("fine", purchase_ref="1b50329d3d31")

        def test_leaky():
            structlog.get_logger().info("oops", key={ADMIN_KEY!r})
        """
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "--show-capture=no",  # the inner report must not print the leak into our own output
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*log scan: a secret reached the logs*"])
    assert ADMIN_KEY not in result.stdout.str()
