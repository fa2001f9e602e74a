"""Tests for seqtag.model: the RNNTagger's predictions and its .npz file format."""

from __future__ import annotations

import itertools
import json
import os
import zipfile

import numpy as np
import pytest

from seqtag.corpus import Sentence
from seqtag.errors import SeqtagError
from seqtag.features import FEATURES, FeatureSet
from seqtag.build import init_params
from seqtag.model import (BACKWARD_NAMES, CRF_NAMES, FORMAT_VERSION, MAGIC, PARAM_NAMES,
                          RNNTagger, pack)
from seqtag.schemes import allowed_transitions
from seqtag.config import TrainConfig
from seqtag.training import Trainer
from seqtag.vocab import UNK, Vocabulary

SENTS = [
    ("EU rejects German call to boycott British lamb .",
     "B-ORG O B-MISC O O O B-MISC O O"),
    ("Peter Blackburn", "B-PER I-PER"),
    ("BRUSSELS 1996-08-22", "B-LOC O"),
    ("The European Commission said on Thursday it disagreed with German advice .",
     "O B-ORG I-ORG O O O O O O B-MISC O O"),
]
H = 12


def _sentences():
    return [Sentence(t.split(), lab.split(), [], 1) for t, lab in SENTS]


@pytest.fixture(scope="module")
def model() -> RNNTagger:
    vocab, _ = Vocabulary.build(_sentences())
    rng = np.random.default_rng(42)
    params = init_params(vocab.n_words, vocab.n_labels, H, rng)
    # larger weights and non-zero biases so that every term of the equations matters
    params = {k: (v * 3).astype(np.float32) for k, v in params.items()}
    params["Wax"] = np.asfortranarray(params["Wax"])
    params["ba"] = rng.normal(0, 0.5, H).astype(np.float32)
    params["by"] = rng.normal(0, 0.5, vocab.n_labels).astype(np.float32)
    meta = {"seqtag_version": "test", "created": "2000-01-01T00:00:00+00:00",
            "hyperparameters": {"hidden": H, "lr": 0.01}, "history": [{"epoch": 1}],
            "note": "ünïcode ✓"}
    return RNNTagger(vocab, params, meta)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    return path


def tokens() -> list[list[str]]:
    return [s.tokens for s in _sentences()] + [["unseen", "words", "EU"], ["."], []]


# -- predictions ---------------------------------------------------------------------------------

def numpy_forward(model: RNNTagger, sentence: list[str]) -> np.ndarray:
    """ŷ<t> from the equations, in float64, with a plain vocabulary lookup."""
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    index = {w: i for i, w in enumerate(model.vocab.words)}
    a = np.zeros(p["Waa"].shape[0])
    out = []
    for w in sentence:
        x = index.get(w, 1) if w != "<pad>" else 1
        a = np.tanh(p["Waa"] @ a + p["Wax"][:, x] + p["ba"])
        z = p["Wya"] @ a + p["by"]
        e = np.exp(z - z.max())
        out.append(e / e.sum())
    return np.array(out).reshape(len(sentence), len(model.labels))


def test_predict_proba_shapes_and_rows_sum_to_one(model):
    sents = tokens()
    probs = model.predict_proba(sents)
    assert len(probs) == len(sents)
    for y, s in zip(probs, sents):
        assert y.shape == (len(s), model.vocab.n_labels)
        assert y.dtype == np.float32
        assert (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_predict_proba_matches_numpy_forward_pass(model):
    for s in tokens():
        np.testing.assert_allclose(model.predict_proba([s])[0], numpy_forward(model, s),
                                   atol=2e-5, rtol=0)


def test_predict_is_argmax_of_numpy_forward_pass(model):
    sents = tokens()
    expected = [[model.labels[k] for k in numpy_forward(model, s).argmax(axis=1)]
                for s in sents]
    assert model.predict(sents) == expected
    # the fixture's weights do not all predict the same label, so this is not trivially true
    assert len({lab for labs in expected for lab in labs}) > 1


def test_sentences_do_not_leak_into_each_other(model):
    sents = tokens()
    together = model.predict_proba(sents)
    for s, y in zip(sents, together):
        np.testing.assert_array_equal(model.predict_proba([s])[0], y)
    reversed_ = model.predict_proba(sents[::-1])
    for y, z in zip(together, reversed_[::-1]):
        np.testing.assert_array_equal(y, z)


def test_unknown_words_use_the_unk_column(model):
    a = model.predict_proba([["zzz", "EU", "qqq"]])[0]
    b = model.predict_proba([[UNK, "EU", UNK]])[0]
    np.testing.assert_array_equal(a, b)
    c = model.predict_proba([["German", "EU", "qqq"]])[0]
    assert not np.array_equal(a[0], c[0])


def test_empty_inputs(model):
    assert model.predict_proba([]) == []
    assert model.predict([]) == []
    assert model.predict([[]]) == [[]]


def test_hidden_and_labels(model):
    assert model.hidden == H
    assert model.labels == model.vocab.labels


def test_pack():
    ids, offsets = pack([np.array([3, 4], np.int32), np.array([], np.int32),
                         np.array([5], np.int32)])
    assert ids.tolist() == [3, 4, 5] and ids.dtype == np.int32
    assert offsets.tolist() == [0, 2, 2, 3]
    ids, offsets = pack([])
    assert ids.tolist() == [] and offsets.tolist() == [0]


def test_init_params_shapes_and_scale():
    p = init_params(50, 7, 16, np.random.default_rng(0))
    assert {k: v.shape for k, v in p.items()} == {
        "Wax": (16, 50), "Waa": (16, 16), "Wya": (7, 16), "ba": (16,), "by": (7,)}
    assert all(v.dtype == np.float32 for v in p.values())
    assert p["Wax"].flags.f_contiguous
    for k in ("Wax", "Waa", "Wya"):
        assert np.abs(p[k]).max() <= 1 / np.sqrt(16)
        assert np.abs(p[k]).max() > 0.5 / np.sqrt(16)
    assert not p["ba"].any() and not p["by"].any()


# -- the file ------------------------------------------------------------------------------------

def test_save_load_round_trip(model, model_file):
    loaded = RNNTagger.load(model_file)
    for k in PARAM_NAMES:
        assert loaded.params[k].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    assert loaded.params["Wax"].flags.f_contiguous
    assert loaded.vocab.words == model.vocab.words
    assert loaded.vocab.labels == model.vocab.labels
    np.testing.assert_array_equal(loaded.vocab.word_counts, model.vocab.word_counts)
    np.testing.assert_array_equal(loaded.vocab.label_counts, model.vocab.label_counts)
    assert loaded.meta == model.meta
    sents = tokens()
    for a, b in zip(loaded.predict_proba(sents), model.predict_proba(sents)):
        np.testing.assert_array_equal(a, b)
    assert loaded.predict(sents) == model.predict(sents)


def test_file_is_a_plain_npz(model, model_file):
    with np.load(model_file, allow_pickle=False) as z:
        assert set(z.files) == {"magic", "format_version", "meta", "words", "word_counts",
                                "labels", "label_counts", *PARAM_NAMES}
        assert z["magic"].tobytes().decode("utf-8") == MAGIC == "seqtag-model"
        assert z["format_version"].shape == () and z["format_version"].dtype == np.int64
        assert int(z["format_version"]) == FORMAT_VERSION
        assert json.loads(z["meta"].tobytes().decode("utf-8")) == model.meta
        assert z["words"].tobytes().decode("utf-8").split("\n") == model.vocab.words
        assert z["labels"].tobytes().decode("utf-8").split("\n") == model.vocab.labels
        for k in PARAM_NAMES:
            np.testing.assert_array_equal(z[k], model.params[k])


def test_same_model_gives_same_bytes(model, model_file, tmp_path):
    again = tmp_path / "again.npz"
    model.save(again)
    assert again.read_bytes() == model_file.read_bytes()


def test_round_trip_of_odd_tokens(tmp_path):
    words = ["<pad>", "<unk>", "", "New York", "#hashtag", "日本"]
    vocab = Vocabulary(words, [0, 1, 2, 3, 4, 5], ["O", "B-X"], [3, 1])
    params = init_params(len(words), 2, 4, np.random.default_rng(1))
    m = RNNTagger(vocab, params, {})
    m.save(tmp_path / "m.npz")
    loaded = RNNTagger.load(tmp_path / "m.npz")
    assert loaded.vocab.words == words
    sents = [["", "New York", "#hashtag"], ["日本"]]
    for a, b in zip(loaded.predict_proba(sents), m.predict_proba(sents)):
        np.testing.assert_array_equal(a, b)


# -- load errors ---------------------------------------------------------------------------------

def read_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_npz(path, arrays: dict[str, np.ndarray], *, allow_pickle=False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=allow_pickle)


def utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def load_error(path) -> SeqtagError:
    with pytest.raises(SeqtagError) as info:
        RNNTagger.load(path)
    err = info.value
    assert err.path == str(path)
    assert str(err).startswith(str(path) + ": ")
    return err


def test_rewritten_file_still_loads(model_file, tmp_path):
    """The helper that rewrites files below produces loadable models when nothing is changed,
    so the failures below come from the change alone."""
    path = tmp_path / "copy.npz"
    write_npz(path, read_arrays(model_file))
    RNNTagger.load(path)


def test_load_missing_file(tmp_path):
    assert "no such" in load_error(tmp_path / "missing.npz").message


def test_load_directory(tmp_path):
    load_error(tmp_path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    load_error(path)


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    load_error(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\t0\n<unk>\t1\n\nO\t1\n", "utf-8")
    load_error(path)


def test_load_a_zip_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "not a seqtag model" in load_error(path).message


def test_load_an_npz_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3), labels=np.arange(4))
    assert "not a seqtag model" in load_error(path).message


def test_load_wrong_magic(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["magic"] = utf8("other-model")
    path = tmp_path / "m.npz"
    write_npz(path, arrays)
    assert "not a seqtag model" in load_error(path).message


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.9, 0.999])
def test_load_truncated(model_file, tmp_path, fraction):
    data = model_file.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:int(len(data) * fraction)])
    load_error(path)


def test_load_newer_format_version(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["format_version"] = np.array(FORMAT_VERSION + 1, dtype=np.int64)
    path = tmp_path / "future.npz"
    write_npz(path, arrays)
    err = load_error(path)
    assert str(FORMAT_VERSION + 1) in err.message
    assert "upgrade" in (err.hint or "")


def test_load_older_or_equal_format_version(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["format_version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    path = tmp_path / "same.npz"
    write_npz(path, arrays)
    RNNTagger.load(path)


@pytest.mark.parametrize("change", ["extra word", "missing word", "extra label",
                                    "missing label", "counts"])
def test_load_vocabulary_that_does_not_match_weights(model, model_file, tmp_path, change):
    arrays = read_arrays(model_file)
    words, labels = list(model.vocab.words), list(model.vocab.labels)
    wc, lc = model.vocab.word_counts, model.vocab.label_counts
    if change == "extra word":
        words, wc = words + ["extra"], np.append(wc, 1)
    elif change == "missing word":
        words, wc = words[:-1], wc[:-1]
    elif change == "extra label":
        labels, lc = labels + ["B-NEW"], np.append(lc, 1)
    elif change == "missing label":
        labels, lc = labels[:-1], lc[:-1]
    else:
        wc = wc[:-1]
    arrays.update(words=utf8("\n".join(words)), labels=utf8("\n".join(labels)),
                  word_counts=wc, label_counts=lc)
    path = tmp_path / "mismatch.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_words_list_of_wrong_length_only(model, model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["words"] = utf8("\n".join(model.vocab.words + ["one", "two"]))
    path = tmp_path / "mismatch.npz"
    write_npz(path, arrays)
    assert "does not match" in load_error(path).message


@pytest.mark.parametrize("name, value", [("Waa", np.nan), ("by", np.inf), ("Wax", -np.inf),
                                         ("ba", np.nan), ("Wya", np.nan)])
def test_load_non_finite_weights(model_file, tmp_path, name, value):
    arrays = read_arrays(model_file)
    arr = arrays[name].copy()
    arr.flat[arr.size // 2] = value
    arrays[name] = arr
    path = tmp_path / "nan.npz"
    write_npz(path, arrays)
    assert name in load_error(path).message


def test_load_integer_weights(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["Waa"] = arrays["Waa"].astype(np.int32)
    path = tmp_path / "int.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_wrong_rank(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["Waa"] = arrays["Waa"].reshape(-1)
    path = tmp_path / "rank.npz"
    write_npz(path, arrays)
    load_error(path)


@pytest.mark.parametrize("missing", ["Wya", "meta", "words", "label_counts", "format_version"])
def test_load_missing_array(model_file, tmp_path, missing):
    arrays = read_arrays(model_file)
    del arrays[missing]
    path = tmp_path / "partial.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_words_without_reserved_entries(model, model_file, tmp_path):
    arrays = read_arrays(model_file)
    words = list(model.vocab.words)
    words[0], words[1] = words[1], words[0]
    arrays["words"] = utf8("\n".join(words))
    path = tmp_path / "reserved.npz"
    write_npz(path, arrays)
    load_error(path)


@pytest.mark.parametrize("field, raw", [("meta", b"{not json"), ("words", b"\xff\xfe"),
                                        ("labels", b"caf\xe9")])
def test_load_damaged_text_entries(model_file, tmp_path, field, raw):
    arrays = read_arrays(model_file)
    arrays[field] = np.frombuffer(raw, dtype=np.uint8)
    path = tmp_path / "damaged.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_text_entry_of_wrong_dtype(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["words"] = np.arange(5, dtype=np.int64)
    path = tmp_path / "dtype.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_refuses_pickled_arrays(model_file, tmp_path):
    arrays = read_arrays(model_file)
    arrays["meta"] = np.array([{"evil": True}], dtype=object)
    path = tmp_path / "pickle.npz"
    write_npz(path, arrays, allow_pickle=True)
    load_error(path)


# -- save errors ---------------------------------------------------------------------------------

def test_save_into_missing_directory(model, tmp_path):
    path = tmp_path / "no" / "such" / "model.npz"
    with pytest.raises(SeqtagError) as info:
        model.save(path)
    assert info.value.path == str(path)
    assert not (tmp_path / "no").exists()


def test_save_over_a_directory(model, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "keep.npz").write_bytes(b"keep")
    with pytest.raises(SeqtagError) as info:
        model.save(target)
    assert info.value.path == str(target)
    assert target.is_dir() and (target / "keep.npz").read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["models"]


def test_failed_save_leaves_existing_model(model, model_file, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    path.write_bytes(model_file.read_bytes())
    written = []

    def write_array(fh, arr, **kw):
        if len(written) == 3:
            fh.write(b"\0" * 1000)
            raise OSError(28, "No space left on device")
        written.append(arr)
        return real(fh, arr, **kw)

    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    other = RNNTagger(model.vocab, {k: v * 0 for k, v in model.params.items()}, {})
    with pytest.raises(SeqtagError) as info:
        other.save(path)
    monkeypatch.undo()
    assert len(written) == 3
    assert info.value.path == str(path)
    assert "No space left" in info.value.message
    assert path.read_bytes() == model_file.read_bytes()
    assert os.listdir(tmp_path) == ["model.npz"]
    RNNTagger.load(path)


def test_save_overwrites_an_existing_model(model, model_file, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"an old file")
    model.save(path)
    assert path.read_bytes() == model_file.read_bytes()
    assert os.listdir(tmp_path) == ["model.npz"]



# -- a backward direction, features and a CRF ----------------------------------------------------

FEATURE_NAMES = ["shape", "suffix3", "casing"]


def random_model(*, bidirectional=True, features=True, crf=False, scale=3.0, seed=7,
                 scheme="IOB2") -> RNNTagger:
    """A model of SENTS's vocabulary with large random weights, non-zero biases and (with crf)
    random transition scores, so that every term of the equations matters."""
    sents = _sentences()
    vocab, _ = Vocabulary.build(sents)
    fs = FeatureSet.build((t for s in sents for t in s.tokens), FEATURE_NAMES, min_count=1) \
        if features else None
    n_inputs = vocab.n_words + (sum(fs.sizes) if fs else 0)
    rng = np.random.default_rng(seed)
    params = init_params(n_inputs, vocab.n_labels, H, rng, bidirectional, crf)
    params = {k: (v * scale).astype(np.float32) for k, v in params.items()}
    for k, v in params.items():
        if not v.any():                                  # biases and CRF scores start at zero
            params[k] = rng.normal(0, 1.0, v.shape).astype(np.float32)
    for k in ("Wax", "Wax_b"):
        if k in params:
            params[k] = np.asfortranarray(params[k])
    meta = {"label_scheme": scheme,
            "architecture": {"bidirectional": bidirectional, "crf": crf,
                             "features": FEATURE_NAMES if features else []}}
    return RNNTagger(vocab, params, meta, features=fs)


def input_columns(model: RNNTagger, token: str) -> list[int]:
    """x<t> as the Wax columns that are 1: the word, then each feature's value, from the
    vocabulary and inventories as plain lists."""
    words = model.vocab.words
    cols = [words.index(token) if token in words[2:] else 1]
    base = len(words)
    if model.features:
        for name, values in zip(model.features.names, model.features.values):
            value = FEATURES[name](token)
            cols.append(base + (values.index(value) if value in values else 0))
            base += len(values)
    return cols


def numpy_emissions(model: RNNTagger, sentence: list[str]) -> np.ndarray:
    """Wya·[a_f<t>; a_b<t>] + by from the equations in float64, x<t> multi-hot."""
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    T, Hh = len(sentence), p["Waa"].shape[0]
    # Wax·x<t> for a multi-hot x<t>, built as a vector and multiplied, not as a column sum
    X = np.zeros((T, p["Wax"].shape[1]))
    for t, tok in enumerate(sentence):
        X[t, input_columns(model, tok)] = 1.0
    states = []
    for sfx, order in [("", range(T))] + ([("_b", range(T - 1, -1, -1))]
                                          if "Wax_b" in p else []):
        a, A = np.zeros(Hh), np.zeros((T, Hh))
        for t in order:
            a = np.tanh(p["Waa" + sfx] @ a + p["Wax" + sfx] @ X[t] + p["ba" + sfx])
            A[t] = a
        states.append(A)
    A = np.concatenate(states, axis=1)
    return (A @ p["Wya"].T + p["by"]).reshape(T, len(model.labels))


def numpy_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def brute_force_marginals(model: RNNTagger, sentence: list[str]) -> np.ndarray:
    """P(y<t> = j) of the CRF, summing exp(score) over every label sequence."""
    E = numpy_emissions(model, sentence)
    p = {k: model.params[k].astype(np.float64) for k in CRF_NAMES}
    T, L = E.shape
    P = np.zeros((T, L))
    for y in itertools.product(range(L), repeat=T):
        score = p["start"][y[0]] + p["end"][y[-1]] + sum(E[t, y[t]] for t in range(T)) \
            + sum(p["trans"][y[t - 1], y[t]] for t in range(1, T))
        P[np.arange(T), y] += np.exp(score)
    return P / P[0].sum()


FEATURE_TOKENS = [
    ["Peter", "Blackburn"],
    ["EU", "rejects", "German", "call"],
    ["Zorblat", "said", "on", "Thursday"],        # an unseen word with a seen shape and casing
    ["zorblat", "1996-08-22", "", "BRUSSELS", "."],
    ["x"],
]


def test_features_change_the_input():
    m = random_model()
    assert m.encode(["Zorblat"]).tolist()[0][0] == 1 == m.encode(["zorblat"]).tolist()[0][0]
    assert m.encode(["Zorblat"]).tolist() != m.encode(["zorblat"]).tolist()
    for s in FEATURE_TOKENS:
        assert m.encode(s).tolist() == [input_columns(m, t) for t in s]
        assert m.encode(s).shape == (len(s), 1 + len(FEATURE_NAMES))
    a, b = m.predict_proba([["Zorblat"], ["zorblat"]])
    assert not np.allclose(a, b)


@pytest.mark.parametrize("bidirectional, features", [(True, True), (True, False),
                                                     (False, True)])
def test_predict_proba_matches_numpy_forward_pass_with_options(bidirectional, features):
    m = random_model(bidirectional=bidirectional, features=features)
    probs = m.predict_proba(FEATURE_TOKENS)
    for s, y in zip(FEATURE_TOKENS, probs):
        expected = numpy_softmax(numpy_emissions(m, s))
        np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    # the backward direction matters: a word changes the probabilities of the one before it
    a, b = m.predict_proba([["Peter", "Blackburn"], ["Peter", "EU"]])
    assert np.array_equal(a[0], b[0]) is (not bidirectional)


def test_crf_marginals_match_brute_force():
    m = random_model(crf=True)
    assert m.crf
    sents = [["Peter", "Blackburn", "Zorblat"], ["EU"], ["BRUSSELS", "1996-08-22"]]
    for s, y in zip(sents, m.predict_proba(sents)):
        assert y.shape == (len(s), len(m.labels)) and y.dtype == np.float32
        assert (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(y, brute_force_marginals(m, s), atol=1e-4, rtol=0)
        # not the softmax of the emissions: the transitions matter
        assert not np.allclose(y, numpy_softmax(numpy_emissions(m, s)), atol=1e-3)


def test_crf_decode_is_the_best_valid_sequence():
    m = random_model(crf=True)
    start_ok, trans_ok = allowed_transitions(m.labels, "IOB2")
    p = {k: m.params[k].astype(np.float64) for k in CRF_NAMES}
    for s in [["Peter", "Blackburn", "Zorblat"], ["EU", "call"], ["x"]]:
        E = numpy_emissions(m, s)
        best, best_score = None, -np.inf
        for y in itertools.product(range(len(m.labels)), repeat=len(s)):
            if not start_ok[y[0]] or not all(trans_ok[a, b] for a, b in zip(y, y[1:])):
                continue
            score = p["start"][y[0]] + p["end"][y[-1]] + sum(E[t, k] for t, k in enumerate(y)) \
                + sum(p["trans"][a, b] for a, b in zip(y, y[1:]))
            if score > best_score:
                best, best_score = y, score
        (got, chosen), = m.decode([s])
        assert tuple(got.tolist()) == best
        np.testing.assert_array_equal(chosen, m.predict_proba([s])[0][np.arange(len(s)), got])


def iob2_violations(model: RNNTagger, sequences) -> int:
    start, trans = allowed_transitions(model.labels, "IOB2")
    bad = 0
    for y in sequences:
        y = list(y)
        bad += bool(y) and not start[y[0]]
        bad += sum(not trans[a, b] for a, b in zip(y, y[1:]))
    return bad


@pytest.mark.parametrize("crf", [False, True])
def test_decode_never_breaks_iob2(crf):
    m = random_model(crf=crf, scale=6.0, seed=3)
    assert m.scheme == "IOB2"
    assert any(lab.startswith("I-") for lab in m.labels)
    rng = np.random.default_rng(0)
    pool = m.vocab.words[2:] + ["unseen", "Unseen", "UNSEEN", "42", ",", "Mc'Q"]
    sents = [[pool[j] for j in rng.integers(0, len(pool), rng.integers(1, 12))]
             for _ in range(300)]
    decoded = m.decode(sents)
    # per-token argmax breaks the scheme often with these weights; the decoder never does
    argmax = [p.argmax(axis=1) for p in m.predict_proba(sents)]
    assert iob2_violations(m, argmax) > 20
    assert iob2_violations(m, [best for best, _ in decoded]) == 0
    for s, (best, chosen) in zip(sents, decoded):
        assert len(best) == len(s) == len(chosen)
    assert iob2_violations(m, [[m.labels.index(lab) for lab in seq]
                               for seq in m.predict(sents)]) == 0


def test_without_a_scheme_decode_is_the_argmax():
    m = random_model(scheme="none")
    sents = FEATURE_TOKENS
    for (best, chosen), p in zip(m.decode(sents), m.predict_proba(sents)):
        np.testing.assert_array_equal(best, p.argmax(axis=1))
        np.testing.assert_array_equal(chosen, p.max(axis=1))


@pytest.fixture(scope="module")
def full_model() -> RNNTagger:
    """Briefly trained with a backward direction, three features and a CRF."""
    config = TrainConfig.textbook(hidden=8, epochs=3, lr=0.01, batch_size=2, word_dropout=0.25,
                         patience=0, seed=3, bidirectional=True, features=",".join(FEATURE_NAMES),
                         feature_min_count=1, dropout=0.2, crf=True)
    return Trainer(config).fit(_sentences()).model_


@pytest.fixture(scope="module")
def full_model_file(full_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "full.npz"
    full_model.save(path)
    return path


def test_full_model_round_trip(full_model, full_model_file):
    m = full_model
    assert m.bidirectional and m.crf and m.features.names == FEATURE_NAMES
    loaded = RNNTagger.load(full_model_file)
    assert set(loaded.params) == set(m.params) == \
        set(PARAM_NAMES) | set(BACKWARD_NAMES) | set(CRF_NAMES)
    for k in m.params:
        assert loaded.params[k].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[k], m.params[k], err_msg=k)
    assert loaded.params["Wax"].flags.f_contiguous and loaded.params["Wax_b"].flags.f_contiguous
    assert loaded.bidirectional and loaded.crf
    assert loaded.features.names == m.features.names
    assert loaded.features.values == m.features.values
    assert loaded.meta == m.meta
    assert loaded.vocab.words == m.vocab.words and loaded.vocab.labels == m.vocab.labels
    assert loaded.n_inputs == m.n_inputs == m.params["Wax"].shape[1]
    sents = FEATURE_TOKENS + tokens()
    for a, b in zip(loaded.predict_proba(sents), m.predict_proba(sents)):
        np.testing.assert_array_equal(a, b)
    assert loaded.predict(sents) == m.predict(sents)
    for (a, pa), (b, pb) in zip(loaded.decode(sents), m.decode(sents)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(pa, pb)
    # and it saves to the same bytes
    again = full_model_file.parent / "again.npz"
    loaded.save(again)
    assert again.read_bytes() == full_model_file.read_bytes()


def test_full_model_file_is_a_plain_npz(full_model, full_model_file):
    m = full_model
    with np.load(full_model_file, allow_pickle=False) as z:
        assert set(z.files) == {"magic", "format_version", "meta", "words", "word_counts",
                                "labels", "label_counts", *PARAM_NAMES, *BACKWARD_NAMES,
                                *CRF_NAMES, *(f"feature_{n}" for n in FEATURE_NAMES)}
        for name, values in zip(m.features.names, m.features.values):
            assert z[f"feature_{name}"].dtype == np.uint8
            assert z[f"feature_{name}"].tobytes().decode("utf-8").split("\n") == values
        for k in ("Wax_b", "Waa_b", "ba_b", "trans", "start", "end"):
            assert z[k].dtype == np.float32
            np.testing.assert_array_equal(z[k], m.params[k])
        L = len(m.labels)
        assert z["trans"].shape == (L, L)
        assert z["Wax_b"].shape == z["Wax"].shape == (8, m.n_inputs)
        assert z["Wya"].shape == (L, 16)
        arch = json.loads(z["meta"].tobytes().decode("utf-8"))["architecture"]
        assert arch["bidirectional"] is True and arch["crf"] is True
        assert arch["features"] == FEATURE_NAMES


@pytest.mark.parametrize("missing", ["Wax_b", "Waa_b", "ba_b", "trans", "start", "end",
                                     "feature_shape", "feature_casing"])
def test_load_full_model_missing_an_entry_its_meta_needs(full_model_file, tmp_path, missing):
    arrays = read_arrays(full_model_file)
    del arrays[missing]
    path = tmp_path / "partial.npz"
    write_npz(path, arrays)
    assert missing.removeprefix("feature_") in load_error(path).message


def test_load_meta_says_bidirectional_but_no_backward_weights(model_file, tmp_path):
    arrays = read_arrays(model_file)
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    meta["architecture"] = {"bidirectional": True, "crf": False, "features": []}
    arrays["meta"] = utf8(json.dumps(meta))
    path = tmp_path / "bi.npz"
    write_npz(path, arrays)
    assert "Wax_b" in load_error(path).message


@pytest.mark.parametrize("flag", ["bidirectional", "features"])
def test_load_meta_without_an_option_the_weights_have(full_model_file, tmp_path, flag):
    """Weights shaped for a backward direction (Wya is L × 2H) or for features (Wax has more
    columns than words) do not load as a model without them."""
    arrays = read_arrays(full_model_file)
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    meta["architecture"][flag] = [] if flag == "features" else False
    arrays["meta"] = utf8(json.dumps(meta))
    path = tmp_path / "odd.npz"
    write_npz(path, arrays)
    load_error(path)


@pytest.mark.parametrize("values", [["Xx", "<unk>"], [], ["<unk>", "Xx", "xx"]])
def test_load_bad_feature_inventory(full_model, full_model_file, tmp_path, values):
    arrays = read_arrays(full_model_file)
    if values and values[-1] == "xx":                       # one value too many for Wax
        values = full_model.features.values[0] + ["never-seen"]
    arrays["feature_shape"] = utf8("\n".join(values))
    path = tmp_path / "inventory.npz"
    write_npz(path, arrays)
    load_error(path)


def test_load_unknown_feature_in_meta(full_model_file, tmp_path):
    arrays = read_arrays(full_model_file)
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    meta["architecture"]["features"] = ["shape", "suffix3", "nonsense"]
    arrays["meta"] = utf8(json.dumps(meta))
    arrays["feature_nonsense"] = arrays.pop("feature_casing")
    path = tmp_path / "unknown.npz"
    write_npz(path, arrays)
    load_error(path)


def test_probabilities_with_options_sum_to_one(full_model):
    m = random_model(crf=False)
    for s, y in zip(FEATURE_TOKENS, m.predict_proba(FEATURE_TOKENS)):
        assert y.shape == (len(s), len(m.labels))
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    for s, y in zip(FEATURE_TOKENS, full_model.predict_proba(FEATURE_TOKENS)):
        assert y.shape == (len(s), len(full_model.labels)) and (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_decode_without_probabilities_gives_the_same_labels(full_model):
    sents = [s.tokens for s in _sentences()]
    with_p = full_model.decode(sents)
    without = full_model.decode(sents, proba=False)
    assert full_model.crf
    for (best, probs), (best2, none) in zip(with_p, without):
        np.testing.assert_array_equal(best, best2)
        assert probs is not None and none is None
    assert full_model.predict(sents) == [[full_model.labels[k] for k in b] for b, _ in with_p]
