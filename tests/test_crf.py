"""The CRF kernels against brute force over every one of the L^T label sequences.

  score(y) = start[y_0] + Σt E[t, y_t] + Σ_{t≥1} trans[y_{t-1}, y_t] + end[y_{T-1}]
  log Z = log Σ_y exp score(y);  loss = log Z − score(gold); gradients by central differences.
"""

import itertools

import numpy as np
import pytest

from gradcheck import numeric_gradient

from seqtag.kernels import crf

# (seed, L, T): every L in 2..4 and T in 1..5.
CASES = [(10 * L + T, L, T) for L in (2, 3, 4) for T in (1, 2, 3, 4, 5)]


def make_crf(rng, L, dtype=np.float64, scale=1.0):
    trans = rng.normal(0, scale, (L, L)).astype(dtype)
    start = rng.normal(0, scale, L).astype(dtype)
    end = rng.normal(0, scale, L).astype(dtype)
    return trans, start, end


def make_batch(rng, lengths, L, dtype=np.float64, scale=1.0):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    E = rng.normal(0, scale, (offsets[-1], L)).astype(dtype)
    labels = rng.integers(0, L, offsets[-1]).astype(np.int32)
    return E, offsets, labels


def one(T):
    return np.array([0, T], dtype=np.int64)


def all_paths(L, T):
    return np.array(list(itertools.product(range(L), repeat=T)), dtype=np.int64).reshape(-1, T)


def path_scores(E, trans, start, end, paths):
    """score(y) of each row y of paths, float64."""
    E, trans, start, end = (np.asarray(a, dtype=np.float64) for a in (E, trans, start, end))
    T = paths.shape[1]
    with np.errstate(invalid="ignore"):
        return (start[paths[:, 0]] + E[np.arange(T), paths].sum(1)
                + trans[paths[:, :-1], paths[:, 1:]].sum(1) + end[paths[:, -1]])


def logsumexp(x):
    m = x.max()
    return m if m == -np.inf else m + np.log(np.exp(x - m).sum())


def brute(E, trans, start, end):
    """All paths, their scores, log Z and the per-token marginals of one sentence."""
    T, L = E.shape
    paths = all_paths(L, T)
    scores = path_scores(E, trans, start, end, paths)
    logZ = logsumexp(scores)
    prob = np.exp(scores - logZ)
    P = np.zeros((T, L))
    for t in range(T):
        np.add.at(P[t], paths[:, t], prob)
    return paths, scores, logZ, P


def log_partition(E, offsets, trans, start, end):
    out = np.empty(len(offsets) - 1)
    crf.crf_log_partition(E, offsets, trans, start, end, out)
    return out


def marginals(E, offsets, trans, start, end):
    P = np.full(E.shape, np.nan, dtype=E.dtype)
    crf.crf_marginals(E, offsets, trans, start, end, P)
    return P


def decode(E, offsets, trans, start, end):
    out = np.full(E.shape[0], -1, dtype=np.int32)
    crf.viterbi(E, offsets, trans, start, end, out)
    return out


def nll(E, offsets, labels, trans, start, end):
    """(loss, dE, dtrans, dstart, dend); dE starts as garbage (it is overwritten)."""
    dE = np.full(E.shape, 7.0, dtype=E.dtype)
    grads = [np.zeros_like(trans), np.zeros_like(start), np.zeros_like(end)]
    loss = crf.crf_nll(E, offsets, labels, trans, start, end, dE, *grads)
    return loss, dE, *grads


# --- exactness against brute force --------------------------------------------------------

@pytest.mark.parametrize("seed, L, T", CASES)
def test_log_partition_marginals_viterbi_equal_brute_force(seed, L, T):
    rng = np.random.default_rng(seed)
    trans, start, end = make_crf(rng, L)
    E = rng.normal(0, 1.5, (T, L))
    paths, scores, logZ, P = brute(E, trans, start, end)

    assert log_partition(E, one(T), trans, start, end)[0] == pytest.approx(logZ, rel=1e-12)
    got = marginals(E, one(T), trans, start, end)
    np.testing.assert_allclose(got, P, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(decode(E, one(T), trans, start, end), paths[scores.argmax()])


@pytest.mark.parametrize("seed, L, T", CASES)
def test_nll_equals_brute_force(seed, L, T):
    rng = np.random.default_rng(seed + 1000)
    trans, start, end = make_crf(rng, L)
    E, offsets, labels = make_batch(rng, [T], L)
    _, _, logZ, P = brute(E, trans, start, end)
    gold = path_scores(E, trans, start, end, labels[None].astype(np.int64))[0]
    loss, dE, dtrans, dstart, dend = nll(E, offsets, labels, trans, start, end)
    assert loss == pytest.approx(logZ - gold, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(dE, P - np.eye(L)[labels], rtol=1e-10, atol=1e-13)


GRAD_CASES = [(seed, L, T) for seed, L, T in CASES if T in (1, 2, 5)] + [
    (7, 3, [3, 1, 4, 2]),  # a packed batch
]


@pytest.mark.parametrize("seed, L, T", GRAD_CASES)
def test_nll_gradients_equal_central_differences(seed, L, T):
    rng = np.random.default_rng(seed + 2000)
    params = list(make_crf(rng, L))
    E, offsets, labels = make_batch(rng, T if isinstance(T, list) else [T], L)
    arrays = [E, *params]  # perturbed in place
    _, *grads = nll(E, offsets, labels, *params)

    def loss():
        return nll(E, offsets, labels, *params)[0]

    h = 1e-5
    for name, p, g in zip(("E", "trans", "start", "end"), arrays, grads):
        numeric = numeric_gradient(loss, p, h)
        rel = np.abs(numeric - g).max() / max(np.abs(numeric).max(), 1e-12)
        assert rel < 1e-6, (name, rel)


def test_nll_adds_to_parameter_gradients_and_overwrites_dE():
    rng = np.random.default_rng(3)
    trans, start, end = make_crf(rng, 4)
    E, offsets, labels = make_batch(rng, [3, 5], 4)
    loss, dE, *grads = nll(E, offsets, labels, trans, start, end)
    dE2 = np.full_like(E, -3.0)
    twice = [g + 1.0 for g in grads]
    loss2 = crf.crf_nll(E, offsets, labels, trans, start, end, dE2, *twice)
    assert loss2 == loss
    np.testing.assert_array_equal(dE2, dE)
    for g, g2 in zip(grads, twice):
        np.testing.assert_allclose(g2, 2 * g + 1.0, rtol=1e-12, atol=1e-15)
    # Expected counts minus gold counts: each gradient sums to 0 over its entries.
    for g in (dE[:3], grads[0], grads[1], grads[2]):
        assert abs(g.sum()) < 1e-12


@pytest.mark.parametrize("seed, L, T", [(1, 2, 1), (2, 3, 4), (3, 4, 5), (4, 2, 5), (5, 4, 1)])
def test_nbest_equals_brute_force_top_k(seed, L, T):
    rng = np.random.default_rng(seed + 3000)
    trans, start, end = make_crf(rng, L)
    E = rng.normal(0, 1.5, (T, L))
    paths, scores, logZ, _ = brute(E, trans, start, end)
    order = np.argsort(-scores, kind="stable")
    for k in (1, 3, 10, L ** T, L ** T + 5):
        got_paths, got_scores = crf.nbest(E, trans, start, end, k)
        kk = min(k, L ** T)
        assert got_paths.shape == (kk, T) and got_paths.dtype == np.int32
        np.testing.assert_allclose(got_scores, scores[order[:kk]], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(got_paths, paths[order[:kk]])
        np.testing.assert_allclose(got_scores, path_scores(E, trans, start, end, got_paths),
                                   rtol=1e-12, atol=1e-12)
    # All of them: the probabilities sum to 1; the best is the Viterbi path.
    got_paths, got_scores = crf.nbest(E, trans, start, end, L ** T)
    assert np.exp(got_scores - logZ).sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(got_paths[0], decode(E, one(T), trans, start, end))
    assert crf.nbest(E, trans, start, end, 0)[0].shape == (0, T)
    paths, scores = crf.nbest(np.zeros((0, L)), trans, start, end, 3)  # empty sentence
    assert paths.shape == (1, 0) and scores.tolist() == [0.0]


# --- forbidden transitions -----------------------------------------------------------------

def masked_crf(rng, L, forbidden):
    """Random scores with about a third of the transitions (and some starts/ends) forbidden;
    label 0 may start, follow itself and end, so an allowed path always exists."""
    trans, start, end = make_crf(rng, L)
    trans[rng.random((L, L)) < 0.35] = forbidden
    start[rng.random(L) < 0.3] = forbidden
    end[rng.random(L) < 0.3] = forbidden
    trans[0, 0] = start[0] = end[0] = 0.0
    return trans, start, end


def allowed(path, trans, start, end, forbidden):
    return (start[path[0]] > forbidden and end[path[-1]] > forbidden
            and all(trans[a, b] > forbidden for a, b in zip(path[:-1], path[1:])))


@pytest.mark.parametrize("forbidden", [-1e4, -np.inf])
@pytest.mark.parametrize("seed", range(12))
def test_forbidden_transitions(seed, forbidden):
    rng = np.random.default_rng(seed + 4000)
    L = 2 + seed % 3
    T = 1 + seed % 5
    trans, start, end = masked_crf(rng, L, forbidden)
    E, offsets, labels = make_batch(rng, [T], L, scale=3.0)
    paths, scores, logZ, P = brute(E, trans, start, end)
    got_logZ = log_partition(E, offsets, trans, start, end)[0]
    got_P = marginals(E, offsets, trans, start, end)
    best = decode(E, offsets, trans, start, end)
    assert got_logZ == pytest.approx(logZ, rel=1e-12)
    np.testing.assert_allclose(got_P, P, rtol=1e-10, atol=1e-13)
    assert not np.isnan(got_P).any()
    np.testing.assert_array_equal(best, paths[scores.argmax()])
    assert allowed(best, trans, start, end, forbidden)
    # Every path through a forbidden entry has probability 0.
    ok = np.array([allowed(p, trans, start, end, forbidden) for p in paths])
    assert np.exp(scores[~ok] - logZ).max(initial=0.0) == 0.0
    # Training on an allowed gold path: finite loss, no NaN, zero gradient on forbidden entries.
    gold = paths[ok][rng.integers(ok.sum())].astype(np.int32)
    loss, dE, dtrans, dstart, dend = nll(E, offsets, gold, trans, start, end)
    gold_score = path_scores(E, trans, start, end, gold[None].astype(np.int64))[0]
    assert loss == pytest.approx(logZ - gold_score, rel=1e-10, abs=1e-10)
    for g in (dE, dtrans, dstart, dend):
        assert np.isfinite(g).all()
    assert not dtrans[trans == forbidden].any()
    # k-best: the allowed paths come first, in order.
    k = int(ok.sum())
    got_paths, got_scores = crf.nbest(E, trans, start, end, k)
    assert all(allowed(p, trans, start, end, forbidden) for p in got_paths)
    np.testing.assert_allclose(got_scores, np.sort(scores[ok])[::-1], rtol=1e-12)


@pytest.mark.parametrize("which", ["start", "trans", "end"])
def test_no_allowed_path_gives_minus_inf_not_nan(which):
    rng = np.random.default_rng(5)
    params = dict(zip(("trans", "start", "end"), make_crf(rng, 3)))
    E, offsets, labels = make_batch(rng, [4, 2], 3)
    params[which][:] = -np.inf  # no sentence (of length ≥ 2) has an allowed path
    trans, start, end = params["trans"], params["start"], params["end"]
    assert (log_partition(E, offsets, trans, start, end) == -np.inf).all()
    P = marginals(E, offsets, trans, start, end)
    assert (P == 0).all()
    loss, dE, dtrans, dstart, dend = nll(E, offsets, labels, trans, start, end)
    assert loss == np.inf
    assert not any(np.isnan(g).any() for g in (dE, dtrans, dstart, dend))
    assert ((decode(E, offsets, trans, start, end) >= 0)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_scores_do_not_underflow(dtype):
    """Emission gaps of hundreds (where exp underflows, float32 at 87, float64 at 708) and masks:
    the factored sums fall back to exact log-sum-exp; float64 brute force agrees."""
    rng = np.random.default_rng(6)
    L, T = 4, 5
    trans, start, end = masked_crf(rng, L, np.float64(-1e4))
    trans[1, 2] = 0.0
    E = rng.normal(0, 800, (T, L)).astype(dtype)
    trans, start, end = (a.astype(dtype) for a in (trans, start, end))
    paths, scores, logZ, P = brute(E, trans, start, end)
    assert log_partition(E, one(T), trans, start, end)[0] == pytest.approx(logZ, rel=1e-12)
    # |log Z| ~ 1e3 here, so P = exp(alpha + beta − log Z) carries ~1e-13 of rounding
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(marginals(E, one(T), trans, start, end), P, **tol)
    labels = paths[scores.argmax()].astype(np.int32)
    loss, dE, *grads = nll(E, one(T), labels, trans, start, end)
    assert loss == pytest.approx(logZ - scores.max(), abs=1e-9)
    np.testing.assert_allclose(dE, P - np.eye(L)[labels], **tol)
    assert all(np.isfinite(g).all() for g in grads)


# --- packed batches and float32 ------------------------------------------------------------

def test_packed_batch_equals_per_sentence_calls():
    rng = np.random.default_rng(8)
    L = 4
    trans, start, end = make_crf(rng, L)
    lengths = [5, 1, 3, 0, 7, 1, 2]
    E, offsets, labels = make_batch(rng, lengths, L)
    logZ = log_partition(E, offsets, trans, start, end)
    P = marginals(E, offsets, trans, start, end)
    best = decode(E, offsets, trans, start, end)
    loss, dE, dtrans, dstart, dend = nll(E, offsets, labels, trans, start, end)
    sum_loss, sum_grads = 0.0, [np.zeros_like(trans), np.zeros_like(start), np.zeros_like(end)]
    for s, T in enumerate(lengths):
        a, b = offsets[s], offsets[s + 1]
        Es, ys = np.ascontiguousarray(E[a:b]), labels[a:b]
        if T == 0:
            assert logZ[s] == 0.0
            continue
        assert logZ[s] == pytest.approx(log_partition(Es, one(T), trans, start, end)[0], rel=1e-14)
        np.testing.assert_allclose(P[a:b], marginals(Es, one(T), trans, start, end), rtol=1e-14)
        np.testing.assert_array_equal(best[a:b], decode(Es, one(T), trans, start, end))
        l, g_E, *g = nll(Es, one(T), ys, trans, start, end)
        np.testing.assert_allclose(dE[a:b], g_E, rtol=1e-13, atol=1e-15)
        sum_loss += l
        for acc, x in zip(sum_grads, g):
            acc += x
    assert loss == pytest.approx(sum_loss, rel=1e-13)
    for got, expected in zip((dtrans, dstart, dend), sum_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(9)
    L = 9
    params64 = make_crf(rng, L)
    E64, offsets, labels = make_batch(rng, [int(n) for n in rng.integers(1, 30, 40)], L, scale=3.0)
    params32 = [p.astype(np.float32) for p in params64]
    E32 = E64.astype(np.float32)

    z64 = log_partition(E64, offsets, *params64)
    z32 = log_partition(E32, offsets, *params32)
    np.testing.assert_allclose(z32, z64, rtol=1e-5)
    P32 = marginals(E32, offsets, *params32)
    assert P32.dtype == np.float32
    np.testing.assert_allclose(P32, marginals(E64, offsets, *params64), atol=1e-5)
    np.testing.assert_array_equal(decode(E32, offsets, *params32), decode(E64, offsets, *params64))
    loss64, *g64 = nll(E64, offsets, labels, *params64)
    loss32, *g32 = nll(E32, offsets, labels, *params32)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4)
    paths32, scores32 = crf.nbest(E32[:6], *params32, 4)
    paths64, scores64 = crf.nbest(E64[:6], *params64, 4)
    np.testing.assert_array_equal(paths32, paths64)
    np.testing.assert_allclose(scores32, scores64, rtol=1e-5)
