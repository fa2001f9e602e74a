"""The process's environment and standard streams, checked once at the CLI's entry.

It must run before anything imports Numba: Numba imports numpy.f2py, which reads
SOURCE_DATE_EPOCH with int() at import time, so a malformed value would break every command
with a traceback from deep inside an import.
"""

from __future__ import annotations

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


def setup_streams() -> None:
    """Make stdout and stderr unable to fail on a character, whatever the locale says.

    stdout carries data (tags, CoNLL lines) that the next program reads as seqtag's input is
    read, as UTF-8; like crf_test, which passes its input's bytes through, it is written in
    UTF-8 even under LANG=C or PYTHONIOENCODING=ascii, so a token comes out exactly as it came
    in (surrogateescape gives back an undecodable byte of a command-line argument as itself).
    stderr is for people: it keeps the terminal's encoding, and a character the terminal cannot
    show becomes an escape such as \\xfc rather than a crash in the middle of an error message.
    """
    out, err = sys.stdout, sys.stderr
    if out is not None and hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8", errors="surrogateescape")
    if err is not None and hasattr(err, "reconfigure"):
        err.reconfigure(errors="backslashreplace")
