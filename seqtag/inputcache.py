"""The embedded inputs of the word types a tagging stream has met, kept from batch to batch.

A network with embeddings and a character CNN turns each distinct input row of a batch into
x = [Σ Ex columns of the word and its features ; the CNN's vector of its spelling] before its
recurrence. Each batch did that for every distinct row it holds: 334k rows for the 962k tokens of
bench_whole's big.txt, of which 72k are distinct over the whole stream, the same frequent words
again in every batch. A row's last entry is its word type (seqtag.encoding: numbered once per
token string, so the type stands for the whole row), so x can be kept by type and read back.

The most frequent types' projections are kept too: each direction's Wax·x, which the recurrent
layer would compute again for every batch (Recurrent.forward). They take 4H floats a direction
(4 KB a type with the bundled model), so only the first PROJECTED types (numbered by first sight,
so mostly the frequent words) have them, and no x: 67% of big.txt's tokens, 37% of the distinct
rows its batches project (8,192 types: 76% and 53%, for 16 MB more and no faster).

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
# Word types whose projections are kept instead of their x: 4,096 × 2 directions × 512 float32
# is 16 MB at most.
PROJECTED = 4_096


class InputCache:
    """x of the word types below ``limit`` that batches have brought."""

    def __init__(self, limit: int = LIMIT, projected: int = PROJECTED):
        self.limit = limit
        self.projected = min(projected, limit)
        self.X: np.ndarray | None = None
        self.P: list[np.ndarray] | None = None   # each direction's Wax·x, by type
        self.kept: np.ndarray | None = None      # kept[type]: its row of X (or of P) is written
        self.generation = 0

    def batch(self, network, ids: np.ndarray, generation: int) -> tuple:
        """The batch ``ids`` (rows whose last entry is the word type) as (rows: its distinct
        rows, in the order of their types; inverse: each token's index among them; X; kept:
        the types of the first distinct rows, whose x is X[type] or, for the first n_p of them,
        whose projections are P[d][type]; (P, n_p)) for Network.forward(inputs=), after
        embedding (and projecting) with ``network`` (the Numba one, in this thread) the types
        of the batch not kept yet. ``generation``: the encoder's (Encoder.generation: a new one
        numbers types anew)."""
        if generation != self.generation or self.kept is None:
            self.X, self.P, self.kept = None, None, np.zeros(self.limit, bool)
        self.generation = generation
        types, first, inverse = np.unique(ids[:, -1], return_index=True, return_inverse=True)
        n_kept = int(np.searchsorted(types, self.limit))
        n_p = int(np.searchsorted(types, self.projected))
        new = np.flatnonzero(~self.kept[types[:n_kept]])
        if len(new):
            rows = np.ascontiguousarray(ids[first[new]])
            X = network.embed.forward(rows)[0]
            if network.chars is not None:
                X = np.concatenate([X, network.chars.forward(rows)[0]], axis=1)
            projected = int(np.searchsorted(new, n_p))       # the new rows of types < projected
            if projected:
                if self.P is None:
                    self.P = [np.empty((self.projected, d.params[d.Wax].shape[0]), X.dtype)
                              for d in network.directions]
                for P, d in zip(self.P, network.directions):
                    P[types[new[:projected]]] = d.project_rows(X[:projected])
            if projected < len(new):
                if self.X is None:
                    self.X = np.empty((self.limit, X.shape[1]), X.dtype)
                self.X[types[new[projected:]]] = X[projected:]
            self.kept[types[new]] = True
        return (np.ascontiguousarray(ids[first]), inverse.reshape(-1), self.X, types[:n_kept],
                (self.P, n_p))
