"""Model output made safe to print on one line: what ``glmlab inspect`` and ``glmlab infill``
show of generated or decoded text."""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def printable(text: str) -> str:
    """``text`` with newlines, tabs and every other control character escaped as Python
    writes them (``\\n``, ``\\t``, ``\\x1b``) and a backslash doubled, so that one line of
    output stays one line and a terminal never acts on what a model generated."""
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)
