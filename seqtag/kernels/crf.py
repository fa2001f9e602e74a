"""Numba kernels of a linear-chain CRF: log Z, loss and gradients, marginals, Viterbi, k-best.

L labels. Emission scores E (N, L) of a packed batch: sentence s is rows offsets[s]:offsets[s+1]
(offsets (n+1,) int64), as for the RNN kernels. Parameters: trans (L, L) with trans[i, j] the
score of label j right after label i, start (L,), end (L,).

  score(y) = start[y_0] + Σt E[t, y_t] + Σ_{t≥1} trans[y_{t-1}, y_t] + end[y_{T-1}]
  log Z = log Σ_y exp score(y)        P(y | x) = exp(score(y) − log Z)

An empty sentence has one (empty) path of score 0: log Z = 0, loss 0, nothing to decode.

Forbidden transitions are given as very low scores in trans/start/end: either the finite -1e4
(what seqtag.decoding.transition_mask gives; exp(-1e4) is exactly 0 in float32 and float64, so a
masked path gets probability exactly 0 and a masked entry gradient exactly 0) or -inf. Both work
without NaN. -inf is handled explicitly (a state no path reaches keeps log score -inf, a sentence
with no allowed path has log Z = -inf, loss +inf and zero marginals), which is why these kernels
use fastmath without the no-inf/no-NaN flags: with them LLVM may fold away the -inf tests.

Numerics. Whatever the dtype of the inputs (float32 for speed, float64 for exact checks), the
recursions run in float64 in log space, with np.exp/np.log. A log-sum-exp over L predecessors
costs L exps per state, L² per token; instead each step factors the shifts out,

  log Σi exp(a_i + trans[i, j]) = A + c + log Σi exp(a_i − A)·exp(trans[i, j] − c),
  A = maxi a_i,  c = max trans (fixed per call, exp(trans − c) computed once),

so a forward step costs L exps, a small matrix-vector product and L logs, and the backward step
as much again. The marginals P(y_t = j) and P(y_{t-1} = i, y_t = j) then need no exp of their own:
the factors of the two steps at t, normalised to sum to 1, are exactly them (see _backward). The
factored sums are exact to rounding unless they underflow (every term below 1e-280: all
predecessors forbidden, or a state ~650 below the best); such a state is recomputed by the plain
shifted log-sum-exp (L exps), and that token's marginals by exp(alpha + beta − log Z).

This module imports nothing of seqtag but seqtag.kernels' flags, so that the kernels can be tested
and benchmarked alone.
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH

# The kernels' flags minus "nnan"/"ninf" (exp/log stay the exact libm ones, as FASTMATH has no
# "afn"); reassociation still lets LLVM vectorise the sums.
_FM = FASTMATH - {"nnan", "ninf"}

# A factored sum (≤ L terms, each ≤ 1) at or below this is recomputed as a log-sum-exp; its
# reciprocal (normalising the marginals) stays far from float64 overflow.
_TINY = 1e-280

_NEG_INF = -np.inf


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _longest(offsets):
    longest = 0
    for s in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[s + 1] - offsets[s])
    return longest


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _exp_trans(trans):
    """(exp(trans − c), c), c the largest finite entry of trans (0 if none): entries in [0, 1]."""
    L = trans.shape[0]
    c = _NEG_INF
    for i in range(L):
        for j in range(L):
            v = np.float64(trans[i, j])
            if v > c and v < np.inf:
                c = v
    if c == _NEG_INF:
        c = 0.0
    expT = np.empty((L, L), dtype=np.float64)
    for i in range(L):
        for j in range(L):
            expT[i, j] = np.exp(trans[i, j] - c)
    return expT, c


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _scratch(offsets, L):
    """Scratch of forward–backward for sentences of up to Tmax tokens: alpha (Tmax, L) the log
    forward scores; ps, ss (Tmax, L) the factors of each forward step (see _forward); fast (Tmax,)
    whether step t was exact in factored form."""
    Tmax = max(_longest(offsets), 1)
    alpha = np.empty((Tmax, L), dtype=np.float64)
    ps = np.empty((Tmax, L), dtype=np.float64)
    ss = np.empty((Tmax, L), dtype=np.float64)
    fast = np.zeros(Tmax, dtype=np.bool_)
    return alpha, ps, ss, fast


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward(E, o, T, trans, expT, c, start, end, alpha, ps, ss, fast):
    """Fill alpha[:T] (float64) for the sentence at rows o:o+T of E; return its log Z.

    alpha[0, j] = start[j] + E[o, j]
    alpha[t, j] = E[o+t, j] + log Σi exp(alpha[t-1, i] + trans[i, j])
                = E[o+t, j] + A + c + log ss[t, j],  A = maxi alpha[t-1, i],
      ss[t, j] = Σi ps[t, i]·exp(trans[i, j] − c),  ps[t, i] = exp(alpha[t-1, i] − A)
    log Z = log Σj exp(alpha[T-1, j] + end[j])
    fast[t] = every ss[t, j] > _TINY (else those alpha[t, j] come from the plain log-sum-exp).
    """
    L = trans.shape[0]
    for j in range(L):
        alpha[0, j] = np.float64(start[j]) + E[o, j]
    for t in range(1, T):
        prev = alpha[t - 1]
        cur = alpha[t]
        p = ps[t]
        s = ss[t]
        e = E[o + t]
        A = prev[0]
        for i in range(1, L):
            A = max(A, prev[i])
        if A == _NEG_INF:  # no path reaches step t-1
            for j in range(L):
                cur[j] = _NEG_INF
            fast[t] = False
            continue
        for j in range(L):
            s[j] = 0.0
        for i in range(L):
            pi = np.exp(prev[i] - A)
            p[i] = pi
            row = expT[i]
            for j in range(L):
                s[j] += pi * row[j]
        base = A + c
        exact = True
        for j in range(L):
            if s[j] > _TINY:
                cur[j] = e[j] + base + np.log(s[j])
            else:  # underflow: the shifted log-sum-exp
                exact = False
                m = _NEG_INF
                for i in range(L):
                    m = max(m, prev[i] + trans[i, j])
                if m == _NEG_INF:
                    cur[j] = _NEG_INF
                else:
                    total = 0.0
                    for i in range(L):
                        total += np.exp(prev[i] + trans[i, j] - m)
                    cur[j] = e[j] + m + np.log(total)
        fast[t] = exact
    last = alpha[T - 1]
    m = _NEG_INF
    for j in range(L):
        m = max(m, last[j] + end[j])
    if m == _NEG_INF:
        return _NEG_INF
    total = 0.0
    for j in range(L):
        total += np.exp(last[j] + end[j] - m)
    return m + np.log(total)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _backward(E, o, T, trans, expT, c, end, alpha, ps, ss, fast, logZ, P, acc, pairs, beta, w, q):
    """Backward recursion for the sentence at rows o:o+T; writes the marginals into P[o:o+T].

    beta[T-1, i] = end[i]
    beta[t-1, i] = log Σj exp(trans[i, j] + w_j),  w_j = E[o+t, j] + beta[t, j]
                 = W + c + log Σj exp(trans[i, j] − c)·q_j,  q_j = exp(w_j − W),  W = maxj w_j
    P[o+t, j] = P(y_t = j) = exp(alpha[t, j] + beta[t, j] − log Z)
    With pairs, acc[i, j] += P(y_{t-1} = i, y_t = j)
                          = exp(alpha[t-1, i] + trans[i, j] + w_j − log Z).
    For t ≥ 1, alpha[t, j] + beta[t, j] = A + c + W + log(ss[t, j]·q_j) and alpha[t-1, i] = A +
    log ps[t, i], so with K = exp(A + c + W − log Z) = 1 / Σj ss[t, j]·q_j (the marginals sum to 1)
      P(y_t = j) = K·ss[t, j]·q_j,   P(y_{t-1} = i, y_t = j) = K·ps[t, i]·exp(trans[i, j] − c)·q_j:
    no exp beyond the L of q. Where fast[t] is False (underflow in the forward step) both come
    from the exps above instead. beta holds two rows (beta[t], beta[t-1]); w, q are (L,) scratch.
    """
    L = trans.shape[0]
    dead = logZ == _NEG_INF  # no allowed path: zero marginals
    cur = beta[0]
    nxt = beta[1]
    for j in range(L):
        cur[j] = end[j]
    for t in range(T - 1, -1, -1):
        out = P[o + t]
        if t == 0:
            a_t = alpha[0]
            for j in range(L):
                out[j] = 0.0 if dead else np.exp(a_t[j] + cur[j] - logZ)
            break
        e = E[o + t]
        W = _NEG_INF
        for j in range(L):
            w[j] = e[j] + cur[j]
            W = max(W, w[j])
        if W > _NEG_INF:
            for j in range(L):
                q[j] = np.exp(w[j] - W)
        if fast[t] and W > _NEG_INF and not dead:
            s = ss[t]
            norm = 0.0
            for j in range(L):
                norm += s[j] * q[j]
            K = 1.0 / norm  # norm ≥ ss[t, argmax w] > _TINY
            for j in range(L):
                out[j] = K * s[j] * q[j]
            if pairs:
                p = ps[t]
                for i in range(L):
                    pk = K * p[i]
                    row = expT[i]
                    a = acc[i]
                    for j in range(L):
                        a[j] += pk * row[j] * q[j]
        else:
            a_t = alpha[t]
            for j in range(L):
                out[j] = 0.0 if dead else np.exp(a_t[j] + cur[j] - logZ)
            if pairs and not dead and W > _NEG_INF:
                a_prev = alpha[t - 1]
                for i in range(L):
                    if a_prev[i] > _NEG_INF:
                        a = acc[i]
                        for j in range(L):
                            a[j] += np.exp(a_prev[i] + trans[i, j] + w[j] - logZ)
        if W == _NEG_INF:  # nothing after step t-1 can finish
            for i in range(L):
                nxt[i] = _NEG_INF
        else:
            base = W + c
            for i in range(L):
                row = expT[i]
                r = 0.0
                for j in range(L):
                    r += row[j] * q[j]
                if r > _TINY:
                    nxt[i] = base + np.log(r)
                else:  # underflow: the shifted log-sum-exp
                    m = _NEG_INF
                    for j in range(L):
                        m = max(m, trans[i, j] + w[j])
                    if m == _NEG_INF:
                        nxt[i] = _NEG_INF
                    else:
                        total = 0.0
                        for j in range(L):
                            total += np.exp(trans[i, j] + w[j] - m)
                        nxt[i] = m + np.log(total)
        cur, nxt = nxt, cur


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_backward(E, offsets, trans, start, end, P, acc, pairs):
    """Forward–backward over each non-empty sentence of the packed batch, in order: the marginals
    into P (and, with pairs, the pair marginals added into acc) by _backward; returns log Z per
    sentence (n,) (0 for an empty one, which is skipped)."""
    L = trans.shape[0]
    n = offsets.shape[0] - 1
    expT, c = _exp_trans(trans)
    alpha, ps, ss, fast = _scratch(offsets, L)
    beta = np.empty((2, L), dtype=np.float64)
    w = np.empty(L, dtype=np.float64)
    q = np.empty(L, dtype=np.float64)
    logZs = np.zeros(n, dtype=np.float64)
    for k in range(n):
        o = offsets[k]
        T = offsets[k + 1] - o
        if T > 0:
            logZ = _forward(E, o, T, trans, expT, c, start, end, alpha, ps, ss, fast)
            _backward(E, o, T, trans, expT, c, end, alpha, ps, ss, fast, logZ, P, acc, pairs,
                      beta, w, q)
            logZs[k] = logZ
    return logZs


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def crf_nll(E, offsets, labels, trans, start, end, dE, dtrans, dstart, dend):
    """Σ_s [log Z_s − score(y_s)] over the packed batch, with its gradients.

    log Z by the forward algorithm in log space; gradients by forward–backward:
      dE[t, j] = P(y_t = j) − [y_t = j]                         (dE is overwritten)
      dtrans[i, j] += Σ_{t≥1} P(y_{t-1} = i, y_t = j) − [y_{t-1} = i, y_t = j]
      dstart[j] += P(y_0 = j) − [y_0 = j];  dend[j] += P(y_{T-1} = j) − [y_{T-1} = j]
    A sentence whose gold path scores -inf, or with no allowed path at all, adds +inf.
    """
    L = trans.shape[0]
    n = offsets.shape[0] - 1
    acc = np.zeros((L, L), dtype=np.float64)
    logZs = _forward_backward(E, offsets, trans, start, end, dE, acc, True)
    loss = 0.0
    for k in range(n):
        o = offsets[k]
        T = offsets[k + 1] - o
        if T == 0:
            continue
        logZ = logZs[k]
        for j in range(L):
            dstart[j] += dE[o, j]
            dend[j] += dE[o + T - 1, j]
        y = labels[o]
        score = np.float64(start[y]) + E[o, y]
        dE[o, y] -= 1
        dstart[y] -= 1
        for t in range(1, T):
            y_prev = y
            y = labels[o + t]
            score += np.float64(trans[y_prev, y]) + E[o + t, y]
            dE[o + t, y] -= 1
            dtrans[y_prev, y] -= 1
        score += end[y]
        dend[y] -= 1
        if logZ == _NEG_INF or score == _NEG_INF:
            loss = np.inf
        else:
            loss += logZ - score
    for i in range(L):
        for j in range(L):
            dtrans[i, j] += acc[i, j]
    return loss


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def crf_marginals(E, offsets, trans, start, end, P):
    """P[t, j] = P(y_t = j | x) for every token of the packed batch (P (N, L), overwritten).

    P(y_t = j) = exp(alpha[t, j] + beta[t, j] − log Z): forward–backward. Rows sum to 1 (to 0 in
    a sentence with no allowed path).
    """
    acc = np.zeros((1, 1), dtype=np.float64)  # (no pair marginals)
    _forward_backward(E, offsets, trans, start, end, P, acc, False)


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def crf_log_partition(E, offsets, trans, start, end, out):
    """out[s] = log Z_s = log Σ_y exp score(y) for each sentence of the packed batch (out (n,))."""
    L = trans.shape[0]
    n = offsets.shape[0] - 1
    expT, c = _exp_trans(trans)
    alpha, ps, ss, fast = _scratch(offsets, L)
    for k in range(n):
        o = offsets[k]
        T = offsets[k + 1] - o
        out[k] = 0.0 if T == 0 else _forward(E, o, T, trans, expT, c, start, end, alpha, ps, ss,
                                             fast)


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def viterbi(E, offsets, trans, start, end, out):
    """out[o:o+T] = argmax_y score(y) for each sentence (out (N,) int32): max-sum, float64.

    delta[0, j] = start[j] + E[0, j]
    delta[t, j] = E[t, j] + maxi (delta[t-1, i] + trans[i, j]),  back[t, j] = that argmax
    y_{T-1} = argmaxj (delta[T-1, j] + end[j]);  y_{t-1} = back[t, y_t]
    Ties go to the lower label. Scores of -inf never make NaN (there are no +inf scores); a path
    through a -inf entry is returned only when every path scores -inf.
    """
    L = trans.shape[0]
    n = offsets.shape[0] - 1
    tr = np.empty((L, L), dtype=np.float64)
    for i in range(L):
        for j in range(L):
            tr[i, j] = trans[i, j]
    back = np.empty((max(_longest(offsets), 1), L), dtype=np.int32)
    delta = np.empty((2, L), dtype=np.float64)
    best = np.empty(L, dtype=np.float64)
    for k in range(n):
        o = offsets[k]
        T = offsets[k + 1] - o
        if T == 0:
            continue
        prev = delta[0]
        cur = delta[1]
        for j in range(L):
            prev[j] = np.float64(start[j]) + E[o, j]
        for t in range(1, T):
            arg = back[t]
            row = tr[0]
            a = prev[0]
            for j in range(L):
                best[j] = a + row[j]
                arg[j] = 0
            for i in range(1, L):
                row = tr[i]
                a = prev[i]
                for j in range(L):
                    v = a + row[j]
                    if v > best[j]:
                        best[j] = v
                        arg[j] = i
            e = E[o + t]
            for j in range(L):
                cur[j] = best[j] + e[j]
            prev, cur = cur, prev
        y = 0
        top = prev[0] + end[0]
        for j in range(1, L):
            v = prev[j] + end[j]
            if v > top:
                top = v
                y = j
        out[o + T - 1] = y
        for t in range(T - 1, 0, -1):
            y = back[t, y]
            out[o + t - 1] = y


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def nbest(E, trans, start, end, k):
    """The k best label sequences of ONE sentence E (T, L): (paths (k', T) int32, scores (k',) f64).

    k' = min(k, L^T); scores decrease (ties: lower labels first, position by position from the end).
    Exact list Viterbi: S[t, j, r] is the r-th best score of a prefix ending in label j at step t,
      S[0, j, 0] = start[j] + E[0, j]
      S[t, j, :] = E[t, j] + the k best of {S[t-1, i, r] + trans[i, j]}  (a k-way merge of the
                   L sorted lists), with the (i, r) it came from; the paths end in the k best of
                   S[T-1, j, r] + end[j].
    Probabilities: exp(score − log Z). An empty sentence has one empty path of score 0.
    """
    T = E.shape[0]
    L = trans.shape[0]
    if k <= 0:
        return np.zeros((0, T), dtype=np.int32), np.zeros(0, dtype=np.float64)
    if T == 0:
        return np.zeros((1, 0), dtype=np.int32), np.zeros(1, dtype=np.float64)
    S = np.full((T, L, k), _NEG_INF, dtype=np.float64)
    from_label = np.zeros((T, L, k), dtype=np.int32)
    from_rank = np.zeros((T, L, k), dtype=np.int32)
    ptr = np.zeros(L, dtype=np.int64)
    for j in range(L):
        S[0, j, 0] = start[j] + np.float64(E[0, j])
    count = 1  # prefixes kept per label at step t-1: min(k, L^t)
    for t in range(1, T):
        new_count = min(k, count * L)
        for j in range(L):
            for i in range(L):
                ptr[i] = 0
            e = np.float64(E[t, j])
            for r in range(new_count):
                b = -1
                top = _NEG_INF
                for i in range(L):
                    if ptr[i] < count:
                        v = S[t - 1, i, ptr[i]] + trans[i, j]
                        if b < 0 or v > top:
                            top = v
                            b = i
                S[t, j, r] = top + e
                from_label[t, j, r] = b
                from_rank[t, j, r] = ptr[b]
                ptr[b] += 1
        count = new_count
    n_out = min(k, count * L)
    paths = np.empty((n_out, T), dtype=np.int32)
    scores = np.empty(n_out, dtype=np.float64)
    for i in range(L):
        ptr[i] = 0
    for r in range(n_out):
        b = -1
        top = _NEG_INF
        for j in range(L):
            if ptr[j] < count:
                v = S[T - 1, j, ptr[j]] + end[j]
                if b < 0 or v > top:
                    top = v
                    b = j
        scores[r] = top
        y = b
        rank = ptr[b]
        ptr[b] += 1
        paths[r, T - 1] = y
        for t in range(T - 1, 0, -1):
            y_prev = from_label[t, y, rank]
            rank = from_rank[t, y, rank]
            y = y_prev
            paths[r, t - 1] = y
    return paths, scores
