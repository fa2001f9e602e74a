"""EmbeddingSum, the layer: forward into a caller's wider array, in blocks of rows, gives what one
forward over all rows gives, and the blocks' backprops in block order add what one backprop adds
(Network.train_step embeds each block of distinct rows on its own thread)."""

import numpy as np
import pytest

from seqtag.layers.embed import EmbeddingSum


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_blocks_into_a_wider_array_equal_one_forward_and_backprop(engine):
    from seqtag.engines import numba_kernels, numpy_kernels

    kernels = numba_kernels if engine == "numba" else numpy_kernels
    rng = np.random.default_rng(7)
    d, V, n, width = 6, 40, 23, 9
    params = {"Ex": np.asfortranarray(rng.normal(size=(d, V)).astype(np.float32))}
    rows = np.ascontiguousarray(rng.integers(0, V, size=(n, 4)), dtype=np.int32)
    one = EmbeddingSum(params, 3, kernels)
    one.grads = {"Ex": np.zeros_like(params["Ex"], order="F")}
    X_one, back_one = one.forward(rows)
    assert X_one.shape == (n, d)

    blocks = EmbeddingSum(params, 3, kernels)
    blocks.grads = {"Ex": np.zeros_like(params["Ex"], order="F")}
    X = np.full((n, width), np.nan, np.float32)
    cuts = [0, 5, 14, n]
    backs = []
    for lo, hi in zip(cuts, cuts[1:]):
        out, back = blocks.forward(rows[lo:hi], out=X[lo:hi])
        assert np.shares_memory(out, X)
        backs.append(back)
    np.testing.assert_array_equal(X[:, :d], X_one)
    assert np.isnan(X[:, d:]).all()               # the columns past d are the caller's

    dX = rng.normal(size=(n, width)).astype(np.float32)
    back_one(np.ascontiguousarray(dX[:, :d]))
    for (lo, hi), back in zip(zip(cuts, cuts[1:]), backs):
        back(dX[lo:hi])
    np.testing.assert_array_equal(blocks.grads["Ex"], one.grads["Ex"])
    assert np.abs(one.grads["Ex"]).sum() > 0
