"""SIMD building blocks of the kernels: LLVM intrinsics, and tanh/exp as plain arithmetic.

_acc_block is the register-blocked inner loop of every matrix product (seqtag.kernels.matmul):
it broadcasts one entry of the left factor against a row of the right one, so there are no sums
across lanes and no transposed copies. In float32 (``exact=False``) tanh and exp are
rational/polynomial approximations that vectorise (fast_tanh, fast_exp); ``exact=True`` uses
np.tanh and np.exp. The elementwise helpers (_sigmoid_in_place, _tanh_in_place, _exp_in_place)
choose between the two for the cells and the softmax.
"""

import numpy as np
from llvmlite import ir
from llvmlite.binding import get_host_cpu_features
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from seqtag.kernels import FASTMATH

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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
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
# The SIMD register width, and the block of sums held in registers

def _vector_bytes():
    """Bytes of a SIMD register for _acc_block: 64 with AVX-512 (where LLVM's own vectoriser stays
    at 32), else 32. Numba keys its cache on the CPU's features, so this is fixed per cache."""
    features = config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32
_VECTOR_BYTES = _vector_bytes()


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


# ---------------------------------------------------------------------------------------------
# Elementwise, exact (float64 gradient checks) or fast (float32)

@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _sigmoid_in_place(v, exact):
    """v = σ(v) elementwise: 1/(1 + exp(-v)) if exact, else ½(1 + fast_tanh(v/2)) (the same
    function as plain arithmetic that vectorises)."""
    one = v.dtype.type(1)
    if exact:
        for k in range(v.shape[0]):
            v[k] = one / (one + np.exp(-v[k]))
    else:
        half = v.dtype.type(0.5)
        for k in range(v.shape[0]):
            v[k] = half + half * fast_tanh(half * v[k])


# Each function keeps its own two loops: passing fast_tanh/np.tanh as function arguments to one
# shared loop made every caller uncacheable (Numba treats a dispatcher argument as a dynamic
# global), so every process compiled the cells again.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _tanh_in_place(v, exact):
    """v = tanh(v) elementwise: np.tanh if exact, else fast_tanh."""
    if exact:
        for k in range(v.shape[0]):
            v[k] = np.tanh(v[k])
    else:
        for k in range(v.shape[0]):
            v[k] = fast_tanh(v[k])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _exp_in_place(x, exact):
    """x = exp(x) elementwise over a flat array (fast_exp unless exact)."""
    if exact:
        for q in range(x.shape[0]):
            x[q] = np.exp(x[q])
    else:
        for q in range(x.shape[0]):
            x[q] = fast_exp(x[q])
