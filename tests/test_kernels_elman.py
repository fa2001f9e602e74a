"""The Elman cell's kernels against plain-NumPy references written from the equations
(tests/kernel_refs.py).

One direction of the RNN over a sentence read left to right, or right to left when reverse:
  a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, x<t>_f] + ba)
the output layer and the loss over the states A (N, D) of both directions side by side:
  E = A·Wyaᵀ + by;  ŷ = softmax(E[i]);  loss = Σi -log ŷ[i, y_i]
The gradients of a loss composed of all the kernels are checked against central finite differences.
"""

import numpy as np
import pytest

from gradcheck import numeric_gradient
from kernel_refs import (FORWARD_CASES, cast, make_batch, make_direction, make_output,
                         numpy_states, numpy_xent)

from seqtag.kernels.elman import rnn_backward, rnn_forward
from seqtag.kernels.matmul import linear_backward, linear_forward
from seqtag.kernels.softmax import softmax_xent
from seqtag.kernels.stepping import _GROUP, _WINDOW

# --- the kernels composed into a bidirectional tagger ---------------------------------------


DIRECTIONS = ((False, 0), (True, 1))  # (reverse, which half of A)


def kernel_loss(directions, output, ids, offsets, labels, exact=True):
    """The summed cross-entropy of a bidirectional RNN; also A and E."""
    H = directions[0][1].shape[0]
    N = len(ids)
    dtype = output[0].dtype
    A = np.empty((N, 2 * H), dtype=dtype)
    for (Wax, Waa, ba), (reverse, half) in zip(directions, DIRECTIONS):
        rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, half * H)
    E = np.empty((N, output[0].shape[0]), dtype=dtype)
    linear_forward(A, *output, E)
    dE = np.empty_like(E)
    loss = softmax_xent(E, labels, exact, dE)
    return loss, A, dE


def kernel_loss_and_grads(directions, output, ids, offsets, labels, exact=True):
    """loss, [[dWax, dWaa, dba] per direction], [dWya, dby]."""
    loss, A, dE = kernel_loss(directions, output, ids, offsets, labels, exact)
    H = directions[0][1].shape[0]
    d_output = [np.zeros_like(p) for p in output]
    dA = np.empty_like(A)
    linear_backward(A, output[0], dE, dA, *d_output)
    d_directions = []
    for (Wax, Waa, ba), (reverse, half) in zip(directions, DIRECTIONS):
        grads = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
        rnn_backward(Waa, ids, offsets, reverse, A, half * H, dA, *grads, exact)
        d_directions.append(grads)
    return loss, d_directions, d_output


# --- one direction: rnn_forward ------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("seed, H, V, F, lengths", FORWARD_CASES)
def test_rnn_forward_equals_numpy(seed, H, V, F, lengths, reverse):
    rng = np.random.default_rng(seed)
    Wax, Waa, ba = make_direction(rng, H, V)
    offsets, ids, _ = make_batch(rng, lengths, V, F, 2)
    expected = numpy_states(Wax, Waa, ba, ids, offsets, reverse)
    col = 3  # into the middle of a wider A, whose other columns must stay as they are
    for dtype, exact, tol in ((np.float64, True, 1e-10), (np.float32, False, 1e-4)):
        A = np.full((len(ids), H + 7), 9.0, dtype=dtype)
        rnn_forward(*cast([Wax, Waa, ba], dtype), ids, offsets, reverse, exact, A, col)
        np.testing.assert_allclose(A[:, col:col + H], expected, rtol=0, atol=tol)
        assert (A[:, :col] == 9).all() and (A[:, col + H:] == 9).all()


def test_rnn_forward_reads_the_other_way_when_reverse():
    """A sentence read right to left is the reversed sentence read left to right."""
    rng = np.random.default_rng(25)
    Wax, Waa, ba = make_direction(rng, 6, 9)
    offsets, ids, _ = make_batch(rng, [4, 7], 9, 2, 2)
    backwards = np.concatenate([ids[offsets[s]:offsets[s + 1]][::-1] for s in range(2)])
    A_reverse = np.empty((len(ids), 6))
    A_flipped = np.empty((len(ids), 6))
    rnn_forward(Wax, Waa, ba, ids, offsets, True, True, A_reverse, 0)
    rnn_forward(Wax, Waa, ba, backwards, offsets, False, True, A_flipped, 0)
    for s in range(2):
        np.testing.assert_allclose(A_reverse[offsets[s]:offsets[s + 1]],
                                   A_flipped[offsets[s]:offsets[s + 1]][::-1], atol=1e-14)


# --- the whole tagger: loss and gradients ---------------------------------------------------

GRAD_CASES = [
    # (seed, hidden, vocabulary, features, labels, sentence lengths)
    (10, 5, 7, 2, 3, [3, 1, 5, 0, 2]),
    (11, 4, 6, 1, 3, [1]),
    # More sentences than the kernels step together (_GROUP), incl. empty ones.
    (12, 5, 8, 3, 4, [i * 5 % 8 for i in range(2 * _GROUP + 3)]),
]


def all_params(directions, output):
    return [p for d in directions for p in d] + list(output)


def all_grads(d_directions, d_output):
    return [g for d in d_directions for g in d] + list(d_output)


PARAM_NAMES = ["Wax→", "Waa→", "ba→", "Wax←", "Waa←", "ba←", "Wya", "by"]


@pytest.mark.parametrize("seed, H, V, F, L, lengths", GRAD_CASES)
def test_gradients_equal_central_differences(seed, H, V, F, L, lengths):
    rng = np.random.default_rng(seed)
    directions = [make_direction(rng, H, V) for _ in DIRECTIONS]
    output = make_output(rng, 2 * H, L)
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    _, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets, labels)

    def loss():
        return kernel_loss(directions, output, ids, offsets, labels)[0]

    eps = 1e-6
    params = all_params(directions, output)
    for name, p, g in zip(PARAM_NAMES, params, all_grads(d_directions, d_output)):
        numeric = numeric_gradient(loss, p, eps)
        rel = np.abs(numeric - g).max() / max(np.abs(numeric).max(), 1e-12)
        assert rel < 1e-5, (name, rel)
    unused = np.setdiff1d(np.arange(V), ids)
    for dWax, _, _ in d_directions:
        assert not dWax[:, unused].any()


@pytest.mark.parametrize("seed, H, V, F, L, lengths", GRAD_CASES[:1] + [
    (13, 33, 50, 3, 9, [int(n) for n in np.random.default_rng(13).integers(1, 30, 40)] + [0, 1]),
    (14, 64, 100, 1, 5, [17] * 20 + [1] * 3),
    (15, 8, 30, 2, 4, [int(n) for n in np.random.default_rng(15).integers(0, 12, _WINDOW + 45)]),
])
def test_loss_equals_numpy_and_float32_follows_float64(seed, H, V, F, L, lengths):
    rng = np.random.default_rng(seed)
    directions = [make_direction(rng, H, V) for _ in DIRECTIONS]
    output = make_output(rng, 2 * H, L)
    offsets, ids, labels = make_batch(rng, lengths, V, F, L)
    A = np.hstack([numpy_states(*d, ids, offsets, reverse) for d, (reverse, _) in
                   zip(directions, DIRECTIONS)])
    expected = numpy_xent(A @ output[0].T + output[1], labels)

    loss64, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets,
                                                           labels, exact=True)
    assert loss64 == pytest.approx(expected, rel=1e-12)

    directions32 = [cast(d, np.float32) for d in directions]
    output32 = cast(output, np.float32)
    loss32, d_directions32, d_output32 = kernel_loss_and_grads(
        directions32, output32, ids, offsets, labels, exact=False)
    assert loss32 == pytest.approx(expected, rel=1e-4)
    for name, g32, g64 in zip(PARAM_NAMES, all_grads(d_directions32, d_output32),
                              all_grads(d_directions, d_output)):
        assert g32.dtype == np.float32
        rel = np.abs(g32 - g64).max() / np.abs(g64).max()
        assert rel < 1e-4, (name, rel)


def test_rnn_backward_adds_to_the_gradients_and_keeps_its_inputs():
    rng = np.random.default_rng(35)
    H, V = 6, 9
    Wax, Waa, ba = make_direction(rng, H, V)
    offsets, ids, _ = make_batch(rng, [4, 2, 7, 0, 1], V, 2, 3)
    A = np.empty((len(ids), 2 * H))
    rnn_forward(Wax, Waa, ba, ids, offsets, True, True, A, H)
    dA = rng.normal(size=A.shape)
    A_before, dA_before = A.copy(), dA.copy()
    once = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
    rnn_backward(Waa, ids, offsets, True, A, H, dA, *once, True)
    twice = [np.zeros_like(Wax, order="F"), np.zeros_like(Waa), np.zeros_like(ba)]
    for _ in range(2):
        rnn_backward(Waa, ids, offsets, True, A, H, dA, *twice, True)
    for g1, g2 in zip(once, twice):
        np.testing.assert_allclose(g2, 2 * g1, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(dA, dA_before)


def test_empty_batch():
    rng = np.random.default_rng(16)
    directions = [make_direction(rng, 4, 5) for _ in DIRECTIONS]
    output = make_output(rng, 8, 3)
    for lengths in ([], [0, 0]):
        offsets, ids, labels = make_batch(rng, lengths, 5, 2, 3)
        loss, d_directions, d_output = kernel_loss_and_grads(directions, output, ids, offsets,
                                                             labels)
        assert loss == 0
        assert not any(g.any() for g in all_grads(d_directions, d_output))
