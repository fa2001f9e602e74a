"""The inference kernels of the Numba engine, by the names of seqtag.engines.numpy_kernels: each
is imported from its seqtag.kernels module on first use, so that choosing this set imports (and
loads from Numba's cache, or compiles) only the kernels a model calls. Loading Numba and its
kernels faults in much of LLVM's code, which tagging then never runs: each kernel here gives
those pages back after a call that loaded a version of it (seqtag.residency)."""

import sys
import threading
from importlib import import_module

_MODULES = {
    "embed_sum": "embed", "gather_rows": "embed", "charcnn_forward": "charcnn",
    "linear_forward": "matmul",
    "rnn_forward": "elman", "lstm_forward": "lstm", "gru_forward": "gru",
    "softmax_rows": "softmax", "crf_marginals": "crf", "crf_log_partition": "crf",
    "viterbi": "crf", "nbest": "crf",
}


# One thread at a time imports Numba and the kernel modules. auto moves a stream to Numba between
# two batches, and each tagging thread makes its first Numba call when its next batch comes: a
# thread that found "numba" in sys.modules while another was still importing it went on to import
# seqtag.kernels (and numba.np.arraymath under it) against the half-imported package (Python does
# not wait for a parent package that is in sys.modules), and a kernel call then failed with
# "module 'numba' has no attribute 'core'".
_importing = threading.RLock()


def __getattr__(name):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _importing:
        value = globals().get(name)
        if value is None:
            if "numba" not in sys.modules:
                _import_numba()
            value = _releasing(getattr(import_module("seqtag.kernels." + module), name))
            globals()[name] = value
    return value


def _releasing(kernel):
    """``kernel`` (a Numba dispatcher), giving back the compiler's pages after any call that
    loaded (or compiled) a version of it: each load from the cache touches 50-100 MB of LLVM's
    code again (seqtag.residency)."""
    from seqtag.residency import release_compiler_pages

    def call(*args):
        n = len(kernel.overloads)
        result = kernel(*args)
        if len(kernel.overloads) != n:
            release_compiler_pages()
        return result

    call.__name__ = call.__qualname__ = kernel.__name__
    call.__doc__ = kernel.__doc__
    call.py_func = kernel.py_func
    return call


def _import_numba() -> None:
    """Import Numba with the least resident memory: the heap's free pages (the NumPy engine's
    batches, when auto moves a stream here) are given back first, and the pages of LLVM's code
    that importing it faults in (about 95 MB, which tagging never runs) after
    (seqtag.residency)."""
    from seqtag.residency import release_compiler_pages, trim_heap

    trim_heap()
    import numba  # noqa: F401

    release_compiler_pages()
