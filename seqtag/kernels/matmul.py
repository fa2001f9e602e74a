"""C += X·Y: the one matrix product every kernel is built on, and the output layer made of it.

Every matrix product is _gemm: blocks of 4 rows × _PANEL SIMD vectors of the result are summed
in registers by _acc_block (seqtag.kernels.simd). The sums over all tokens of a batch (dWaa,
dWya) are one such product each.
"""

import numpy as np
from numba import njit

from seqtag.kernels import FASTMATH
from seqtag.kernels.simd import _VECTOR_BYTES, _acc_block

# SIMD vectors per row of a block of C: 4 rows × _PANEL vectors are the accumulators held in
# registers (16 of AVX-512's 32; 8 of AVX2's 16).
_PANEL = 4 if _VECTOR_BYTES == 64 else 2
# Rows of a block one vector wide (as many accumulators).
_ROWS = 4 * _PANEL
# Rows of Y per pass: a panel of Y (_CHUNK rows × _PANEL vectors, 16 KiB with AVX-512) stays in
# L1 while the blocks of rows of X use it in turn.
_CHUNK = 64
# Tokens per product of linear_forward (4 groups of the cells' 16 sentences, the size it has
# always had): a block of E this small stays in L1 between the product and its copy into E.
_LINEAR_ROWS = 64


@njit(cache=True, inline="always")
def _row_stride(C, itemsize):
    """Entries from one row's start to the next for rows of C entries that a product reads as Y:
    C, or a cache line more when C entries fill a multiple of 512 bytes. Rows 1, 2 or 4 KiB
    apart fall into a few sets of the L1 cache, which then cannot keep the _CHUNK rows of Y that
    the blocks of rows of X read in turn: each block read them from L2 again (a step of the LSTM,
    16 × 128 by Waaᵀ (128 × 512): 20.8 µs with rows 2 KiB apart, 14.9 µs with 2,112 bytes)."""
    if (C * itemsize) % 512 == 0:
        return C + 64 // itemsize
    return C


@njit(cache=True)
def _padded(M):
    """A copy of M whose rows are _row_stride apart: a view of the first M.shape[1] columns of a
    wider array (the same entries, so the same sums, in fewer cache misses)."""
    R, C = M.shape
    out = np.empty((R, _row_stride(C, M.itemsize)), dtype=M.dtype)[:, :C]
    for i in range(R):
        for j in range(C):
            out[i, j] = M[i, j]
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _transpose_padded(M):
    """A copy of Mᵀ with its rows _row_stride apart (Y of a product: Waaᵀ in the cells' steps)."""
    R, C = M.shape
    out = np.empty((C, _row_stride(R, M.itemsize)), dtype=M.dtype)[:, :R]
    _transpose_into(M, out)
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _transpose_into(M, out):
    """out = Mᵀ, eight rows of M at a time: each row of out then receives eight adjacent entries
    at once."""
    R, C = M.shape
    R8 = R - R % 8
    for i in range(0, R8, 8):
        for j in range(C):
            row = out[j]
            row[i] = M[i, j]
            row[i + 1] = M[i + 1, j]
            row[i + 2] = M[i + 2, j]
            row[i + 3] = M[i + 3, j]
            row[i + 4] = M[i + 4, j]
            row[i + 5] = M[i + 5, j]
            row[i + 6] = M[i + 6, j]
            row[i + 7] = M[i + 7, j]
    for i in range(R8, R):
        for j in range(C):
            out[j, i] = M[i, j]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _last_rows(X, i, M, Y, j, C, n0, n1, Q):
    """The last M - i (< 4) rows of a block column of _gemm as one block of that many rows: the
    cells' steps have any number of rows, and one row at a time loads Y's vectors once per row.
    A row's sums are the same whichever block it is in."""
    r = M - i
    if r == 3:
        _acc_block(X, i, Y, j, C, n0, n1, 3, Q)
    elif r == 2:
        _acc_block(X, i, Y, j, C, n0, n1, 2, Q)
    elif r == 1:
        _acc_block(X, i, Y, j, C, n0, n1, 1, Q)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _gemm(X, Y, C, M, P, N):
    """C[:M, :P] += X[:M, :N]·Y[:N, :P], i.e. C[i] += Σn X[i, n]·Y[n].

    Blocks of 4 rows × _PANEL vectors of C (the last columns: _ROWS or 4 rows × 1 vector; the last
    M % 4 rows as one block) by _acc_block, _CHUNK rows of Y at a time; the last P % W columns the same
    way on zero-padded copies. X may be a transposed view (C += Zᵀ·Y); rows of Y and C must be contiguous.
    """
    W = _VECTOR_BYTES // C.itemsize
    M4 = M - M % 4
    MR = M - M % _ROWS
    PW = P - P % W
    for n0 in range(0, N, _CHUNK):
        n1 = min(N, n0 + _CHUNK)
        j = 0
        while j + _PANEL * W <= PW:  # blocks of 4 rows × _PANEL vectors
            for i in range(0, M4, 4):
                _acc_block(X, i, Y, j, C, n0, n1, 4, _PANEL)
            _last_rows(X, M4, M, Y, j, C, n0, n1, _PANEL)
            j += _PANEL * W
        while j < PW:  # blocks of _ROWS (then 4) rows × 1 vector
            for i in range(0, MR, _ROWS):
                _acc_block(X, i, Y, j, C, n0, n1, _ROWS, 1)
            for i in range(MR, M4, 4):
                _acc_block(X, i, Y, j, C, n0, n1, 4, 1)
            _last_rows(X, max(MR, M4), M, Y, j, C, n0, n1, 1)
            j += W
    if PW < P:
        # The last P % W columns by the same blocks, on one-vector-wide copies padded with zeros:
        # as scalar loops they took as long as all the vectors before them (P = 150: 6 columns).
        T = P - PW
        Yt = np.zeros((N, W), dtype=C.dtype)
        for n in range(N):
            for q in range(T):
                Yt[n, q] = Y[n, PW + q]
        Ct = np.zeros((M, W), dtype=C.dtype)
        for i in range(M):
            for q in range(T):
                Ct[i, q] = C[i, PW + q]
        for n0 in range(0, N, _CHUNK):
            n1 = min(N, n0 + _CHUNK)
            for i in range(0, MR, _ROWS):
                _acc_block(X, i, Yt, 0, Ct, n0, n1, _ROWS, 1)
            for i in range(MR, M4, 4):
                _acc_block(X, i, Yt, 0, Ct, n0, n1, 4, 1)
            _last_rows(X, max(MR, M4), M, Yt, 0, Ct, n0, n1, 1)
        for i in range(M):
            for q in range(T):
                C[i, PW + q] = Ct[i, q]


# ---------------------------------------------------------------------------------------------
# Output layer

@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def linear_forward(A, Wya, by, E):
    """E = A·Wyaᵀ + by  (the emission scores, or logits, of every token): E[i] = Wya·A[i] + by.

    One product E_block = by + A_block·Wyaᵀ per _LINEAR_ROWS tokens, with Wyaᵀ padded by zero
    columns to whole SIMD vectors (and E_block as wide), of which E takes the first L columns.
    """
    N, L = E.shape
    D = A.shape[1]
    dtype = Wya.dtype
    W = _VECTOR_BYTES // E.itemsize
    LW = (L + W - 1) // W * W
    WyaT = np.zeros((D, _row_stride(LW, Wya.itemsize)), dtype=dtype)[:, :LW]
    _transpose_into(Wya, WyaT[:, :L])
    block_rows = _LINEAR_ROWS
    E_block = np.empty((block_rows, LW), dtype=dtype)
    for first in range(0, N, block_rows):
        rows = min(block_rows, N - first)
        for i in range(rows):
            for k in range(L):
                E_block[i, k] = by[k]
            for k in range(L, LW):
                E_block[i, k] = 0
        _gemm(A[first:first + rows], WyaT, E_block, rows, LW, D)
        for i in range(rows):
            for k in range(L):
                E[first + i, k] = E_block[i, k]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def linear_backward(A, Wya, dE, dA, dWya, dby):
    """dWya += dEᵀ·A;  dby += Σi dE[i];  dA = dE·Wya  (dA overwritten).

    The gradients of E = A·Wyaᵀ + by, given dE = ∂L/∂E.
    """
    N, L = dE.shape
    D = A.shape[1]
    for i in range(N):      # row by row: dE's rows are contiguous, its columns are not
        for k in range(L):
            dby[k] += dE[i, k]
    dA[:, :] = 0
    _gemm(dE, Wya, dA, N, D, L)
    _gemm(dE.T, A, dWya, L, D, N)
