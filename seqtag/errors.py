"""The one exception type the library raises for problems a user can fix.

The CLI turns it into a single ``ERROR:`` line on stderr and a non-zero exit, so every message
says where (file and line when there is one), what is wrong and what to do.
"""

from __future__ import annotations


class SeqtagError(Exception):
    """A user-facing error: ``path:line: what is wrong (what to do)``."""

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
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text
