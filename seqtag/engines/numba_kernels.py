"""The inference kernels of the Numba engine, by the names of seqtag.engines.numpy_kernels: each
is imported from its seqtag.kernels module on first use, so that choosing this set imports (and
loads from Numba's cache, or compiles) only the kernels a model calls."""

from importlib import import_module

_MODULES = {
    "embed_sum": "embed", "charcnn_forward": "charcnn", "linear_forward": "matmul",
    "rnn_forward": "elman", "lstm_forward": "lstm", "gru_forward": "gru",
    "softmax_rows": "softmax", "crf_marginals": "crf", "crf_log_partition": "crf",
    "viterbi": "crf", "nbest": "crf",
}


def __getattr__(name):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module("seqtag.kernels." + module), name)
    globals()[name] = value
    return value
