"""The output layer's loss and probabilities: softmax over each row of label scores."""

import numpy as np
from numba import njit

from seqtag.kernels.simd import _exp_in_place

@njit(cache=True, fastmath=True, error_model="numpy")
def softmax_xent(E, labels, exact, dE):
    """ŷ[i] = softmax(E[i]); returns Σi -log ŷ[i, labels[i]]; dE = ŷ - onehot(labels).

    -log ŷ[i, y] = log Σk exp(E[i, k] - max) - (E[i, y] - max), the row maximum subtracted so that
    exp cannot overflow. dE may be E itself.
    """
    N, L = E.shape
    loss = 0.0
    for i in range(N):
        e = E[i]
        top = e[0]
        for k in range(1, L):
            top = max(top, e[k])
        d = dE[i]
        for k in range(L):
            d[k] = e[k] - top
        loss -= d[labels[i]]
    _exp_in_place(dE.reshape(N * L), exact)
    one = dE.dtype.type(1)
    for i in range(N):
        d = dE[i]
        total = d[0]
        for k in range(1, L):
            total += d[k]
        loss += np.log(total)
        inv = one / total
        for k in range(L):
            d[k] *= inv
        d[labels[i]] -= one
    return loss


@njit(cache=True, fastmath=True, error_model="numpy")
def softmax_rows(E, exact):
    """E[i] = softmax(E[i]) = exp(E[i] - max) / Σk exp(E[i, k] - max), in place (prediction)."""
    N, L = E.shape
    for i in range(N):
        e = E[i]
        top = e[0]
        for k in range(1, L):
            top = max(top, e[k])
        for k in range(L):
            e[k] -= top
    _exp_in_place(E.reshape(N * L), exact)
    one = E.dtype.type(1)
    for i in range(N):
        e = E[i]
        total = e[0]
        for k in range(1, L):
            total += e[k]
        inv = one / total
        for k in range(L):
            e[k] *= inv
