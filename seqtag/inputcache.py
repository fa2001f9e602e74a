"""The embedded inputs of the word types a tagging stream has met, kept from batch to batch.

A network with embeddings and a character CNN turns each distinct input row of a batch into
x = [Σ Ex columns of the word and its features ; the CNN's vector of its spelling] before its
recurrence. Each batch did that for every distinct row it holds: 334k rows for the 962k tokens of
bench_whole's big.txt, of which 72k are distinct over the whole stream, the same frequent words
again in every batch. A row's last entry is its word type (seqtag.encoding: numbered once per
token string, so the type stands for the whole row), so x can be kept by type and read back.

Only the Numba engine's x are kept: its embedding and CNN kernels compute each row on its own
(one loop per row, the same operations whatever else the batch holds), so a kept row has the
bits its batch would have computed (tests compare the two paths). Models with a window of
neighbours, or with document context (whose rows depend on the neighbours, or on the other
sentences of the document, not on the word type alone), do not use it.

The thread that prepares the batches, in input order, fills the rows of the types a batch brings;
the tagging threads read only types marked as kept before their batch was prepared, which are
never written again (a fresh array is made when the encoder numbers its types anew), so no lock
is needed.
"""

from __future__ import annotations

import numpy as np

# Word types kept: 65,536 × 150 float32 (the bundled model) is 39 MB at most, touched as it
# fills; a type past it is embedded by its batch, as before. On big.txt 2% of a batch's distinct
# rows are past it.
LIMIT = 65_536


class InputCache:
    """x of the word types below ``limit`` that batches have brought."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.X: np.ndarray | None = None
        self.kept: np.ndarray | None = None      # kept[type]: its row of X is written
        self.generation = 0

    def batch(self, network, ids: np.ndarray, generation: int) -> tuple:
        """The batch ``ids`` (rows whose last entry is the word type) as (rows: its distinct
        rows, inverse: each token's index among them, X, kept: how many of the distinct rows,
        the first ones, have their x in X[types]) for Network.forward(inputs=), after embedding
        with ``network`` (the Numba one, in this thread) the types of the batch not kept yet.
        ``generation``: the encoder's (Encoder.generation: a new one numbers types anew)."""
        if generation != self.generation or self.kept is None:
            self.X, self.kept = None, np.zeros(self.limit, bool)
        self.generation = generation
        types, first, inverse = np.unique(ids[:, -1], return_index=True, return_inverse=True)
        n_kept = int(np.searchsorted(types, self.limit))
        new = np.flatnonzero(~self.kept[types[:n_kept]])
        if len(new):
            rows = np.ascontiguousarray(ids[first[new]])
            X = network.embed.forward(rows)[0]
            if network.chars is not None:
                X = np.concatenate([X, network.chars.forward(rows)[0]], axis=1)
            if self.X is None:
                self.X = np.empty((self.limit, X.shape[1]), X.dtype)
            self.X[types[new]] = X
            self.kept[types[new]] = True
        return (np.ascontiguousarray(ids[first]), inverse.reshape(-1), self.X, types[:n_kept])
