"""Inference engines: which set of kernels runs a model's forward pass when it tags.

  numba   seqtag.kernels (compiled by Numba, cached on disk): the fastest on large inputs, but
          importing Numba and loading its cache costs about half a second per process, and the
          first run after an install compiles the kernels (tens of seconds).
  numpy   seqtag.engines.numpy_kernels (NumPy alone): nothing to compile or load, the same
          labels; the one for short inputs, and wherever Numba is missing.
  auto    (the default) NumPy, then Numba once a stream has passed SWITCH_TOKENS tokens (or
          from the start, when the inputs' sizes say it will: Engine.expect) and the
          Numba kernels are known to be compiled for this machine (seqtag.engines.warm's marker).
          When they are not, a detached background process compiles them (once; it never delays
          the tagging process), and this run stays on NumPy: no call ever waits for a compiler.

Both sets have the same names and calling conventions (numpy_kernels' docstring); the layers
take one set at construction (seqtag.network.Network(kernels=...)). Training always uses Numba.
"""

from __future__ import annotations

import os
import threading

ENGINES = ("auto", "numpy", "numba")

# Tokens tagged with NumPy before auto moves to Numba. NumPy tags the bundled model at about
# 0.85-0.9x Numba's speed once Numba is loaded, and loading it (import, cache) costs 0.6-1 s: a
# stream gains from the switch only after several hundred thousand tokens. Switching when NumPy's
# extra time so far is about Numba's load time (the ski-rental rule) keeps any stream within
# about twice the best choice, and never loads Numba for the short inputs most calls are.
SWITCH_TOKENS = 250_000


# Any of these set (by the user, or by the CLI before NumPy loads): BLAS threads are decided.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_controller = None


def blas_threads():
    """A context in which the BLAS under NumPy runs one thread, for the NumPy engine's products:
    they are small (a batch's states by Waa, step after step) and OpenBLAS's other threads spin
    between them, which made tagging 7x slower on this project's busy 2-core machine. Nothing
    is changed when one of BLAS_VARIABLES is set (the user's choice, or the CLI's) or when
    threadpoolctl is missing. Tagging threads may enter it at once: the limit is set by the
    first to enter and restored by the last to leave (the pool's size is process-wide)."""
    global _controller
    from contextlib import nullcontext

    if any(v in os.environ for v in BLAS_VARIABLES):
        return nullcontext()
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _SharedLimit() if _controller else nullcontext()


class _SharedLimit:
    lock = threading.Lock()
    depth = 0
    limit = None

    def __enter__(self):
        cls = type(self)
        with cls.lock:
            if cls.depth == 0:
                cls.limit = _controller.limit(limits=1, user_api="blas")
            cls.depth += 1

    def __exit__(self, *exc):
        cls = type(self)
        with cls.lock:
            cls.depth -= 1
            if cls.depth == 0:
                cls.limit.restore_original_limits()
                cls.limit = None
        return False


def kernel_set(name: str):
    """The kernels of engine ``name`` ("numpy" or "numba") as a module of functions."""
    if name == "numpy":
        from seqtag.engines import numpy_kernels

        return numpy_kernels
    if name == "numba":
        from seqtag.engines import numba_kernels

        return numba_kernels
    raise ValueError(f"unknown engine {name!r} (use {', '.join(ENGINES)})")


def check_engine(name: str) -> str:
    from seqtag.errors import SeqtagError

    if name not in ENGINES:
        raise SeqtagError(f"unknown engine {name!r}", hint=f"use {', '.join(ENGINES)}")
    if name == "numba" and not numba_available():
        raise SeqtagError("the numba engine needs Numba, which cannot be imported here",
                          hint="install numba, or use --engine numpy (or auto)")
    return name


def numba_available() -> bool:
    """Whether Numba can be imported (found without importing it; a broken install is found
    out on first use, and auto then stays on NumPy)."""
    from importlib.util import find_spec

    try:
        return find_spec("numba") is not None
    except (ImportError, ValueError):        # sys.modules["numba"] = None gives ValueError
        return False


class Engine:
    """The engine of one model: ``choose(tokens)`` before each batch names the kernel set for
    it ("numpy" or "numba"); for "auto", by the tokens seen so far and the warm-up marker."""

    def __init__(self, requested: str = "auto"):
        if requested not in ENGINES:
            raise ValueError(f"unknown engine {requested!r} (use {', '.join(ENGINES)})")
        self.requested = requested
        self.current = "numpy" if requested == "auto" else requested
        self.tokens = 0
        self.expected = 0
        self._warm_checked = False

    def expect(self, tokens: int) -> None:
        """``tokens`` are known to be coming (estimated from the inputs' sizes): with auto, a
        stream that will pass SWITCH_TOKENS takes Numba from its first batch (when the kernels
        are warm) rather than after SWITCH_TOKENS tokens on NumPy, which cost 13% of the wall
        time of a 1M-token file."""
        self.expected = max(self.expected, int(tokens))

    def choose(self, tokens: int) -> str:
        if self.requested != "auto" or self.current == "numba":
            return self.current
        self.tokens += tokens
        if not self._warm_checked:
            # Once per engine: a compiled set stays compiled, a missing one is being compiled
            # by the warm-up this starts (or by one already running).
            self._warm_checked = True
            from seqtag.engines import warm

            self._warm = warm.is_warm()
            if not self._warm:
                warm.start_warmup()
        if self._warm and max(self.tokens, self.expected) >= SWITCH_TOKENS:
            self.current = "numba"
        return self.current

    @property
    def settled(self) -> bool:
        """Whether choose's answer no longer depends on the tokens it is given (an explicit
        engine, auto on Numba, or auto that found Numba's kernels cold): a caller that has to
        count tokens to call choose (seqtag.distributed, ahead of the workers) can stop."""
        return (self.requested != "auto" or self.current == "numba"
                or (self._warm_checked and not self._warm))

    def fall_back(self) -> None:
        """Numba failed to import: NumPy for the rest of this model's life."""
        self.requested = self.current = "numpy"
