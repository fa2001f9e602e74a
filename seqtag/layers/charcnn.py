"""The character CNN: c = tanh(max over windows w of Wconv·[Ec columns of w] + bconv)."""

from __future__ import annotations

import numpy as np

from seqtag.layers.base import Layer

CHAR_WIDTH = 3          # characters per window


class CharCNN(Layer):
    """Maps word types (the last entry of each input row) to the vector of their spelling.

    ``spellings()`` gives every word type's character ids end to end and where each starts (the
    encoder keeps them: seqtag.encoding.Encoder.spellings)."""

    def __init__(self, params: dict, spellings, kernels=None):
        super().__init__(params, kernels)
        self.spellings = spellings

    def forward(self, rows: np.ndarray):
        p = self.params
        spelled, starts = self.spellings()
        types = np.ascontiguousarray(rows[:, -1])
        c = np.empty((len(rows), p["Wconv"].shape[0]), dtype=p["Wconv"].dtype)
        arg = np.empty(c.shape, dtype=np.int32)     # each filter's winning window
        self.kernels.charcnn_forward(p["Ec"], p["Wconv"], p["bconv"], spelled, starts, types, CHAR_WIDTH,
                        c, arg)

        def backprop(dc: np.ndarray, grads: dict | None = None) -> None:
            """Through tanh and the winning window of each filter into Ec, Wconv and bconv (of
            ``grads``, by default the attached ones)."""
            from seqtag.kernels.charcnn import charcnn_backward

            g = self.grads if grads is None else grads
            charcnn_backward(p["Ec"], p["Wconv"], spelled, starts, types, CHAR_WIDTH, c, arg,
                             np.ascontiguousarray(dc), g["Ec"], g["Wconv"], g["bconv"])

        return c, backprop
