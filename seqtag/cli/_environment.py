"""The process's environment and standard streams, checked once at the CLI's entry.

It must run before anything imports Numba: Numba imports numpy.f2py, which reads
SOURCE_DATE_EPOCH with int() at import time, so a malformed value would break every command
with a traceback from deep inside an import.
"""

from __future__ import annotations

import errno
import os
import sys
from datetime import datetime, timezone
from typing import MutableMapping

from seqtag.errors import SeqtagError


def _valid_epoch(value: str) -> bool:
    # What seqtag.train.created_now and numpy.f2py both accept: whole seconds since 1970 that
    # a date can be made of (not "-1": a time before 1970 is no build's).
    if not (value.isascii() and value.isdigit()):
        return False
    try:
        datetime.fromtimestamp(int(value), timezone.utc)
    except (OverflowError, OSError, ValueError):
        return False
    return True


def check_environment(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Drop malformed variables that would break an import (returns a warning for each) and
    raise SeqtagError for settings seqtag cannot run under."""
    warnings = []
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and not _valid_epoch(epoch):
        del environ["SOURCE_DATE_EPOCH"]
        # Empty is how scripts often "unset" a variable: nothing is being ignored then.
        if epoch.strip():
            warnings.append(f"WARNING: SOURCE_DATE_EPOCH={epoch!r} is not a time (whole seconds "
                            f"since 1970, before the year 10000); ignored, so a model records "
                            f"the current time")
    jit = environ.get("NUMBA_DISABLE_JIT")
    if jit is not None:
        try:
            disabled = int(jit.strip() or "0") != 0
        except ValueError:
            # Numba would ignore it too, but with a warning spread over several lines.
            del environ["NUMBA_DISABLE_JIT"]
            warnings.append(f"WARNING: NUMBA_DISABLE_JIT={jit!r} is not a number; ignored")
            disabled = False
        if disabled:
            # The kernels use Numba intrinsics (prefetch, fused blocks) that have no Python
            # fallback, so without the compiler they cannot run at all, not even slowly.
            raise SeqtagError("NUMBA_DISABLE_JIT is set: seqtag's kernels need Numba's compiler",
                              hint="unset it")
    return warnings


class _ClosedStdin:
    """Stands in for a closed stdin (``seqtag tag <&-``): reading it is an ERROR line."""

    def __init__(self):
        self.buffer = self

    def _closed(self, *args):
        raise SeqtagError("is closed", path="<stdin>",
                          hint="give the input as files, or redirect stdin from one")

    read = read1 = readline = _closed

    def isatty(self) -> bool:
        return False


class _GuardedStdout:
    """stdout whose write errors (a full disk, /dev/full, a closed descriptor) become one ERROR
    line, not a traceback; a broken pipe still stops quietly (seqtag.cli._app.user_errors)."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        if self._stream is None:
            self._failed(OSError(9, "stdout is closed"))
        return getattr(self._stream, name)

    def _failed(self, e: OSError):
        if self._stream is not None:
            # What is still buffered cannot be written either; point the descriptor at
            # /dev/null so that the flush at exit does not report it again.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            except (OSError, ValueError):
                pass
        raise SeqtagError(f"cannot write the output ({e.strerror})", path="<stdout>",
                          hint="free some space, or send the output elsewhere"
                          if e.errno == errno.ENOSPC else "send the output to a file or a pipe"
                          ) from None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, AttributeError) as e:
            self._failed(e if isinstance(e, OSError) else OSError(9, "stdout is closed"))

    def flush(self) -> None:
        try:
            if self._stream is not None:
                self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            self._failed(e)

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()


def setup_streams() -> None:
    """Make the standard streams unable to end a command with a traceback.

    stdout carries data (tags, CoNLL lines) that the next program reads as seqtag's input is
    read, as UTF-8; like crf_test, which passes its input's bytes through, it is written in
    UTF-8 even under LANG=C or PYTHONIOENCODING=ascii, so a token comes out exactly as it came
    in (surrogateescape gives back an undecodable byte of a command-line argument as itself).
    stderr is for people: it keeps the terminal's encoding, and a character the terminal cannot
    show becomes an escape such as \\xfc rather than a crash in the middle of an error message.
    A closed stdin or stdout, or a stdout that cannot be written, is an ERROR line when used.
    """
    out, err = sys.stdout, sys.stderr
    if out is not None and hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8", errors="surrogateescape")
    if err is not None and hasattr(err, "reconfigure"):
        err.reconfigure(errors="backslashreplace")
    if sys.stdin is None:
        sys.stdin = _ClosedStdin()
    sys.stdout = _GuardedStdout(out)
