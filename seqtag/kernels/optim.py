"""Optimizer steps: SGD and (lazy) Adam, on the dense parameters and on the touched columns of the
Fortran-ordered input matrix Wax."""

import numpy as np
from numba import njit

@njit(cache=True, fastmath=True, error_model="numpy")
def _sgd(p, g, lr_scale):
    """p -= lr·scale·g;  g = 0."""
    step = p.dtype.type(lr_scale)
    for i in range(p.shape[0]):
        p[i] -= step * g[i]
        g[i] = 0


@njit(cache=True, fastmath=True, error_model="numpy")
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
    acc = np.zeros(8)
    n8 = n - n % 8
    for i in range(0, n8, 8):
        for j in range(8):
            x = np.float64(g[i + j])
            acc[j] += x * x
    total = 0.0
    for j in range(8):
        total += acc[j]
    for i in range(n8, n):
        x = np.float64(g[i])
        total += x * x
    return total
