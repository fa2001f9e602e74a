"""Tests for seqtag.model: the RNNTagger's predictions and its .npz file format."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from seqtag.corpus import Sentence
from seqtag.errors import SeqtagError
from seqtag.model import FORMAT_VERSION, MAGIC, PARAM_NAMES, RNNTagger, init_params, pack
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

