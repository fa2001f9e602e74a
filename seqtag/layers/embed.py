"""The embedding sum: x_e = Σ_f Ex[:, ids_f], the columns of a token's word and its features."""

from __future__ import annotations

import numpy as np

from seqtag.layers.base import Layer


class EmbeddingSum(Layer):
    """Reads the first ``n_cols`` entries of each input row (the word, then each feature value,
    as columns of Ex); any later entry (the word type of the character CNN) is not its own."""

    def __init__(self, params: dict, n_cols: int, kernels=None):
        super().__init__(params, kernels)
        self.n_cols = n_cols

    def forward(self, rows: np.ndarray, out: np.ndarray | None = None):
        """x_e of each row and its backprop. ``out`` (C-ordered, at least d columns): x_e is
        written into its first d columns and out is returned, so that a caller that sets the
        character CNN's columns beside them (Network.train_step, a block of rows per thread)
        copies nothing; backprop then reads the first d columns of a dX as wide as out."""
        Ex = self.params["Ex"]
        X = np.empty((len(rows), Ex.shape[0]), dtype=Ex.dtype) if out is None else out
        self.kernels.embed_sum(Ex, rows, self.n_cols, X)

        def backprop(dX: np.ndarray) -> None:
            """dEx[:, ids_f] += dx_e for every row and f (lazily stepped columns)."""
            from seqtag.kernels.embed import embed_scatter

            embed_scatter(dX, rows, self.n_cols, self.grads["Ex"])

        return X, backprop
