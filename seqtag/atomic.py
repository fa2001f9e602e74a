"""Atomic file writes: a model or vocabulary file is either the old one or the whole new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seqtag.errors import SeqtagError


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes | None = None, *, writer=None) -> None:
    """Write ``data`` (or call ``writer(fileobj)``) into a temporary file beside ``path``, then
    rename it over ``path``, so that a crash or a full disk never leaves half a file behind."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise SeqtagError(f"cannot write here ({e.strerror})", path=str(path),
                          hint="choose a writable output path") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise SeqtagError(f"cannot write here ({e.strerror})", path=str(path),
                          hint="choose a writable output path") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
