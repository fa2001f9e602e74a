"""Whether Numba's inference kernels are compiled for this machine, and the background warm-up
that compiles them.

The marker. A warm-up process compiles (or loads from Numba's cache) every inference kernel of
every architecture, then writes an empty file whose name holds a key of what Numba's cache
depends on: Numba keys its cache index on the kernel source file (its modification time and
size) and each entry on the signature and the target machine (the CPU's name and features) and
its own version. The key here is a checksum of the kernels' sources themselves, the Numba version,
the Python version, the CPU's model name and flags, and the variables that change the target or
the cache (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES, NUMBA_OPT, NUMBA_CACHE_DIR). The marker lies in
the directory of the cache itself (NUMBA_CACHE_DIR, else seqtag/kernels/__pycache__), so that
clearing the cache clears it too. Checking it imports nothing: a few file reads and one hash,
well under a millisecond, and it is only done once per model.

The warm-up (seqtag.warmup) runs detached (its own session, no inherited streams, at low priority), so that the
tagging process that started it exits as soon as it is done; a lock file keeps a second one from
starting while one runs (a lock older than LOCK_SECONDS is stale; a warm-up that fails leaves
its lock, so that a failing one is tried again only that much later). None starts where the
marker could not be written, nor with SEQTAG_WARMUP=0.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
LOCK_SECONDS = 600
_ENV = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_OPT", "NUMBA_CACHE_DIR")


def cache_dir() -> Path:
    """Where Numba caches the kernels: NUMBA_CACHE_DIR, else the kernels' __pycache__, else
    (a package directory the user cannot write, where Numba uses a cache of the user's own)
    ~/.cache/seqtag."""
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom:
        return Path(custom)
    here = KERNELS / "__pycache__"
    if os.access(here if here.is_dir() else KERNELS, os.W_OK):
        return here
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqtag"


def _writable(directory: Path) -> bool:
    """Whether a warm-up can leave its lock and marker in ``directory`` (created if need be, as
    Numba would)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


def _cpu() -> bytes:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            info = f.read(1 << 16)
    except OSError:
        import platform

        return platform.processor().encode()
    first = info.split(b"\n\n", 1)[0]
    return b"\n".join(line for line in first.splitlines()
                      if line.startswith((b"model name", b"flags", b"Features", b"CPU part")))


def key() -> str | None:
    """The hash naming the marker; None when Numba is not installed."""
    from importlib.util import find_spec

    try:
        spec = find_spec("numba")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    parts = []
    version = Path(spec.origin).parent / "_version.py"
    try:
        parts.append(version.read_bytes())
    except OSError:
        parts.append(spec.origin.encode())
    for source in sorted(os.listdir(KERNELS)):
        if source.endswith(".py"):
            parts += [source.encode(), (KERNELS / source).read_bytes()]
    parts += [sys.version.encode(), os.uname().machine.encode() if hasattr(os, "uname") else b"",
              _cpu()]
    parts += [f"{name}={os.environ.get(name)}".encode() for name in _ENV]
    # Two 32-bit checksums of everything: a cache key, not a defence against forgery (hashlib
    # would cost more to import than the rest of the check).
    data = b"\0".join(parts)
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def marker() -> Path | None:
    k = key()
    return None if k is None else cache_dir() / f"seqtag-warm-{k}"


def is_warm() -> bool:
    m = marker()
    return m is not None and m.exists()


def lock() -> Path:
    return cache_dir() / "seqtag-warmup.lock"


def _locked() -> bool:
    try:
        return time.time() - lock().stat().st_mtime < LOCK_SECONDS
    except OSError:
        return False


def start_warmup() -> bool:
    """Start the detached warm-up unless one is running, Numba is missing or SEQTAG_WARMUP=0;
    whether one was started. Never waits for it."""
    if os.environ.get("SEQTAG_WARMUP", "1").strip() == "0" or key() is None or _locked() \
            or not _writable(cache_dir()):
        return False
    import subprocess

    root = str(Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            "from seqtag.warmup import main; main()")
    try:
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        return False
    return True


def take_lock() -> bool:
    """Create the lock of a warm-up (False: another one holds it)."""
    path = lock()
    path.parent.mkdir(parents=True, exist_ok=True)
    if _locked():
        return False
    try:
        path.unlink()       # stale
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True
