"""The optimizer steps (SGD, lazy Adam) against NumPy, on the dense parameters and on the touched
columns of the Fortran-ordered Wax."""

import numpy as np
import pytest

from kernel_refs import make_direction, make_output

from seqtag.kernels import optim


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
        optim.sgd_step(dense(params[1:]), dense(grads[1:]), params[0], grads[0], cols, lr_scale)
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
        optim.adam_step(dense(params[1:]), dense(grads[1:]), dense(ms[1:]), dense(vs[1:]),
                        params[0], grads[0], ms[0], vs[0], cols, scale, lr_t, b1, b2, eps)
        assert not any(g.any() for g in grads)
    for e, p in zip(expected, params):
        np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol)
    for mine, ref in zip(ms + vs, m_ref + v_ref):
        np.testing.assert_allclose(mine, ref, rtol=10 * rtol, atol=rtol)
    np.testing.assert_array_equal(params[0][:, untouched],
                                  optimizer_setup(dtype)[1][0][:, untouched])
    assert not ms[0][:, untouched].any() and not vs[0][:, untouched].any()


def test_sum_squares_is_the_float64_sum_of_squares():
    from seqtag.kernels.optim import sum_squares

    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 8, 9, 1000, 65_537):
        g = rng.standard_normal(n).astype(np.float32)
        assert sum_squares(g) == pytest.approx(float(np.sum(g.astype(np.float64) ** 2)),
                                               rel=1e-12, abs=0)


@pytest.mark.parametrize("order", ["F", "C"])
def test_column_sum_squares_is_the_float64_sum_over_the_columns(order):
    from seqtag.kernels.optim import column_sum_squares

    rng = np.random.default_rng(5)
    M = np.asarray(rng.standard_normal((13, 40)).astype(np.float32), order=order)
    for cols in (np.array([], np.int32), np.array([0, 3, 39], np.int32),
                 np.unique(rng.integers(0, 40, 25)).astype(np.int32)):
        want = float(np.sum(M[:, cols].astype(np.float64) ** 2))
        assert column_sum_squares(M, cols) == pytest.approx(want, rel=1e-12, abs=0)
