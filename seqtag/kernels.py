"""Numba kernels of the Elman RNN tagger: recurrences, output layer, optimizers.

Shapes follow the equations: H hidden units per direction, V input features (words, word shapes,
prefixes, ...), F feature ids per token, L labels, D = H (one direction) or 2H (two directions).
  Wax (H, V)  stored column-major (Fortran order) so that Wax·x<t> = Σf Wax[:, x<t>_f] for the
              multi-hot x<t> reads F contiguous columns; Waa (H, H), ba (H,), Wya (L, D), by (L,)
              are C-contiguous.
A batch of N tokens in n sentences is packed CSR-style: tokens offsets[s]..offsets[s+1]-1 are
sentence s; row i of ids (N, F) holds token i's feature ids, row i of A (N, D) its states (a
direction owns the H columns from ``col``), row i of E (N, L) its label scores. A training step is
    rnn_forward → linear_forward → softmax_xent → linear_backward → rnn_backward
(rnn_forward and rnn_backward once per direction, reverse=False into columns 0..H-1 of A and
reverse=True into H..2H-1). Every kernel works on float32 for speed and on float64 (with
``exact=True``) for gradient checks against finite differences.

Speed. rnn_forward and rnn_backward step a group of up to _GROUP sentences through time together
(longest first within windows of _WINDOW sentences, so that the sentences still running at step
t, the t-th token read in either direction, are always the first m of the group): the products
with Waa become small matrix products. Every matrix product is _gemm: blocks of 4 rows × _PANEL
SIMD vectors of the result are summed in registers by _acc_block, which broadcasts one entry of
the left factor against a row of the right one (no sums across lanes, no transposed copies). The
sums over all tokens of a batch (dWaa, dWya) are one such product each. In float32
(``exact=False``) tanh and exp are rational/polynomial approximations that vectorise (fast_tanh,
fast_exp); ``exact=True`` uses np.tanh and np.exp.

This module imports nothing of seqtag, so that the kernels can be tested and benchmarked alone.
"""

import numpy as np
from llvmlite import ir
from llvmlite.binding import get_host_cpu_features
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Sentences stepped through time together. Each step multiplies a (_GROUP, H) block of states by
# Waa; 16 rows keep that block and its results in L1 while Waa streams past once.
_GROUP = 16
# Sentences sorted longest first together: a window's groups write their states into one region of
# A (which a long batch, far larger than the cache, would otherwise receive a row here and there).
_WINDOW = 16 * _GROUP

# Rational approximation of tanh (the one Eigen uses for float): |error| < 1e-6 on float32, and
# unlike libm's tanh it is plain arithmetic that LLVM vectorises across the hidden units.
_T_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)

# exp(x) = 2^k · e^r, k = round(x / ln 2), r = x - k·ln 2 (ln 2 split in two for exactness), e^r by
# Cephes' expf polynomial: relative error ~1e-7 on float32.
_X_MIN = np.float32(-87.33654)  # e^_X_MIN is the smallest normal float32
_X_MAX = np.float32(88.0)
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E0 = np.float32(1.9875691500e-4)
_E1 = np.float32(1.3981999507e-3)
_E2 = np.float32(8.3334519073e-3)
_E3 = np.float32(4.1665795894e-2)
_E4 = np.float32(1.6666665459e-1)
_E5 = np.float32(5.0000001201e-1)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)


@njit(cache=True, fastmath=True, error_model="numpy")
def fast_tanh(x):
    """tanh(x) ≈ x·p(x²)/q(x²) on [-7.9, 7.9], ±1 beyond."""
    x = min(max(x, -_T_CLAMP), _T_CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits`` (a free reinterpretation)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _prefetch(typingctx, v, i):
    """Start loading the cache line of v[i] (v a 1-D array) into all levels of the cache."""
    sig = types.void(v, i)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        byte_ptr = ir.IntType(8).as_pointer()
        address = builder.bitcast(builder.gep(array.data, [index]), byte_ptr)
        i32 = ir.IntType(32)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte_ptr], ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]))
        builder.call(prefetch, [address, i32(0), i32(3), i32(1)])  # read, keep in all, data
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _prefetch_column(M, x):
    """Start loading column x of the Fortran-ordered matrix M into the cache, a line (64 bytes) at
    a time."""
    column = M.T[x]
    for i in range(0, column.shape[0], 64 // column.itemsize):
        _prefetch(column, i)


@njit(cache=True, fastmath=True, error_model="numpy")
def fast_exp(x):
    """exp(x) in float32 = 2^k·e^r with k = round(x·log2 e), |r| ≤ ln2/2; x clamped to [-87.3, 88]."""
    x = min(max(np.float32(x), _X_MIN), _X_MAX)
    k = np.floor(x * _LOG2E + _HALF)
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    p = r * _E0 + _E1
    p = r * p + _E2
    p = r * p + _E3
    p = r * p + _E4
    p = r * p + _E5
    p = (r * r) * p + r + _ONE
    two_k = _float32_from_bits(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))
    return p * two_k


@njit(cache=True)
def tanh_array(x):
    """Elementwise fast_tanh (exposed for testing the approximation)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fast_tanh(x[i])
    return out


@njit(cache=True)
def exp_array(x):
    """Elementwise fast_exp (exposed for testing the approximation); float32 result."""
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(x.size):
        out[i] = fast_exp(x[i])
    return out


# ---------------------------------------------------------------------------------------------
# C += X·Y: the one matrix product every kernel is built on.

def _vector_bytes():
    """Bytes of a SIMD register for _acc_block: 64 with AVX-512 (where LLVM's own vectoriser stays
    at 32), else 32. Numba keys its cache on the CPU's features, so this is fixed per cache."""
    features = config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32


_VECTOR_BYTES = _vector_bytes()
# SIMD vectors per row of a block of C: 4 rows × _PANEL vectors are the accumulators held in
# registers (16 of AVX-512's 32; 8 of AVX2's 16).
_PANEL = 4 if _VECTOR_BYTES == 64 else 2
# Rows of a block one vector wide (as many accumulators).
_ROWS = 4 * _PANEL
# Rows of Y per pass: a panel of Y (_CHUNK rows × _PANEL vectors, 16 KiB with AVX-512) stays in
# L1 while the blocks of rows of X use it in turn.
_CHUNK = 64


@intrinsic
def _acc_block(typingctx, X, i, Y, j, C, n0, n1, R, Q):
    """C[i:i+R, j:j+Q·W] += Σ_{n0 ≤ n < n1} X[i+r, n]·Y[n, j:j+Q·W]  (W lanes of _VECTOR_BYTES).

    For each n, each of the R entries X[i+r, n] is broadcast to all lanes and multiplied into the Q
    vectors of row n of Y; the R·Q sums stay in registers until the end. X may have any strides
    (X = Zᵀ, a transposed view, sums over the rows of Z); rows of Y and C must be contiguous.
    R and Q are compile-time constants.
    """
    if not isinstance(R, types.IntegerLiteral) or not isinstance(Q, types.IntegerLiteral):
        return None  # (Numba retries with the constants as literals)
    rows, vectors = R.literal_value, Q.literal_value
    itemsize = C.dtype.bitwidth // 8
    W = _VECTOR_BYTES // itemsize
    sig = types.void(X, i, Y, j, C, n0, n1, R, Q)

    def codegen(context, builder, signature, args):
        real = context.get_value_type(signature.args[4].dtype)
        lanes = ir.VectorType(real, W)
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        i_, j_, n0_, n1_ = (context.cast(builder, args[k], signature.args[k], types.intp)
                            for k in (1, 3, 5, 6))

        def data_and_strides(k):
            array = context.make_array(signature.args[k])(context, builder, args[k])
            strides = cgutils.unpack_tuple(builder, array.strides)
            return builder.ptrtoint(array.data, intp), strides[0], strides[1]

        def pointer(address, pointee):
            return builder.inttoptr(address, pointee.as_pointer())

        x_data, x_row_stride, x_col_stride = data_and_strides(0)
        y_data, y_row_stride, _ = data_and_strides(2)
        c_data, c_row_stride, _ = data_and_strides(4)
        # Byte offsets: X[i+r, n] at x_data + (i+r)·x_row_stride + n·x_col_stride,
        # Y[n, j+v·W] at y_data + n·y_row_stride + (j+v·W)·itemsize, C[i+r, j+v·W] likewise.
        x_rows = [builder.mul(builder.add(i_, intp(r)), x_row_stride) for r in range(rows)]
        y_cols = [builder.mul(builder.add(j_, intp(v * W)), intp(itemsize)) for v in range(vectors)]
        zero = ir.Constant(lanes, None)
        broadcast = ir.Constant(ir.VectorType(i32, W), [0] * W)

        entry = builder.basic_block
        loop = builder.append_basic_block("block.loop")
        done = builder.append_basic_block("block.done")
        builder.cbranch(builder.icmp_signed("<", n0_, n1_), loop, done)
        builder.position_at_end(loop)
        n = builder.phi(intp)
        S = [[builder.phi(lanes) for v in range(vectors)] for r in range(rows)]
        x_n = builder.add(x_data, builder.mul(n, x_col_stride))
        y_n = builder.add(y_data, builder.mul(n, y_row_stride))
        y = [builder.load(pointer(builder.add(y_n, y_cols[v]), lanes), align=itemsize)
             for v in range(vectors)]
        S_next = [[None] * vectors for r in range(rows)]
        for r in range(rows):
            x = builder.load(pointer(builder.add(x_n, x_rows[r]), real), align=itemsize)
            x = builder.shuffle_vector(builder.insert_element(zero, x, i32(0)), zero, broadcast)
            for v in range(vectors):
                product = builder.fmul(x, y[v], flags=("fast",))
                S_next[r][v] = builder.fadd(S[r][v], product, flags=("fast",))
        n_next = builder.add(n, intp(1))
        builder.cbranch(builder.icmp_signed("<", n_next, n1_), loop, done)
        n.add_incoming(n0_, entry)
        n.add_incoming(n_next, loop)

        builder.position_at_end(done)
        sums = [[None] * vectors for r in range(rows)]
        for r in range(rows):
            for v in range(vectors):
                S[r][v].add_incoming(zero, entry)
                S[r][v].add_incoming(S_next[r][v], loop)
                sums[r][v] = builder.phi(lanes)
                sums[r][v].add_incoming(zero, entry)
                sums[r][v].add_incoming(S_next[r][v], loop)
        for r in range(rows):
            c_row = builder.add(c_data, builder.mul(builder.add(i_, intp(r)), c_row_stride))
            for v in range(vectors):
                c = pointer(builder.add(c_row, y_cols[v]), lanes)
                total = builder.fadd(builder.load(c, align=itemsize), sums[r][v], flags=("fast",))
                builder.store(total, c, align=itemsize)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, fastmath=True, error_model="numpy")
def _transpose(M):
    """A C-contiguous copy of Mᵀ, eight rows of M at a time: each row of the copy then receives
    eight adjacent entries at once."""
    R, C = M.shape
    out = np.empty((C, R), dtype=M.dtype)
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
    return out


@njit(cache=True, fastmath=True, error_model="numpy")
def _gemm(X, Y, C, M, P, N):
    """C[:M, :P] += X[:M, :N]·Y[:N, :P], i.e. C[i] += Σn X[i, n]·Y[n].

    Blocks of 4 rows × _PANEL vectors of C (the last columns: _ROWS or 4 rows × 1 vector; single
    rows at the end) by _acc_block, _CHUNK rows of Y at a time; the last P % W columns by plain
    loops. X may be a transposed view (C += Zᵀ·Y); rows of Y and C must be contiguous.
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
            for i in range(M4, M):
                _acc_block(X, i, Y, j, C, n0, n1, 1, _PANEL)
            j += _PANEL * W
        while j < PW:  # blocks of _ROWS (then 4) rows × 1 vector
            for i in range(0, MR, _ROWS):
                _acc_block(X, i, Y, j, C, n0, n1, _ROWS, 1)
            for i in range(MR, M4, 4):
                _acc_block(X, i, Y, j, C, n0, n1, 4, 1)
            for i in range(max(MR, M4), M):
                _acc_block(X, i, Y, j, C, n0, n1, 1, 1)
            j += W
    if PW < P:
        for i in range(M):
            c = C[i]
            for n in range(N):
                x = X[i, n]
                y = Y[n]
                for q in range(PW, P):
                    c[q] += x * y[q]


# ---------------------------------------------------------------------------------------------
# Recurrences: one direction of the RNN over a packed batch

@njit(cache=True)
def _longest_first(offsets):
    """Sentence lengths, and the sentence indices by decreasing length within each window of
    _WINDOW sentences (a stable counting sort per window)."""
    n = offsets.shape[0] - 1
    lengths = np.empty(n, dtype=np.int64)
    longest = 0
    for s in range(n):
        lengths[s] = offsets[s + 1] - offsets[s]
        longest = max(longest, lengths[s])
    order = np.empty(n, dtype=np.int64)
    first = np.empty(longest + 2, dtype=np.int64)
    for w in range(0, n, _WINDOW):
        end = min(n, w + _WINDOW)
        # first[r]: where the sentences of length longest - r start in the order.
        first[:] = 0
        first[0] = w
        for s in range(w, end):
            first[longest - lengths[s] + 1] += 1
        for r in range(longest + 1):
            first[r + 1] += first[r]
        for s in range(w, end):
            r = longest - lengths[s]
            order[first[r]] = s
            first[r] += 1
    return lengths, order


@njit(cache=True)
def _running(lengths, group, T, active):
    """active[t] = how many sentences of a longest-first group have at least t tokens (they are
    the first ones), for t = 1..T, and active[T + 1] = 0."""
    m = group.shape[0]
    for t in range(1, T + 1):
        while lengths[group[m - 1]] < t:
            m -= 1
        active[t] = m
    active[T + 1] = 0


@njit(cache=True, fastmath=True, error_model="numpy")
def _sum_recurrent_grads(dZ, A, col, dWaa, reverse):
    """dWaa[:G] += Σt dz<t>·a<t-1>ᵀ over the whole batch, G = dZ's width: row i of dZ holds token
    i's dz<t> (0 for a sentence's first token read), and a<t-1> is the state of the token read
    just before it: the row above (or below, reading right to left). One product for all."""
    N = dZ.shape[0]
    H = dWaa.shape[1]
    if N > 1:
        if reverse:
            _gemm(dZ[:N - 1].T, A[1:, col:col + H], dWaa, dZ.shape[1], H, N - 1)
        else:
            _gemm(dZ[1:].T, A[:N - 1, col:col + H], dWaa, dZ.shape[1], H, N - 1)


@njit(cache=True, inline="always")
def _token(offsets, s, t, reverse):
    """The t-th token read (t ≥ 1) of sentence s: from the left, or from the right if reverse."""
    if reverse:
        return offsets[s + 1] - t
    return offsets[s] + t - 1


@njit(cache=True)
def _step_tokens(offsets, group, m, t, reverse, tokens):
    """tokens[g] = the t-th token read of sentence group[g], for the first m sentences."""
    for g in range(m):
        tokens[g] = _token(offsets, group[g], t, reverse)


@njit(cache=True)
def _prefetch_inputs(M, ids, tokens, m):
    """Start loading the columns of the Fortran-ordered M (Wax or dWax) that tokens[:m] use."""
    for g in range(m):
        for f in range(ids.shape[1]):
            _prefetch_column(M, ids[tokens[g], f])


@njit(cache=True, fastmath=True, error_model="numpy")
def _inputs(Wax, ba, ids, p, z):
    """z = Σf Wax[:, ids[p, f]] + ba  (the input part of all gates of token p)."""
    G = z.shape[0]
    for k in range(G):
        z[k] = ba[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            z[k] += Wax[k, x]


@njit(cache=True, fastmath=True, error_model="numpy")
def _add_input_grads(dz, ids, p, dWax, dba):
    """dba += dz;  dWax[:, ids[p, f]] += dz for every f."""
    G = dz.shape[0]
    for k in range(G):
        dba[k] += dz[k]
    for f in range(ids.shape[1]):
        x = ids[p, f]
        for k in range(G):
            dWax[k, x] += dz[k]


@njit(cache=True, fastmath=True, error_model="numpy")
def _step_inputs(Wax, ba, ids, offsets, group, lengths, m, m4, t, reverse, tokens, Z):
    """Step t of a group: tokens[g] = the t-th token p read of sentence group[g] and
    Z[g] = Σf Wax[:, ids[p, f]] + ba for the first m sentences; rows m..m4-1 (padding to _gemm's
    4-row blocks) = 0. Also starts loading the Wax columns of step t+1, which arrive while the
    caller multiplies by Waa."""
    for g in range(m):
        p = _token(offsets, group[g], t, reverse)
        tokens[g] = p
        _inputs(Wax, ba, ids, p, Z[g])
    for g in range(m, m4):
        for k in range(Z.shape[1]):
            Z[g, k] = 0
    for g in range(m):
        if lengths[group[g]] > t:
            p = _token(offsets, group[g], t + 1, reverse)
            for f in range(ids.shape[1]):
                _prefetch_column(Wax, ids[p, f])


@njit(cache=True, fastmath=True, error_model="numpy")
def _keep_dz(dZ, p, dz, t):
    """dZ[p] = dz<t> of token p, for the batch-wide dWaa product (_sum_recurrent_grads); 0 for
    the first token read, whose a<t-1> = a<0> = 0 takes no part in it."""
    row = dZ[p]
    for k in range(row.shape[0]):
        row[k] = dz[k] if t > 1 else 0


@njit(cache=True, fastmath=True, error_model="numpy")
def rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col):
    """a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, ids[t, f]] + ba);  A[t, col:col+H] = a<t>.

    Over every sentence of the packed batch, left to right, or right to left when ``reverse``
    (a<t-1> is then the state of the token to the right). A group of sentences goes through time
    together, row g of Z being sentence g: step t computes, for the first m rows (the sentences
    with ≥ t tokens), Z = [Σf Wax[:, x<t>_f] + ba] + A_prev·Waaᵀ, the last term one product.
    """
    H = Waa.shape[0]
    n = offsets.shape[0] - 1
    dtype = Waa.dtype
    lengths, order = _longest_first(offsets)
    rows = (min(_GROUP, n) + 3) // 4 * 4
    WaaT = _transpose(Waa)  # (A_prev·Waaᵀ)[g] = Σn A_prev[g, n]·Waaᵀ[n]
    S = np.zeros((2, rows, H), dtype=dtype)  # a<t-1> and a<t> of the group, alternately
    tokens = np.empty(rows, dtype=np.int64)  # tokens[g]: the token of sentence g at step t
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        m = group.shape[0]
        for t in range(1, T + 1):
            while lengths[group[m - 1]] < t:
                m -= 1
            # Rows m..m4-1 pad to the 4-row blocks of _gemm (input 0; their states go unused).
            m4 = min((m + 3) // 4 * 4, rows)
            A_prev = S[(t - 1) % 2]
            Z = S[t % 2]
            _step_inputs(Wax, ba, ids, offsets, group, lengths, m, m4, t, reverse, tokens, Z)
            if t > 1:  # (a<0> = 0)
                _gemm(A_prev, WaaT, Z, m4, H, H)
            for g in range(m4):
                z = Z[g]
                if exact:
                    for i in range(H):
                        z[i] = np.tanh(z[i])
                else:
                    for i in range(H):
                        z[i] = fast_tanh(z[i])
                if g < m:
                    a = A[tokens[g], col:col + H]
                    for i in range(H):
                        a[i] = z[i]


@njit(cache=True, fastmath=True, error_model="numpy")
def rnn_backward(Waa, ids, offsets, reverse, A, col, dA, dWax, dWaa, dba, exact):
    """Backpropagation through time of one direction, given dA[t, col:col+H] = ∂L/∂a<t>:

      da<t> = dA<t> + Waaᵀ·dz<t+1>   dz<t> = da<t> ⊙ (1 - a<t>²)        (dz<T+1> = 0)
      dWaa += Σt dz<t>·a<t-1>ᵀ       dWax[:, ids[t, f]] += dz<t> for every f     dba += Σt dz<t>

    with a<t> = A[t, col:col+H] from rnn_forward in the same direction (``reverse``). Adds into
    dWax, dWaa and dba; A and dA are not modified; ``exact`` is unused (tanh' = 1 - a² either way).
    A group of sentences goes backward through time together, DA = dA<t> + DZ·Waa being one
    product for the group. dz<t> of every token is kept in a row of dZ (N, H) (0 for a<t-1> = a<0>),
    so that dWaa is one product over the batch, of dZ with A shifted by a token:
      forward:  dWaa += Σi dZ[i+1]ᵀ·A[i]      reverse:  dWaa += Σi dZ[i]ᵀ·A[i+1]
    (a pair across two sentences meets the 0 row of the second one's first token read).
    """
    H = Waa.shape[0]
    F = ids.shape[1]
    n = offsets.shape[0] - 1
    N = ids.shape[0]
    dtype = Waa.dtype
    one = dtype.type(1)
    lengths, order = _longest_first(offsets)
    longest = 0
    if n > 0:
        longest = lengths[order[0]]
    rows = (min(_GROUP, n) + 3) // 4 * 4
    DZ = np.zeros((rows, H), dtype=dtype)  # DZ[g] = dz<t+1> of sentence g, then dz<t>
    DA = np.zeros((rows, H), dtype=dtype)  # DA[g] = da<t>
    dZ = np.empty((N, H), dtype=dtype)  # dZ[i] = dz<t> of token i (0 where t = 1)
    tokens = np.empty(rows, dtype=np.int64)
    active = np.zeros(longest + 2, dtype=np.int64)  # active[t]: sentences with ≥ t tokens
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        _running(lengths, group, T, active)
        for t in range(T, 0, -1):
            m = active[t]
            m_next = active[t + 1]  # the rows of DZ that hold a dz<t+1> (the others: 0)
            m4_next = min((m_next + 3) // 4 * 4, rows)
            for g in range(m):
                p = _token(offsets, group[g], t, reverse)
                tokens[g] = p
                da = DA[g]
                for i in range(H):
                    da[i] = dA[p, col + i]
            for g in range(m_next, m4_next):
                for i in range(H):
                    DZ[g, i] = 0
            for g in range(active[t - 1] if t > 1 else 0):  # the columns of dWax step t-1 adds to
                p = _token(offsets, group[g], t - 1, reverse)
                for f in range(F):
                    _prefetch_column(dWax, ids[p, f])
            if m_next > 0:
                _gemm(DZ, Waa, DA, m4_next, H, H)  # da<t> = dA<t> + Waaᵀ·dz<t+1>
            for g in range(m):
                p = tokens[g]
                a = A[p, col:col + H]
                da = DA[g]
                dz = DZ[g]
                for i in range(H):
                    dz[i] = da[i] * (one - a[i] * a[i])
                _add_input_grads(dz, ids, p, dWax, dba)
                _keep_dz(dZ, p, dz, t)
    _sum_recurrent_grads(dZ, A, col, dWaa, reverse)


# ---------------------------------------------------------------------------------------------
# Output layer

@njit(cache=True, fastmath=True, error_model="numpy")
def linear_forward(A, Wya, by, E):
    """E = A·Wyaᵀ + by  (the emission scores, or logits, of every token): E[i] = Wya·A[i] + by.

    One product E_block = by + A_block·Wyaᵀ per 4·_GROUP tokens, with Wyaᵀ padded by zero columns
    to whole SIMD vectors (and E_block as wide), of which E takes the first L columns.
    """
    N, L = E.shape
    D = A.shape[1]
    dtype = Wya.dtype
    W = _VECTOR_BYTES // E.itemsize
    LW = (L + W - 1) // W * W
    WyaT = np.zeros((D, LW), dtype=dtype)
    WyaT[:, :L] = _transpose(Wya)
    block_rows = 4 * _GROUP
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


@njit(cache=True, fastmath=True, error_model="numpy")
def linear_backward(A, Wya, dE, dA, dWya, dby):
    """dWya += dEᵀ·A;  dby += Σi dE[i];  dA = dE·Wya  (dA overwritten).

    The gradients of E = A·Wyaᵀ + by, given dE = ∂L/∂E.
    """
    N, L = dE.shape
    D = A.shape[1]
    for k in range(L):
        total = dby[k]
        for i in range(N):
            total += dE[i, k]
        dby[k] = total
    dA[:, :] = 0
    _gemm(dE, Wya, dA, N, D, L)
    _gemm(dE.T, A, dWya, L, D, N)


@njit(cache=True, fastmath=True, error_model="numpy")
def _exp_in_place(x, exact):
    """x = exp(x) elementwise over a flat array (fast_exp unless exact)."""
    if exact:
        for q in range(x.shape[0]):
            x[q] = np.exp(x[q])
    else:
        for q in range(x.shape[0]):
            x[q] = fast_exp(x[q])


@njit(cache=True, fastmath=True, error_model="numpy")
def softmax_xent(E, labels, exact, dE):
    """ŷ[i] = softmax(E[i]); returns Σi -log ŷ[i, labels[i]]; dE = ŷ - onehot(labels).

    -log ŷ[i, y] = log Σk exp(E[i, k] - max) - (E[i, y] - max), the row maximum subtracted so that
    exp cannot overflow. dE may be E itself.
    """
    N, L = E.shape
    loss = 0.0
    for i in range(N):
        e = E[i]
        top = e[0]
        for k in range(1, L):
            top = max(top, e[k])
        d = dE[i]
        for k in range(L):
            d[k] = e[k] - top
        loss -= d[labels[i]]
    _exp_in_place(dE.reshape(N * L), exact)
    one = dE.dtype.type(1)
    for i in range(N):
        d = dE[i]
        total = d[0]
        for k in range(1, L):
            total += d[k]
        loss += np.log(total)
        inv = one / total
        for k in range(L):
            d[k] *= inv
        d[labels[i]] -= one
    return loss


@njit(cache=True, fastmath=True, error_model="numpy")
def softmax_rows(E, exact):
    """E[i] = softmax(E[i]) = exp(E[i] - max) / Σk exp(E[i, k] - max), in place (prediction)."""
    N, L = E.shape
    for i in range(N):
        e = E[i]
        top = e[0]
        for k in range(1, L):
            top = max(top, e[k])
        for k in range(L):
            e[k] -= top
    _exp_in_place(E.reshape(N * L), exact)
    one = E.dtype.type(1)
    for i in range(N):
        e = E[i]
        total = e[0]
        for k in range(1, L):
            total += e[k]
        inv = one / total
        for k in range(L):
            e[k] *= inv


# ---------------------------------------------------------------------------------------------
# Optimizers

@njit(cache=True, fastmath=True, error_model="numpy")
def grad_sq_norm(dWax, cols, dWaa, dWya, dba, dby):
    """‖g‖² over all gradients, reading dWax only in the columns the batch touched.

    cols: the distinct feature ids of the batch (over all F columns of ids).
    """
    total = 0.0
    dWaxT = dWax.T  # row c of dWaxᵀ is the column dWax[:, c], contiguous for Fortran-order dWax
    for c in cols:
        col = dWaxT[c]
        for j in range(col.shape[0]):
            total += col[j] * col[j]
    for g in (dWaa.ravel(), dWya.ravel(), dba, dby):
        for i in range(g.shape[0]):
            total += g[i] * g[i]
    return total


@njit(cache=True, fastmath=True, error_model="numpy")
def _sgd(p, g, lr_scale):
    """p -= lr·scale·g;  g = 0."""
    step = p.dtype.type(lr_scale)
    for i in range(p.shape[0]):
        p[i] -= step * g[i]
        g[i] = 0


@njit(cache=True, fastmath=True, error_model="numpy")
def _adam(p, g, m, v, scale, lr_t, b1, b2, eps):
    """m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  p -= lr_t·m/(√v + ε);  g = 0.

    lr_t carries the bias correction lr·√(1-β2^k)/(1-β1^k); g is first multiplied by scale
    (the 1/tokens mean and the clipping factor). Computed in the parameters' precision.
    """
    real = p.dtype.type
    s, lr, beta1, beta2, epsilon = real(scale), real(lr_t), real(b1), real(b2), real(eps)
    one = real(1)
    for i in range(p.shape[0]):
        gi = g[i] * s
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * mi / (np.sqrt(vi) + epsilon)
        g[i] = 0


@njit(cache=True)
def sgd_step(params, grads, Wax, dWax, cols, lr_scale):
    """SGD on the dense parameters and on the touched columns of Wax; zeroes the gradients.

    params, grads: tuples of the dense parameters and gradients as flat arrays.
    """
    for k in range(len(params)):
        _sgd(params[k], grads[k], lr_scale)
    WaxT, dWaxT = Wax.T, dWax.T  # rows of these are the (contiguous) columns of Wax, dWax
    for c in cols:
        _sgd(WaxT[c], dWaxT[c], lr_scale)


@njit(cache=True)
def adam_step(params, grads, ms, vs, Wax, dWax, mWax, vWax, cols, scale, lr_t, b1, b2, eps):
    """Adam on the dense parameters; lazy Adam (moments of touched columns only) on Wax.

    params, grads, ms, vs: tuples of the dense parameters, gradients and moments as flat arrays.
    """
    for k in range(len(params)):
        _adam(params[k], grads[k], ms[k], vs[k], scale, lr_t, b1, b2, eps)
    WaxT, dWaxT, mWaxT, vWaxT = Wax.T, dWax.T, mWax.T, vWax.T  # rows: columns of Wax, ...
    for c in cols:
        _adam(WaxT[c], dWaxT[c], mWaxT[c], vWaxT[c], scale, lr_t, b1, b2, eps)
