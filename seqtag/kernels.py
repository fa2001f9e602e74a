"""Numba kernels of the Elman RNN tagger: forward pass, backpropagation through time, optimizers.

Shapes follow the equations: H hidden units, V words, L labels.
  Wax (H, V)  stored column-major (Fortran order) so that the lookup Wax·x<t> = Wax[:, x<t>] reads
              one contiguous column; Waa (H, H), Wya (L, H), ba (H,), by (L,) are C-contiguous.
A batch of sentences is packed CSR-style: ``ids[offsets[s]:offsets[s+1]]`` are sentence s's word
indices, ``labels`` likewise. Every kernel works on float32 for speed and on float64 (with
``exact=True``) for gradient checks against finite differences.

This module imports nothing of seqtag, so that the kernels can be tested and benchmarked alone.
"""

import numpy as np
from numba import njit

# Rational approximation of tanh (the one Eigen uses for float): |error| < 1e-6 on float32, and
# unlike libm's tanh it is plain arithmetic that LLVM vectorises across the hidden units.
_T_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)


@njit(cache=True, inline="always", fastmath=True)
def fast_tanh(x):
    """tanh(x) ≈ x·p(x²)/q(x²) on [-7.9, 7.9], ±1 beyond."""
    x = min(max(x, -_T_CLAMP), _T_CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q


@njit(cache=True)
def tanh_array(x):
    """Elementwise fast_tanh (exposed for testing the approximation)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fast_tanh(x[i])
    return out


@njit(cache=True, fastmath=True)
def _forward_sentence(Wax, Waa, Wya, ba, by, ids, A, Y, exact):
    """Forward pass over one sentence of T = len(ids) tokens.

    a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba);  ŷ<t> = softmax(Wya·a<t> + by)
    A has T+1 rows: A[0] = a<0> = 0 and A[t] = a<t> for t = 1..T.  Y[t-1] = ŷ<t>.
    """
    H = Waa.shape[0]
    L = Wya.shape[0]
    T = ids.shape[0]
    for j in range(H):
        A[0, j] = 0.0
    for t in range(1, T + 1):
        x = ids[t - 1]
        a_prev = A[t - 1]
        a = A[t]
        for i in range(H):
            s = Wax[i, x] + ba[i]
            for j in range(H):
                s += Waa[i, j] * a_prev[j]
            a[i] = s
        if exact:
            for i in range(H):
                a[i] = np.tanh(a[i])
        else:
            for i in range(H):
                a[i] = fast_tanh(a[i])
        y = Y[t - 1]
        m = -np.inf
        for k in range(L):
            s = by[k]
            for j in range(H):
                s += Wya[k, j] * a[j]
            y[k] = s
            m = max(m, s)
        z = 0.0
        for k in range(L):
            e = np.exp(y[k] - m)
            y[k] = e
            z += e
        for k in range(L):
            y[k] /= z


@njit(cache=True)
def predict_proba(Wax, Waa, Wya, ba, by, ids, offsets, exact):
    """ŷ<t> for every token of every sentence of the packed batch: an (N, L) array."""
    H = Waa.shape[0]
    L = Wya.shape[0]
    n = offsets.shape[0] - 1
    longest = 0
    for s in range(n):
        longest = max(longest, offsets[s + 1] - offsets[s])
    A = np.empty((longest + 1, H), dtype=Waa.dtype)
    out = np.empty((ids.shape[0], L), dtype=Waa.dtype)
    for s in range(n):
        lo, hi = offsets[s], offsets[s + 1]
        _forward_sentence(Wax, Waa, Wya, ba, by, ids[lo:hi], A, out[lo:hi], exact)
    return out


@njit(cache=True, fastmath=True)
def train_batch(Wax, Waa, Wya, ba, by, ids, offsets, labels,
                dWax, dWaa, dWya, dba, dby, exact):
    """Add the gradients of the summed cross-entropy of a packed batch to dW*; return the sum.

    Backpropagation through time, per sentence, with δ<t> = ŷ<t> - onehot(y<t>):
      dWya += Σt δ<t>·a<t>ᵀ            dby += Σt δ<t>
      da<t> = Wyaᵀ·δ<t> + Waaᵀ·dz<t+1>   dz<t> = da<t> ⊙ (1 - a<t>²)
      dWaa += Σt dz<t>·a<t-1>ᵀ         dWax[:, x<t>] += dz<t>        dba += Σt dz<t>
    The sums over t of outer products are taken after the backward sweep, row by row of the
    gradient, so that each gradient row stays in L1 while the stored states stream past it.
    """
    H = Waa.shape[0]
    L = Wya.shape[0]
    n = offsets.shape[0] - 1
    longest = 0
    for s in range(n):
        longest = max(longest, offsets[s + 1] - offsets[s])
    dtype = Waa.dtype
    A = np.empty((longest + 1, H), dtype=dtype)
    Y = np.empty((longest, L), dtype=dtype)
    DZ = np.empty((longest, H), dtype=dtype)
    da = np.empty(H, dtype=dtype)
    da_next = np.empty(H, dtype=dtype)
    loss = 0.0
    for s in range(n):
        lo, hi = offsets[s], offsets[s + 1]
        T = hi - lo
        if T == 0:
            continue
        x_s = ids[lo:hi]
        y_s = labels[lo:hi]
        _forward_sentence(Wax, Waa, Wya, ba, by, x_s, A, Y, exact)
        # δ<t> overwrites ŷ<t> in Y.
        for t in range(T):
            loss -= np.log(max(Y[t, y_s[t]], 1e-30))
            Y[t, y_s[t]] -= 1.0
            for k in range(L):
                dby[k] += Y[t, k]
        for k in range(L):
            row = dWya[k]
            for t in range(T):
                d = Y[t, k]
                a = A[t + 1]
                for j in range(H):
                    row[j] += d * a[j]
        for j in range(H):
            da_next[j] = 0.0
        for t in range(T - 1, -1, -1):
            for j in range(H):
                da[j] = da_next[j]
            for k in range(L):
                d = Y[t, k]
                for j in range(H):
                    da[j] += d * Wya[k, j]
            a = A[t + 1]
            dz = DZ[t]
            for j in range(H):
                dz[j] = da[j] * (1.0 - a[j] * a[j])
            x = x_s[t]
            for j in range(H):
                dba[j] += dz[j]
                dWax[j, x] += dz[j]
            if t > 0:
                for j in range(H):
                    da_next[j] = 0.0
                for i in range(H):
                    d = dz[i]
                    for j in range(H):
                        da_next[j] += d * Waa[i, j]
        for i in range(H):
            row = dWaa[i]
            for t in range(1, T):
                d = DZ[t, i]
                a = A[t]
                for j in range(H):
                    row[j] += d * a[j]
    return loss


@njit(cache=True)
def grad_sq_norm(dWax, cols, dWaa, dWya, dba, dby):
    """‖g‖² over all gradients, reading dWax only in the columns the batch touched."""
    total = 0.0
    for c in cols:
        for j in range(dWax.shape[0]):
            total += dWax[j, c] * dWax[j, c]
    for g in (dWaa.ravel(), dWya.ravel(), dba, dby):
        for i in range(g.shape[0]):
            total += g[i] * g[i]
    return total


@njit(cache=True, fastmath=True)
def _sgd(p, g, lr_scale):
    """p -= lr·scale·g;  g = 0."""
    for i in range(p.shape[0]):
        p[i] -= lr_scale * g[i]
        g[i] = 0.0


@njit(cache=True, fastmath=True)
def _adam(p, g, m, v, scale, lr_t, b1, b2, eps):
    """m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  p -= lr_t·m/(√v + ε);  g = 0.

    lr_t carries the bias correction lr·√(1-β2^k)/(1-β1^k); g is first multiplied by scale
    (the 1/tokens mean and the clipping factor).
    """
    for i in range(p.shape[0]):
        gi = g[i] * scale
        mi = b1 * m[i] + (1.0 - b1) * gi
        vi = b2 * v[i] + (1.0 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_t * mi / (np.sqrt(vi) + eps)
        g[i] = 0.0


@njit(cache=True)
def sgd_step(params, grads, Wax, dWax, cols, lr_scale):
    """SGD on the dense parameters and on the touched columns of Wax; zeroes the gradients."""
    for k in range(len(params)):
        _sgd(params[k], grads[k], lr_scale)
    for c in cols:
        _sgd(Wax[:, c], dWax[:, c], lr_scale)


@njit(cache=True)
def adam_step(params, grads, ms, vs, Wax, dWax, mWax, vWax, cols, scale, lr_t, b1, b2, eps):
    """Adam on the dense parameters; lazy Adam (moments of touched columns only) on Wax."""
    for k in range(len(params)):
        _adam(params[k], grads[k], ms[k], vs[k], scale, lr_t, b1, b2, eps)
    for c in cols:
        _adam(Wax[:, c], dWax[:, c], mWax[:, c], vWax[:, c], scale, lr_t, b1, b2, eps)
