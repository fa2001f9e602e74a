"""Data and plain-NumPy references, written from the equations, that the kernel tests share.

A packed batch: sentence s is tokens offsets[s]..offsets[s+1]-1, ids (N, F) their feature ids.
Elman cell, one direction over a sentence read left to right, or right to left when reverse:
  a<0> = 0;  a<t> = tanh(Waa·a<t-1> + Σf Wax[:, x<t>_f] + ba)
LSTM, gates [i; f; g; o]:
  z<t> = Σf Wax[:, x<t>_f] + Waa·a<t-1> + ba;  [i; f; g; o] = [σ; σ; tanh; σ](z<t>)
  c<t> = f ⊙ c<t-1> + i ⊙ g;  a<t> = o ⊙ tanh(c<t>);  a<0> = c<0> = 0
GRU (Cho et al.), gates [r; u; n]:
  r = σ(W_r x + U_r a<t-1> + b_r);  u = σ(W_u x + U_u a<t-1> + b_u)
  n = tanh(W_n x + U_n (r ⊙ a<t-1>) + b_n);  a<t> = (1 - u) ⊙ n + u ⊙ a<t-1>
The output layer and the loss: E = A·Wyaᵀ + by;  ŷ = softmax(E[i]);  loss = Σi -log ŷ[i, y_i].
"""

import numpy as np

from seqtag.kernels.stepping import _WINDOW

# --- data ----------------------------------------------------------------------------------


def make_direction(rng, H, V, dtype=np.float64, scale=0.5):
    """(Wax, Waa, ba) of one direction; Wax Fortran-ordered as the kernels take it."""
    Wax = np.asfortranarray(rng.normal(0, scale, (H, V)).astype(dtype))
    Waa = rng.normal(0, scale / np.sqrt(H), (H, H)).astype(dtype)
    ba = rng.normal(0, 0.1, H).astype(dtype)
    return [Wax, Waa, ba]


def make_output(rng, D, L, dtype=np.float64, scale=0.5):
    """(Wya, by)."""
    return [rng.normal(0, scale, (L, D)).astype(dtype), rng.normal(0, 0.1, L).astype(dtype)]


# Packed batches the cell kernels are checked on, forward and backward.
FORWARD_CASES = [
    # (seed, hidden, vocabulary, features, sentence lengths)
    (1, 5, 7, 1, [3, 1, 5, 2]),
    (2, 5, 7, 3, [3, 1, 0, 5, 2]),
    (3, 33, 50, 3, [int(n) for n in np.random.default_rng(3).integers(1, 30, 40)] + [0, 1]),
    (4, 64, 100, 1, [17] * 20 + [1] * 3),
    # More sentences than the kernels sort by length together (_WINDOW).
    (5, 8, 30, 2, [int(n) for n in np.random.default_rng(5).integers(0, 12, _WINDOW + 45)]),
]


def make_batch(rng, lengths, V, F, L):
    """offsets, ids (N, F) with some ids repeated within a row, labels."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    ids = rng.integers(0, V, (N, F)).astype(np.int32)
    if F > 1 and N > 0:
        ids[::3, 1] = ids[::3, 0]  # a feature id twice in a row: its column counts twice
    labels = rng.integers(0, L, N).astype(np.int32)
    return offsets, ids, labels


def cast(arrays, dtype):
    """The arrays in another precision, Wax still Fortran-ordered."""
    return [a.astype(dtype, order="K") for a in arrays]


# --- NumPy references, from the equations --------------------------------------------------


def numpy_states(Wax, Waa, ba, ids, offsets, reverse):
    """a<t> of every token, in float64, one sentence and one token at a time."""
    Wax, Waa, ba = (np.asarray(p, dtype=np.float64) for p in (Wax, Waa, ba))
    out = np.zeros((len(ids), Waa.shape[0]))
    for s in range(len(offsets) - 1):
        tokens = range(offsets[s], offsets[s + 1])
        a = np.zeros(Waa.shape[0])
        for p in (reversed(tokens) if reverse else tokens):
            a = np.tanh(Waa @ a + Wax[:, ids[p]].sum(axis=1) + ba)
            out[p] = a
    return out


def numpy_softmax(E):
    e = np.exp(E - E.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_xent(E, labels):
    """Σi -log softmax(E[i])[labels[i]], in float64, by log-sum-exp."""
    E = np.asarray(E, dtype=np.float64)
    top = E.max(axis=1)
    lse = top + np.log(np.exp(E - top[:, None]).sum(axis=1))
    return float((lse - E[np.arange(len(labels)), labels]).sum())


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_lstm(Wax, Waa, ba, ids, offsets, reverse):
    """a<t> (N, H) and [i | f | g | o | c<t>] (N, 5H) of every token, in float64."""
    Wax, Waa, ba = (np.asarray(p, dtype=np.float64) for p in (Wax, Waa, ba))
    H = Waa.shape[1]
    A = np.zeros((len(ids), H))
    C = np.zeros((len(ids), 5 * H))
    for s in range(len(offsets) - 1):
        tokens = range(offsets[s], offsets[s + 1])
        a = np.zeros(H)
        c = np.zeros(H)
        for p in (reversed(tokens) if reverse else tokens):
            z = Wax[:, ids[p]].sum(axis=1) + Waa @ a + ba
            i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), \
                sigmoid(z[3 * H:])
            c = f * c + i * g
            a = o * np.tanh(c)
            A[p] = a
            C[p] = np.concatenate([i, f, g, o, c])
    return A, C


def numpy_gru(Wax, Waa, ba, ids, offsets, reverse):
    """a<t> (N, H) and [r | u | n | r ⊙ a<t-1>] (N, 4H) of every token, in float64."""
    Wax, Waa, ba = (np.asarray(p, dtype=np.float64) for p in (Wax, Waa, ba))
    H = Waa.shape[1]
    A = np.zeros((len(ids), H))
    C = np.zeros((len(ids), 4 * H))
    for s in range(len(offsets) - 1):
        tokens = range(offsets[s], offsets[s + 1])
        a = np.zeros(H)
        for p in (reversed(tokens) if reverse else tokens):
            x = Wax[:, ids[p]].sum(axis=1) + ba
            r = sigmoid(x[:H] + Waa[:H] @ a)
            u = sigmoid(x[H:2 * H] + Waa[H:2 * H] @ a)
            n = np.tanh(x[2 * H:] + Waa[2 * H:] @ (r * a))
            C[p] = np.concatenate([r, u, n, r * a])
            a = (1 - u) * n + u * a
            A[p] = a
    return A, C
