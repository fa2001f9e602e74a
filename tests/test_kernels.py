"""The Numba kernels against plain-NumPy references written from the equations.

  a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba);  ŷ<t> = softmax(Wya·a<t> + by)
  loss = Σ -log ŷ<t>[y<t>]; its gradients are checked against central finite differences.
"""

import numpy as np
import pytest

from seqtag import kernels as K

PARAM_NAMES = ("Wax", "Waa", "Wya", "ba", "by")


def make_params(rng, H, V, L, dtype, scale=0.5):
    Wax = np.asfortranarray(rng.normal(0, scale, (H, V))).astype(dtype, order="F")
    Waa = rng.normal(0, scale / np.sqrt(H), (H, H)).astype(dtype)
    Wya = rng.normal(0, scale, (L, H)).astype(dtype)
    ba = rng.normal(0, 0.1, H).astype(dtype)
    by = rng.normal(0, 0.1, L).astype(dtype)
    return [Wax, Waa, Wya, ba, by]


def make_batch(rng, lengths, V, L):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(0, V, offsets[-1]).astype(np.int32)
    labels = rng.integers(0, L, offsets[-1]).astype(np.int32)
    return ids, offsets, labels


def zero_grads(params):
    grads = [np.zeros_like(p) for p in params]
    grads[0] = np.asfortranarray(grads[0])
    return grads


def numpy_forward(params, ids, offsets):
    """ŷ<t> of every token, in float64, one sentence and one step at a time."""
    Wax, Waa, Wya, ba, by = (np.asarray(p, dtype=np.float64) for p in params)
    out = np.empty((len(ids), Wya.shape[0]))
    for s in range(len(offsets) - 1):
        a = np.zeros(Waa.shape[0])
        for p in range(offsets[s], offsets[s + 1]):
            a = np.tanh(Waa @ a + Wax[:, ids[p]] + ba)
            logits = Wya @ a + by
            e = np.exp(logits - logits.max())
            out[p] = e / e.sum()
    return out


def numpy_loss(params, ids, offsets, labels):
    y_hat = numpy_forward(params, ids, offsets)
    return -np.log(y_hat[np.arange(len(labels)), labels]).sum()


def kernel_loss_and_grads(params, ids, offsets, labels, exact=True):
    grads = zero_grads(params)
    loss = K.train_batch(*params, ids, offsets, labels, *grads, exact)
    return loss, grads


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


# --- gradients -----------------------------------------------------------------------------

GRAD_CASES = [
    # (seed, hidden, vocabulary, labels, sentence lengths)
    (0, 5, 7, 3, [3, 1, 5, 2]),
    (1, 5, 7, 3, [1]),
    (2, 6, 7, 4, [6, 6, 1, 4, 2, 3, 1]),
    # More sentences than the kernels step together (K._GROUP), incl. empty ones.
    (3, 5, 7, 3, [i * 5 % 8 for i in range(2 * K._GROUP + 3)]),
]


@pytest.mark.parametrize("seed, H, V, L, lengths", GRAD_CASES)
def test_gradients_equal_central_differences(seed, H, V, L, lengths):
    rng = np.random.default_rng(seed)
    params = make_params(rng, H, V, L, np.float64)
    ids, offsets, labels = make_batch(rng, lengths, V, L)
    _, grads = kernel_loss_and_grads(params, ids, offsets, labels)
    eps = 1e-6
    for name, p, g in zip(PARAM_NAMES, params, grads):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up, _ = kernel_loss_and_grads(params, ids, offsets, labels)
            p[idx] = old - eps
            down, _ = kernel_loss_and_grads(params, ids, offsets, labels)
            p[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        rel = np.abs(numeric - g).max() / max(np.abs(numeric).max(), 1e-12)
        assert rel < 1e-5, (name, rel)
    unused = np.setdiff1d(np.arange(V), ids)
    assert not grads[0][:, unused].any()


def test_train_batch_adds_to_the_gradients():
    rng = np.random.default_rng(4)
    params = make_params(rng, 6, 9, 3, np.float64)
    ids, offsets, labels = make_batch(rng, [4, 2, 7], 9, 3)
    _, once = kernel_loss_and_grads(params, ids, offsets, labels)
    twice = zero_grads(params)
    for _ in range(2):
        K.train_batch(*params, ids, offsets, labels, *twice, True)
    for g1, g2 in zip(once, twice):
        np.testing.assert_allclose(g2, 2 * g1, rtol=1e-12, atol=1e-15)


# --- forward pass and loss -----------------------------------------------------------------

FORWARD_CASES = [
    (5, 5, 7, 3, [3, 1, 5, 2]),
    (6, 33, 50, 9, [int(n) for n in np.random.default_rng(6).integers(1, 30, 40)] + [0, 1]),
    (7, 64, 100, 5, [17] * 20 + [1] * 3),
]


@pytest.mark.parametrize("seed, H, V, L, lengths", FORWARD_CASES)
def test_predict_proba_equals_numpy(seed, H, V, L, lengths):
    rng = np.random.default_rng(seed)
    params = make_params(rng, H, V, L, np.float64)
    ids, offsets, _ = make_batch(rng, lengths, V, L)
    expected = numpy_forward(params, ids, offsets)

    got64 = K.predict_proba(*params, ids, offsets, True)
    assert got64.dtype == np.float64 and got64.shape == (len(ids), L)
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-10)

    params32 = [p.astype(np.float32, order="K") for p in params]
    got32 = K.predict_proba(*params32, ids, offsets, False)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed, H, V, L, lengths", FORWARD_CASES)
def test_train_batch_loss_equals_numpy_cross_entropy(seed, H, V, L, lengths):
    rng = np.random.default_rng(seed)
    params = make_params(rng, H, V, L, np.float64)
    ids, offsets, labels = make_batch(rng, lengths, V, L)
    expected = numpy_loss(params, ids, offsets, labels)

    loss64, _ = kernel_loss_and_grads(params, ids, offsets, labels, exact=True)
    assert loss64 == pytest.approx(expected, rel=1e-12)

    params32 = [p.astype(np.float32, order="K") for p in params]
    loss32, _ = kernel_loss_and_grads(params32, ids, offsets, labels, exact=False)
    assert loss32 == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("seed, H, V, L, lengths", FORWARD_CASES)
def test_float32_gradients_follow_float64(seed, H, V, L, lengths):
    """The fast float32 path (fast tanh and exp) computes the same gradients, to float32 noise."""
    rng = np.random.default_rng(seed)
    params = make_params(rng, H, V, L, np.float64)
    ids, offsets, labels = make_batch(rng, lengths, V, L)
    _, grads64 = kernel_loss_and_grads(params, ids, offsets, labels, exact=True)
    params32 = [p.astype(np.float32, order="K") for p in params]
    _, grads32 = kernel_loss_and_grads(params32, ids, offsets, labels, exact=False)
    for name, g32, g64 in zip(PARAM_NAMES, grads32, grads64):
        assert g32.dtype == np.float32
        rel = np.abs(g32 - g64).max() / np.abs(g64).max()
        assert rel < 1e-4, (name, rel)


def test_empty_batch():
    rng = np.random.default_rng(8)
    params = make_params(rng, 4, 5, 3, np.float64)
    ids, offsets, labels = make_batch(rng, [], 5, 3)
    assert K.predict_proba(*params, ids, offsets, True).shape == (0, 3)
    loss, grads = kernel_loss_and_grads(params, ids, offsets, labels)
    assert loss == 0 and not any(g.any() for g in grads)


# --- optimizers ----------------------------------------------------------------------------

def optimizer_setup(dtype, seed=9):
    rng = np.random.default_rng(seed)
    params = make_params(rng, 4, 10, 3, dtype)
    cols = np.array([7, 2, 5], dtype=np.int64)
    return rng, params, cols


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
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    ms[0] = np.asfortranarray(ms[0])
    vs[0] = np.asfortranarray(vs[0])
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
