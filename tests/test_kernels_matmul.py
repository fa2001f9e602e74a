"""_gemm, the matrix product every kernel is built on, and the output layer made of it, against
NumPy:  E = A·Wyaᵀ + by;  dWya += dEᵀ·A;  dby += Σi dE[i];  dA = dE·Wya."""

import numpy as np
import pytest

from kernel_refs import make_output

from seqtag.kernels import matmul


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
        matmul._gemm(X_view, Y, C, M, P, N)
        np.testing.assert_allclose(C, expected, rtol=0, atol=tol * max(1, np.sqrt(N)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R, C", [(128, 512), (512, 128), (150, 512), (7, 256), (3, 5)])
def test_padded_rows_hold_the_same_entries_and_give_the_same_sums(R, C, dtype):
    """Y with rows a cache line further apart (when they fill a multiple of 512 bytes): the
    same entries and, in a product, the same bits as the contiguous Y."""
    rng = np.random.default_rng(R + C)
    M = rng.normal(size=(R, C)).astype(dtype)
    padded, transposed = matmul._padded(M), matmul._transpose_padded(M)
    np.testing.assert_array_equal(padded, M)
    np.testing.assert_array_equal(transposed, M.T)
    for Y, cols in ((padded, C), (transposed, R)):
        wide = (cols * M.itemsize) % 512 == 0
        assert Y.strides[0] == (cols + (64 // M.itemsize if wide else 0)) * M.itemsize
    X = rng.normal(size=(13, R)).astype(dtype)
    C0 = rng.normal(size=(13, C)).astype(dtype)
    plain, with_padding = C0.copy(), C0.copy()
    matmul._gemm(X, np.ascontiguousarray(M), plain, 13, C, R)
    matmul._gemm(X, padded, with_padding, 13, C, R)
    np.testing.assert_array_equal(plain, with_padding)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
@pytest.mark.parametrize("N, D, L", [(0, 8, 3), (1, 5, 1), (70, 66, 9), (131, 256, 17),
                                     (9, 128, 16), (70, 150, 512)])
def test_linear_forward_and_backward_equal_numpy(N, D, L, dtype, tol):
    rng = np.random.default_rng(N + D + L)
    A = rng.normal(size=(N, D)).astype(dtype)
    Wya, by = make_output(rng, D, L, dtype)
    E = np.full((N, L), np.nan, dtype=dtype)
    matmul.linear_forward(A, Wya, by, E)
    A64, W64 = A.astype(np.float64), Wya.astype(np.float64)
    np.testing.assert_allclose(E, A64 @ W64.T + by, rtol=0, atol=tol * 10)

    dE = rng.normal(size=(N, L)).astype(dtype)
    dA = np.full((N, D), np.nan, dtype=dtype)  # overwritten
    dWya = rng.normal(size=(L, D)).astype(dtype)  # added to
    dby = rng.normal(size=L).astype(dtype)
    expected = (dWya + dE.T.astype(np.float64) @ A64, dby + dE.sum(axis=0, dtype=np.float64),
                dE.astype(np.float64) @ W64)
    matmul.linear_backward(A, Wya, dE, dA, dWya, dby)
    for got, want in zip((dWya, dby, dA), expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * 10 * max(1, np.sqrt(N)))
