"""Numba kernels of the GRU cell in the form of Cho et al. (2014) (the reset gate multiplies
a<t-1> before U_n): a gated cell (the calling convention, the cache C and the stepping it shares
with the LSTM are under "Gated cells" in seqtag.kernels.stepping).

Its 3 gates [r; u; n] fill the 3H rows of Wax, Waa = [U_r; U_u; U_n] and ba. gru_forward's cache
C (N, 4H) = [r | u | n | r ⊙ a<t-1>] holds the three activations of each token and the reset
state that U_n multiplies, the right factor of gru_backward's batch-wide dU_n product.
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.matmul import _gemm, _padded, _transpose_padded
from seqtag.kernels.simd import _sigmoid_in_place, _tanh_in_place
from seqtag.kernels.stepping import (_GROUP, _add_input_grads, _backward_group, _backward_plan,
                                     _backward_recurrent, _backward_step, _forward_step, _group,
                                     _keep_dz, _keep_state, _plan, _sum_recurrent_grads, _zero_rows)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def gru_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C):
    """One direction of a GRU in the form of Cho et al. (2014); gates stacked [r; u; n] in the rows
    of Wax (3H, V), Waa = [U_r; U_u; U_n] (3H, H), ba (3H,):

      r = σ(W_r·x<t> + U_r·a<t-1> + b_r)          u = σ(W_u·x<t> + U_u·a<t-1> + b_u)
      n = tanh(W_n·x<t> + U_n·(r ⊙ a<t-1>) + b_n)  a<t> = (1 - u) ⊙ n + u ⊙ a<t-1>     a<0> = 0

    with W·x<t> = Σf W[:, ids[t, f]] (multi-hot x<t>). (PyTorch's nn.GRU instead computes
    n = tanh(W_n·x + b_in + r ⊙ (U_n·a<t-1> + b_hn)); it has a second bias and takes r after U_n.)
    Over every sentence of the packed batch, left to right, or right to left when ``reverse``.
    Writes a<t> into A[t, col:col+H] and C[t] = [r | u | n | r ⊙ a<t-1>] (C is (N, 4H)) for
    gru_backward. Per step, for a group of sentences: Z = [Σf Wax[:, x<t>_f] + ba], then
    Z[:, :2H] += A_prev·[U_r; U_u]ᵀ and Z[:, 2H:] += (R ⊙ A_prev)·U_nᵀ, two products.
    """
    H = Waa.shape[1]
    G = Waa.shape[0]  # 3H
    dtype = Waa.dtype
    n, lengths, order, rows = _plan(offsets)
    WaaT = _transpose_padded(Waa)  # (H, 3H) = [U_rᵀ U_uᵀ U_nᵀ]
    UnT = _transpose_padded(Waa[2 * H:])  # (H, H)
    S = np.zeros((rows, H), dtype=dtype)  # a<t-1>, then a<t>, of the group's sentences
    RA = np.zeros((rows, H), dtype=dtype)  # r ⊙ a<t-1>
    ZN = np.zeros((rows, H), dtype=dtype)  # (r ⊙ a<t-1>)·U_nᵀ
    tokens = np.empty(rows, dtype=np.int64)  # tokens[g]: the token of sentence g at step t
    Z = np.zeros((rows, G), dtype=dtype)  # z<t>, then [r | u | n]
    for first in range(0, n, _GROUP):
        group, T = _group(lengths, order, first)
        m = group.shape[0]
        for t in range(1, T + 1):
            # rows m..m4-1: zero padding, which the products skip; Z[:, :2H] += A_prev·[U_r; U_u]ᵀ
            m, m4 = _forward_step(Wax, ba, ids, offsets, group, lengths, m, t, rows, reverse,
                                  tokens, Z, S, WaaT, 2 * H)
            for g in range(m):
                z = Z[g]
                _sigmoid_in_place(z[:2 * H], exact)  # r, u
                ra = RA[g]
                if t > 1:
                    a = S[g]
                    for j in range(H):
                        ra[j] = z[j] * a[j]
                else:
                    for j in range(H):
                        ra[j] = 0
            if t > 1:
                _zero_rows(ZN, 0, m4)
                _gemm(RA, UnT, ZN, m, H, H)  # (contiguous operands: _gemm compiled once)
            for g in range(m):
                p = tokens[g]
                z = Z[g]
                a = S[g]
                ra = RA[g]
                if t > 1:
                    zn = ZN[g]
                    for j in range(H):
                        z[2 * H + j] += zn[j]
                _tanh_in_place(z[2 * H:], exact)  # n
                if t == 1:
                    for j in range(H):
                        a[j] = 0
                for j in range(H):
                    u_ = z[H + j]
                    n_ = z[2 * H + j]
                    a[j] = n_ + u_ * (a[j] - n_)
                _keep_state(C[p], z, ra, A[p, col:col + H], a)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def gru_backward(Waa, ids, offsets, reverse, A, col, C, dA, dWax, dWaa, dba, exact):
    """Backpropagation through time of one GRU direction (gru_forward's form), given
    dA[t, col:col+H] = ∂L/∂a<t> and A, C from gru_forward in the same direction (``reverse``):

      da<t> = dA<t> + u<t+1> ⊙ da<t+1> + r<t+1> ⊙ U_nᵀ·dz_n<t+1> + U_rᵀ·dz_r<t+1> + U_uᵀ·dz_u<t+1>
      dz_n = da ⊙ (1 - u) ⊙ (1 - n²)    dz_u = da ⊙ (a<t-1> - n) ⊙ u(1-u)
      dz_r = (U_nᵀ·dz_n) ⊙ a<t-1> ⊙ r(1-r)                         (all terms of step T+1: 0)
      d[U_r; U_u] += Σt dz_{r,u}<t>·a<t-1>ᵀ     dU_n += Σt dz_n<t>·(r ⊙ a<t-1>)ᵀ
      dWax[:, ids[t, f]] += dz<t> for every f    dba += Σt dz<t>

    Adds into dWax (3H, V), dWaa (3H, H) and dba (3H,); A, C and dA are not modified; ``exact`` is
    unused (the derivatives are polynomials of the cached activations). Per step, for a group of
    sentences, two products: U_nᵀ·dz_n<t> and [U_r; U_u]ᵀ·dz_{r,u}<t+1>; dWaa is two products over
    the batch: of dZ = dz_{r,u} with A shifted by a token (as in rnn_backward), of dZN = dz_n with
    C[:, 3H:] = r ⊙ a<t-1>. (Every product has the operand layouts of rnn_forward/rnn_backward's,
    so that _gemm is compiled no more often.)
    """
    H = Waa.shape[1]
    N = ids.shape[0]
    dtype = Waa.dtype
    one = dtype.type(1)
    # dZ[i] = dz_{r,u}<t> of token i
    n, lengths, order, rows, tokens, previous, active, DZ, DA, dZ = _backward_plan(
        offsets, Waa, N, 2 * H)
    DP = np.zeros((rows, H), dtype=dtype)  # DP[g] = u ⊙ da + r ⊙ U_nᵀ·dz_n of step t+1, then t
    DZN = np.zeros((rows, H), dtype=dtype)  # dz_n<t> (a copy of DZ[:, 2H:], contiguous)
    DRN = np.zeros((rows, H), dtype=dtype)  # U_nᵀ·dz_n<t>
    dZN = np.empty((N, H), dtype=dtype)  # dZN[i] = dz_n<t> of token i
    zero_row = np.zeros(H, dtype=dtype)
    for first in range(0, n, _GROUP):
        group, T = _backward_group(lengths, order, first, active)
        for t in range(T, 0, -1):
            m, m_next, m4, m4_next = _backward_step(offsets, group, active, t, rows, reverse,
                                                    tokens, previous, dA, col, DA, DZ)
            for g in range(m_next):  # (DP holds step t+1's in these rows only)
                da = DA[g]
                dp = DP[g]
                for j in range(H):
                    da[j] += dp[j]
            # da<t> += [U_r; U_u]ᵀ·dz_{r,u}<t+1>
            _backward_recurrent(dWax, ids, previous, active, t, DZ, Waa, DA, m_next, 2 * H)
            for g in range(m):
                cache = C[tokens[g]]
                da = DA[g]
                dz = DZ[g]
                dzn = DZN[g]
                if t > 1:
                    a_prev = A[previous[g], col:col + H]
                else:
                    a_prev = zero_row
                for j in range(H):
                    u_ = cache[H + j]
                    n_ = cache[2 * H + j]
                    dz[H + j] = da[j] * (a_prev[j] - n_) * u_ * (one - u_)
                    dzn[j] = da[j] * (one - u_) * (one - n_ * n_)
                    dz[2 * H + j] = dzn[j]
            _zero_rows(DZN, m, m4)
            _zero_rows(DRN, 0, m4)
            if t > 1:  # (at t = 1, a<t-1> = 0: dz_r = 0 and nothing flows further back)
                _gemm(DZN, Waa[2 * H:], DRN, m, H, H)  # U_nᵀ·dz_n<t>
            for g in range(m):
                p = tokens[g]
                dz = DZ[g]
                if t > 1:
                    cache = C[p]
                    a_prev = A[previous[g], col:col + H]
                    da = DA[g]
                    drn = DRN[g]
                    dp = DP[g]
                    for j in range(H):
                        r_ = cache[j]
                        dz[j] = drn[j] * a_prev[j] * r_ * (one - r_)
                        dp[j] = cache[H + j] * da[j] + r_ * drn[j]
                else:
                    for j in range(H):
                        dz[j] = 0
                _add_input_grads(dz, ids, p, dWax, dba)
                _keep_dz(dZ, p, dz, t)  # dz_r, dz_u: dZ holds 2H columns
                dzn_token = dZN[p]
                for j in range(H):
                    dzn_token[j] = dz[2 * H + j]
    _sum_recurrent_grads(dZ, A, col, dWaa, reverse)
    if N > 0:
        _gemm(dZN.T, _padded(C[:, 3 * H:]), dWaa[2 * H:], H, H, N)  # dU_n += dZNᵀ·(R ⊙ A_prev)
