"""One direction of a recurrent layer over a packed batch, its cell chosen at construction.

  Elman  a<t> = tanh(Wax·x<t> + Waa·a<t-1> + ba)
  GRU    z, r = σ(...), h̃ = tanh(Wax_h·x<t> + r ⊙ (Waa_h·a<t-1>) + ba_h), a<t> = (1-z)⊙a<t-1> + z⊙h̃
  LSTM   i, f, o = σ(...), g = tanh(...), c<t> = f⊙c<t-1> + i⊙g, a<t> = o ⊙ tanh(c<t>)

with a<0> (= c<0>) = 0, left to right or (``reverse``) right to left; the kernels hold the exact
gate layouts (seqtag.kernels.elman, .gru, .lstm). Each direction writes its H columns of the
shared state array A, starting at ``col``.

Two kinds of input. Multi-hot (the textbook model): each token is a row of Wax column indices and
Wax·x<t> is a sum of columns, read by the kernel itself. Embedded: each distinct input row of
the batch has a dense x; the layer computes P = Wax·x once per distinct row into the columns of a
"slot" array, and the kernel reads those as it would read Wax's columns (so the cells' kernels
are the same for both inputs). The kernels' gradient in a slot is dL/d(Wax·x) of that row.
"""

from __future__ import annotations

import numpy as np

from seqtag.layers.base import Buffers, Layer

# Gate blocks of H rows that Wax, Waa and ba stack, and H-wide columns per token that a cell's
# forward pass keeps for its backward pass.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CACHE = {"rnn": 0, "gru": 4, "lstm": 5}


def _kernels(cell: str, kernels):
    """(forward, backward) kernels of a cell, with one calling convention for all three: the
    forward one from the set ``kernels`` (seqtag.engines), the backward one Numba's."""
    if cell == "rnn":
        rnn_forward = kernels.rnn_forward

        def forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C):
            rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col)

        def backward(Waa, ids, offsets, reverse, A, col, C, dA, dWax, dWaa, dba, exact):
            from seqtag.kernels.elman import rnn_backward

            rnn_backward(Waa, ids, offsets, reverse, A, col, dA, dWax, dWaa, dba, exact)

        return forward, backward
    if cell == "lstm":
        def backward(*args):
            from seqtag.kernels.lstm import lstm_backward

            lstm_backward(*args)

        return kernels.lstm_forward, backward

    def backward(*args):
        from seqtag.kernels.gru import gru_backward

        gru_backward(*args)

    return kernels.gru_forward, backward


class Recurrent(Layer):
    """One direction: parameters Wax<sfx>, Waa<sfx>, ba<sfx> of ``params``."""

    def __init__(self, params: dict, cell: str, reverse: bool, col: int, embedded: bool,
                 kernels=None):
        if cell not in GATES:
            raise ValueError(f"unknown cell {cell!r}")
        sfx = "_b" if reverse else ""
        super().__init__(params, kernels)
        self.cell, self.reverse, self.col = cell, reverse, col
        self.embedded = embedded
        self.Wax, self.Waa, self.ba = "Wax" + sfx, "Waa" + sfx, "ba" + sfx
        self.hidden = params[self.Waa].shape[1]
        self._forward_kernel, self._backward_kernel = None, None
        dtype = params[self.Waa].dtype
        self.buffers = Buffers(dtype)
        self._slots: np.ndarray | None = None       # G × n, column-major (embedded input)
        self._dslots: np.ndarray | None = None
        self._no_bias = np.zeros(params[self.Waa].shape[0], dtype)

    def _cell(self):
        # Kernels are looked up at first use: importing Numba is a third of a second that
        # inspect and error paths need not pay.
        if self._forward_kernel is None:
            self._forward_kernel, self._backward_kernel = _kernels(self.cell, self.kernels)
        return self._forward_kernel, self._backward_kernel

    def slots(self, n: int, grad: bool = False) -> np.ndarray:
        """A (G, ≥ n) column-major array for Wax·x of n distinct rows (or its gradient)."""
        current = self._dslots if grad else self._slots
        if current is None or current.shape[1] < n:
            W = self.params[self.Wax]
            # zeros: the backward kernels add into the gradient slots
            current = np.zeros((W.shape[0], max(n, 256)), dtype=W.dtype, order="F")
            if grad:
                self._dslots = current
            else:
                self._slots = current
        return current

    def forward(self, X, ids: np.ndarray, offsets: np.ndarray, A: np.ndarray,
                train: bool = False, exact: bool = False, tag_only: bool = False,
                projected: tuple | None = None):
        """States into A[:, col:col+H]. X: the distinct rows' dense inputs (embedded), with
        ``ids`` each token's row; or None (multi-hot), with ``ids`` the Wax columns of each
        token. Returns backprop(dA) -> dX (None for multi-hot input); None with ``tag_only``,
        which lets the LSTM skip writing the cache only backprop reads. ``projected`` (tagging
        only): (P, types), Wax·x of ``len(types)`` distinct rows that come before those of X,
        as the rows P[types] (seqtag.inputcache)."""
        p = self.params
        forward, backward = self._cell()
        if self.embedded:
            n_p = 0 if projected is None else len(projected[1])
            n = n_p + len(X)
            slots = self.slots(n)
            # slots[:, a:b].T is a C-ordered (b - a, G) view: the rows land in the slots.
            if n_p:
                self.kernels.gather_rows(projected[0], projected[1], slots[:, :n_p].T)
            # (Numba's product, not NumPy's: BLAS threads spin on a busy machine.)
            if len(X):
                self.kernels.linear_forward(X, p[self.Wax], self._no_bias, slots[:, n_p:n].T)
            Wax = slots
        else:
            Wax = p[self.Wax]
        width = CACHE[self.cell] * self.hidden
        if train:
            C = self.buffers.get("C", len(ids), width)
        elif tag_only and self.cell == "lstm":
            # no rows: lstm_forward then writes no cache (23 MB per batch of 256 sentences with
            # the bundled model's two directions, and the time to write it)
            C = np.empty((0, width), p[self.Waa].dtype)
        elif getattr(self.kernels, "WRITES_CACHE", True):
            C = np.empty((len(ids), width), p[self.Waa].dtype)
        else:       # (what only backprop reads, and an engine that only tags does not write)
            C = None
        forward(Wax, p[self.Waa], p[self.ba], ids, offsets, self.reverse, exact, A, self.col, C)
        if tag_only:
            return None

        def backprop(dA: np.ndarray):
            """BPTT through this direction: dWaa, dba and dWax (or the slots' gradients, then
            dX = dP·Wax and dWax += dPᵀ·X)."""
            from seqtag.kernels.matmul import linear_backward

            g = self.grads
            if not self.embedded:
                backward(p[self.Waa], ids, offsets, self.reverse, A, self.col, C, dA,
                         g[self.Wax], g[self.Waa], g[self.ba], exact)
                return None
            dslots = self.slots(n, grad=True)
            backward(p[self.Waa], ids, offsets, self.reverse, A, self.col, C, dA, dslots,
                     g[self.Waa], g[self.ba], exact)
            dP = dslots[:, :n].T          # (n, G): dL/d(Wax·x) of each distinct row
            dX = np.empty_like(X)
            linear_backward(X, p[self.Wax], dP, dX, g[self.Wax],
                                    np.zeros_like(self._no_bias))
            dP[...] = 0
            return dX

        return backprop

    def project_rows(self, X: np.ndarray) -> np.ndarray:
        """Wax·x of each row of X (embedded input), as the rows of an (n, 4H) array: what
        forward computes into the slots, row for row the same bits."""
        P = np.empty((len(X), self.params[self.Wax].shape[0]), X.dtype)
        self.kernels.linear_forward(np.ascontiguousarray(X), self.params[self.Wax],
                                    self._no_bias, P)
        return P

    # -- a training batch in chunks (seqtag.network.Network.train_step) ---------------------
    # The same arithmetic as forward/backprop, cut into pieces that several threads can run:
    # the slots of a block of distinct rows, and the recurrence over a chunk of sentences with
    # the gradient arrays it adds into given by the caller.

    def project(self, X: np.ndarray, lo: int, hi: int) -> None:
        """slots[:, lo:hi] = Wax·x of the distinct rows X[lo:hi] (embedded input)."""
        from seqtag.kernels.matmul import linear_forward

        slots = self.slots(len(X))
        linear_forward(X[lo:hi], self.params[self.Wax], self._no_bias, slots[:, lo:hi].T)

    def project_back(self, X: np.ndarray, lo: int, hi: int, dWax: np.ndarray) -> np.ndarray:
        """dX = dP·Wax of the rows X[lo:hi], dWax += dPᵀ·X there (dP: their slots' gradient,
        zeroed after)."""
        from seqtag.kernels.matmul import linear_backward

        dP = self.slots(len(X), grad=True)[:, lo:hi].T
        dX = np.empty((hi - lo, X.shape[1]), X.dtype)
        linear_backward(X[lo:hi], self.params[self.Wax], dP, dX, dWax,
                        np.zeros_like(self._no_bias))
        dP[...] = 0
        return dX

    def run(self, ids: np.ndarray, offsets: np.ndarray, A: np.ndarray, C: np.ndarray,
            exact: bool = False):
        """States of one chunk of sentences into A (its rows), its cache into C; reads the
        slots (embedded) or Wax. Returns back(dA, grads, dinput): BPTT adding into grads' Waa
        and ba, and into dinput, the slots' gradient (embedded) or Wax's, by ``ids``."""
        forward, backward = self._cell()
        p = self.params
        Wax = self._slots if self.embedded else p[self.Wax]
        forward(Wax, p[self.Waa], p[self.ba], ids, offsets, self.reverse, exact, A, self.col, C)

        def back(dA: np.ndarray, grads: dict, dinput: np.ndarray, input_ids=None) -> None:
            backward(p[self.Waa], ids if input_ids is None else input_ids, offsets,
                     self.reverse, A, self.col, C, dA, dinput, grads[self.Waa], grads[self.ba],
                     exact)

        return back

    @property
    def cache_width(self) -> int:
        return CACHE[self.cell] * self.hidden
