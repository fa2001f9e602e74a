"""Stepping a batch through time, a group of sentences at a time: the set-up every recurrent cell
(seqtag.kernels.elman, lstm, gru) shares, forward and backward.

The sentences of a packed batch go through time in groups of up to _GROUP, longest first within
windows of _WINDOW sentences (_plan), so that the sentences still running at step t (the t-th
token read, in either direction) are always the first m of the group: the products with Waa are
then small matrix products (_gemm) over the first m rows, padded to m4 (a multiple of 4, _pad4)
for _gemm's 4-row blocks. A forward pass shrinks m as t grows (_shrink); a backward pass reads m
for each t from the counts _running makes (_backward_scratch allocates them). The gradients of
Waa are one product over the whole batch afterwards (_keep_dz, _sum_recurrent_grads).

The helpers called once per step or per token are small and inlined into the cells' loops by
LLVM (or by Numba where inline="always"), so that the cells run as fast as when each wrote this
set-up out itself.

Numba's cache knows only a kernel's own file: after an edit here (or in simd.py, matmul.py), the
cells' cached machine code is stale until their files change too or __pycache__ is cleared.

Gated cells (seqtag.kernels.gru, seqtag.kernels.lstm). As in rnn_forward, a group of up to
_GROUP sentences (longest first) goes through time together, so that the products with Waa are
small matrix products (_gemm), and the sums over all tokens of the batch (dWaa) are one product
each. In float32 (``exact=False``) σ(x) = ½(1 + tanh(x/2)) and tanh use fast_tanh (|error| <
1e-6, vectorised); with ``exact=True``, σ(x) = 1/(1 + exp(-x)) and np.tanh (float64 gradient
checks). Every _gemm call has the operand layouts of rnn_forward's and rnn_backward's
(contiguous scratch copies rather than column slices), and per-token index work is in the
small helpers here, which keeps Numba's compile time (≈2 s per kernel and dtype) down.
"""

import numpy as np
from numba import njit

from seqtag.kernels.matmul import _gemm
from seqtag.kernels.simd import _prefetch_column

# Sentences stepped through time together. Each step multiplies a (_GROUP, H) block of states by
# Waa; 16 rows keep that block and its results in L1 while Waa streams past once.
_GROUP = 16
# Sentences sorted longest first together: a window's groups write their states into one region of
# A (which a long batch, far larger than the cache, would otherwise receive a row here and there).
_WINDOW = 16 * _GROUP


@njit(cache=True)
def _plan(offsets):
    """(n, lengths, order, rows): the batch's n sentences, their lengths, the order they are
    stepped in (_longest_first), and the rows of a group's scratch blocks (_GROUP, or n if fewer,
    rounded up to _gemm's 4-row blocks)."""
    n = offsets.shape[0] - 1
    lengths, order = _longest_first(offsets)
    rows = (min(_GROUP, n) + 3) // 4 * 4
    return n, lengths, order, rows


@njit(cache=True, inline="always")
def _group(lengths, order, first):
    """(group, T): the sentences of the group starting at ``first`` in the order, and the length
    of its longest (first) sentence."""
    group = order[first:first + _GROUP]
    return group, lengths[group[0]]


@njit(cache=True, inline="always")
def _pad4(m, rows):
    """m rounded up to _gemm's 4-row blocks (rows m..m4-1 are padding, at most ``rows``)."""
    return min((m + 3) // 4 * 4, rows)


@njit(cache=True, inline="always")
def _shrink(lengths, group, m, t, rows):
    """(m, m4) at step t of a forward pass, given m at step t-1 (the group's size at t = 1): the
    sentences with ≥ t tokens are the first m of the longest-first group."""
    while lengths[group[m - 1]] < t:
        m -= 1
    return m, _pad4(m, rows)


@njit(cache=True)
def _backward_scratch(n, lengths, order, rows):
    """(tokens, previous, active) of a backward pass: tokens[g] and previous[g], the tokens of
    sentence g at steps t and t-1; active[t], how many sentences have ≥ t tokens (_running)."""
    longest = 0
    if n > 0:
        longest = lengths[order[0]]
    tokens = np.empty(rows, dtype=np.int64)
    previous = np.empty(rows, dtype=np.int64)
    active = np.zeros(longest + 2, dtype=np.int64)
    return tokens, previous, active


@njit(cache=True)
def _longest_first(offsets):
    """Sentence lengths, and the sentence indices by decreasing length within each window of
    _WINDOW sentences (a stable counting sort per window)."""
    n = offsets.shape[0] - 1
    lengths = np.empty(n, dtype=np.int64)
    longest = 0
    for s in range(n):
        lengths[s] = offsets[s + 1] - offsets[s]
        longest = max(longest, lengths[s])
    order = np.empty(n, dtype=np.int64)
    first = np.empty(longest + 2, dtype=np.int64)
    for w in range(0, n, _WINDOW):
        end = min(n, w + _WINDOW)
        # first[r]: where the sentences of length longest - r start in the order.
        first[:] = 0
        first[0] = w
        for s in range(w, end):
            first[longest - lengths[s] + 1] += 1
        for r in range(longest + 1):
            first[r + 1] += first[r]
        for s in range(w, end):
            r = longest - lengths[s]
            order[first[r]] = s
            first[r] += 1
    return lengths, order


@njit(cache=True)
def _running(lengths, group, T, active):
    """active[t] = how many sentences of a longest-first group have at least t tokens (they are
    the first ones), for t = 1..T, and active[T + 1] = 0."""
    m = group.shape[0]
    for t in range(1, T + 1):
        while lengths[group[m - 1]] < t:
            m -= 1
        active[t] = m
    active[T + 1] = 0


@njit(cache=True, inline="always")
def _token(offsets, s, t, reverse):
    """The t-th token read (t ≥ 1) of sentence s: from the left, or from the right if reverse."""
    if reverse:
        return offsets[s + 1] - t
    return offsets[s] + t - 1


@njit(cache=True)
def _step_tokens(offsets, group, m, t, reverse, tokens):
    """tokens[g] = the t-th token read of sentence group[g], for the first m sentences."""
    for g in range(m):
        tokens[g] = _token(offsets, group[g], t, reverse)


@njit(cache=True)
def _prefetch_inputs(M, ids, tokens, m):
    """Start loading the columns of the Fortran-ordered M (Wax or dWax) that tokens[:m] use."""
    for g in range(m):
        for f in range(ids.shape[1]):
            _prefetch_column(M, ids[tokens[g], f])


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


@njit(cache=True, fastmath=True, error_model="numpy")
def _step_inputs(Wax, ba, ids, offsets, group, lengths, m, m4, t, reverse, tokens, Z):
    """Step t of a group: tokens[g] = the t-th token p read of sentence group[g] and
    Z[g] = Σf Wax[:, ids[p, f]] + ba for the first m sentences; rows m..m4-1 (padding to _gemm's
    4-row blocks) = 0. Also starts loading the Wax columns of step t+1, which arrive while the
    caller multiplies by Waa."""
    for g in range(m):
        p = _token(offsets, group[g], t, reverse)
        tokens[g] = p
        _inputs(Wax, ba, ids, p, Z[g])
    for g in range(m, m4):
        for k in range(Z.shape[1]):
            Z[g, k] = 0
    for g in range(m):
        if lengths[group[g]] > t:
            p = _token(offsets, group[g], t + 1, reverse)
            for f in range(ids.shape[1]):
                _prefetch_column(Wax, ids[p, f])


@njit(cache=True, fastmath=True, error_model="numpy")
def _keep_dz(dZ, p, dz, t):
    """dZ[p] = dz<t> of token p, for the batch-wide dWaa product (_sum_recurrent_grads); 0 for
    the first token read, whose a<t-1> = a<0> = 0 takes no part in it."""
    row = dZ[p]
    for k in range(row.shape[0]):
        row[k] = dz[k] if t > 1 else 0


@njit(cache=True, fastmath=True, error_model="numpy")
def _sum_recurrent_grads(dZ, A, col, dWaa, reverse):
    """dWaa[:G] += Σt dz<t>·a<t-1>ᵀ over the whole batch, G = dZ's width: row i of dZ holds token
    i's dz<t> (0 for a sentence's first token read), and a<t-1> is the state of the token read
    just before it: the row above (or below, reading right to left). One product for all."""
    N = dZ.shape[0]
    H = dWaa.shape[1]
    if N > 1:
        if reverse:
            _gemm(dZ[:N - 1].T, A[1:, col:col + H], dWaa, dZ.shape[1], H, N - 1)
        else:
            _gemm(dZ[1:].T, A[:N - 1, col:col + H], dWaa, dZ.shape[1], H, N - 1)
