"""What every layer has (the shared parameters, the gradients backprop adds into) and grow-only
scratch arrays, so that batch after batch reuses one allocation."""

from __future__ import annotations

import numpy as np


class Buffers:
    """``get(name, rows, width)`` is the first ``rows`` rows of a C-ordered (≥ rows, width)
    array kept under ``name``; it is reallocated only when a larger batch comes. The contents
    are whatever the last user left: callers write before they read."""

    def __init__(self, dtype):
        self.dtype = dtype
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, rows: int, width: int) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape[0] < rows or a.shape[1] != width:
            a = self._arrays[name] = np.empty((rows, width), self.dtype)
        return a[:rows]

    def reserve(self, name: str, rows: int, width: int) -> None:
        """Allocate for ``rows`` now (a trainer knows its largest batch before the first)."""
        self.get(name, rows, width)


class Layer:
    """A layer reads its parameters by name from ``params`` (shared by every layer) and, in
    backprop, adds its gradients into the same names of ``grads`` (Network.attach_grads). Its
    forward pass calls the inference kernels of ``kernels`` (seqtag.engines.kernel_set: the
    Numba set unless given); backprop always calls Numba's."""

    def __init__(self, params: dict, kernels=None):
        self.params = params
        self.grads: dict | None = None
        if kernels is None:
            from seqtag.engines import numba_kernels as kernels
        self.kernels = kernels
