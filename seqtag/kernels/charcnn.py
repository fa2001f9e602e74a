"""Numba kernels of the character CNN of each spelling.

For a word whose characters (begin marker, letters, end marker) have embeddings e<1..n> (rows of
Ec) and a filter bank Wconv over windows of `width` characters:

    h<p> = Wconv·[e<p>; e<p+1>; ...; e<p+width-1>] + bconv        (p = 1 .. n - width + 1)
    c    = tanh(max_p h<p>)                                            (max over positions, per filter)

The vector c joins the word's embedded input x (seqtag.kernels.embed), which each RNN direction
reads through Wax·x.

Words are given as spans of one flat array of character ids: word u of a batch is
chars[starts[types[u]]:starts[types[u] + 1]], at least `width` long (padded by the caller).
"""

import numpy as np
from numba import njit

@njit(cache=True, fastmath=True, error_model="numpy", nogil=True)
def charcnn_forward(Ec, Wconv, bconv, chars, starts, types, width, out, arg):
    """out[u] = c of word types[u] = tanh(max_p Wconv·[e<p>; ...; e<p+width-1>] + bconv);
    arg[u, f] = the window position p that won filter f (what the backward pass needs)."""
    dc = Ec.shape[1]
    F = Wconv.shape[0]
    x = np.empty(width * dc, dtype=out.dtype)   # the window's embeddings, side by side
    for u in range(types.shape[0]):
        lo = starts[types[u]]
        n = starts[types[u] + 1] - lo
        for f in range(F):
            out[u, f] = -np.inf
            arg[u, f] = 0
        for p in range(n - width + 1):
            for j in range(width):
                e = Ec[chars[lo + p + j]]
                for d in range(dc):
                    x[j * dc + d] = e[d]
            for f in range(F):
                h = bconv[f]
                for k in range(x.shape[0]):
                    h += Wconv[f, k] * x[k]
                if h > out[u, f]:
                    out[u, f] = h
                    arg[u, f] = p
        for f in range(F):
            out[u, f] = np.tanh(out[u, f])


@njit(cache=True, fastmath=True, error_model="numpy", nogil=True)
def charcnn_backward(Ec, Wconv, chars, starts, types, width, out, arg, dout, dEc, dWconv, dbconv):
    """Adds into dEc, dWconv, dbconv the gradients of Σ dout ⊙ c (dc/dh = 1 - c² at the winning
    window of each filter, zero elsewhere)."""
    dc = Ec.shape[1]
    F = Wconv.shape[0]
    for u in range(types.shape[0]):
        lo = starts[types[u]]
        for f in range(F):
            dh = dout[u, f] * (1 - out[u, f] * out[u, f])
            if dh == 0:
                continue
            dbconv[f] += dh
            p = arg[u, f]
            for j in range(width):
                ch = chars[lo + p + j]
                for d in range(dc):
                    dWconv[f, j * dc + d] += dh * Ec[ch, d]
                    dEc[ch, d] += dh * Wconv[f, j * dc + d]
