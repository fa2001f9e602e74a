"""The Numba kernels against plain-NumPy references written from the equations.

One direction of the RNN over a sentence read left to right, or right to left when reverse:
  a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, x<t>_f] + ba)
the output layer and the loss over the states A (N, D) of both directions side by side:
  E = A·Wyaᵀ + by;  ŷ = softmax(E[i]);  loss = Σi -log ŷ[i, y_i]
The gradients of a loss composed of all the kernels are checked against central finite differences.
"""

import numpy as np
import pytest

from gradcheck import numeric_gradient

from seqtag import kernels as K

# --- data ----------------------------------------------------------------------------------


def make_direction(rng, H, V, dtype=np.float64, scale=0.5):
    """(Wax, Waa, ba) of one direction; Wax Fortran-ordered as the kernels take it."""
    Wax = np.asfortranarray(rng.normal(0, scale, (H, V)).astype(dtype))
    Waa = rng.normal(0, scale / np.sqrt(H), (H, H)).astype(dtype)
    ba = rng.normal(0, 0.1, H).astype(dtype)
    return [Wax, Waa, ba]


def make_output(rng, D, L, dtype=np.float64, scale=0.5):
    """(Wya, by)."""
    return [rng.normal(0, scale, (L, D)).astype(dtype), rng.normal(0, 0.1, L).astype(dtype)]


def make_batch(rng, lengths, V, F, L):
    """offsets, ids (N, F) with some ids repeated within a row, labels."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    ids = rng.integers(0, V, (N, F)).astype(np.int32)
    if F > 1 and N > 0:
        ids[::3, 1] = ids[::3, 0]  # a feature id twice in a row: its column counts twice
    labels = rng.integers(0, L, N).astype(np.int32)
    return offsets, ids, labels


def cast(arrays, dtype):
    """The arrays in another precision, Wax still Fortran-ordered."""
    return [a.astype(dtype, order="K") for a in arrays]


# --- NumPy references, from the equations --------------------------------------------------


def numpy_states(Wax, Waa, ba, ids, offsets, reverse):
    """a<t> of every token, in float64, one sentence and one token at a time."""
    Wax, Waa, ba = (np.asarray(p, dtype=np.float64) for p in (Wax, Waa, ba))
    out = np.zeros((len(ids), Waa.shape[0]))
    for s in range(len(offsets) - 1):
        tokens = range(offsets[s], offsets[s + 1])
        a = np.zeros(Waa.shape[0])
        for p in (reversed(tokens) if reverse else tokens):
            a = np.tanh(Waa @ a + Wax[:, ids[p]].sum(axis=1) + ba)
            out[p] = a
    return out


def numpy_softmax(E):
    e = np.exp(E - E.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_xent(E, labels):
    """Σi -log softmax(E[i])[labels[i]], in float64, by log-sum-exp."""
    E = np.asarray(E, dtype=np.float64)
    top = E.max(axis=1)
    lse = top + np.log(np.exp(E - top[:, None]).sum(axis=1))
    return float((lse - E[np.arange(len(labels)), labels]).sum())


# --- the kernels composed into a bidirectional tagger ---------------------------------------

DIRECTIONS = ((False, 0), (True, 1))  # (reverse, which half of A)


def kernel_loss(directions, output, ids, offsets, labels, exact=True):
    """The summed cross-entropy of a bidirectional RNN; also A and E."""
    H = directions[0][1].shape[0]
    N = len(ids)
    dtype = output[0].dtype
    A = np.empty((N, 2 * H), dtype=dtype)
    for (Wax, Waa, ba), (reverse, half) in zip(directions, DIRECTIONS):
        K.rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, half * H)
    E = np.empty((N, output[0].shape[0]), dtype=dtype)
    K.linear_forward(A, *output, E)
    dE = np.empty_like(E)
    loss = K.softmax_xent(E, labels, exact, dE)
    return loss, A, dE


def kernel_loss_and_grads(directions, output, ids, offsets, labels, exact=True):
    """loss, [[dWax, dWaa, dba] per direction], [dWya, dby]."""
    loss, A, dE = kernel_loss(directions, output, ids, offsets, labels, exact)
    H = directions[0][1].shape[0]
    d_output = [np.zeros_like(p) for p in output]
    dA = np.empty_like(A)
    K.linear_backward(A, output[0], dE, dA, *d_output)
    d_directions = []
    for (Wax, Waa, ba), (reverse, half) in zip(directions, DIRECTIONS):
        grads = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
        K.rnn_backward(Waa, ids, offsets, reverse, A, half * H, dA, *grads, exact)
        d_directions.append(grads)
    return loss, d_directions, d_output


# --- approximations ------------------------------------------------------------------------


def test_fast_tanh_is_within_1e6_of_tanh():
    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    err = np.abs(K.tanh_array(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 1e-6


def test_fast_exp_relative_error():
    x = np.linspace(-87, 88, 400_001).astype(np.float32)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(K.exp_array(x).astype(np.float64) - ref) / ref
    assert rel.max() < 1e-6


# --- the matrix product all kernels use ----------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
@pytest.mark.parametrize("M, P, N", [(16, 128, 128), (13, 37, 33), (9, 256, 150), (5, 16, 1),
                                     (3, 100, 0), (1, 8, 70)])
def test_gemm_equals_numpy(M, P, N, dtype, tol):
    rng = np.random.default_rng(M * 1000 + P + N)
    X = rng.normal(size=(M, N)).astype(dtype)
    Y = rng.normal(size=(N, P)).astype(dtype)
    C0 = rng.normal(size=(M, P)).astype(dtype)
    expected = C0 + X.astype(np.float64) @ Y.astype(np.float64)
    for X_view in (X, np.ascontiguousarray(X.T).T):  # also as a transposed view
        C = C0.copy()
        K._gemm(X_view, Y, C, M, P, N)
        np.testing.assert_allclose(C, expected, rtol=0, atol=tol * max(1, np.sqrt(N)))


# --- one direction: rnn_forward ------------------------------------------------------------

FORWARD_CASES = [
    # (seed, hidden, vocabulary, features, sentence lengths)
    (1, 5, 7, 1, [3, 1, 5, 2]),
    (2, 5, 7, 3, [3, 1, 0, 5, 2]),
    (3, 33, 50, 3, [int(n) for n in np.random.default_rng(3).integers(1, 30, 40)] + [0, 1]),
    (4, 64, 100, 1, [17] * 20 + [1] * 3),
    # More sentences than the kernels sort by length together (K._WINDOW).
    (5, 8, 30, 2, [int(n) for n in np.random.default_rng(5).integers(0, 12, K._WINDOW + 45)]),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("seed, H, V, F, lengths", FORWARD_CASES)
def test_rnn_forward_equals_numpy(seed, H, V, F, lengths, reverse):
    rng = np.random.default_rng(seed)
    Wax, Waa, ba = make_direction(rng, H, V)
    offsets, ids, _ = make_batch(rng, lengths, V, F, 2)
    expected = numpy_states(Wax, Waa, ba, ids, offsets, reverse)
    col = 3  # into the middle of a wider A, whose other columns must stay as they are
    for dtype, exact, tol in ((np.float64, True, 1e-10), (np.float32, False, 1e-4)):
        A = np.full((len(ids), H + 7), 9.0, dtype=dtype)
        K.rnn_forward(*cast([Wax, Waa, ba], dtype), ids, offsets, reverse, exact, A, col)
        np.testing.assert_allclose(A[:, col:col + H], expected, rtol=0, atol=tol)
        assert (A[:, :col] == 9).all() and (A[:, col + H:] == 9).all()


def test_rnn_forward_reads_the_other_way_when_reverse():
    """A sentence read right to left is the reversed sentence read left to right."""
    rng = np.random.default_rng(25)
    Wax, Waa, ba = make_direction(rng, 6, 9)
    offsets, ids, _ = make_batch(rng, [4, 7], 9, 2, 2)
    backwards = np.concatenate([ids[offsets[s]:offsets[s + 1]][::-1] for s in range(2)])
    A_reverse = np.empty((len(ids), 6))
    A_flipped = np.empty((len(ids), 6))
    K.rnn_forward(Wax, Waa, ba, ids, offsets, True, True, A_reverse, 0)
    K.rnn_forward(Wax, Waa, ba, backwards, offsets, False, True, A_flipped, 0)
    for s in range(2):
        np.testing.assert_allclose(A_reverse[offsets[s]:offsets[s + 1]],
                                   A_flipped[offsets[s]:offsets[s + 1]][::-1], atol=1e-14)


# --- output layer --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
@pytest.mark.parametrize("N, D, L", [(0, 8, 3), (1, 5, 1), (70, 66, 9), (131, 256, 17),
                                     (9, 128, 16)])
def test_linear_forward_and_backward_equal_numpy(N, D, L, dtype, tol):
    rng = np.random.default_rng(N + D + L)
    A = rng.normal(size=(N, D)).astype(dtype)
    Wya, by = make_output(rng, D, L, dtype)
    E = np.full((N, L), np.nan, dtype=dtype)
    K.linear_forward(A, Wya, by, E)
    A64, W64 = A.astype(np.float64), Wya.astype(np.float64)
    np.testing.assert_allclose(E, A64 @ W64.T + by, rtol=0, atol=tol * 10)

    dE = rng.normal(size=(N, L)).astype(dtype)
    dA = np.full((N, D), np.nan, dtype=dtype)  # overwritten
    dWya = rng.normal(size=(L, D)).astype(dtype)  # added to
    dby = rng.normal(size=L).astype(dtype)
    expected = (dWya + dE.T.astype(np.float64) @ A64, dby + dE.sum(axis=0, dtype=np.float64),
                dE.astype(np.float64) @ W64)
    K.linear_backward(A, Wya, dE, dA, dWya, dby)
    for got, want in zip((dWya, dby, dA), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * 10 * max(1, np.sqrt(N)))


@pytest.mark.parametrize("dtype, exact, tol", [(np.float64, True, 1e-12),
                                               (np.float32, False, 1e-5)])
def test_softmax_xent_and_softmax_rows_equal_numpy(dtype, exact, tol):
    rng = np.random.default_rng(6)
    N, L = 57, 9
    E = (rng.normal(size=(N, L)) * 5).astype(dtype)
    E[0] += 500  # large scores: the log-sum-exp form must not overflow
    E[1, 3] = -300
    labels = rng.integers(0, L, N).astype(np.int32)
    expected_p = numpy_softmax(E.astype(np.float64))
    expected_d = expected_p.copy()
    expected_d[np.arange(N), labels] -= 1
    expected_loss = numpy_xent(E, labels)

    E_before = E.copy()
    dE = np.empty_like(E)
    loss = K.softmax_xent(E, labels, exact, dE)
    assert loss == pytest.approx(expected_loss, rel=tol)
    np.testing.assert_allclose(dE, expected_d, rtol=0, atol=tol)
    np.testing.assert_array_equal(E, E_before)

    in_place = E.copy()  # dE may be E itself
    assert K.softmax_xent(in_place, labels, exact, in_place) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(in_place, dE, rtol=0, atol=tol)

    K.softmax_rows(E, exact)
    np.testing.assert_allclose(E, expected_p, rtol=0, atol=tol)

    empty = np.empty((0, L), dtype=dtype)
    assert K.softmax_xent(empty, labels[:0], exact, empty) == 0
    K.softmax_rows(empty, exact)


# --- the whole tagger: loss and gradients ---------------------------------------------------

GRAD_CASES = [
    # (seed, hidden, vocabulary, features, labels, sentence lengths)
    (10, 5, 7, 2, 3, [3, 1, 5, 0, 2]),
    (11, 4, 6, 1, 3, [1]),
    # More sentences than the kernels step together (K._GROUP), incl. empty ones.
    (12, 5, 8, 3, 4, [i * 5 % 8 for i in range(2 * K._GROUP + 3)]),
]


def all_params(directions, output):
    return [p for d in directions for p in d] + list(output)


def all_grads(d_directions, d_output):
    return [g for d in d_directions for g in d] + list(d_output)


PARAM_NAMES = ["Wax→", "Waa→", "ba→", "Wax←", "Waa←", "ba←", "Wya", "by"]


@pytest.mark.parametrize("seed, H, V, F, L, lengths", GRAD_CASES)
def test_gradients_equal_central_differences(seed, H, V, F, L, lengths):
    rng = np.random.default_rng(seed)
    directions = [make_direction(rng, H, V) for _ in DIRECTIONS]
    output = make_output(rng, 2 * H, L)
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    _, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets, labels)

    def loss():
        return kernel_loss(directions, output, ids, offsets, labels)[0]

    eps = 1e-6
    params = all_params(directions, output)
    for name, p, g in zip(PARAM_NAMES, params, all_grads(d_directions, d_output)):
        numeric = numeric_gradient(loss, p, eps)
        rel = np.abs(numeric - g).max() / max(np.abs(numeric).max(), 1e-12)
        assert rel < 1e-5, (name, rel)
    unused = np.setdiff1d(np.arange(V), ids)
    for dWax, _, _ in d_directions:
        assert not dWax[:, unused].any()


@pytest.mark.parametrize("seed, H, V, F, L, lengths", GRAD_CASES[:1] + [
    (13, 33, 50, 3, 9, [int(n) for n in np.random.default_rng(13).integers(1, 30, 40)] + [0, 1]),
    (14, 64, 100, 1, 5, [17] * 20 + [1] * 3),
    (15, 8, 30, 2, 4, [int(n) for n in np.random.default_rng(15).integers(0, 12, K._WINDOW + 45)]),
])
def test_loss_equals_numpy_and_float32_follows_float64(seed, H, V, F, L, lengths):
    rng = np.random.default_rng(seed)
    directions = [make_direction(rng, H, V) for _ in DIRECTIONS]
    output = make_output(rng, 2 * H, L)
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    A = np.hstack([numpy_states(*d, ids, offsets, reverse) for d, (reverse, _) in
                   zip(directions, DIRECTIONS)])
    expected = numpy_xent(A @ output[0].T + output[1], labels)

    loss64, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets,
                                                           labels, exact=True)
    assert loss64 == pytest.approx(expected, rel=1e-12)

    directions32 = [cast(d, np.float32) for d in directions]
    output32 = cast(output, np.float32)
    loss32, d_directions32, d_output32 = kernel_loss_and_grads(
        directions32, output32, ids, offsets, labels, exact=False)
    assert loss32 == pytest.approx(expected, rel=1e-4)
    for name, g32, g64 in zip(PARAM_NAMES, all_grads(d_directions32, d_output32),
                              all_grads(d_directions, d_output)):
        assert g32.dtype == np.float32
        rel = np.abs(g32 - g64).max() / np.abs(g64).max()
        assert rel < 1e-4, (name, rel)


def test_rnn_backward_adds_to_the_gradients_and_keeps_its_inputs():
    rng = np.random.default_rng(35)
    H, V = 6, 9
    Wax, Waa, ba = make_direction(rng, H, V)
    offsets, ids, _ = make_batch(rng, [4, 2, 7, 0, 1], V, 2, 3)
    A = np.empty((len(ids), 2 * H))
    K.rnn_forward(Wax, Waa, ba, ids, offsets, True, True, A, H)
    dA = rng.normal(size=A.shape)
    A_before, dA_before = A.copy(), dA.copy()
    once = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
    K.rnn_backward(Waa, ids, offsets, True, A, H, dA, *once, True)
    twice = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
    for _ in range(2):
        K.rnn_backward(Waa, ids, offsets, True, A, H, dA, *twice, True)
    for g1, g2 in zip(once, twice):
        np.testing.assert_allclose(g2, 2 * g1, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(dA, dA_before)


def test_empty_batch():
    rng = np.random.default_rng(16)
    directions = [make_direction(rng, 4, 5) for _ in DIRECTIONS]
    output = make_output(rng, 8, 3)
    for lengths in ([], [0, 0]):
        offsets, ids, labels = make_batch(rng, lengths, 5, 2, 3)
        loss, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets,
                                                             labels)
        assert loss == 0
        assert not any(g.any() for g in all_grads(d_directions, d_output))


# --- optimizers ----------------------------------------------------------------------------


def optimizer_setup(dtype, seed=9):
    """[Wax, Waa, Wya, ba, by] and the touched columns of Wax."""
    rng = np.random.default_rng(seed)
    Wax, Waa, ba = make_direction(rng, 4, 10, dtype)
    Wya, by = make_output(rng, 4, 3, dtype)
    return rng, [Wax, Waa, Wya, ba, by], np.array([7, 2, 5], dtype=np.int64)


def zero_grads(params):
    grads = [np.zeros_like(p) for p in params]
    grads[0] = np.asfortranarray(grads[0])
    return grads


def random_grads(rng, params, cols):
    grads = zero_grads(params)
    for g in grads[1:]:
        g[...] = rng.normal(size=g.shape)
    grads[0][:, cols] = rng.normal(size=(grads[0].shape[0], len(cols)))
    return grads


def dense(arrays):
    """Waa, Wya, ba, by as the tuple of flat views the optimizer kernels take."""
    return tuple(a.reshape(-1) for a in arrays)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_sgd_step_equals_numpy(dtype, rtol):
    rng, params, cols = optimizer_setup(dtype)
    untouched = np.setdiff1d(np.arange(params[0].shape[1]), cols)
    expected = [p.astype(np.float64) for p in params]
    lr_scale = 0.05
    for _ in range(2):
        grads = random_grads(rng, params, cols)
        for e, g in zip(expected, grads):
            e -= lr_scale * g
        K.sgd_step(dense(params[1:]), dense(grads[1:]), params[0], grads[0], cols, lr_scale)
        assert not any(g.any() for g in grads)
    for e, p in zip(expected, params):
        np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(params[0][:, untouched],
                                  optimizer_setup(dtype)[1][0][:, untouched])


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_adam_step_equals_numpy(dtype, rtol):
    rng, params, cols = optimizer_setup(dtype)
    V = params[0].shape[1]
    untouched = np.setdiff1d(np.arange(V), cols)
    ms = zero_grads(params)
    vs = zero_grads(params)
    expected = [p.astype(np.float64) for p in params]
    m_ref = [np.zeros(p.shape) for p in params]
    v_ref = [np.zeros(p.shape) for p in params]
    lr, b1, b2, eps, scale = 0.01, 0.9, 0.999, 1e-8, 0.5
    for k in range(1, 3):
        grads = random_grads(rng, params, cols)
        lr_t = lr * np.sqrt(1 - b2 ** k) / (1 - b1 ** k)
        for i, g in enumerate(grads):
            sel = (slice(None), cols) if i == 0 else ...
            gi = g[sel].astype(np.float64) * scale
            m_ref[i][sel] = b1 * m_ref[i][sel] + (1 - b1) * gi
            v_ref[i][sel] = b2 * v_ref[i][sel] + (1 - b2) * gi * gi
            expected[i][sel] -= lr_t * m_ref[i][sel] / (np.sqrt(v_ref[i][sel]) + eps)
        K.adam_step(dense(params[1:]), dense(grads[1:]), dense(ms[1:]), dense(vs[1:]),
                    params[0], grads[0], ms[0], vs[0], cols, scale, lr_t, b1, b2, eps)
        assert not any(g.any() for g in grads)
    for e, p in zip(expected, params):
        np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol)
    for mine, ref in zip(ms + vs, m_ref + v_ref):
        np.testing.assert_allclose(mine, ref, rtol=10 * rtol, atol=rtol)
    np.testing.assert_array_equal(params[0][:, untouched],
                                  optimizer_setup(dtype)[1][0][:, untouched])
    assert not ms[0][:, untouched].any() and not vs[0][:, untouched].any()


def test_grad_sq_norm_equals_numpy():
    rng, params, cols = optimizer_setup(np.float64)
    grads = random_grads(rng, params, cols)
    grads[0][:, 0] = 100.0  # not a touched column: must not count
    expected = (grads[0][:, cols] ** 2).sum() + sum((g ** 2).sum() for g in grads[1:])
    got = K.grad_sq_norm(grads[0], cols, *grads[1:])
    assert got == pytest.approx(expected, rel=1e-12)
