"""The network: its layers composed once, from the architecture, over a packed batch.

  rows of ids ─▶ EmbeddingSum ⊕ CharCNN ─▶ Dropout ─▶ Recurrent ×(1|2 directions) ─▶ Dropout
             ─▶ Linear (Wya, by) ─▶ emissions E ─▶ Softmax | CRF

(the textbook model: ids ─▶ Recurrent (Wax·x<t> a sum of columns) ─▶ Linear ─▶ Softmax).
``forward`` returns the emissions and the ``backprop`` that takes dL/dE back to every parameter.
The output layer stays apart: training asks it for the loss and dL/dE, tagging for marginals and
the chain to decode (seqtag.decoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqtag.documents import FLAGS
from seqtag.encoding import unique_rows
from seqtag.layers.base import Buffers
from seqtag.layers.charcnn import CharCNN
from seqtag.layers.dropout import Dropout
from seqtag.layers.embed import EmbeddingSum
from seqtag.layers.linear import Linear
from seqtag.layers.output import CRF, Softmax
from seqtag.layers.recurrent import Recurrent
from seqtag.threads import Pool

# Sentences per chunk of a training batch: the recurrent kernels' group (seqtag.kernels.stepping
# ._GROUP), so that a chunk goes through time as one group, as the whole batch would.
CHUNK = 16


def _deal(n: int, size: int = CHUNK) -> np.ndarray:
    """The chunk of each of n sentences taken longest first: ⌈n / size⌉ chunks (at least one)
    dealt to in turn, forth then back (0, 1, 1, 0, 0, 1, ...), so that each chunk's sentences
    are about as long as the others'."""
    k = max(1, -(-n // size))
    rank = np.arange(n)
    turn, seat = rank // k, rank % k
    return np.where(turn % 2 == 0, seat, k - 1 - seat)


def chunk_bounds(n: int, size: int = CHUNK) -> np.ndarray:
    """Where each chunk of a batch of n sentences (in chunk_order) starts, and the last ends."""
    k = max(1, -(-n // size))
    return np.concatenate(([0], np.cumsum(np.bincount(_deal(n, size), minlength=k)))
                          ).astype(np.int64)


def chunk_order(lengths: np.ndarray, size: int = CHUNK) -> np.ndarray:
    """An order of a batch's sentences for chunk_bounds: longest first, dealt to the chunks
    (_deal), so that the chunks have about as many tokens (their threads finish together) and
    each is longest first already (the order the kernels step a group in)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return order[np.argsort(_deal(len(order), size), kind="stable")]


@dataclass(frozen=True)
class Architecture:
    """What the network is made of: the model file's meta["architecture"]."""

    cell: str = "rnn"
    bidirectional: bool = False
    crf: bool = False
    hidden: int = 0
    features: tuple[str, ...] = ()
    embed_dim: int = 0
    char_filters: int = 0
    char_dim: int = 0
    window: int = 0          # neighbours each side summed into the embedded input
    document: bool = False   # a document-context code per token (seqtag.documents)

    @classmethod
    def of(cls, meta: dict, params: dict) -> "Architecture":
        """From the metadata (checked against the arrays by seqtag.modelfile on load); a model
        built by hand without it (tests, format-1 files) is read from its parameter names."""
        arch = meta.get("architecture") if isinstance(meta, dict) else None
        if isinstance(arch, dict):
            return cls(cell=arch.get("cell", "rnn"),
                       bidirectional=bool(arch.get("bidirectional", False)),
                       crf=bool(arch.get("crf", False)), hidden=int(arch.get("hidden", 0) or 0),
                       features=tuple(arch.get("features") or ()),
                       embed_dim=int(arch.get("embed_dim", 0) or 0),
                       char_filters=int(arch.get("char_filters", 0) or 0),
                       char_dim=int(arch.get("char_dim", 0) or 0),
                       window=int(arch.get("window", 0) or 0),
                       document=bool(arch.get("document_context")))
        return cls(bidirectional="Wax_b" in params, crf="trans" in params,
                   hidden=params["Waa"].shape[1],
                   embed_dim=params["Ex"].shape[0] if "Ex" in params else 0,
                   char_filters=params["Wconv"].shape[0] if "Wconv" in params else 0,
                   char_dim=params["Ec"].shape[1] if "Ec" in params else 0)

    def as_meta(self) -> dict:
        return {"cell": self.cell, "bidirectional": self.bidirectional, "crf": self.crf,
                "hidden": self.hidden, "features": list(self.features),
                "embed_dim": self.embed_dim, "char_filters": self.char_filters,
                "char_dim": self.char_dim, **({"window": self.window} if self.window else {}),
                **({"document_context": list(FLAGS)} if self.document else {})}


class Network:
    """Every layer up to the emissions, plus the output layer; ``spellings`` feeds the
    character CNN (seqtag.encoding.Encoder.spellings). Dropout rates are training's: a network
    for tagging has none. ``kernels``: the inference kernels every layer's forward pass calls
    (seqtag.engines.kernel_set; Numba's by default, and always for backprop)."""

    def __init__(self, params: dict, arch: Architecture, spellings=None, *,
                 dropout: float = 0.0, input_dropout: float = 0.0, kernels=None):
        self.params = params
        self.kernels = kernels
        embedded = "Ex" in params
        has_chars = "Wconv" in params
        # Input columns the embedding sum reads: the word, its features and its window of
        # neighbours (not the word type).
        n_cols = 1 + len(arch.features) + 2 * arch.window + arch.document
        self.embed = EmbeddingSum(params, n_cols, kernels) if embedded else None
        self.chars = CharCNN(params, spellings, kernels) if has_chars else None
        self.input_dropout = Dropout(input_dropout if embedded else 0.0)
        H = params["Waa"].shape[1]
        self.directions = [Recurrent(params, arch.cell, False, 0, embedded, kernels)]
        if "Wax_b" in params:
            self.directions.append(Recurrent(params, arch.cell, True, H, embedded, kernels))
        self.state_dropout = Dropout(dropout)
        self.projection = Linear(params, "Wya", "by", kernels)
        self.output = (CRF if "trans" in params else Softmax)(params, kernels)
        self.buffers = Buffers(params["Wya"].dtype)
        # Training: chunks of CHUNK sentences, run by ``pool``; chunk 0 and row block 0 add into
        # the attached gradients, the others into their own (_Partial), added in order after.
        self.chunk = CHUNK
        self.pool = Pool(1)
        self._partials: list[_Partial] = []

    def layers(self):
        return [x for x in (self.embed, self.chars, *self.directions, self.projection,
                            self.output) if x is not None]

    def attach_grads(self, grads: dict) -> None:
        """Where backprop adds the gradients: arrays shaped as ``params``, by the same names."""
        for layer in self.layers():
            layer.grads = grads

    def reserve(self, tokens: int) -> None:
        """Scratch space for batches of up to ``tokens`` tokens, allocated now."""
        D = self.params["Wya"].shape[1]
        self.buffers.reserve("A", tokens, D)
        for d in self.directions:
            if d.embedded:
                d.slots(tokens)
                d.slots(tokens, grad=True)

    def _partial(self, i: int, n: int) -> "_Partial":
        while len(self._partials) <= i:
            self._partials.append(_Partial(self))
        part = self._partials[i]
        part.reserve(n)
        return part

    def distinct(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, inverse): a batch's distinct input rows (int32, lexicographic order) and each
        token's index among them, as train_step embeds them; None for a multi-hot network.
        Computed ahead by a caller that has a thread free (train_step(distinct=))."""
        if self.embed is None:
            return None
        rows, inverse = unique_rows(ids)
        return np.ascontiguousarray(rows, dtype=np.int32), inverse

    def train_step(self, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray,
                   rng: np.random.Generator, exact: bool = False,
                   distinct: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """The summed loss of a packed batch; adds its gradients into the attached grads.
        ``distinct``: what distinct(ids) gives, if computed ahead.

        The batch is cut into chunks of sentences (chunk_bounds) and its distinct input rows
        into as many blocks; each chunk (recurrence, output layer, loss) and each block (the
        character CNN, Wax·x and their gradients) is one work item of ``pool``, with its own
        gradient arrays, summed in item order, and its own dropout masks, from a generator
        seeded from ``rng`` in item order. The items depend on the batch alone, so the result
        is the same bits for any number of threads."""
        p, g = self.params, self.projection.grads
        dtype = p["Wya"].dtype
        N, D = len(ids), p["Wya"].shape[1]
        bounds = chunk_bounds(len(offsets) - 1, self.chunk)
        K = len(bounds) - 1
        tokens = offsets[bounds]
        embedded = self.embed is not None
        if embedded:
            rows, inverse = self.distinct(ids) if distinct is None else distinct
            n = len(rows)
            blocks = [n * b // K for b in range(K + 1)]
            d = p["Ex"].shape[0]
            F = p["Wconv"].shape[0] if self.chars is not None else 0
            X = np.empty((n, d + F), dtype)
            embed_backs = [None] * K
            in_rngs = self.input_dropout.seeds(K, rng)
            in_masks = [None] * K
            in_mask_rows = self.buffers.get("Mx", n, X.shape[1])
            step_ids = inverse.reshape(-1, 1).astype(np.int32)
            for direction in self.directions:       # allocated here, not in the threads
                direction.slots(n)
                direction.slots(n, grad=True)
            if self.chars is not None:
                self.chars.spellings()
        else:
            n, step_ids = 0, ids
        state_rngs = self.state_dropout.seeds(K, rng)
        parts = [g] + [self._partial(k, n) for k in range(1, K)]
        A = self.buffers.get("A", N, D)
        E = self.buffers.get("E", N, p["Wya"].shape[0])
        dE = self.buffers.get("dE", N, p["Wya"].shape[0])
        dA = self.buffers.get("dA", N, D)
        caches = [d.buffers.get("C", N, d.cache_width) for d in self.directions]
        state_mask_rows = self.buffers.get("Ma", N, D)      # each chunk's mask, and its
        dropped_rows = self.buffers.get("Ad", N, D)         # A ⊙ mask, in its rows

        def embed_block(b):
            lo, hi = blocks[b], blocks[b + 1]
            back = None
            # each block's rows embedded by its thread, into X's first d columns
            _, embed_backs[b] = self.embed.forward(rows[lo:hi], out=X[lo:hi])
            if self.chars is not None:
                X[lo:hi, d:], back = self.chars.forward(rows[lo:hi])
            in_masks[b] = self.input_dropout.mask((hi - lo, X.shape[1]), dtype, in_rngs[b],
                                                  in_mask_rows[lo:hi])
            if in_masks[b] is not None:
                X[lo:hi] *= in_masks[b]
            for direction in self.directions:
                direction.project(X, lo, hi)
            return back

        def run_chunk(k):
            lo, hi = tokens[k], tokens[k + 1]
            off = offsets[bounds[k]:bounds[k + 1] + 1] - lo
            chunk_ids = step_ids[lo:hi]
            backs = [direction.run(chunk_ids, off, A[lo:hi], C[lo:hi], exact)
                     for direction, C in zip(self.directions, caches)]
            state_mask = self.state_dropout.mask((hi - lo, D), dtype, state_rngs[k],
                                                 state_mask_rows[lo:hi])
            A_out = A[lo:hi] if state_mask is None else \
                np.multiply(A[lo:hi], state_mask, out=dropped_rows[lo:hi])
            self.projection.apply(A_out, E[lo:hi])
            grads = parts[k] if k == 0 else parts[k].grads
            loss, dE_k = self.output.loss(E[lo:hi], off, labels[lo:hi], grads, dE[lo:hi])
            dA_k = dA[lo:hi]
            self.projection.apply_back(A_out, dE_k, dA_k, grads)
            if state_mask is not None:
                dA_k *= state_mask
            for i, (direction, back) in enumerate(zip(self.directions, backs)):
                if embedded:
                    back(dA_k, grads, direction._dslots if k == 0 else parts[k].dslots[i])
                elif k == 0:
                    back(dA_k, grads, g[direction.Wax])
                else:
                    # Wax's gradient in the columns this chunk reads, compacted.
                    cols, local = np.unique(chunk_ids, return_inverse=True)
                    dW = np.zeros((p[direction.Wax].shape[0], len(cols)), dtype, order="F")
                    back(dA_k, grads, dW, local.reshape(chunk_ids.shape).astype(np.int32))
                    parts[k].columns[i] = (cols, dW)
            return loss

        def back_block(b):
            lo, hi = blocks[b], blocks[b + 1]
            grads = parts[b] if b == 0 else parts[b].grads
            # the chunks' gradients, in chunk order: of these slots, and a share of every other
            _accumulate([pair for part in parts[1:] for pair in
                         part.slot_pairs(lo, hi) + part.chunk_share(g, b, K)])
            dX_b = None
            for direction in self.directions:
                dX_d = direction.project_back(X, lo, hi, grads[direction.Wax])
                if dX_b is None:
                    dX_b = dX_d
                else:
                    dX_b += dX_d
            if in_masks[b] is not None:
                dX_b *= in_masks[b]
            dX[lo:hi] = dX_b
            if chars_backs[b] is not None:
                chars_backs[b](dX_b[:, d:], grads)

        if embedded:
            chars_backs = self.pool.map(embed_block, range(K))
        losses = self.pool.map(run_chunk, range(K))
        if not embedded:
            for part in parts[1:]:
                part.add_chunk_into(g)
        else:
            dX = np.empty_like(X)
            self.pool.map(back_block, range(K))
            for part in parts[1:]:
                part.add_block_into(g)
            for b in range(K):      # in block order: the rows' order, as one pass over all
                embed_backs[b](dX[blocks[b]:blocks[b + 1]])
        return float(sum(losses))

    def states(self, ids: np.ndarray, offsets: np.ndarray, rng: np.random.Generator | None = None,
               exact: bool = False, inputs=None):
        """A (N, D): each token's hidden states, the directions side by side; and backprop(dA).

        With ``rng`` the network trains: dropouts draw their masks from it (input first, then
        states) and scratch arrays are reused between batches. ``inputs`` (tagging only: no
        backprop): the batch's distinct rows with some of their x already known
        (seqtag.inputcache.InputCache.batch)."""
        train = rng is not None
        n = len(ids)
        if inputs is not None and self.embed is not None and not train:
            rows, inverse, known, kept, (P, n_p) = inputs
            k = len(kept)
            # the first n_p distinct rows have their projections kept, the next k - n_p their x
            parts = [known[kept[n_p:]]] if k > n_p else []
            if k < len(rows):       # the rows past the cache's limit, embedded here
                rest = rows[k:]
                parts.append(self.embed.forward(rest)[0])
                if self.chars is not None:
                    parts[-1] = np.concatenate([parts[-1], self.chars.forward(rest)[0]], axis=1)
            if not parts:
                dtype = self.params["Ex"].dtype
                width = self.params["Ex"].shape[0] + \
                    (self.params["Wconv"].shape[0] if self.chars is not None else 0)
                parts = [np.empty((0, width), dtype)]
            X = np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts))
            step_ids = inverse.reshape(-1, 1).astype(np.int32)
            # A lives only until forward has projected it: one array kept for every batch (a
            # fresh 1 KB per token each batch left the heap fragmented, 30 MB of it resident)
            A = self.buffers.get("A", n, self.params["Wya"].shape[1])
            for i, d in enumerate(self.directions):
                d.forward(X, step_ids, offsets, A, False, exact, True,
                          projected=(P[i], kept[:n_p]) if n_p else None)
            return A, None
        if self.embed is not None:
            # Each distinct input row is embedded (and projected by each direction) once.
            rows, inverse = unique_rows(ids)
            rows = np.ascontiguousarray(rows, dtype=np.int32)
            X, embed_back = self.embed.forward(rows)
            if self.chars is not None:
                c, chars_back = self.chars.forward(rows)
                X = np.concatenate([X, c], axis=1)
            X, input_back = self.input_dropout.forward(X, rng)
            step_ids = inverse.reshape(-1, 1).astype(np.int32)
        else:
            X, step_ids = None, ids
        D = self.params["Wya"].shape[1]
        A = self.buffers.get("A", n, D) if train else \
            np.empty((n, D), dtype=self.params["Wya"].dtype)
        direction_backs = [d.forward(X, step_ids, offsets, A, train, exact)
                           for d in self.directions]

        def backprop(dA: np.ndarray) -> None:
            dX = None
            for back in direction_backs:
                dX_d = back(dA)
                if dX is None:
                    dX = dX_d
                elif dX_d is not None:
                    dX += dX_d
            if self.embed is None:
                return
            dX = input_back(dX)
            d = self.params["Ex"].shape[0]    # x = [embedding sum (d); spelling]
            if self.chars is None:
                embed_back(dX)
            else:
                embed_back(np.ascontiguousarray(dX[:, :d]))
                chars_back(dX[:, d:])

        return A, backprop

    def forward(self, ids: np.ndarray, offsets: np.ndarray, rng: np.random.Generator | None = None,
                exact: bool = False, inputs=None):
        """Emissions E (N, L) of the packed batch ``ids`` (N, columns), and backprop(dE)
        (``inputs``: as for states)."""
        A, states_back = self.states(ids, offsets, rng, exact, inputs)
        A_out, state_back = self.state_dropout.forward(A, rng)
        E, projection_back = self.projection.forward(A_out, rng is not None)

        def backprop(dE: np.ndarray) -> None:
            states_back(state_back(projection_back(dE)))

        return E, backprop


class _Partial:
    """The gradients of one chunk and one row block after the first (Network.train_step), kept
    from batch to batch and zeroed once added."""

    def __init__(self, network: Network):
        p = network.params
        self.network = network
        dense = [d.Waa for d in network.directions] + [d.ba for d in network.directions] + \
            [network.projection.W, network.projection.b] + list(network.output.names)
        if network.embed is not None:
            dense += [d.Wax for d in network.directions]
            if network.chars is not None:
                dense += ["Ec", "Wconv", "bconv"]
        self.grads = {k: np.zeros_like(p[k], order="K") for k in dense}
        self.chunk_names = [k for k in dense if k not in
                            {d.Wax for d in network.directions} | {"Ec", "Wconv", "bconv"}]
        self.block_names = [k for k in dense if k not in self.chunk_names]
        self.dslots: list[np.ndarray] = []
        self.columns: list = [None] * len(network.directions)

    def reserve(self, n: int) -> None:
        if self.network.embed is not None and (not self.dslots or self.dslots[0].shape[1] < n):
            self.dslots = [np.zeros_like(d.slots(n, grad=True), order="F")
                           for d in self.network.directions]

    def add_chunk_into(self, g: dict) -> None:
        _accumulate([(g[k], self.grads[k]) for k in self.chunk_names])
        for i, d in enumerate(self.network.directions):
            if self.columns[i] is not None:
                cols, dW = self.columns[i]
                g[d.Wax][:, cols] += dW
                self.columns[i] = None

    def chunk_share(self, g: dict, b: int, K: int) -> list:
        """(total, part) pairs of share b of K of add_chunk_into's sums (each entry is added
        alone: any share, on any thread)."""
        pairs = []
        for k in self.chunk_names:
            own = self.grads[k]
            lo, hi = len(own) * b // K, len(own) * (b + 1) // K     # rows
            pairs.append((g[k][lo:hi], own[lo:hi]))
        return pairs

    def slot_pairs(self, lo: int, hi: int) -> list:
        """(total, part) pairs of the chunk's gradients of the slots lo..hi and the first
        chunk's."""
        return [(d._dslots[:, lo:hi], dslots[:, lo:hi])
                for d, dslots in zip(self.network.directions, self.dslots)]

    def add_block_into(self, g: dict) -> None:
        _accumulate([(g[k], self.grads[k]) for k in self.block_names])


def _accumulate(pairs) -> None:
    """total += part, part = 0 for each (total, part), in one pass and one call
    (seqtag.kernels.optim.accumulate) over rows that are contiguous in memory: vectors as one
    row, column-major arrays transposed."""
    from seqtag.kernels.optim import accumulate

    totals, parts = [], []
    for total, part in pairs:
        if total.ndim == 1:
            total, part = total[None], part[None]
        elif not total.flags.c_contiguous:
            total, part = total.T, part.T
        totals.append(total)
        parts.append(part)
    if totals:
        accumulate(tuple(totals), tuple(parts))
