"""Numba kernels of the Elman cell: one direction of the textbook RNN over a packed batch, and its
backpropagation through time.

    a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, x<t>_f] + ba)

A training step is  rnn_forward → linear_forward → softmax_xent → linear_backward → rnn_backward
(rnn_forward and rnn_backward once per direction, reverse=False into columns 0..H-1 of A and
reverse=True into H..2H-1). A group of sentences steps through time together
(seqtag.kernels.stepping), so that the products with Waa are small matrix products.
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.matmul import _transpose_padded
from seqtag.kernels.simd import fast_tanh
from seqtag.kernels.stepping import (_GROUP, _add_input_grads, _backward_group, _backward_plan,
                                     _backward_recurrent, _backward_step, _forward_step, _group,
                                     _keep_dz, _plan, _sum_recurrent_grads)

@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col):
    """a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, ids[t, f]] + ba);  A[t, col:col+H] = a<t>.

    Over every sentence of the packed batch, left to right, or right to left when ``reverse``
    (a<t-1> is then the state of the token to the right). A group of sentences goes through time
    together, row g of Z being sentence g: step t computes, for the first m rows (the sentences
    with ≥ t tokens), Z = [Σf Wax[:, x<t>_f] + ba] + A_prev·Waaᵀ, the last term one product.
    """
    H = Waa.shape[0]
    dtype = Waa.dtype
    n, lengths, order, rows = _plan(offsets)
    WaaT = _transpose_padded(Waa)  # (A_prev·Waaᵀ)[g] = Σn A_prev[g, n]·Waaᵀ[n]
    S = np.zeros((2, rows, H), dtype=dtype)  # a<t-1> and a<t> of the group, alternately
    tokens = np.empty(rows, dtype=np.int64)  # tokens[g]: the token of sentence g at step t
    for first in range(0, n, _GROUP):
        group, T = _group(lengths, order, first)
        m = group.shape[0]
        for t in range(1, T + 1):
            # Rows m..m4-1 pad to the 4-row blocks of _gemm (input 0; their states go unused).
            Z = S[t % 2]
            m, m4 = _forward_step(Wax, ba, ids, offsets, group, lengths, m, t, rows, reverse,
                                  tokens, Z, S[(t - 1) % 2], WaaT, H)
            for g in range(m4):
                z = Z[g]
                if exact:
                    for i in range(H):
                        z[i] = np.tanh(z[i])
                else:
                    for i in range(H):
                        z[i] = fast_tanh(z[i])
                if g < m:
                    a = A[tokens[g], col:col + H]
                    for i in range(H):
                        a[i] = z[i]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def rnn_backward(Waa, ids, offsets, reverse, A, col, dA, dWax, dWaa, dba, exact):
    """Backpropagation through time of one direction, given dA[t, col:col+H] = ∂L/∂a<t>:

      da<t> = dA<t> + Waaᵀ·dz<t+1>   dz<t> = da<t> ⊙ (1 - a<t>²)        (dz<T+1> = 0)
      dWaa += Σt dz<t>·a<t-1>ᵀ       dWax[:, ids[t, f]] += dz<t> for every f     dba += Σt dz<t>

    with a<t> = A[t, col:col+H] from rnn_forward in the same direction (``reverse``). Adds into
    dWax, dWaa and dba; A and dA are not modified; ``exact`` is unused (tanh' = 1 - a² either way).
    A group of sentences goes backward through time together, DA = dA<t> + DZ·Waa being one
    product for the group. dz<t> of every token is kept in a row of dZ (N, H) (0 for a<t-1> = a<0>),
    so that dWaa is one product over the batch, of dZ with A shifted by a token:
      forward:  dWaa += Σi dZ[i+1]ᵀ·A[i]      reverse:  dWaa += Σi dZ[i]ᵀ·A[i+1]
    (a pair across two sentences meets the 0 row of the second one's first token read).
    """
    H = Waa.shape[0]
    one = Waa.dtype.type(1)
    n, lengths, order, rows, tokens, previous, active, DZ, DA, dZ = _backward_plan(
        offsets, Waa, ids.shape[0], H)
    for first in range(0, n, _GROUP):
        group, T = _backward_group(lengths, order, first, active)
        for t in range(T, 0, -1):
            m, m_next, _, _ = _backward_step(offsets, group, active, t, rows, reverse, tokens,
                                             previous, dA, col, DA, DZ)
            # da<t> = dA<t> + Waaᵀ·dz<t+1>
            _backward_recurrent(dWax, ids, previous, active, t, DZ, Waa, DA, m_next, H)
            for g in range(m):
                p = tokens[g]
                a = A[p, col:col + H]
                da = DA[g]
                dz = DZ[g]
                for i in range(H):
                    dz[i] = da[i] * (one - a[i] * a[i])
                _add_input_grads(dz, ids, p, dWax, dba)
                _keep_dz(dZ, p, dz, t)
    _sum_recurrent_grads(dZ, A, col, dWaa, reverse)
