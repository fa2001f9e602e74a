"""Numba kernels of gated recurrent cells (LSTM, GRU), with the calling convention of
seqtag.kernels.rnn_forward / rnn_backward so that a model can swap cells.

Shapes as in seqtag.kernels: H hidden units per direction, V input features, F feature ids per
token; a batch of N tokens packed CSR-style by ``offsets``, ids (N, F), states A (N, D) of which a
direction owns the H columns from ``col``. The G gates of a cell are stacked in the rows of
Wax (G·H, V) (Fortran order: Wax·x<t> = Σf Wax[:, x<t>_f] reads F contiguous columns),
Waa (G·H, H) and ba (G·H,), both C-contiguous. Each forward kernel also fills a per-token cache C
with what its backward kernel needs (gate activations, cell state), so that backward does not
recompute the forward pass:

  LSTM  gates [i; f; g; o] (G = 4), C (N, 5H) = [i | f | g | o | c<t>]
  GRU   gates [r; u; n]    (G = 3), C (N, 4H) = [r | u | n | r ⊙ a<t-1>]

As in rnn_forward, a group of up to _GROUP sentences (longest first) goes through time together,
so that the products with Waa are small matrix products (_gemm), and the sums over all tokens of
the batch (dWaa) are one product each. In float32 (``exact=False``) σ(x) = ½(1 + tanh(x/2)) and
tanh use fast_tanh; with ``exact=True``, σ(x) = 1/(1 + exp(-x)) and np.tanh (float64 gradient
checks).
"""

import numpy as np
from numba import njit

from seqtag.kernels import _GROUP, _gemm, _longest_first, _prefetch_column, _token, _transpose
from seqtag.kernels import fast_tanh


@njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _sigmoid(x, one, exact):
    """σ(x) = 1/(1 + exp(-x)) if exact, else ½(1 + fast_tanh(x/2)) (same function, vectorises);
    ``one`` is 1 in x's precision (so that float32 stays float32)."""
    if exact:
        return one / (one + np.exp(-x))
    half = np.float32(0.5)
    return half + half * fast_tanh(half * x)


@njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _tanh(x, exact):
    """tanh(x): np.tanh if exact, else fast_tanh."""
    if exact:
        return np.tanh(x)
    return fast_tanh(x)


@njit(cache=True, fastmath=True, error_model="numpy")
def _inputs(Wax, ba, ids, p, z):
    """z = Σf Wax[:, ids[p, f]] + ba  (the input part of all gates of token p)."""
    G = z.shape[0]
    for k in range(G):
        z[k] = ba[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            z[k] += Wax[k, x]


@njit(cache=True, fastmath=True, error_model="numpy")
def _add_input_grads(dz, ids, p, dWax, dba):
    """dba += dz;  dWax[:, ids[p, f]] += dz for every f."""
    G = dz.shape[0]
    for k in range(G):
        dba[k] += dz[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            dWax[k, x] += dz[k]


# ---------------------------------------------------------------------------------------------
# LSTM

@njit(cache=True, fastmath=True, error_model="numpy")
def lstm_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C):
    """One direction of an LSTM; gates stacked [i; f; g; o] in the rows of Wax (4H, V), Waa (4H, H),
    ba (4H,):

      z<t> = Σf Wax[:, ids[t, f]] + Waa·a<t-1> + ba
      i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
      c<t> = f ⊙ c<t-1> + i ⊙ g;   a<t> = o ⊙ tanh(c<t>);   a<0> = c<0> = 0

    over every sentence of the packed batch, left to right, or right to left when ``reverse``.
    Writes a<t> into A[t, col:col+H] and C[t] = [i | f | g | o | c<t>] (C is (N, 5H)) for
    lstm_backward. A group of sentences goes through time together, row g of Z being sentence g:
    Z = [Σf Wax[:, x<t>_f] + ba] + A_prev·Waaᵀ, the last term one product per step.
    """
    H = Waa.shape[1]
    G = Waa.shape[0]  # 4H
    n = offsets.shape[0] - 1
    dtype = Waa.dtype
    one = dtype.type(1)
    lengths, order = _longest_first(offsets)
    rows = (min(_GROUP, n) + 3) // 4 * 4
    WaaT = _transpose(Waa)  # (H, 4H): (A_prev·Waaᵀ)[g] = Σn A_prev[g, n]·Waaᵀ[n]
    S = np.zeros((rows, H), dtype=dtype)  # a<t-1>, then a<t>, of the group's sentences
    Cs = np.zeros((rows, H), dtype=dtype)  # c<t-1>, then c<t>
    Z = np.zeros((rows, G), dtype=dtype)  # z<t>
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        m = group.shape[0]
        for t in range(1, T + 1):
            while lengths[group[m - 1]] < t:
                m -= 1
            m4 = min((m + 3) // 4 * 4, rows)  # rows m..m4-1 pad to _gemm's 4-row blocks
            for g in range(m):
                _inputs(Wax, ba, ids, _token(offsets, group[g], t, reverse), Z[g])
            for g in range(m, m4):
                for k in range(G):
                    Z[g, k] = 0
            for g in range(m):  # the columns of Wax step t+1 reads, loaded while Waa·a<t-1> is
                if lengths[group[g]] > t:
                    p = _token(offsets, group[g], t + 1, reverse)
                    for f in range(ids.shape[1]):
                        _prefetch_column(Wax, ids[p, f])
            if t > 1:  # (a<0> = 0)
                _gemm(S, WaaT, Z, m4, G, H)
            for g in range(m):
                p = _token(offsets, group[g], t, reverse)
                z = Z[g]
                a = S[g]
                c = Cs[g]
                cache = C[p]
                if t == 1:
                    for j in range(H):
                        c[j] = 0
                for j in range(H):
                    i_ = _sigmoid(z[j], one, exact)
                    f_ = _sigmoid(z[H + j], one, exact)
                    g_ = _tanh(z[2 * H + j], exact)
                    o_ = _sigmoid(z[3 * H + j], one, exact)
                    c_ = f_ * c[j] + i_ * g_
                    c[j] = c_
                    a[j] = o_ * _tanh(c_, exact)
                    cache[j] = i_
                    cache[H + j] = f_
                    cache[2 * H + j] = g_
                    cache[3 * H + j] = o_
                    cache[4 * H + j] = c_
                out = A[p, col:col + H]
                for j in range(H):
                    out[j] = a[j]


@njit(cache=True, fastmath=True, error_model="numpy")
def lstm_backward(Waa, ids, offsets, reverse, A, col, C, dA, dWax, dWaa, dba, exact):
    """Backpropagation through time of one LSTM direction, given dA[t, col:col+H] = ∂L/∂a<t> and
    A, C from lstm_forward in the same direction (``reverse``):

      da<t> = dA<t> + Waaᵀ·dz<t+1>
      dc<t> = da<t> ⊙ o ⊙ (1 - tanh²c<t>) + dc<t+1> ⊙ f<t+1>          (dz<T+1> = dc<T+1> = 0)
      dz_i = dc ⊙ g ⊙ i(1-i)   dz_f = dc ⊙ c<t-1> ⊙ f(1-f)   dz_g = dc ⊙ i ⊙ (1-g²)
      dz_o = da ⊙ tanh(c<t>) ⊙ o(1-o)
      dWaa += Σt dz<t>·a<t-1>ᵀ    dWax[:, ids[t, f]] += dz<t> for every f    dba += Σt dz<t>

    Adds into dWax (4H, V), dWaa (4H, H) and dba (4H,); A, C and dA are not modified. tanh(c<t>)
    is recomputed (np.tanh if ``exact``, else fast_tanh, as in lstm_forward). As in rnn_backward,
    dz<t> of every token is kept in a row of dZ (N, 4H) (0 where t = 1), so that dWaa is one
    product of dZ with A shifted by a token.
    """
    H = Waa.shape[1]
    G = Waa.shape[0]
    n = offsets.shape[0] - 1
    N = ids.shape[0]
    dtype = Waa.dtype
    one = dtype.type(1)
    lengths, order = _longest_first(offsets)
    longest = 0
    if n > 0:
        longest = lengths[order[0]]
    rows = (min(_GROUP, n) + 3) // 4 * 4
    DZ = np.zeros((rows, G), dtype=dtype)  # DZ[g] = dz<t+1> of sentence g, then dz<t>
    DA = np.zeros((rows, H), dtype=dtype)  # DA[g] = da<t>
    DCF = np.zeros((rows, H), dtype=dtype)  # DCF[g] = dc<t+1> ⊙ f<t+1>, then dc<t> ⊙ f<t>
    dZ = np.empty((N, G), dtype=dtype)  # dZ[i] = dz<t> of token i (0 where t = 1)
    active = np.zeros(longest + 2, dtype=np.int64)  # active[t]: sentences with ≥ t tokens
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        m = group.shape[0]
        for t in range(1, T + 1):
            while lengths[group[m - 1]] < t:
                m -= 1
            active[t] = m
        active[T + 1] = 0
        for t in range(T, 0, -1):
            m = active[t]
            m_next = active[t + 1]  # the rows of DZ, DCF that hold step t+1's (the others: 0)
            m4_next = min((m_next + 3) // 4 * 4, rows)
            for g in range(m):
                p = _token(offsets, group[g], t, reverse)
                da = DA[g]
                for j in range(H):
                    da[j] = dA[p, col + j]
            for g in range(m_next, m):
                for j in range(H):
                    DCF[g, j] = 0
            for g in range(m_next, m4_next):
                for k in range(G):
                    DZ[g, k] = 0
            for g in range(active[t - 1] if t > 1 else 0):  # the columns of dWax step t-1 adds to
                p = _token(offsets, group[g], t - 1, reverse)
                for f in range(ids.shape[1]):
                    _prefetch_column(dWax, ids[p, f])
            if m_next > 0:
                _gemm(DZ, Waa, DA, m4_next, H, G)  # da<t> = dA<t> + Waaᵀ·dz<t+1>
            for g in range(m):
                p = _token(offsets, group[g], t, reverse)
                cache = C[p]
                da = DA[g]
                dz = DZ[g]
                dcf = DCF[g]
                if t > 1:
                    c_prev = C[_token(offsets, group[g], t - 1, reverse), 4 * H:5 * H]
                    for j in range(H):
                        i_ = cache[j]
                        f_ = cache[H + j]
                        g_ = cache[2 * H + j]
                        o_ = cache[3 * H + j]
                        tc = _tanh(cache[4 * H + j], exact)
                        dc = da[j] * o_ * (one - tc * tc) + dcf[j]
                        dz[j] = dc * g_ * i_ * (one - i_)
                        dz[H + j] = dc * c_prev[j] * f_ * (one - f_)
                        dz[2 * H + j] = dc * i_ * (one - g_ * g_)
                        dz[3 * H + j] = da[j] * tc * o_ * (one - o_)
                        dcf[j] = dc * f_
                else:
                    for j in range(H):
                        i_ = cache[j]
                        g_ = cache[2 * H + j]
                        o_ = cache[3 * H + j]
                        tc = _tanh(cache[4 * H + j], exact)
                        dc = da[j] * o_ * (one - tc * tc) + dcf[j]
                        dz[j] = dc * g_ * i_ * (one - i_)
                        dz[H + j] = 0  # c<0> = 0
                        dz[2 * H + j] = dc * i_ * (one - g_ * g_)
                        dz[3 * H + j] = da[j] * tc * o_ * (one - o_)
                _add_input_grads(dz, ids, p, dWax, dba)
                dz_token = dZ[p]
                if t > 1:
                    for k in range(G):
                        dz_token[k] = dz[k]
                else:
                    for k in range(G):
                        dz_token[k] = 0
    if N > 1:
        if reverse:
            _gemm(dZ[:N - 1].T, A[1:, col:col + H], dWaa, G, H, N - 1)
        else:
            _gemm(dZ[1:].T, A[:N - 1, col:col + H], dWaa, G, H, N - 1)
