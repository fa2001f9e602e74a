"""The inference kernels in plain NumPy: the whole forward pass of every seqtag model, with the
calling conventions of the Numba kernels they stand in for (seqtag.kernels.*), so that the layers
take either set. This module imports nothing but NumPy: with a model's .npz it runs where Numba
is not installed, and it costs no compilation.

A packed batch: sentence s is tokens offsets[s]..offsets[s+1]-1 (offsets int64), row i of ids
(N, F) holds token i's input columns, row i of A (N, D) its states (a direction writes the H
columns from ``col``), row i of E (N, L) its label scores.

  embed_sum        X[u] = Σ_{f < n_cols} Ex[:, rows[u, f]]
  charcnn_forward  c = tanh(max_p Wconv·[Ec[ch<p>]; ...; Ec[ch<p+width-1>]] + bconv)
  linear_forward   E = A·Wyaᵀ + by
  rnn_forward      a<t> = tanh(Σf Wax[:, x<t>_f] + Waa·a<t-1> + ba)
  lstm_forward     [i; f; g; o] = [σ; σ; tanh; σ](z<t>), c<t> = f⊙c<t-1> + i⊙g, a<t> = o⊙tanh(c<t>)
  gru_forward      r, u = σ(.), n = tanh(W_n·x + U_n·(r⊙a<t-1>) + b_n), a<t> = (1-u)⊙n + u⊙a<t-1>
  softmax_rows     E[i] = softmax(E[i])
  crf_marginals, crf_log_partition, viterbi, nbest   the linear-chain CRF (seqtag.kernels.crf)

Vectorised over the batch: the sentences are stepped through time together, longest first, so
that the sentences still running at step t are the first m and each step is one matrix product
(m, H)·(H, G) for all of them (the Numba kernels do the same in groups of 16). The input part
Σf Wax[:, x<t>_f] + ba of every token is gathered once per call, before the steps, in the order
the steps read it (_steps), so that step t reads and writes contiguous rows. σ(x) is
½(1 + tanh(x/2)): the σ gates' columns are pre-scaled by ½, so that one tanh covers all gates.
The cells' forward caches C and the CNN's winning windows (what backpropagation reads) are not
written: this engine only tags.
The CRF recursions run in float64, as the Numba kernels'.
"""

from __future__ import annotations

import numpy as np

# Words of the character CNN are convolved in chunks of similar length (sorted by length), so
# that a long word pads only its own chunk.
_CHAR_CHUNK = 1024

# The cells do not fill the per-token caches C of the backward pass (seqtag.layers.recurrent).
WRITES_CACHE = False


# -- the input layers ------------------------------------------------------------------------------

def _gather_sum(MT, ids, n_cols):
    """Σ_{f < n_cols} MT[ids[:, f]]: rows of the C-ordered (V, G) MT (a transposed F-ordered M)."""
    out = np.take(MT, ids[:, 0], axis=0)
    for f in range(1, n_cols):
        out += np.take(MT, ids[:, f], axis=0)
    return out


def embed_sum(Ex, rows, n_cols, X):
    """X[u, :d] = Σ_{f < n_cols} Ex[:, rows[u, f]] (Ex (d, V) Fortran-ordered)."""
    if len(rows):
        X[:, :Ex.shape[0]] = _gather_sum(Ex.T, rows, n_cols)


def gather_rows(P, rows, out):
    """out[i] = P[rows[i]]."""
    np.take(P, rows, axis=0, out=out, mode="clip")


def charcnn_forward(Ec, Wconv, bconv, chars, starts, types, width, out, arg=None):
    """out[u] = tanh(max_p Wconv·[Ec[chars[lo+p]]; ...; Ec[chars[lo+p+width-1]]] + bconv) for the
    word types[u] spelled chars[lo:hi] (lo, hi = starts[types[u]], starts[types[u] + 1], at
    least ``width`` long). ``arg`` (the winning windows, for backprop) is not written."""
    types = np.asarray(types)
    if not len(types):
        return
    lo = starts[types]
    length = starts[types + 1] - lo
    order = np.argsort(length, kind="stable")
    dc = Ec.shape[1]
    WT = np.ascontiguousarray(Wconv.T)           # (width·dc, F)
    for first in range(0, len(order), _CHAR_CHUNK):
        chunk = order[first:first + _CHAR_CHUNK]
        n_max = int(length[chunk[-1]])
        positions = n_max - width + 1
        # each word's characters padded (with its own first character) to n_max
        index = lo[chunk, None] + np.minimum(np.arange(n_max), length[chunk, None] - 1)
        emb = Ec[chars[index]]                   # (w, n_max, dc)
        windows = np.concatenate([emb[:, j:j + positions] for j in range(width)], axis=2)
        h = windows.reshape(-1, width * dc) @ WT
        h = h.reshape(len(chunk), positions, -1)
        h += bconv
        valid = np.arange(positions)[None, :] < (length[chunk] - width + 1)[:, None]
        h[~valid] = -np.inf
        out[chunk] = np.tanh(h.max(axis=1))


def linear_forward(A, Wya, by, E):
    """E = A·Wyaᵀ + by (E may be a C-ordered view, such as the slots' transpose)."""
    if len(A):
        np.matmul(A, Wya.T, out=E)
        E += by


# -- the cells -------------------------------------------------------------------------------------

def _steps(offsets, reverse):
    """(tokens, bounds): the batch's tokens in the order the cells read them, step by step (the
    t-th token read of each sentence, from the left or, if reverse, from the right), longest
    sentence first within a step, so that the sentences still running at step t are the first
    m = bounds[t+1] - bounds[t] of the step before; bounds (a list) is where each step starts."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    length = lengths[order]
    T = int(length[0]) if len(length) else 0
    m_at = len(length) - np.searchsorted(length[::-1], np.arange(T), side="right")
    bounds = np.zeros(T + 1, np.int64)
    np.cumsum(m_at, out=bounds[1:])
    step = np.repeat(np.arange(T), m_at)
    sentence = order[np.arange(len(step)) - bounds[step]]
    tokens = offsets[sentence + 1] - 1 - step if reverse else offsets[sentence] + step
    return tokens, bounds.tolist()


def _inputs(Wax, ba, ids, scale=None):
    """Σf Wax[:, ids[i, f]] + ba of every token i (N, G), its columns times ``scale``."""
    Z = _gather_sum(Wax.T, ids, ids.shape[1])
    Z += ba
    if scale is not None:
        Z *= scale
    return Z


def _half_scale(G, H, sigmoid_blocks, dtype):
    """½ on the rows of the σ gates (their tanh(z/2)), 1 elsewhere."""
    s = np.ones(G, dtype=dtype)
    for b in sigmoid_blocks:
        s[b * H:(b + 1) * H] = 0.5
    return s


def rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col):
    """a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, ids[t, f]] + ba);  A[t, col:col+H] = a<t>,
    left to right, or right to left when ``reverse`` (``exact`` is unused: np.tanh always)."""
    tokens, bounds = _steps(offsets, reverse)
    if not len(tokens):
        return
    Z = _inputs(Wax, ba, ids[tokens])       # in step order: row lo..hi-1 is step t
    WaaT = np.ascontiguousarray(Waa.T)
    S = None
    for lo, hi in zip(bounds, bounds[1:]):
        z = Z[lo:hi]
        if S is not None:
            z += S[:hi - lo] @ WaaT
        S = np.tanh(z, out=z)
    A[tokens, col:col + Waa.shape[0]] = Z


def lstm_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C=None):
    """One LSTM direction, gates [i; f; g; o] in the rows of Wax (4H, V), Waa (4H, H), ba (4H,):
    z<t> = Σf Wax[:, ids[t, f]] + Waa·a<t-1> + ba, c<t> = σ(z_f)⊙c<t-1> + σ(z_i)⊙tanh(z_g),
    a<t> = σ(z_o)⊙tanh(c<t>), a<0> = c<0> = 0; A[t, col:col+H] = a<t>. C is not written."""
    H = Waa.shape[1]
    tokens, bounds = _steps(offsets, reverse)
    if not len(tokens):
        return
    scale = _half_scale(Waa.shape[0], H, (0, 1, 3), Waa.dtype)
    Z = _inputs(Wax, ba, ids[tokens], scale)    # in step order
    WaaT = Waa.T * scale                        # (H, 4H), C-ordered
    half = Waa.dtype.type(0.5)
    out = np.empty((len(tokens), H), Waa.dtype)
    S = c = None
    for lo, hi in zip(bounds, bounds[1:]):
        m = hi - lo
        z = Z[lo:hi]
        if S is not None:
            z += S[:m] @ WaaT
        np.tanh(z, out=z)
        sig = z[:, :2 * H]                      # i, f: σ = ½ + ½·tanh(z/2)
        sig *= half
        sig += half
        o = z[:, 3 * H:]
        o *= half
        o += half
        i_g = z[:, :H] * z[:, 2 * H:3 * H]
        if c is None:
            c = i_g
        else:
            c = z[:, H:2 * H] * c[:m]
            c += i_g
        S = np.tanh(c, out=out[lo:hi])
        S *= o
    A[tokens, col:col + H] = out


def gru_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C=None):
    """One GRU direction (Cho et al.), gates [r; u; n] in the rows of Wax (3H, V), Waa (3H, H),
    ba (3H,): r, u = σ(W·x<t> + U·a<t-1> + b), n = tanh(W_n·x<t> + U_n·(r⊙a<t-1>) + b_n),
    a<t> = (1 - u)⊙n + u⊙a<t-1>, a<0> = 0; A[t, col:col+H] = a<t>. C is not written."""
    H = Waa.shape[1]
    tokens, bounds = _steps(offsets, reverse)
    if not len(tokens):
        return
    scale = _half_scale(Waa.shape[0], H, (0, 1), Waa.dtype)
    Z = _inputs(Wax, ba, ids[tokens], scale)    # in step order
    UruT = Waa[:2 * H].T * scale[:2 * H]        # (H, 2H)
    UnT = np.ascontiguousarray(Waa[2 * H:].T)   # (H, H)
    half = Waa.dtype.type(0.5)
    out = np.empty((len(tokens), H), Waa.dtype)
    S = None
    for lo, hi in zip(bounds, bounds[1:]):
        z = Z[lo:hi]
        ru = z[:, :2 * H]
        n = z[:, 2 * H:]
        a = out[lo:hi]
        if S is not None:
            prev = S[:hi - lo]
            ru += prev @ UruT
            np.tanh(ru, out=ru)
            ru *= half
            ru += half
            n += (ru[:, :H] * prev) @ UnT
            np.tanh(n, out=n)
            np.subtract(prev, n, out=a)         # a<t> = n + u⊙(a<t-1> - n)
            a *= ru[:, H:]
            a += n
        else:
            np.tanh(ru, out=ru)
            u = ru[:, H:] * half
            u += half
            np.tanh(n, out=n)
            np.multiply(u, n, out=a)            # (1 - u)⊙n
            np.subtract(n, a, out=a)
        S = a
    A[tokens, col:col + H] = out


# -- the output layer ------------------------------------------------------------------------------

def softmax_rows(E, exact=False):
    """E[i] = softmax(E[i]) = exp(E[i] - max) / Σk exp(E[i, k] - max), in place."""
    if not len(E):
        return
    E -= E.max(axis=1, keepdims=True)
    np.exp(E, out=E)
    E /= E.sum(axis=1, keepdims=True)


def _logsumexp(x, axis):
    """log Σ exp(x) along ``axis``, -inf (not NaN) where every term is -inf."""
    top = x.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - top).sum(axis=axis)) + np.squeeze(top, axis=axis)


def _chain(E, offsets):
    """The sentences longest first, as for the cells: (m_at, tokens(t, m), T, order, length)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    length = lengths[order]
    first = offsets[:-1][order]
    T = int(length[0]) if len(length) else 0
    m_at = len(length) - np.searchsorted(length[::-1], np.arange(T), side="right")
    return m_at, (lambda t, m: first[:m] + t), T, order, length


def _alphas(E, offsets, trans, start):
    """The forward recursion over the batch, float64: (alpha per step (m_t, L), m_at, tokens,
    T, order, length), alpha[t][k] = log Σ over label prefixes of sentence order[k] up to t."""
    m_at, tokens, T, order, length = _chain(E, offsets)
    tr = trans.astype(np.float64)
    alphas = []
    for t in range(T):
        m = int(m_at[t])
        e = E[tokens(t, m)].astype(np.float64)
        if t == 0:
            alphas.append(start.astype(np.float64) + e)
        else:
            alphas.append(_logsumexp(alphas[-1][:m, :, None] + tr, axis=1) + e)
    return alphas, m_at, tokens, T, order, length


def _log_z(alphas, m_at, T, end, n):
    """log Z of each of the n sentences (in the longest-first order): from each one's last
    alpha."""
    L = end.shape[0]
    last = np.zeros((n, L))
    for t in range(T):
        m = int(m_at[t])
        last[:m] = alphas[t]
    return _logsumexp(last + end.astype(np.float64), axis=1)


def crf_log_partition(E, offsets, trans, start, end, out):
    """out[s] = log Z_s = log Σ_y exp score(y) for each sentence (0 for an empty one)."""
    n = len(offsets) - 1
    alphas, m_at, tokens, T, order, length = _alphas(E, offsets, trans, start)
    log_z = _log_z(alphas, m_at, T, end, n)
    log_z[length == 0] = 0.0
    out[order] = log_z


def crf_marginals(E, offsets, trans, start, end, P):
    """P[t, j] = P(y_t = j | x) = exp(alpha[t, j] + beta[t, j] - log Z) by forward-backward
    (P (N, L), overwritten; rows of a sentence with no allowed path are 0)."""
    n = len(offsets) - 1
    if not len(E):
        return
    alphas, m_at, tokens, T, order, length = _alphas(E, offsets, trans, start)
    log_z = _log_z(alphas, m_at, T, end, n)
    tr = trans.astype(np.float64)
    beta = np.zeros((n, len(end)))
    # beta of sentence k at its last token is end; earlier: log Σj exp(trans[i, j] + e_j + beta_j)
    ends = length - 1
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(T - 1, -1, -1):
            m = int(m_at[t])
            tok = tokens(t, m)
            here = ends[:m] == t
            beta[:m][here] = end
            if t + 1 < T:
                m1 = int(m_at[t + 1])
                w = E[tokens(t + 1, m1)].astype(np.float64) + beta[:m1]
                beta[:m1] = _logsumexp(tr[None] + w[:, None, :], axis=2)
            p = np.exp(alphas[t] + beta[:m] - log_z[:m, None])
            p[~np.isfinite(log_z[:m])] = 0.0
            P[tok] = p


def viterbi(E, offsets, trans, start, end, out):
    """out[o:o+T] = argmax_y score(y) for each sentence (out (N,) int32), max-sum in float64;
    ties go to the lower label (as seqtag.kernels.crf.viterbi)."""
    m_at, tokens, T, order, length = _chain(E, offsets)
    if T == 0:
        return
    n = len(length)
    L = trans.shape[0]
    tr = trans.astype(np.float64)
    delta = np.empty((n, L))
    back = []
    rows = np.arange(n)
    for t in range(T):
        m = int(m_at[t])
        e = E[tokens(t, m)].astype(np.float64)
        if t == 0:
            delta[:m] = start.astype(np.float64) + e
            back.append(None)
            continue
        v = delta[:m, :, None] + tr             # (m, i, j)
        arg = v.argmax(axis=1)
        delta[:m] = np.take_along_axis(v, arg[:, None, :], axis=1)[:, 0] + e
        back.append(arg)
    # delta now holds each sentence's last step (rows beyond m_t stopped being updated)
    y = (delta + end.astype(np.float64)).argmax(axis=1)
    for t in range(T - 1, -1, -1):
        m = int(m_at[t])
        if t + 1 < T:
            m1 = int(m_at[t + 1])
            y[:m1] = back[t + 1][rows[:m1], y[:m1]]
        out[tokens(t, m)] = y[:m]


def nbest(E, trans, start, end, k):
    """The k best label sequences of ONE sentence E (T, L): (paths (k', T) int32, scores (k',)
    float64), k' = min(k, L^T), as seqtag.kernels.crf.nbest (exact list Viterbi; ties: lower
    labels first). S[t, j, r], the r-th best score of a prefix ending in j at t, keeps the best
    new_count of the L·count candidates S[t-1, i, r] + trans[i, j] (a stable sort in (i, r)
    order, which is the merge's order of ties)."""
    T = E.shape[0]
    L = trans.shape[0]
    if k <= 0:
        return np.zeros((0, T), dtype=np.int32), np.zeros(0, dtype=np.float64)
    if T == 0:
        return np.zeros((1, 0), dtype=np.int32), np.zeros(1, dtype=np.float64)
    tr = trans.astype(np.float64)
    E = E.astype(np.float64)
    S = start.astype(np.float64)[:, None] + E[0][:, None]     # (L, count)
    froms = []                                                 # per t: (label, rank) (count, L)
    count = 1
    for t in range(1, T):
        new_count = min(k, count * L)
        cand = (S[:, :count, None] + tr[:, None, :]).reshape(L * count, L)
        pick = np.argsort(-cand, axis=0, kind="stable")[:new_count]       # (new_count, L)
        top = np.take_along_axis(cand, pick, axis=0)
        S = (top + E[t]).T                                     # (L, new_count)
        froms.append((pick // count, pick % count))
        count = new_count
    final = (S[:, :count] + end.astype(np.float64)[:, None]).reshape(-1)
    n_out = min(k, count * L)
    pick = np.argsort(-final, kind="stable")[:n_out]
    scores = final[pick]
    paths = np.empty((n_out, T), dtype=np.int32)
    y, rank = pick // count, pick % count
    paths[:, T - 1] = y
    for t in range(T - 1, 0, -1):
        label, ranks = froms[t - 1]
        y, rank = label[rank, y], ranks[rank, y]
        paths[:, t - 1] = y
    return paths, scores
