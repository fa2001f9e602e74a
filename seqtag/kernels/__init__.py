"""Numba kernels of the recurrent taggers, one idea per module; this package imports none of them,
so that importing one kernel module compiles (or loads from Numba's cache) only what it needs.

  simd      LLVM intrinsics (prefetch, the register-blocked _acc_block), fast_tanh, fast_exp
  matmul    _gemm (C += X·Y, every matrix product), linear_forward/backward (the output layer)
  stepping  a group of sentences through time together: the set-up every cell shares
  elman     rnn_forward/backward          lstm   lstm_forward/backward
  gru       gru_forward/backward          softmax  softmax_xent, softmax_rows
  crf       the linear-chain CRF: log Z, loss and gradients, marginals, Viterbi, n-best
  charcnn   the character CNN of each spelling       embed  embedding sums and their gradient
  optim     sgd_step, adam_step

Shapes follow the equations: H hidden units per direction, V input features (words, word shapes,
prefixes, ...), F feature ids per token, L labels, D = H (one direction) or 2H (two directions).
  Wax (G·H, V)  stored column-major (Fortran order) so that Wax·x<t> = Σf Wax[:, x<t>_f] for the
              multi-hot x<t> reads F contiguous columns; Waa (G·H, H), ba (G·H,), Wya (L, D),
              by (L,) are C-contiguous. G is the number of gates stacked in the rows: 1 for the
              Elman cell, 4 for the LSTM ([i; f; g; o]), 3 for the GRU ([r; u; n]).
A batch of N tokens in n sentences is packed CSR-style: tokens offsets[s]..offsets[s+1]-1 are
sentence s; row i of ids (N, F) holds token i's feature ids, row i of A (N, D) its states (a
direction owns the H columns from ``col``), row i of E (N, L) its label scores. A training step is
    rnn_forward → linear_forward → softmax_xent → linear_backward → rnn_backward
(rnn_forward and rnn_backward once per direction, reverse=False into columns 0..H-1 of A and
reverse=True into H..2H-1; the gated cells the same, with a per-token cache C passed from
forward to backward). Every kernel works on float32 for speed and on float64 (with
``exact=True``) for gradient checks against finite differences.

Speed. The cells step a group of up to _GROUP sentences through time together (longest first
within windows of _WINDOW sentences, so that the sentences still running at step t, the t-th
token read in either direction, are always the first m of the group): the products with Waa
become small matrix products. Every matrix product is _gemm: blocks of 4 rows × _PANEL SIMD
vectors of the result are summed in registers by _acc_block, which broadcasts one entry of the
left factor against a row of the right one (no sums across lanes, no transposed copies). The
sums over all tokens of a batch (dWaa, dWya) are one such product each. In float32
(``exact=False``) tanh and exp are rational/polynomial approximations that vectorise (fast_tanh,
fast_exp); ``exact=True`` uses np.tanh and np.exp.

The kernel modules import nothing of seqtag but one another, so that the kernels can be tested
and benchmarked alone.
"""

import sys

# The fast-math flags of every float32 kernel: fastmath=True ("fast") minus "arcp" and "afn". With
# those two, LLVM turns a float32 vector division or square root (fast_tanh's p/q, the sigmoid's
# 1/(1+e), Adam's m/(√v+ε)) into the estimate vrcpps/vrsqrtps plus one Newton step; without
# AVX-512 (--portable's x86-64-v3) those estimates are only bounded, not specified, and their bits
# differ between vendors: the same portable run wrote different models on an Intel Xeon and an
# AMD EPYC (bench/bench_portable.py, 2026-12-06). A true divide costs little beside the products.
# A set, not a frozenset: Numba takes a bool or a set, nothing else.
FASTMATH = {"nnan", "ninf", "nsz", "contract", "reassoc"}


def _numba_np_without_scipy() -> None:
    """Import numba.np.arraymath with SciPy's BLAS wrappers hidden.

    Numba imports that module at the first call of any kernel (the CPU target's registries), and
    at import it tries ``import scipy.linalg.cython_blas`` only to choose how np.correlate and
    np.convolve take inner products (a BLAS call or a loop); np.dot and np.linalg look for SciPy
    again when they are compiled. Where SciPy is installed, that import of scipy.linalg took 0.22 s
    of the 0.76 s the first kernel call took (cProfile, Intel Xeon, 2026-12-05), in every
    process that tags or trains with Numba. No kernel here calls any of those functions, so they
    lose nothing; a caller's own Numba code in the same process gets the loop in np.correlate and
    np.convolve, and everything else as before. Nothing is hidden where SciPy's linalg or Numba's
    module is loaded already."""
    name = "scipy.linalg.cython_blas"
    try:
        # Numba whole first: while another thread is importing it, this waits for the end of
        # that import, where importing a submodule straight away would not (Python does not wait
        # for a parent package already in sys.modules) and would run against half of it.
        import numba  # noqa: F401
    except ImportError:             # no Numba here: the kernel module's own import says so
        return
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules or name in sys.modules:
        return
    sys.modules[name] = None        # `import scipy.linalg.cython_blas` raises ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    except ImportError:
        pass
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


_numba_np_without_scipy()
