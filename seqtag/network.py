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

from seqtag.encoding import unique_rows
from seqtag.layers.base import Buffers
from seqtag.layers.charcnn import CharCNN
from seqtag.layers.dropout import Dropout
from seqtag.layers.embed import EmbeddingSum
from seqtag.layers.linear import Linear
from seqtag.layers.output import CRF, Softmax
from seqtag.layers.recurrent import Recurrent


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
                       char_dim=int(arch.get("char_dim", 0) or 0))
        return cls(bidirectional="Wax_b" in params, crf="trans" in params,
                   hidden=params["Waa"].shape[1],
                   embed_dim=params["Ex"].shape[0] if "Ex" in params else 0,
                   char_filters=params["Wconv"].shape[0] if "Wconv" in params else 0,
                   char_dim=params["Ec"].shape[1] if "Ec" in params else 0)

    def as_meta(self) -> dict:
        return {"cell": self.cell, "bidirectional": self.bidirectional, "crf": self.crf,
                "hidden": self.hidden, "features": list(self.features),
                "embed_dim": self.embed_dim, "char_filters": self.char_filters,
                "char_dim": self.char_dim}


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
        # Input columns the embedding sum reads: the word and its features (not the word type).
        n_cols = 1 + len(arch.features)
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

    def states(self, ids: np.ndarray, offsets: np.ndarray, rng: np.random.Generator | None = None,
               exact: bool = False):
        """A (N, D): each token's hidden states, the directions side by side; and backprop(dA).

        With ``rng`` the network trains: dropouts draw their masks from it (input first, then
        states) and scratch arrays are reused between batches."""
        train = rng is not None
        n = len(ids)
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
                exact: bool = False):
        """Emissions E (N, L) of the packed batch ``ids`` (N, columns), and backprop(dE)."""
        A, states_back = self.states(ids, offsets, rng, exact)
        A_out, state_back = self.state_dropout.forward(A, rng)
        E, projection_back = self.projection.forward(A_out, rng is not None)

        def backprop(dE: np.ndarray) -> None:
            states_back(state_back(projection_back(dE)))

        return E, backprop
