"""The output projection e<t> = Wya·a<t> + by."""

from __future__ import annotations

import numpy as np

from seqtag.layers.base import Buffers, Layer


class Linear(Layer):
    """Y = X·Wᵀ + b for the rows X of a packed batch (``W``/``b`` name the parameters)."""

    def __init__(self, params: dict, W: str = "Wya", b: str = "by", kernels=None):
        super().__init__(params, kernels)
        self.W, self.b = W, b
        self.buffers = Buffers(params[W].dtype)

    def forward(self, X: np.ndarray, train: bool = False):
        W, b = self.params[self.W], self.params[self.b]
        n = len(X)
        Y = self.buffers.get("Y", n, W.shape[0]) if train else \
            np.empty((n, W.shape[0]), dtype=W.dtype)
        self.kernels.linear_forward(X, W, b, Y)

        def backprop(dY: np.ndarray) -> np.ndarray:
            """dX = dY·W;  dW += dYᵀ·X;  db += Σ dY."""
            from seqtag.kernels.matmul import linear_backward

            dX = self.buffers.get("dX", n, W.shape[1])
            linear_backward(X, W, dY, dX, self.grads[self.W], self.grads[self.b])
            return dX

        return Y, backprop

    def apply(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Y = X·Wᵀ + b into Y (a chunk's rows)."""
        from seqtag.kernels.matmul import linear_forward

        linear_forward(X, self.params[self.W], self.params[self.b], Y)

    def apply_back(self, X: np.ndarray, dY: np.ndarray, dX: np.ndarray, grads: dict) -> None:
        """dX = dY·W into dX;  dW += dYᵀ·X and db += Σ dY into ``grads``."""
        from seqtag.kernels.matmul import linear_backward

        linear_backward(X, self.params[self.W], dY, dX, grads[self.W], grads[self.b])
