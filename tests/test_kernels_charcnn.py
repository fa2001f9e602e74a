"""The character CNN kernels against a plain-NumPy reference and central differences."""

import numpy as np
import pytest

from gradcheck import numeric_gradient
from kernel_refs import numpy_lstm

from seqtag.chars import BOW, EOW, PAD, CharVocab
from seqtag.kernels.charcnn import charcnn_backward, charcnn_forward

WIDTH = 3


def make(rng, n_chars=9, dc=4, F=5, n_types=6, dtype=np.float64):
    Ec = rng.normal(size=(n_chars, dc)).astype(dtype)
    Wconv = (rng.normal(size=(F, WIDTH * dc)) * 0.5).astype(dtype)
    bconv = (rng.normal(size=F) * 0.1).astype(dtype)
    spellings = [[BOW] + list(rng.integers(4, n_chars, size=n)) + [EOW] for n in
                 rng.integers(0, 7, size=n_types)]
    spellings = [s + [PAD] * (WIDTH - len(s)) for s in spellings]
    starts = np.cumsum([0] + [len(s) for s in spellings]).astype(np.int64)
    chars = np.array([c for s in spellings for c in s], np.int32)
    return Ec, Wconv, bconv, chars, starts, spellings


def numpy_charcnn(Ec, Wconv, bconv, spelling):
    windows = np.stack([Ec[spelling[p:p + WIDTH]].reshape(-1)
                        for p in range(len(spelling) - WIDTH + 1)])
    return np.tanh((windows @ Wconv.T + bconv).max(axis=0))


def run(Ec, Wconv, bconv, chars, starts, types):
    out = np.empty((len(types), Wconv.shape[0]), Ec.dtype)
    arg = np.empty(out.shape, np.int32)
    charcnn_forward(Ec, Wconv, bconv, chars, starts, types, WIDTH, out, arg)
    return out, arg


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_forward_equals_numpy(seed, dtype, tol):
    rng = np.random.default_rng(seed)
    Ec, Wconv, bconv, chars, starts, spellings = make(rng, dtype=dtype)
    types = np.array([3, 0, 5, 3, 1], np.int32)      # repeats and any order
    out, _ = run(Ec, Wconv, bconv, chars, starts, types)
    for u, t in enumerate(types):
        ref = numpy_charcnn(Ec.astype(np.float64), Wconv.astype(np.float64),
                            bconv.astype(np.float64), spellings[t])
        np.testing.assert_allclose(out[u], ref, atol=tol, rtol=tol)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradients_equal_central_differences(seed):
    rng = np.random.default_rng(seed)
    Ec, Wconv, bconv, chars, starts, _ = make(rng)
    types = np.array([0, 2, 4, 2, 5], np.int32)
    dout = rng.normal(size=(len(types), Wconv.shape[0]))

    def loss():
        return float((run(Ec, Wconv, bconv, chars, starts, types)[0] * dout).sum())

    out, arg = run(Ec, Wconv, bconv, chars, starts, types)
    grads = [np.zeros_like(Ec), np.zeros_like(Wconv), np.zeros_like(bconv)]
    charcnn_backward(Ec, Wconv, chars, starts, types, WIDTH, out, arg, dout, *grads)
    eps = 1e-6
    for param, grad in zip((Ec, Wconv, bconv), grads):
        numeric = numeric_gradient(loss, param, eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(grads[0]).sum() > 0 and np.abs(grads[1]).sum() > 0


def test_backward_adds_to_the_gradients():
    rng = np.random.default_rng(5)
    Ec, Wconv, bconv, chars, starts, _ = make(rng)
    types = np.array([1, 2], np.int32)
    out, arg = run(Ec, Wconv, bconv, chars, starts, types)
    dout = rng.normal(size=out.shape)
    once = [np.zeros_like(Ec), np.zeros_like(Wconv), np.zeros_like(bconv)]
    charcnn_backward(Ec, Wconv, chars, starts, types, WIDTH, out, arg, dout, *once)
    twice = [g.copy() for g in once]
    charcnn_backward(Ec, Wconv, chars, starts, types, WIDTH, out, arg, dout, *twice)
    for a, b in zip(once, twice):
        np.testing.assert_allclose(b, 2 * a)


def test_spelling_marks_the_ends_and_pads_to_the_window():
    cv = CharVocab.build(["Sam", "Li"])
    assert cv.spell("", WIDTH) == [BOW, EOW, PAD]
    li = cv.spell("Li", WIDTH)
    assert li[0] == BOW and li[-1] == EOW and len(li) == 4
    assert cv.spell("Zq", WIDTH)[1:3] == [1, 1]            # unseen characters are <unk>
    long = cv.spell("a" * 100, WIDTH)
    assert len(long) == 2 + 24                             # first and last 12 characters
    assert CharVocab.from_text(cv.to_text()) == cv


def test_a_bad_inventory_is_refused():
    with pytest.raises(ValueError):
        CharVocab(["a", "b"])


def test_the_embedded_model_forward_equals_numpy():
    """Whole forward pass of a bidirectional LSTM with features and the char CNN against the
    equations: x = [Σ Ex columns; c], the LSTM of tests/kernel_refs on Wax·x."""
    from seqtag.config import TrainConfig
    from seqtag.corpus import Sentence
    from seqtag.model import RNNTagger, pack
    from seqtag.training import Trainer

    words = ["Sam", "met", "Li", "in", "Rome", "on", "Tuesday", ".", "x", "McDonald's"]
    rng = np.random.default_rng(8)
    sents = [Sentence([words[j] for j in rng.integers(0, len(words), n)], None, [], 1)
             for n in (5, 1, 8, 3)]
    train = [Sentence(s.tokens, ["O"] * len(s.tokens), [], 1) for s in sents]
    m = Trainer(TrainConfig(hidden=3, epochs=1, embed_dim=4, char_filters=3, char_dim=2,
                            features="shape,suffix2", feature_min_count=1)).fit(train).model_
    params = {k: (np.asfortranarray if k == "Ex" else np.ascontiguousarray)(
        v + rng.normal(0, 0.5, v.shape), dtype=np.float64) for k, v in m.params.items()}
    model = RNNTagger(m.vocab, params, m.meta, features=m.features, chars=m.chars)
    tokens = [s.tokens + ["Unseen"] for s in sents]
    ids, offsets = pack([model.encode(t) for t in tokens])
    A, _ = model.network.states(ids.reshape(len(ids), -1), offsets)

    spelled, starts = model.encoder.spellings()
    X = np.stack([np.concatenate([
        params["Ex"][:, row[:-1]].sum(axis=1),
        numpy_charcnn(params["Ec"], params["Wconv"], params["bconv"],
                      spelled[starts[row[-1]]:starts[row[-1] + 1]])]) for row in ids])
    H = 3
    for sfx, col, reverse in (("", 0, False), ("_b", H, True)):
        P = X @ params["Wax" + sfx].T                       # Wax·x of every token
        ref, _ = numpy_lstm(P.T, params["Waa" + sfx], params["ba" + sfx],
                            np.arange(len(ids)).reshape(-1, 1), offsets, reverse)
        np.testing.assert_allclose(A[:, col:col + H], ref, atol=1e-5)
