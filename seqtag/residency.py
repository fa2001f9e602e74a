"""Giving back the memory a tagging process holds but no longer uses (Linux; a no-op elsewhere).

Importing Numba loads llvmlite's libllvmlite.so (about 180 MB on disk), and LLVM's static
constructors, spread over its whole code, fault in about 95 MB of it at once; loading the
kernels from Numba's cache touches about 20 MB more. Those pages count in the process's resident
memory (its RSS, what `time -v` and the issue's 300 MB target measure), yet once the kernels are
loaded, tagging runs none of that code: the kernels are machine code in memory of their own. The
pages are clean copies of the file, so the process can let go of them (madvise MADV_DONTNEED on
a private mapping of a file: the next touch maps them again from the page cache, a minor fault,
no disk read); only mappings without a single written page are given up, since a written page
of a private mapping (relocations) would be lost.

glibc keeps freed heap memory for the next allocation rather than returning it; malloc_trim
returns the free pages, which matters after the NumPy engine's large per-batch arrays when a
stream moves to Numba (seqtag.engines).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

MADV_DONTNEED = 4
# Libraries whose code only compiling needs (a kernel loaded from the cache runs without them).
COMPILER_LIBRARIES = ("libllvmlite",)

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
                libc.malloc_trim.argtypes = (ctypes.c_size_t,)
                _libc = libc
            except (OSError, AttributeError):     # not glibc (musl has no malloc_trim)
                pass
    return _libc


def clean_mappings(names=COMPILER_LIBRARIES) -> list[tuple[int, int, int]]:
    """(start, end, resident bytes) of each read-only mapping of a file whose name holds one of
    ``names`` and none of whose pages is written (Private_Dirty and Anonymous 0)."""
    found, current = [], None
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            for line in f:
                head = line.split(None, 6)
                if head and not head[0].endswith(":") and "-" in head[0]:
                    if current is not None and current[3] == 0:
                        found.append(current[:3])
                    current = None
                    path = head[5].strip() if len(head) > 5 else ""
                    if "w" not in head[1] and any(n in path for n in names):
                        lo, hi = head[0].split("-")
                        current = [int(lo, 16), int(hi, 16), 0, 0]  # start, end, rss, dirty
                elif current is not None and len(head) >= 2 and head[1].isdigit():
                    key, kb = head[0], int(head[1]) * 1024
                    if key == "Rss:":
                        current[2] = kb
                    elif key in ("Private_Dirty:", "Anonymous:"):
                        current[3] += kb
        if current is not None and current[3] == 0:
            found.append(current[:3])
    except OSError:
        return []
    return [tuple(m) for m in found]


def release_compiler_pages() -> int:
    """Unmap the resident pages of the compiler's library code (clean_mappings); the bytes
    they held (0 where this cannot be done)."""
    libc = _c()
    if not libc:
        return 0
    freed = 0
    for start, end, rss in clean_mappings():
        if libc.madvise(start, end - start, MADV_DONTNEED) == 0:
            freed += rss
    return freed


def trim_heap() -> None:
    """Return the heap's free pages to the system (glibc's malloc_trim)."""
    libc = _c()
    if libc:
        libc.malloc_trim(0)
