"""embed_sum (X[u] = Σf Ex[:, rows[u, f]]) and its gradient embed_scatter against NumPy."""

import numpy as np

from seqtag.kernels.embed import embed_scatter, embed_sum


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
