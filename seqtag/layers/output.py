"""The output layer over emissions e<t> = Wya·a<t> + by: a per-token softmax or a linear-chain
CRF. Either is a linear chain for decoding (``chain``): potentials U (T, L) and transition scores
whose normalised path scores are the model's sequence probabilities.

  Softmax  ŷ<t> = softmax(e<t>), loss -Σt log ŷ<t>[y_t];  chain: U = log ŷ, no transitions
  CRF      P(y | x) ∝ exp(start[y_0] + Σt e<t>[y_t] + Σt trans[y_{t-1}, y_t] + end[y_{T-1}]),
           loss -log P(y | x);  chain: U = e, its own transitions

With a temperature τ (a fitted model's, seqtag.calibration) every score is divided by τ before
probabilities are computed: ŷ<t> = softmax(e<t>/τ), and the CRF's e, trans, start and end / τ.
The best labels do not change (dividing every path score by τ > 0 keeps their order); training
runs at τ = 1.
"""

from __future__ import annotations

import numpy as np

from seqtag.layers.base import Buffers, Layer


class Softmax(Layer):
    names: tuple[str, ...] = ()
    decodes_from_marginals = True     # its chain is log ŷ
    temperature = 1.0

    def __init__(self, params: dict, kernels=None):
        super().__init__(params, kernels)
        self.buffers = Buffers(params["Wya"].dtype)

    def loss(self, E: np.ndarray, offsets: np.ndarray, labels: np.ndarray, grads=None,
             dE=None):
        """(summed cross-entropy, dL/dE) (into ``dE`` if given)."""
        from seqtag.kernels.softmax import softmax_xent

        if dE is None:
            dE = self.buffers.get("dE", *E.shape)
        return softmax_xent(E, labels, False, dE), dE

    def marginals(self, E: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """ŷ<t> of every token."""
        P = E.copy() if self.temperature == 1.0 else E * np.float32(1 / self.temperature)
        self.kernels.softmax_rows(P, False)
        return P

    def chain(self, E: np.ndarray, offsets: np.ndarray, P: np.ndarray | None = None):
        """(U, trans, start, end): the path probability is Π ŷ<t>[y_t], at τ = 1 (under the
        tag scheme's constraints, per-token log ŷ at another τ could change the best path)."""
        if P is None or self.temperature != 1.0:
            P = E.copy()
            self.kernels.softmax_rows(P, False)
        L = E.shape[1]
        zero = np.zeros(L, np.float32)
        return np.log(np.maximum(P, 1e-30)), np.zeros((L, L), np.float32), zero, zero


class CRF(Layer):
    names = ("trans", "start", "end")
    decodes_from_marginals = False
    temperature = 1.0

    def __init__(self, params: dict, kernels=None):
        super().__init__(params, kernels)
        self.buffers = Buffers(params["Wya"].dtype)

    def loss(self, E: np.ndarray, offsets: np.ndarray, labels: np.ndarray, grads=None,
             dE=None):
        """(summed -log P(y | x), dL/dE); adds dtrans, dstart, dend into ``grads`` (by default
        the attached ones), dL/dE into ``dE`` if given."""
        from seqtag.kernels.crf import crf_nll

        p, g = self.params, self.grads if grads is None else grads
        if dE is None:
            dE = self.buffers.get("dE", *E.shape)
        loss = crf_nll(E, offsets, labels, p["trans"], p["start"], p["end"], dE,
                       g["trans"], g["start"], g["end"])
        return loss, dE

    def marginals(self, E: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """P(y<t> = j | x) by forward-backward."""
        U, trans, start, end = self.chain(E, offsets)
        P = np.empty_like(E)
        self.kernels.crf_marginals(U, offsets, trans, start, end, P)
        return P

    def chain(self, E: np.ndarray, offsets: np.ndarray, P: np.ndarray | None = None):
        p = self.params
        if self.temperature == 1.0:
            return E, p["trans"], p["start"], p["end"]
        s = np.float32(1 / self.temperature)
        return E * s, p["trans"] * s, p["start"] * s, p["end"] * s
