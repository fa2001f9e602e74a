"""The one exception type the library raises for problems a user can fix.

The CLI turns it into a single ``ERROR:`` line on stderr and a non-zero exit, so every message
says where (file and line when there is one), what is wrong and what to do.
"""

from __future__ import annotations

import unicodedata

# What str.splitlines ends a line at (so do terminals and log tools at some of them): none of
# these may reach the ERROR line as it is, or one error would print as several lines.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {ord(c): c.encode("unicode_escape").decode("ascii") for c in _LINE_BREAKS}


def _one_line(text: str) -> str:
    """``text`` with its line breaks written as escapes (``\\n``)."""
    return text.translate(_ESCAPES) if any(c in text for c in _LINE_BREAKS) else text


def show_path(path: str) -> str:
    """A file name as an ERROR line shows it: as it is, or, when it holds a line break or
    another control character (a name such as ``two\\nlines.tsv`` is legal on UNIX), quoted
    with those characters escaped, as Python writes a string, so that it stays on one line and
    can still be told apart from a name holding a backslash."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in path):
        return repr(path)
    return path


class SeqtagError(Exception):
    """A user-facing error: ``path:line: what is wrong (what to do)``, always on one line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            path = show_path(str(self.path))
            where = f"{path}:{self.line}: " if self.line is not None else f"{path}: "
        text = f"{where}{_one_line(self.message)}"
        if self.hint:
            text += f" ({_one_line(self.hint)})"
        return text
