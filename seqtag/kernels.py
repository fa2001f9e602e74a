"""Numba kernels of the Elman RNN tagger: forward pass, backpropagation through time, optimizers.

Shapes follow the equations: H hidden units, V words, L labels.
  Wax (H, V)  stored column-major (Fortran order) so that the lookup Wax·x<t> = Wax[:, x<t>] reads
              one contiguous column; Waa (H, H), Wya (L, H), ba (H,), by (L,) are C-contiguous.
A batch of sentences is packed CSR-style: ``ids[offsets[s]:offsets[s+1]]`` are sentence s's word
indices, ``labels`` likewise. Every kernel works on float32 for speed and on float64 (with
``exact=True``) for gradient checks against finite differences.

Speed. The kernels step a group of up to _GROUP sentences through time together (longest first,
so the sentences still running at step t are always the first m of the group): the products with
Waa become small matrix products, done by _gemm_nt 4×4 dot products at a time so that every row
loaded from Waa serves four sentences and sixteen sums stay in registers. The per-token outer
products of the gradients (dWaa, dWya) are summed by one such product over all tokens of the batch.
In float32 (``exact=False``) tanh and exp are rational/polynomial approximations that vectorise
(fast_tanh, fast_exp); ``exact=True`` uses np.tanh and np.exp.

This module imports nothing of seqtag, so that the kernels can be tested and benchmarked alone.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# Sentences stepped through time together. Each step multiplies a (_GROUP, H) block of states by
# Waa; 16 rows keep that block and its results in L1 while Waa streams past once.
_GROUP = 16

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
# C += X·Yᵀ on row-major blocks: the one matrix product every kernel is built on.

@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _acc_4x4(X, i, Y, j, C, N):
    """C[i:i+4, j:j+4] += X[i:i+4, :N]·Y[j:j+4, :N]ᵀ, the 16 sums held in registers."""
    x0 = X[i]
    x1 = X[i + 1]
    x2 = X[i + 2]
    x3 = X[i + 3]
    y0 = Y[j]
    y1 = Y[j + 1]
    y2 = Y[j + 2]
    y3 = Y[j + 3]
    zero = C.dtype.type(0)
    c00 = c01 = c02 = c03 = zero
    c10 = c11 = c12 = c13 = zero
    c20 = c21 = c22 = c23 = zero
    c30 = c31 = c32 = c33 = zero
    for n in range(N):
        u0 = x0[n]
        u1 = x1[n]
        u2 = x2[n]
        u3 = x3[n]
        v0 = y0[n]
        v1 = y1[n]
        v2 = y2[n]
        v3 = y3[n]
        c00 += u0 * v0
        c01 += u0 * v1
        c02 += u0 * v2
        c03 += u0 * v3
        c10 += u1 * v0
        c11 += u1 * v1
        c12 += u1 * v2
        c13 += u1 * v3
        c20 += u2 * v0
        c21 += u2 * v1
        c22 += u2 * v2
        c23 += u2 * v3
        c30 += u3 * v0
        c31 += u3 * v1
        c32 += u3 * v2
        c33 += u3 * v3
    C[i, j] += c00
    C[i, j + 1] += c01
    C[i, j + 2] += c02
    C[i, j + 3] += c03
    C[i + 1, j] += c10
    C[i + 1, j + 1] += c11
    C[i + 1, j + 2] += c12
    C[i + 1, j + 3] += c13
    C[i + 2, j] += c20
    C[i + 2, j + 1] += c21
    C[i + 2, j + 2] += c22
    C[i + 2, j + 3] += c23
    C[i + 3, j] += c30
    C[i + 3, j + 1] += c31
    C[i + 3, j + 2] += c32
    C[i + 3, j + 3] += c33


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _dot_1x4(x, Y, j, N):
    """(x·Y[j], x·Y[j+1], x·Y[j+2], x·Y[j+3]) over the first N entries."""
    y0 = Y[j]
    y1 = Y[j + 1]
    y2 = Y[j + 2]
    y3 = Y[j + 3]
    zero = Y.dtype.type(0)
    c0 = c1 = c2 = c3 = zero
    for n in range(N):
        u = x[n]
        c0 += u * y0[n]
        c1 += u * y1[n]
        c2 += u * y2[n]
        c3 += u * y3[n]
    return c0, c1, c2, c3


@njit(cache=True, fastmath=True, error_model="numpy")
def _gemm_nt(X, Y, C, M, P, N):
    """C[:M, :P] += X[:M, :N]·Y[:P, :N]ᵀ, i.e. C[i, j] += Σn X[i, n]·Y[j, n].

    Every entry is a dot product of two contiguous rows; they are taken 4×4 at a time, so that each
    row loaded serves four sums (the edge rows and columns 1×4 at a time).
    """
    # Y's rows outer: a block of 4 rows of Y (e.g. of Waa) stays in L1 while all of X passes.
    M4 = M - M % 4
    j = 0
    while j + 4 <= P:
        for i in range(0, M4, 4):
            _acc_4x4(X, i, Y, j, C, N)
        for i in range(M4, M):
            c0, c1, c2, c3 = _dot_1x4(X[i], Y, j, N)
            C[i, j] += c0
            C[i, j + 1] += c1
            C[i, j + 2] += c2
            C[i, j + 3] += c3
        j += 4
    while j < P:
        y = Y[j]
        for i in range(0, M4, 4):
            c0, c1, c2, c3 = _dot_1x4(y, X, i, N)
            C[i, j] += c0
            C[i + 1, j] += c1
            C[i + 2, j] += c2
            C[i + 3, j] += c3
        for i in range(M4, M):
            x = X[i]
            s = C[i, j]
            for n in range(N):
                s += x[n] * y[n]
            C[i, j] = s
        j += 1


# ---------------------------------------------------------------------------------------------
# Forward pass

@njit(cache=True, fastmath=True, error_model="numpy")
def _forward_step(Wax, Waa, Wya, ba, by, xs, ys, a_prev, a, Y, m, m4, exact):
    """Step t for the first m sentences of a group at once; row g of a_prev/a/Y is sentence g.

    a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba);  Y[g] = ŷ<t> = softmax(Wya·a<t> + by)
    xs[g] = x<t> and ys[g] = y<t> of sentence g. Rows m..m4-1 are padding for the 4-row blocks of
    _gemm_nt (zero input; their results are ignored). Returns the loss Σg -log ŷ<t>[y<t>].
    """
    H = Waa.shape[0]
    L = Wya.shape[0]
    for g in range(m4):
        z = a[g]
        if g < m:
            x = xs[g]
            for i in range(H):
                z[i] = Wax[i, x] + ba[i]
        else:
            for i in range(H):
                z[i] = 0
    _gemm_nt(a_prev, Waa, a, m4, H, H)
    for g in range(m4):
        z = a[g]
        if exact:
            for i in range(H):
                z[i] = np.tanh(z[i])
        else:
            for i in range(H):
                z[i] = fast_tanh(z[i])
    for g in range(m4):
        for k in range(L):
            Y[g, k] = by[k]
    _gemm_nt(a, Wya, Y, m4, L, H)
    # Softmax, shifted by the row maximum; -log ŷ[y] = log Σk exp(l_k - max) - (l_y - max).
    loss = 0.0
    for g in range(m):
        y = Y[g]
        top = y[0]
        for k in range(1, L):
            top = max(top, y[k])
        for k in range(L):
            y[k] -= top
        loss -= y[ys[g]]
    logits = Y[:m].reshape(m * L)  # the rows < m, one after the other
    if exact:
        for q in range(m * L):
            logits[q] = np.exp(logits[q])
    else:
        for q in range(m * L):
            logits[q] = fast_exp(logits[q])
    for g in range(m):
        y = Y[g]
        total = y[0]
        for k in range(1, L):
            total += y[k]
        loss += np.log(total)
        inv = Y.dtype.type(1) / total
        for k in range(L):
            y[k] *= inv
    return loss


@njit(cache=True)
def _longest_first(offsets):
    """Sentence lengths, and the sentence indices by decreasing length (a stable counting sort)."""
    n = offsets.shape[0] - 1
    lengths = np.empty(n, dtype=np.int64)
    longest = 0
    for s in range(n):
        lengths[s] = offsets[s + 1] - offsets[s]
        longest = max(longest, lengths[s])
    # first[r]: where the sentences of length longest - r start in the order.
    first = np.zeros(longest + 2, dtype=np.int64)
    for s in range(n):
        first[longest - lengths[s] + 1] += 1
    for r in range(longest + 1):
        first[r + 1] += first[r]
    order = np.empty(n, dtype=np.int64)
    for s in range(n):
        r = longest - lengths[s]
        order[first[r]] = s
        first[r] += 1
    return lengths, order


@njit(cache=True, fastmath=True, error_model="numpy")
def predict_proba(Wax, Waa, Wya, ba, by, ids, offsets, exact):
    """ŷ<t> for every token of every sentence of the packed batch: an (N, L) array.

    a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba);  ŷ<t> = softmax(Wya·a<t> + by)
    """
    H = Waa.shape[0]
    L = Wya.shape[0]
    n = offsets.shape[0] - 1
    dtype = Waa.dtype
    out = np.empty((ids.shape[0], L), dtype=dtype)
    lengths, order = _longest_first(offsets)
    rows = (min(_GROUP, n) + 3) // 4 * 4
    A = np.zeros((2, rows, H), dtype=dtype)  # a<t-1> and a<t>, alternately
    Y = np.empty((rows, L), dtype=dtype)
    xs = np.zeros(rows, dtype=np.int64)
    no_labels = np.zeros(rows, dtype=np.int64)  # (the loss against label 0 goes unused)
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        A[0, :, :] = 0
        m = group.shape[0]
        for t in range(1, T + 1):
            while lengths[group[m - 1]] < t:
                m -= 1
            m4 = min((m + 3) // 4 * 4, rows)
            for g in range(m):
                xs[g] = ids[offsets[group[g]] + t - 1]
            _forward_step(Wax, Waa, Wya, ba, by, xs, no_labels, A[(t - 1) % 2], A[t % 2], Y,
                          m, m4, exact)
            for g in range(m):
                p = offsets[group[g]] + t - 1
                for k in range(L):
                    out[p, k] = Y[g, k]
    return out


# ---------------------------------------------------------------------------------------------
# Backpropagation through time

@njit(cache=True, fastmath=True, error_model="numpy")
def _put_columns(src, m, dst, c):
    """dst[:, c + g] = src[g, :H] for g < m (H = dst.shape[0]): rows of a group as columns.

    Four rows at a time, so that each row of dst receives four adjacent entries at once.
    """
    H = dst.shape[0]
    g = 0
    while g + 4 <= m:
        s0 = src[g]
        s1 = src[g + 1]
        s2 = src[g + 2]
        s3 = src[g + 3]
        for j in range(H):
            d = dst[j]
            d[c + g] = s0[j]
            d[c + g + 1] = s1[j]
            d[c + g + 2] = s2[j]
            d[c + g + 3] = s3[j]
        g += 4
    while g < m:
        s0 = src[g]
        for j in range(H):
            dst[j, c + g] = s0[j]
        g += 1


@njit(cache=True, fastmath=True, error_model="numpy")
def train_batch(Wax, Waa, Wya, ba, by, ids, offsets, labels,
                dWax, dWaa, dWya, dba, dby, exact):
    """Add the gradients of the summed cross-entropy of a packed batch to dW*; return the sum.

    Backpropagation through time, per sentence, with δ<t> = ŷ<t> - onehot(y<t>):
      dWya += Σt δ<t>·a<t>ᵀ            dby += Σt δ<t>
      da<t> = Wyaᵀ·δ<t> + Waaᵀ·dz<t+1>   dz<t> = da<t> ⊙ (1 - a<t>²)     (dz<T+1> = 0)
      dWaa += Σt dz<t>·a<t-1>ᵀ         dWax[:, x<t>] += dz<t>        dba += Σt dz<t>
    Groups of sentences go forward and backward through time together (see _forward_step), and
    da<t> = [Waaᵀ Wyaᵀ]·[dz<t+1>; δ<t>] is one product for the whole group. The sums of outer
    products are one matrix product each over the whole batch, with the tokens as columns: step t
    of a group appends one column c per sentence still running, and
      AT[:, c] = a<t>,  δT[:, c] = δ<t>,  DZT[:, c] = dz<t+1>  give
      dWya += δT·ATᵀ    dWaa += DZT·ATᵀ  (= Σt dz<t+1>·a<t>ᵀ, the same sum as above as a<0> = 0)
    """
    H = Waa.shape[0]
    L = Wya.shape[0]
    n = offsets.shape[0] - 1
    N = ids.shape[0]
    dtype = Waa.dtype
    zero = dtype.type(0)
    one = dtype.type(1)
    lengths, order = _longest_first(offsets)
    longest = 0
    if n > 0:
        longest = lengths[order[0]]
    rows = (min(_GROUP, n) + 3) // 4 * 4
    # W_back = [Waaᵀ Wyaᵀ], so that da<t> = Waaᵀ·dz<t+1> + Wyaᵀ·δ<t> = W_back·[dz<t+1>; δ<t>]
    # is one product of rows too.
    W_back = np.empty((H, H + L), dtype=dtype)
    for j in range(H):
        for i in range(H):
            W_back[j, i] = Waa[i, j]
        for k in range(L):
            W_back[j, H + k] = Wya[k, j]
    A = np.empty((longest + 1, rows, H), dtype=dtype)  # A[t, g] = a<t> of sentence g of the group
    A[0, :, :] = 0
    DZ = np.zeros((rows, H + L), dtype=dtype)  # DZ[g] = [dz<t+1>; δ<t>], then [dz<t>; δ<t>]
    DA = np.empty((rows, H), dtype=dtype)  # DA[g] = da<t>
    Y = np.empty((rows, L), dtype=dtype)
    xs = np.zeros(rows, dtype=np.int64)
    ys = np.zeros(rows, dtype=np.int64)
    active = np.zeros(longest + 2, dtype=np.int64)  # active[t]: sentences with ≥ t tokens
    column = np.zeros(longest + 1, dtype=np.int64)  # column[t]: first column of step t
    # Rows N long, padded to an odd number of 64-byte lines so that the H rows of a column fall
    # into different sets of the L1 cache (a row stride of 2 KiB would put them all in two).
    stride = ((N + 15) // 16 | 1) * 16
    AT = np.empty((H, stride), dtype=dtype)
    DZT = np.empty((H, stride), dtype=dtype)
    deltaT = np.empty((L, stride), dtype=dtype)
    loss = 0.0
    c = 0
    for first in range(0, n, _GROUP):
        group = order[first:first + _GROUP]
        T = lengths[group[0]]
        # Forward, keeping every a<t>; δ<t> = ŷ<t> - onehot(y<t>).
        m = group.shape[0]
        for t in range(1, T + 1):
            while lengths[group[m - 1]] < t:
                m -= 1
            active[t] = m
            column[t] = c
            m4 = min((m + 3) // 4 * 4, rows)
            for g in range(m):
                p = offsets[group[g]] + t - 1
                xs[g] = ids[p]
                ys[g] = labels[p]
            loss += _forward_step(Wax, Waa, Wya, ba, by, xs, ys, A[t - 1], A[t], Y,
                                  m, m4, exact)
            _put_columns(A[t], m, AT, c)
            for g in range(m):
                for k in range(L):
                    deltaT[k, c + g] = Y[g, k]
                deltaT[ys[g], c + g] -= one
            c += m
        # Backward through time. At step t, row g of DZ is first [dz<t+1>; δ<t>] (dz<T+1> = 0),
        # which gives da<t> = W_back·DZ[g], then dz<t> = da<t> ⊙ (1 - a<t>²) replaces dz<t+1>.
        active[T + 1] = 0
        for t in range(T, 0, -1):
            m = active[t]
            m4 = min((m + 3) // 4 * 4, rows)
            for g in range(m4):
                if g >= active[t + 1]:  # the sentence ends at t (or is padding)
                    for i in range(H):
                        DZ[g, i] = 0
                for k in range(L):
                    DZ[g, H + k] = deltaT[k, column[t] + g] if g < m else zero
            _put_columns(DZ, m, DZT, column[t])  # dz<t+1> of the sentences running at t
            DA[:m4, :] = 0
            _gemm_nt(DZ, W_back, DA, m4, H, H + L)
            for g in range(m):
                x = ids[offsets[group[g]] + t - 1]
                for k in range(L):
                    dby[k] += DZ[g, H + k]
                da = DA[g]
                a = A[t, g]
                dz = DZ[g]
                for j in range(H):
                    dz[j] = da[j] * (one - a[j] * a[j])
                for j in range(H):
                    dba[j] += dz[j]
                    dWax[j, x] += dz[j]
    _gemm_nt(DZT, AT, dWaa, H, H, N)
    _gemm_nt(deltaT, AT, dWya, L, H, N)
    return loss


# ---------------------------------------------------------------------------------------------
# Optimizers

@njit(cache=True, fastmath=True, error_model="numpy")
def grad_sq_norm(dWax, cols, dWaa, dWya, dba, dby):
    """‖g‖² over all gradients, reading dWax only in the columns the batch touched."""
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
