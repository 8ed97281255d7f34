"""The app user id rule (contract §2): 1-128 characters without control characters or
whitespace, and none of the other invisible characters (issue 18: "u-x\\n" read as a customer
that looks exactly like "u-x" in the console and the audit log)."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from entitlements.model import APP_USER_ID_MAX, INVISIBLE, is_app_user_id

REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}


def invisible(char: str) -> bool:
    return unicodedata.category(char) in REFUSED_CATEGORIES or char.isspace()


@pytest.mark.parametrize(
    "value",
    [
        "u-1",
        "0b7d6f5e-2f6a-4b8e-9a51-5f3b2f4d1c11",
        "$RCAnonymousID:4f1c",
        "someone@example.com",
        "ü-1",
        "用户-1",
        "a/b?c#d%e",
        "x" * APP_USER_ID_MAX,
    ],
)
def test_accepted(value: str) -> None:
    assert is_app_user_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * (APP_USER_ID_MAX + 1),
        "u-x\n",  # the trailing newline `$` let through
        "u-x\r\n",
        "\nu-x",
        "u x",
        "u\tx",
        "u\x00x",
        "u\x7fx",
        "u\xa0x",  # no-break space
        "u\u200bx",  # zero-width space (a format character)
        "u\u202ex",  # right-to-left override
        "u\u2028x",
        "\ufeffu-x",
        "u\U000e0041x",  # a tag character
    ],
)
def test_refused(value: str) -> None:
    assert not is_app_user_id(value)


def test_invisible_class_matches_unicodedata() -> None:
    """INVISIBLE is a literal (no 1.1M-code-point scan at import); it must be exactly the
    characters the rule names, for this Python's Unicode database."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if invisible(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    expected = "".join(f"{chr(a)}" if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
    assert INVISIBLE.encode("utf-16", "surrogatepass") == expected.encode("utf-16", "surrogatepass")
