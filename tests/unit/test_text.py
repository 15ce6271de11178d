"""Text from outside made safe to show: every control character visible as an escape."""

from __future__ import annotations

import pytest

from keaplink.text import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"),  # ESC: clear screen, set the window title
        ("\u009b31m", "\\x9b31m"),  # C1 CSI: an escape sequence in one character
        ("a\rb\nc\td\x00e\x7f", "a\\x0db\\x0ac\\x09d\\x00e\\x7f"),  # CR, LF, TAB, NUL, DEL
        ("\x85\x9f", "\\x85\\x9f"),  # the rest of C1
        ("\u202etxt.exe\u2066\u2069\u200f", "\\u202etxt.exe\\u2066\\u2069\\u200f"),  # bidi controls
        ("\u200b\ufeff\u2028", "\\u200b\\ufeff\\u2028"),  # invisible and line-breaking characters
        ("C:\\x1b", "C:\\\\x1b"),  # a literal backslash cannot pose as an escape
        ("Zoë — ünïcödé, 日本, emoji 🎉", "Zoë — ünïcödé, 日本, emoji 🎉"),  # ordinary text untouched
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_cuts_before_escaping() -> None:
    assert printable("abc\x1bdef", limit=4) == "abc\\x1b…"
    assert printable("abc", limit=3) == "abc"
