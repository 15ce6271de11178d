"""Text from outside shown to a human: control characters made visible (pure, no I/O).

A dead-lettered message's body and reason are whatever an application (or Keap) put there. Printed raw,
an ESC starts a terminal escape sequence (move the cursor, rewrite earlier lines, set the window title,
on some terminals worse), a C1 CSI does the same in one byte, and a bidi override reorders what follows so
that the text reads differently from what it is. :func:`printable` shows all of them as escapes instead.
"""

from __future__ import annotations

# Bidirectional controls (Unicode's "Trojan Source" set), zero-width characters, line/paragraph
# separators and the byte order mark: invisible, or change how the rest of the line is shown.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff"
)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every C0/C1 control character (ESC, CSI, CR, LF, TAB, NUL, DEL, …), bidi control and
    invisible formatting character written as ``\\xNN`` / ``\\uNNNN``, and backslashes doubled so that an
    escape in the output always means an escaped character. ``limit`` cuts the input first (``…`` marks the
    cut)."""
    cut = limit is not None and len(text) > limit
    source = text[:limit] if cut else text
    out = []
    for char in source:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif code < 0x20 or 0x7F <= code < 0xA0 or char in _INVISIBLE:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out) + ("…" if cut else "")
