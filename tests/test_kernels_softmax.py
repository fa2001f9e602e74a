"""softmax_xent and softmax_rows against NumPy:  ŷ = softmax(E[i]);  loss = Σi -log ŷ[i, y_i]."""

import numpy as np
import pytest

from kernel_refs import numpy_softmax, numpy_xent

from seqtag.kernels import softmax


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
    loss = softmax.softmax_xent(E, labels, exact, dE)
    assert loss == pytest.approx(expected_loss, rel=tol)
    np.testing.assert_allclose(dE, expected_d, rtol=0, atol=tol)
    np.testing.assert_array_equal(E, E_before)

    in_place = E.copy()  # dE may be E itself
    assert softmax.softmax_xent(in_place, labels, exact, in_place) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(in_place, dE, rtol=0, atol=tol)

    softmax.softmax_rows(E, exact)
    np.testing.assert_allclose(E, expected_p, rtol=0, atol=tol)

    empty = np.empty((0, L), dtype=dtype)
    assert softmax.softmax_xent(empty, labels[:0], exact, empty) == 0
    softmax.softmax_rows(empty, exact)
