"""embed_sum (X[u] = Σf Ex[:, rows[u, f]]) and its gradient embed_scatter against NumPy; gather_rows
(out[i] = P[rows[i]]) of both engines against NumPy's indexing."""

import numpy as np

from seqtag.kernels.embed import embed_scatter, embed_sum, gather_rows


def test_embed_sum_and_scatter_equal_numpy():
    rng = np.random.default_rng(4)
    Ex = np.asfortranarray(rng.normal(size=(5, 11)))
    rows = rng.integers(0, 11, size=(7, 4)).astype(np.int32)   # the last column is not summed
    X = np.full((7, 9), np.nan)
    embed_sum(Ex, rows, 3, X)
    np.testing.assert_allclose(X[:, :5], Ex[:, rows[:, :3]].sum(axis=2).T, atol=1e-12)
    assert np.isnan(X[:, 5:]).all()                           # the rest of x is the caller's
    dX = rng.normal(size=(7, 9))
    dEx = np.asfortranarray(np.ones_like(Ex))
    embed_scatter(dX, rows, 3, dEx)
    ref = np.ones_like(Ex)
    for f in range(3):
        np.add.at(ref.T, rows[:, f], dX[:, :5])
    np.testing.assert_allclose(dEx, ref, atol=1e-12)


def test_gather_rows_equals_numpy_indexing_into_a_strided_view():
    from seqtag.engines import numpy_kernels

    rng = np.random.default_rng(5)
    P = rng.normal(size=(50, 12)).astype(np.float32)
    rows = np.sort(rng.choice(50, size=9, replace=False)).astype(np.int64)
    for gather in (gather_rows, numpy_kernels.gather_rows):
        # as the recurrent layer uses it: the first columns of a Fortran-ordered slot array
        slots = np.full((12, 20), np.nan, np.float32, order="F")
        gather(P, rows, slots[:, :9].T)
        np.testing.assert_array_equal(slots[:, :9].T, P[rows])
        assert np.isnan(slots[:, 9:]).all()
