"""Numba kernels of the embedded input: each distinct input row (a word and its feature values)
as the sum of its embedding columns, and the gradient of that sum.

The columns of Ex (d, V) are Fortran-ordered, so that a sum reads contiguous columns. The
embedded input x (with the character CNN's vector, seqtag.kernels.charcnn) is what each RNN
direction reads through Wax·x.
"""

from numba import njit

from seqtag.kernels import FASTMATH


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def embed_sum(Ex, rows, n_cols, X):
    """X[u, :d] = Σ_{f < n_cols} Ex[:, rows[u, f]]: the embedded input of each distinct input
    row (a word and its feature values) as the sum of their embedding columns."""
    d = Ex.shape[0]
    for u in range(rows.shape[0]):
        for k in range(d):
            X[u, k] = 0
        for f in range(n_cols):
            col = rows[u, f]
            for k in range(d):
                X[u, k] += Ex[k, col]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def embed_scatter(dX, rows, n_cols, dEx):
    """dEx[:, rows[u, f]] += dX[u, :d] for f < n_cols: the gradient of embed_sum."""
    d = dEx.shape[0]
    for u in range(rows.shape[0]):
        for f in range(n_cols):
            col = rows[u, f]
            for k in range(d):
                dEx[k, col] += dX[u, k]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def gather_rows(P, rows, out):
    """out[i] = P[rows[i]]: kept rows (seqtag.inputcache's projections) copied into a batch's
    array, without holding the GIL (np.take holds it: the thread that prepares batches waits)."""
    for i in range(rows.shape[0]):
        src = P[rows[i]]
        dst = out[i]
        for k in range(src.shape[0]):
            dst[k] = src[k]
