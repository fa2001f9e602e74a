"""Optimizer steps: SGD and (lazy) Adam, on the dense parameters and on the touched columns of the
Fortran-ordered input matrix Wax."""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _sgd(p, g, lr_scale):
    """p -= lr·scale·g;  g = 0."""
    step = p.dtype.type(lr_scale)
    for i in range(p.shape[0]):
        p[i] -= step * g[i]
        g[i] = 0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _adam(p, g, m, v, scale, lr_t, b1, b2, eps):
    """m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  p -= lr_t·m/(√v + ε);  g = 0.

    lr_t carries the bias correction lr·√(1-β2^k)/(1-β1^k); g is first multiplied by scale
    (the 1/tokens mean and the clipping factor). Computed in the parameters' precision.
    """
    real = p.dtype.type
    s, lr, beta1, beta2, epsilon = real(scale), real(lr_t), real(b1), real(b2), real(eps)
    one = real(1)
    for i in range(p.shape[0]):
        gi = g[i] * s
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * mi / (np.sqrt(vi) + epsilon)
        g[i] = 0


@njit(cache=True, nogil=True)
def sgd_step(params, grads, Wax, dWax, cols, lr_scale):
    """SGD on the dense parameters and on the touched columns of Wax; zeroes the gradients.

    params, grads: tuples of the dense parameters and gradients as flat arrays.
    """
    for k in range(len(params)):
        _sgd(params[k], grads[k], lr_scale)
    WaxT, dWaxT = Wax.T, dWax.T  # rows of these are the (contiguous) columns of Wax, dWax
    for c in cols:
        _sgd(WaxT[c], dWaxT[c], lr_scale)


@njit(cache=True, nogil=True)
def adam_step(params, grads, ms, vs, Wax, dWax, mWax, vWax, cols, scale, lr_t, b1, b2, eps):
    """Adam on the dense parameters; lazy Adam (moments of touched columns only) on Wax.

    params, grads, ms, vs: tuples of the dense parameters, gradients and moments as flat arrays.
    """
    for k in range(len(params)):
        _adam(params[k], grads[k], ms[k], vs[k], scale, lr_t, b1, b2, eps)
    WaxT, dWaxT, mWaxT, vWaxT = Wax.T, dWax.T, mWax.T, vWax.T  # rows: columns of Wax, ...
    for c in cols:
        _adam(WaxT[c], dWaxT[c], mWaxT[c], vWaxT[c], scale, lr_t, b1, b2, eps)


@njit(cache=True, nogil=True, error_model="numpy")
def sum_squares(g):
    """Σ g[i]² of a flat array in float64: eight running sums (of the entries i ≡ j mod 8, an
    order fixed by the length alone), then the rest. What np.vdot(g, g) gives, without OpenBLAS,
    whose threads would spin beside the trainer's on a busy machine."""
    n = g.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    n8 = n - n % 8
    for i in range(0, n8, 8):
        x0, x1 = np.float64(g[i]), np.float64(g[i + 1])
        x2, x3 = np.float64(g[i + 2]), np.float64(g[i + 3])
        x4, x5 = np.float64(g[i + 4]), np.float64(g[i + 5])
        x6, x7 = np.float64(g[i + 6]), np.float64(g[i + 7])
        a0 += x0 * x0
        a1 += x1 * x1
        a2 += x2 * x2
        a3 += x3 * x3
        a4 += x4 * x4
        a5 += x5 * x5
        a6 += x6 * x6
        a7 += x7 * x7
    total = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
    for i in range(n8, n):
        x = np.float64(g[i])
        total += x * x
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def accumulate(totals, parts):
    """totals[k] += parts[k];  parts[k] = 0  for each pair of 2-D arrays of the tuples (rows
    contiguous): chunks' gradients into the batch's, each read once."""
    for k in range(len(totals)):
        total, part = totals[k], parts[k]
        for i in range(total.shape[0]):
            t = total[i]
            p = part[i]
            for j in range(t.shape[0]):
                t[j] += p[j]
                p[j] = 0


@njit(cache=True, nogil=True, error_model="numpy")
def sums_of_squares(arrays, out):
    """out[k] = sum_squares(arrays[k]) for each flat array of the tuple."""
    for k in range(len(arrays)):
        out[k] = sum_squares(arrays[k])


@njit(cache=True, nogil=True, error_model="numpy")
def column_sum_squares(M, cols):
    """Σ_{c in cols} Σ_i M[i, c]² in float64 (sum_squares of each column in turn): the part of
    ‖g‖² in the columns a batch read of a lazily stepped gradient, without copying them out."""
    total = 0.0
    for c in cols:
        total += sum_squares(M[:, c])
    return total
