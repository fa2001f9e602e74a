"""The output layer's loss and probabilities: softmax over each row of label scores.

Both kernels take a row's maximum off before exp (so that exp cannot overflow), exponentiate the
whole batch at once (_exp_in_place), then scale each row by 1 / its sum."""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.simd import _exp_in_place


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _shift_by_max(e, d):
    """d[k] = e[k] - max(e) for each k (d may be e); returns max(e)."""
    top = e[0]
    for k in range(1, e.shape[0]):
        top = max(top, e[k])
    for k in range(e.shape[0]):
        d[k] = e[k] - top
    return top


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _normalise(d, one):
    """d /= Σk d[k], as d[k] *= 1 / Σ (summed left to right); returns the sum."""
    total = d[0]
    for k in range(1, d.shape[0]):
        total += d[k]
    inv = one / total
    for k in range(d.shape[0]):
        d[k] *= inv
    return total


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def softmax_xent(E, labels, exact, dE):
    """ŷ[i] = softmax(E[i]); returns Σi -log ŷ[i, labels[i]]; dE = ŷ - onehot(labels).

    -log ŷ[i, y] = log Σk exp(E[i, k] - max) - (E[i, y] - max). dE may be E itself.
    """
    N, L = E.shape
    loss = 0.0
    for i in range(N):
        _shift_by_max(E[i], dE[i])
        loss -= dE[i, labels[i]]
    _exp_in_place(dE.reshape(N * L), exact)
    one = dE.dtype.type(1)
    for i in range(N):
        loss += np.log(_normalise(dE[i], one))
        dE[i, labels[i]] -= one
    return loss


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def softmax_rows(E, exact):
    """E[i] = softmax(E[i]) = exp(E[i] - max) / Σk exp(E[i, k] - max), in place (prediction)."""
    N, L = E.shape
    for i in range(N):
        _shift_by_max(E[i], E[i])
    _exp_in_place(E.reshape(N * L), exact)
    one = E.dtype.type(1)
    for i in range(N):
        _normalise(E[i], one)
