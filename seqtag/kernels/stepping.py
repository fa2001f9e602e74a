"""Stepping a batch through time, a group of sentences at a time: the set-up every recurrent cell
(seqtag.kernels.elman, lstm, gru) shares, forward and backward.

The sentences of a packed batch go through time in groups of up to _GROUP, longest first within
windows of _WINDOW sentences (_plan), so that the sentences still running at step t (the t-th
token read, in either direction) are always the first m of the group: the products with Waa are
then small matrix products (_gemm) over the first m rows (scratch rows m..m4-1, m4 a multiple of
4 (_pad4), stay zero: the products skip them). A forward pass shrinks m as t grows (_shrink); a backward pass reads m
for each t from the counts _running makes (_backward_scratch allocates them). The gradients of
Waa are one product over the whole batch afterwards (_keep_dz, _sum_recurrent_grads).

What a step does before a cell's own arithmetic is the same for every cell: forward, the inputs
plus A_prev·Waaᵀ (_forward_step); backward, the step's tokens, da<t> = dA<t> and the padding
(_backward_step), then da<t> += Waaᵀ·dz<t+1> (_backward_recurrent), with the scratch of a whole
backward pass from _backward_plan and each group's counts from _backward_group.

The helpers called once per step or per token are small and inlined into the cells' loops by
LLVM (or by Numba where inline="always"), so that the cells run as fast as when each wrote this
set-up out itself.

Numba's cache knows only a kernel's own file: after an edit here (or in simd.py, matmul.py), the
cells' cached machine code is stale until their files change too or __pycache__ is cleared.

Gated cells (seqtag.kernels.gru, seqtag.kernels.lstm). They have the calling convention of
seqtag.kernels.elman's rnn_forward / rnn_backward (A, col, dA, exact mean the same), so that a
model can swap cells, and one argument more: a per-token cache C that the forward pass fills with
what the backward pass needs, so that backward does not recompute the forward pass. A training
step per direction is  cell_forward → linear_forward → softmax_xent → linear_backward →
cell_backward; the model only has to allocate C per direction and pass it from forward to
backward. The G gates are stacked in the rows of Wax (G·H, V) (Fortran order: Wax·x<t> =
Σf Wax[:, x<t>_f] reads F contiguous columns), Waa (G·H, H) and ba (G·H,), both C-contiguous.
As in rnn_forward, a group of up to _GROUP sentences (longest first) goes through time together,
so that the products with Waa are small matrix products (_gemm), and the sums over all tokens of
the batch (dWaa) are one product each. In float32 (``exact=False``) σ(x) = ½(1 + tanh(x/2)) and
tanh use fast_tanh (|error| < 1e-6, vectorised); with ``exact=True``, σ(x) = 1/(1 + exp(-x)) and
np.tanh (float64 gradient checks). Every _gemm call has the operand layouts of rnn_forward's and
rnn_backward's (scratch copies rather than column slices; a right factor whose rows fill a
multiple of 512 bytes is a copy with padded rows, seqtag.kernels.matmul._row_stride), and
per-token index work is in the small helpers here, which keeps Numba's compile time (≈2 s per
kernel and dtype) down.
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.matmul import _gemm, _padded
from seqtag.kernels.simd import _prefetch_column

# Sentences stepped through time together. Each step multiplies a (_GROUP, H) block of states by
# Waaᵀ, whose panels stay in L1 (its rows padded, _row_stride) while the blocks of 4 rows use them
# in turn: 32 rows tagged 4% faster than 16 (the LSTM on batches of 256, one process, medians of
# 9 rounds; the same bits). Training's chunks hold 16 sentences (seqtag.network.CHUNK), one group.
_GROUP = 32
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _inputs(Wax, ba, ids, p, z):
    """z = Σf Wax[:, ids[p, f]] + ba  (the input part of all gates of token p)."""
    G = z.shape[0]
    for k in range(G):
        z[k] = ba[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            z[k] += Wax[k, x]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _add_input_grads(dz, ids, p, dWax, dba):
    """dba += dz;  dWax[:, ids[p, f]] += dz for every f."""
    G = dz.shape[0]
    for k in range(G):
        dba[k] += dz[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            dWax[k, x] += dz[k]


@njit(cache=True)
def _zero_rows(M, first, last):
    """M[first:last] = 0: the rows of a group's scratch that hold nothing at this step."""
    for g in range(first, last):
        for k in range(M.shape[1]):
            M[g, k] = 0


@njit(cache=True)
def _backward_plan(offsets, Waa, N, width):
    """_plan's (n, lengths, order, rows), _backward_scratch's (tokens, previous, active), and the
    arrays of Waa's dtype every cell's backward pass keeps: DZ (rows, Waa's height), DZ[g] =
    dz<t+1> of sentence g, then dz<t>; DA (rows, H), DA[g] = da<t>; dZ (N, width), dZ[i] = the
    dz<t> of token i that multiplies a<t-1> in dWaa (0 where t = 1)."""
    n, lengths, order, rows = _plan(offsets)
    tokens, previous, active = _backward_scratch(n, lengths, order, rows)
    DZ = np.zeros((rows, Waa.shape[0]), dtype=Waa.dtype)
    DA = np.zeros((rows, Waa.shape[1]), dtype=Waa.dtype)
    dZ = np.empty((N, width), dtype=Waa.dtype)
    return n, lengths, order, rows, tokens, previous, active, DZ, DA, dZ


@njit(cache=True, inline="always")
def _backward_group(lengths, order, first, active):
    """(group, T) of the group starting at ``first`` (_group), with active filled (_running)."""
    group, T = _group(lengths, order, first)
    _running(lengths, group, T, active)
    return group, T


@njit(cache=True)
def _backward_step(offsets, group, active, t, rows, reverse, tokens, previous, dA, col, DA, DZ):
    """(m, m_next, m4, m4_next) at step t of a backward pass: the sentences with ≥ t tokens and
    with ≥ t + 1 (the rows of DZ that hold step t+1's), and both padded (_pad4). Sets tokens[:m]
    to the tokens of step t and, for t > 1, previous to those of step t-1; DA[g] = dA[tokens[g],
    col:col+H] for g < m; DZ[m_next:m4_next] = 0 (no step t+1 there)."""
    m = active[t]
    m_next = active[t + 1]
    m4_next = _pad4(m_next, rows)
    _step_tokens(offsets, group, m, t, reverse, tokens)
    if t > 1:
        _step_tokens(offsets, group, active[t - 1], t - 1, reverse, previous)
    for g in range(m):
        da = DA[g]
        p = tokens[g]
        for j in range(da.shape[0]):
            da[j] = dA[p, col + j]
    _zero_rows(DZ, m_next, m4_next)
    return m, m_next, _pad4(m, rows), m4_next


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _backward_recurrent(dWax, ids, previous, active, t, DZ, Waa, DA, m_next, width):
    """DA[:m_next] += DZ[:m_next, :width]·Waa[:width] (da<t> += Waaᵀ·dz<t+1>, nothing if no
    sentence has a step t+1), after starting to load the dWax columns that step t-1 adds to."""
    if t > 1:
        _prefetch_inputs(dWax, ids, previous, active[t - 1])
    if m_next > 0:
        _gemm(DZ, Waa, DA, m_next, Waa.shape[1], width)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _forward_step(Wax, ba, ids, offsets, group, lengths, m, t, rows, reverse, tokens, Z, A_prev,
                  WaaT, width):
    """(m, m4) at step t of a forward pass (_shrink), with Z[:m4] = the input part of every gate
    (_step_inputs) and, for t > 1, Z[:m, :width] += A_prev·WaaT[:, :width] (a<0> = 0). (The
    product leaves the padding rows alone: _gemm takes any number of rows, and rounding them up
    to 4 cost a quarter more multiplications on CoNLL-2003's batches.)"""
    m, m4 = _shrink(lengths, group, m, t, rows)
    _step_inputs(Wax, ba, ids, offsets, group, lengths, m, m4, t, reverse, tokens, Z)
    if t > 1:
        _gemm(A_prev, WaaT, Z, m, width, A_prev.shape[1])
    return m, m4


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _step_inputs(Wax, ba, ids, offsets, group, lengths, m, m4, t, reverse, tokens, Z):
    """Step t of a group: tokens[g] = the t-th token p read of sentence group[g] and
    Z[g] = Σf Wax[:, ids[p, f]] + ba for the first m sentences; rows m..m4-1 (padding to _gemm's
    4-row blocks) = 0. Also starts loading the Wax columns of step t+1, which arrive while the
    caller multiplies by Waa."""
    for g in range(m):
        p = _token(offsets, group[g], t, reverse)
        tokens[g] = p
        _inputs(Wax, ba, ids, p, Z[g])
    _zero_rows(Z, m, m4)
    for g in range(m):
        if lengths[group[g]] > t:
            p = _token(offsets, group[g], t + 1, reverse)
            for f in range(ids.shape[1]):
                _prefetch_column(Wax, ids[p, f])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _keep_state(cache, z, extra, out, a):
    """The end of a gated cell's forward step for one token: cache = [z | extra] (its row of C,
    for the backward pass) and out = a (its state, into A). (The LSTM writes its own: it folds
    a = o ⊙ tanh(c) into the copy of c, which measured 8% quicker in lstm_forward than this.)"""
    G = z.shape[0]
    for k in range(G):
        cache[k] = z[k]
    for j in range(extra.shape[0]):
        cache[G + j] = extra[j]
    for j in range(a.shape[0]):
        out[j] = a[j]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _keep_dz(dZ, p, dz, t):
    """dZ[p] = dz<t> of token p, for the batch-wide dWaa product (_sum_recurrent_grads); 0 for
    the first token read, whose a<t-1> = a<0> = 0 takes no part in it."""
    row = dZ[p]
    for k in range(row.shape[0]):
        row[k] = dz[k] if t > 1 else 0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _sum_recurrent_grads(dZ, A, col, dWaa, reverse):
    """dWaa[:G] += Σt dz<t>·a<t-1>ᵀ over the whole batch, G = dZ's width: row i of dZ holds token
    i's dz<t> (0 for a sentence's first token read), and a<t-1> is the state of the token read
    just before it: the row above (or below, reading right to left). One product for all."""
    N = dZ.shape[0]
    H = dWaa.shape[1]
    if N > 1:
        # A's rows are 2H entries apart (1 KiB): a copy a cache line further apart makes the
        # product 1.5x as fast (_row_stride), the same sums
        states = _padded(A[:, col:col + H])
        if reverse:
            _gemm(dZ[:N - 1].T, states[1:], dWaa, dZ.shape[1], H, N - 1)
        else:
            _gemm(dZ[1:].T, states[:N - 1], dWaa, dZ.shape[1], H, N - 1)
