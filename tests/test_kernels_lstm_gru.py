"""The gated-cell kernels (seqtag.kernels.lstm, seqtag.kernels.gru) against plain-NumPy
references written from the equations (tests/kernel_refs.py), and their gradients against central
finite differences.

LSTM, one direction over a sentence read left to right, or right to left when reverse:
  z<t> = Σf Wax[:, x<t>_f] + Waa·a<t-1> + ba;  [i; f; g; o] = [σ; σ; tanh; σ](z<t>)
  c<t> = f ⊙ c<t-1> + i ⊙ g;  a<t> = o ⊙ tanh(c<t>);  a<0> = c<0> = 0
GRU (Cho et al.), gates [r; u; n]:
  r = σ(W_r x + U_r a<t-1> + b_r);  u = σ(W_u x + U_u a<t-1> + b_u)
  n = tanh(W_n x + U_n (r ⊙ a<t-1>) + b_n);  a<t> = (1 - u) ⊙ n + u ⊙ a<t-1>
The loss: both directions side by side in A, E = A·Wyaᵀ + by, Σi -log softmax(E[i])[y_i].
"""

import numpy as np
import pytest

from gradcheck import numeric_gradient
from kernel_refs import FORWARD_CASES, cast, make_batch, numpy_gru, numpy_lstm

from seqtag.kernels.gru import gru_backward, gru_forward
from seqtag.kernels.lstm import lstm_backward, lstm_forward
from seqtag.kernels.matmul import linear_backward, linear_forward
from seqtag.kernels.softmax import softmax_xent
from seqtag.kernels.stepping import _GROUP

# --- data ----------------------------------------------------------------------------------


def make_direction(rng, gates, H, V, dtype=np.float64, scale=1.0):
    """(Wax, Waa, ba) of one direction with ``gates`` gates stacked in rows; Wax Fortran-ordered."""
    Wax = np.asfortranarray(rng.normal(0, scale, (gates * H, V)).astype(dtype))
    Waa = rng.normal(0, 2 * scale / np.sqrt(H), (gates * H, H)).astype(dtype)
    ba = rng.normal(0, 0.3, gates * H).astype(dtype)
    return [Wax, Waa, ba]


CELLS = {
    # name: (gates, columns of C per H, forward, backward, NumPy reference)
    "lstm": (4, 5, lstm_forward, lstm_backward, numpy_lstm),
    "gru": (3, 4, gru_forward, gru_backward, numpy_gru),
}


# --- forward against NumPy -----------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("seed, H, V, F, lengths", FORWARD_CASES)
def test_forward_equals_numpy(cell, seed, H, V, F, lengths, reverse):
    gates, width, forward, _, reference = CELLS[cell]
    rng = np.random.default_rng(seed)
    params = make_direction(rng, gates, H, V)
    offsets, ids, _ = make_batch(rng, lengths, V, F, 2)
    expected_A, expected_C = reference(*params, ids, offsets, reverse)
    assert np.abs(expected_A).max() > 0.2  # the gates are not all saturated or all shut
    col = 3  # into the middle of a wider A, whose other columns must stay as they are
    for dtype, exact, tol in ((np.float64, True, 1e-10), (np.float32, False, 1e-4)):
        A = np.full((len(ids), H + 7), 9.0, dtype=dtype)
        C = np.full((len(ids), width * H), 7.0, dtype=dtype)
        forward(*cast(params, dtype), ids, offsets, reverse, exact, A, col, C)
        np.testing.assert_allclose(A[:, col:col + H], expected_A, rtol=0, atol=tol)
        np.testing.assert_allclose(C, expected_C, rtol=0, atol=tol * 10)
        assert (A[:, :col] == 9).all() and (A[:, col + H:] == 9).all()


@pytest.mark.parametrize("cell", list(CELLS))
def test_reverse_reads_the_reversed_sentences(cell):
    """A sentence read right to left is the reversed sentence read left to right."""
    gates, width, forward, _, _ = CELLS[cell]
    rng = np.random.default_rng(25)
    H, V = 6, 9
    params = make_direction(rng, gates, H, V)
    offsets, ids, _ = make_batch(rng, [4, 7, 1], V, 2, 2)
    flipped = np.concatenate([ids[offsets[s]:offsets[s + 1]][::-1] for s in range(3)])
    A, A_flipped = np.empty((len(ids), H)), np.empty((len(ids), H))
    C = np.empty((len(ids), width * H))
    forward(*params, ids, offsets, True, True, A, 0, C)
    forward(*params, flipped, offsets, False, True, A_flipped, 0, C)
    for s in range(3):
        np.testing.assert_allclose(A[offsets[s]:offsets[s + 1]],
                                   A_flipped[offsets[s]:offsets[s + 1]][::-1], atol=1e-14)


# --- the whole tagger: loss and gradients ---------------------------------------------------

DIRECTIONS = ((False, 0), (True, 1))  # (reverse, which half of A)


def kernel_loss(cell, directions, output, ids, offsets, labels, exact=True):
    """The summed cross-entropy of a bidirectional tagger with ``cell``; also A, the caches, dE."""
    _, width, forward, _, _ = CELLS[cell]
    H = directions[0][1].shape[1]
    N = len(ids)
    dtype = output[0].dtype
    A = np.empty((N, 2 * H), dtype=dtype)
    caches = []
    for (Wax, Waa, ba), (reverse, half) in zip(directions, DIRECTIONS):
        C = np.empty((N, width * H), dtype=dtype)
        forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, half * H, C)
        caches.append(C)
    E = np.empty((N, output[0].shape[0]), dtype=dtype)
    linear_forward(A, *output, E)
    dE = np.empty_like(E)
    loss = softmax_xent(E, labels, exact, dE)
    return loss, A, caches, dE


def kernel_loss_and_grads(cell, directions, output, ids, offsets, labels, exact=True):
    """loss, [[dWax, dWaa, dba] per direction], [dWya, dby]."""
    backward = CELLS[cell][3]
    loss, A, caches, dE = kernel_loss(cell, directions, output, ids, offsets, labels, exact)
    H = directions[0][1].shape[1]
    d_output = [np.zeros_like(p) for p in output]
    dA = np.empty_like(A)
    linear_backward(A, output[0], dE, dA, *d_output)
    d_directions = []
    for (Wax, Waa, ba), C, (reverse, half) in zip(directions, caches, DIRECTIONS):
        grads = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
        backward(Waa, ids, offsets, reverse, A, half * H, C, dA, *grads, exact)
        d_directions.append(grads)
    return loss, d_directions, d_output


GRAD_CASES = [
    # (seed, hidden, vocabulary, features, labels, sentence lengths)
    (10, 3, 7, 2, 3, [3, 1, 5, 0, 2]),
    (11, 4, 6, 1, 3, [1]),
    # More sentences than the kernels step together (_GROUP), incl. empty ones.
    (12, 3, 8, 3, 4, [i * 5 % 8 for i in range(2 * _GROUP + 3)]),
]
PARAM_NAMES = ["Wax→", "Waa→", "ba→", "Wax←", "Waa←", "ba←", "Wya", "by"]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("seed, H, V, F, L, lengths", GRAD_CASES)
def test_gradients_equal_central_differences(cell, seed, H, V, F, L, lengths):
    gates = CELLS[cell][0]
    rng = np.random.default_rng(seed)
    directions = [make_direction(rng, gates, H, V) for _ in DIRECTIONS]
    output = [rng.normal(0, 0.5, (L, 2 * H)), rng.normal(0, 0.1, L)]
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    _, d_directions, d_output = kernel_loss_and_grads(cell, directions, output, ids, offsets,
                                                      labels)

    def loss():
        return kernel_loss(cell, directions, output, ids, offsets, labels)[0]

    eps = 1e-6
    params = [p for d in directions for p in d] + output
    grads = [g for d in d_directions for g in d] + d_output
    for name, p, g in zip(PARAM_NAMES, params, grads):
        numeric = numeric_gradient(loss, p, eps)
        if max(lengths) > 1 or not name.startswith("Waa"):  # (Waa: a<0> = 0 in 1-token sentences)
            assert np.abs(numeric).max() > 1e-4, name  # every parameter matters
        rel = np.abs(numeric - g).max() / max(np.abs(numeric).max(), 1e-12)
        assert rel < 1e-5, (name, rel)
    unused = np.setdiff1d(np.arange(V), ids)
    for dWax, _, _ in d_directions:
        assert not dWax[:, unused].any()


@pytest.mark.parametrize("cell", list(CELLS))
def test_float32_gradients_follow_float64(cell):
    gates = CELLS[cell][0]
    rng = np.random.default_rng(13)
    H, V, F, L = 33, 50, 3, 9
    lengths = [int(n) for n in rng.integers(1, 30, 40)] + [0, 1]
    directions = [make_direction(rng, gates, H, V) for _ in DIRECTIONS]
    output = [rng.normal(0, 0.5, (L, 2 * H)), rng.normal(0, 0.1, L)]
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    loss64, d64, o64 = kernel_loss_and_grads(cell, directions, output, ids, offsets, labels)
    loss32, d32, o32 = kernel_loss_and_grads(
        cell, [cast(d, np.float32) for d in directions], cast(output, np.float32), ids, offsets,
        labels, exact=False)
    assert abs(loss32 - loss64) < 1e-4 * abs(loss64)
    for g64, g32 in zip([g for d in d64 for g in d] + o64, [g for d in d32 for g in d] + o32):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-3 * np.abs(g64).max())


@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_adds_to_the_gradients_and_keeps_its_inputs(cell):
    gates, width, forward, backward, _ = CELLS[cell]
    rng = np.random.default_rng(30)
    H, V = 5, 9
    Wax, Waa, ba = make_direction(rng, gates, H, V)
    offsets, ids, _ = make_batch(rng, [4, 0, 6, 1, 3], V, 2, 2)
    N = len(ids)
    col = 2
    A = rng.normal(size=(N, H + 4))
    C = np.empty((N, width * H))
    forward(Wax, Waa, ba, ids, offsets, False, True, A, col, C)
    dA = rng.normal(size=(N, H + 4))
    A0, C0, dA0 = A.copy(), C.copy(), dA.copy()
    zero = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
    backward(Waa, ids, offsets, False, A, col, C, dA, *zero, True)
    start = [rng.normal(size=Wax.shape), rng.normal(size=Waa.shape), rng.normal(size=ba.shape)]
    start[0] = np.asfortranarray(start[0])
    grads = [g.copy(order="K") for g in start]
    backward(Waa, ids, offsets, False, A, col, C, dA, *grads, True)
    for g, s, z in zip(grads, start, zero):
        np.testing.assert_allclose(g, s + z, rtol=0, atol=1e-12)
    assert (A == A0).all() and (C == C0).all() and (dA == dA0).all()


@pytest.mark.parametrize("cell", list(CELLS))
def test_empty_batch(cell):
    gates, width, forward, backward, _ = CELLS[cell]
    H, V = 4, 5
    Wax, Waa, ba = make_direction(np.random.default_rng(0), gates, H, V)
    for offsets in (np.zeros(1, dtype=np.int64), np.zeros(3, dtype=np.int64)):
        ids = np.zeros((0, 1), dtype=np.int32)
        A = np.empty((0, H))
        C = np.empty((0, width * H))
        forward(Wax, Waa, ba, ids, offsets, False, True, A, 0, C)
        grads = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
        backward(Waa, ids, offsets, True, A, 0, C, A, *grads, True)
        assert not any(g.any() for g in grads)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_forward_without_a_cache_gives_the_same_bits(reverse):
    # tagging passes C with no rows (nothing reads it): the states must not change at all
    rng = np.random.default_rng(7)
    H, V = 24, 40
    for dtype, exact in ((np.float32, False), (np.float64, True)):
        Wax, Waa, ba = cast(make_direction(rng, 4, H, V), dtype)
        offsets, ids, _ = make_batch(rng, [5, 1, 17, 3, 9, 12, 2] * 4, V, 2, 2)
        A_kept = np.zeros((len(ids), H), dtype)
        A_none = np.zeros((len(ids), H), dtype)
        lstm_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A_kept, 0,
                     np.zeros((len(ids), 5 * H), dtype))
        lstm_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A_none, 0,
                     np.zeros((0, 5 * H), dtype))
        assert np.abs(A_kept).max() > 0.1
        assert np.array_equal(A_kept, A_none)
