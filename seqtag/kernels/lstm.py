"""Numba kernels of the LSTM cell: a gated cell (the calling convention, the cache C and the
stepping it shares with the GRU are under "Gated cells" in seqtag.kernels.stepping).

Its 4 gates [i; f; g; o] fill the 4H rows of Wax, Waa and ba. lstm_forward's cache C (N, 5H) =
[i | f | g | o | c<t>] holds the four activations and the memory cell of each token, from which
lstm_backward recomputes only tanh(c<t>).
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.matmul import _transpose_padded
from seqtag.kernels.simd import _sigmoid_in_place, _tanh_in_place
from seqtag.kernels.stepping import (_GROUP, _add_input_grads, _backward_group, _backward_plan,
                                     _backward_recurrent, _backward_step, _forward_step, _group,
                                     _keep_dz, _plan, _sum_recurrent_grads, _zero_rows)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def lstm_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C):
    """One direction of an LSTM; gates stacked [i; f; g; o] in the rows of Wax (4H, V), Waa (4H, H),
    ba (4H,):

      z<t> = Σf Wax[:, ids[t, f]] + Waa·a<t-1> + ba
      i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
      c<t> = f ⊙ c<t-1> + i ⊙ g;   a<t> = o ⊙ tanh(c<t>);   a<0> = c<0> = 0

    over every sentence of the packed batch, left to right, or right to left when ``reverse``.
    Writes a<t> into A[t, col:col+H] and C[t] = [i | f | g | o | c<t>] (C is (N, 5H)) for
    lstm_backward (C with no rows: not written). A group of sentences goes through time together, row g of Z being sentence g:
    Z = [Σf Wax[:, x<t>_f] + ba] + A_prev·Waaᵀ, the last term one product per step.
    """
    H = Waa.shape[1]
    G = Waa.shape[0]  # 4H
    dtype = Waa.dtype
    # C with no rows (tagging: nothing will read it) is not written: 2.5 KB per token saved
    keep = C.shape[0] > 0
    n, lengths, order, rows = _plan(offsets)
    WaaT = _transpose_padded(Waa)  # (H, 4H): (A_prev·Waaᵀ)[g] = Σn A_prev[g, n]·Waaᵀ[n]
    S = np.zeros((rows, H), dtype=dtype)  # a<t-1>, then a<t>, of the group's sentences
    Cs = np.zeros((rows, H), dtype=dtype)  # c<t-1>, then c<t>
    tokens = np.empty(rows, dtype=np.int64)  # tokens[g]: the token of sentence g at step t
    Z = np.zeros((rows, G), dtype=dtype)  # z<t>
    for first in range(0, n, _GROUP):
        group, T = _group(lengths, order, first)
        m = group.shape[0]
        for t in range(1, T + 1):
            # rows m..m4-1: zero padding, which the products skip
            m, m4 = _forward_step(Wax, ba, ids, offsets, group, lengths, m, t, rows, reverse,
                                  tokens, Z, S, WaaT, G)
            for g in range(m):
                p = tokens[g]
                z = Z[g]
                a = S[g]
                c = Cs[g]
                if t == 1:
                    for j in range(H):
                        c[j] = 0
                _sigmoid_in_place(z[:2 * H], exact)  # i, f
                _tanh_in_place(z[2 * H:3 * H], exact)  # g
                _sigmoid_in_place(z[3 * H:], exact)  # o
                for j in range(H):
                    c[j] = z[H + j] * c[j] + z[j] * z[2 * H + j]
                    a[j] = c[j]
                _tanh_in_place(a, exact)
                if keep:
                    cache = C[p]  # (as _keep_state, with a = o ⊙ tanh(c) in the same loop)
                    for k in range(G):
                        cache[k] = z[k]
                    for j in range(H):
                        a[j] *= z[3 * H + j]
                        cache[G + j] = c[j]
                else:
                    for j in range(H):
                        a[j] *= z[3 * H + j]
                out = A[p, col:col + H]
                for j in range(H):
                    out[j] = a[j]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
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
    dtype = Waa.dtype
    one = dtype.type(1)
    n, lengths, order, rows, tokens, previous, active, DZ, DA, dZ = _backward_plan(
        offsets, Waa, ids.shape[0], G)
    DCF = np.zeros((rows, H), dtype=dtype)  # DCF[g] = dc<t+1> ⊙ f<t+1>, then dc<t> ⊙ f<t>
    tc = np.empty(H, dtype=dtype)  # tanh(c<t>) of one token
    zero_row = np.zeros(H, dtype=dtype)
    for first in range(0, n, _GROUP):
        group, T = _backward_group(lengths, order, first, active)
        for t in range(T, 0, -1):
            m, m_next, _, _ = _backward_step(offsets, group, active, t, rows, reverse, tokens,
                                             previous, dA, col, DA, DZ)
            _zero_rows(DCF, m_next, m)  # (no dc<t+1> there)
            # da<t> = dA<t> + Waaᵀ·dz<t+1>
            _backward_recurrent(dWax, ids, previous, active, t, DZ, Waa, DA, m_next, G)
            for g in range(m):
                p = tokens[g]
                cache = C[p]
                da = DA[g]
                dz = DZ[g]
                dcf = DCF[g]
                for j in range(H):
                    tc[j] = cache[4 * H + j]
                _tanh_in_place(tc, exact)
                if t > 1:
                    c_prev = C[previous[g], 4 * H:5 * H]
                else:
                    c_prev = zero_row  # c<0> = 0
                for j in range(H):
                    i_ = cache[j]
                    f_ = cache[H + j]
                    g_ = cache[2 * H + j]
                    o_ = cache[3 * H + j]
                    dc = da[j] * o_ * (one - tc[j] * tc[j]) + dcf[j]
                    dz[j] = dc * g_ * i_ * (one - i_)
                    dz[H + j] = dc * c_prev[j] * f_ * (one - f_)
                    dz[2 * H + j] = dc * i_ * (one - g_ * g_)
                    dz[3 * H + j] = da[j] * tc[j] * o_ * (one - o_)
                    dcf[j] = dc * f_
                _add_input_grads(dz, ids, p, dWax, dba)
                _keep_dz(dZ, p, dz, t)
    _sum_recurrent_grads(dZ, A, col, dWaa, reverse)
