"""Atomic file writes: a model or vocabulary file is either the old one or the whole new one.

The new content goes to a temporary file beside the target, named
``.NAME.seqtag-HOST-PID-XXXXXXXX.tmp``, which is then renamed over the target. A process killed
in between (kill -9, a power cut) leaves that file behind; its name says whose it was, so the
next write to the same target removes it once its writer is gone.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tempfile
import time
from pathlib import Path

from seqtag.errors import SeqtagError

# A temporary file whose writer is still alive is left alone unless it is this old (pids are
# reused; a writer still writing keeps its file's mtime fresh); so is one from another machine
# (a shared disk), whose pid means nothing here.
STALE_AFTER_SECONDS = 30 * 60
_TAG = ".seqtag-"
# Keeps ".NAME.seqtag-HOST-PID-XXXXXXXX.tmp" within the usual 255-byte limit of a file name.
_NAME_CHARS = 120


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:_NAME_CHARS]}{_TAG}"


def _host() -> str:
    # No "-" in it, so that the name splits back into host and pid.
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "_"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but is another user's (or cannot be asked): assume alive
    return True


def remove_stale_temporaries(path: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Delete the temporary files that earlier writes to ``path`` left behind (their writer
    died, or they are older than STALE_AFTER_SECONDS); returns the paths deleted."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    prefix = _temp_prefix(path)
    shape = re.compile(re.escape(prefix) + r"([A-Za-z0-9._]+)-(\d+)-[^/]*\.tmp\Z")
    host = _host()
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = shape.match(name)
        if not m:
            continue
        candidate = directory / name
        try:
            info = candidate.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            young = now - info.st_mtime < STALE_AFTER_SECONDS
            if young and (m.group(1) != host or _alive(int(m.group(2)))):
                continue
            candidate.unlink()
        except OSError:
            continue  # gone already (another run cleaned it), or not ours to remove
        removed.append(candidate)
    return removed


def check_target(path: str | os.PathLike) -> None:
    """Raise SeqtagError unless ``path`` is a regular file or does not exist yet.

    A symbolic link is refused, not followed (it may point anywhere, and replacing it would
    silently break what it pointed to), and so are directories, devices (replacing /dev/null
    with a model, as root, would break the machine) and FIFOs."""
    name = str(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise SeqtagError(f"cannot write here ({e.strerror})", path=name,
                          hint="choose another output path") from None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise SeqtagError(f"is {kind}; seqtag only replaces regular files", path=name,
                      hint="give the path of a new or regular file"
                           + (", e.g. the link's target" if stat.S_ISLNK(mode) else ""))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes | None = None, *, writer=None) -> None:
    """Write ``data`` (or call ``writer(fileobj)``) into a temporary file beside ``path``, then
    rename it over ``path``, so that a crash or a full disk never leaves half a file behind."""
    path = Path(path)
    check_target(path)
    remove_stale_temporaries(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{_host()}-{os.getpid()}-",
                                   suffix=".tmp", dir=directory)
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
        # Checked again just before the rename: a link or device put there during a slow write
        # is still not replaced.
        check_target(path)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise SeqtagError(f"cannot write here ({e.strerror})", path=str(path),
                          hint="choose a writable output path") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
