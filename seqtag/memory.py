"""How much memory can still be had, so that a big allocation fails with a clear message first.

Linux overcommits: a too-large numpy array often "succeeds" and the process is killed later by
the OOM killer (or the container's), with no message at all. So sizes that come from a user's
numbers (options, a file's header) are checked against what the machine and the cgroup allow
before anything is allocated.
"""

from __future__ import annotations

from seqtag.errors import SeqtagError

MEMINFO = "/proc/meminfo"
CGROUP_MAX = "/sys/fs/cgroup/memory.max"
CGROUP_CURRENT = "/sys/fs/cgroup/memory.current"
# Where nothing can be read (not Linux, a locked-down /proc): assume plenty, never refuse.
UNKNOWN = 1 << 62


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _meminfo_available() -> int | None:
    text = _read(MEMINFO)
    if text is None:
        return None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "MemAvailable":
            parts = rest.split()
            if parts and parts[0].isdigit():
                return int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return None


def _cgroup_available() -> int | None:
    limit, current = _read(CGROUP_MAX), _read(CGROUP_CURRENT)
    if limit is None or current is None:
        return None
    limit, current = limit.strip(), current.strip()
    if not (limit.isdigit() and current.isdigit()):
        return None  # "max": no limit
    return max(0, int(limit) - int(current))


def available_bytes() -> int:
    """Bytes that can still be allocated: MemAvailable, or the cgroup's limit minus its usage
    when that is lower; a very large number when neither can be read."""
    known = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    return min(known) if known else UNKNOWN


def _size(n: int) -> str:
    for unit, scale in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def ensure_memory(nbytes: int, what: str, hint: str) -> None:
    """Raise SeqtagError when ``nbytes`` for ``what`` are more than the memory available;
    ``hint`` says what to lower."""
    available = available_bytes()
    if nbytes > available:
        raise SeqtagError(f"{what} would need {_size(nbytes)} of memory, but only "
                          f"{_size(available)} is available", hint=hint)
