"""Pretrained word vectors: reading word2vec/GloVe text files and starting Wax's columns."""

from __future__ import annotations

import numpy as np
import pytest

from seqtag.corpus import Sentence
from seqtag.embeddings import project_into, read_vectors
from seqtag.errors import SeqtagError
from seqtag.config import TrainConfig
from seqtag.training import Trainer


def write(tmp_path, text, name="vec.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_glove_and_word2vec_headers(tmp_path):
    glove = write(tmp_path, "the 0.1 0.2 0.3\nParis 1 2 3\nparis 9 9 9\n")
    w2v = write(tmp_path, "2 3\nthe 0.1 0.2 0.3\nParis 1 2 3\n", "w2v.txt")
    for path in (glove, w2v):
        found, dim = read_vectors(path, ["the", "Paris", "missing"])
        assert dim == 3 and set(found) == {"the", "Paris"}
        np.testing.assert_allclose(found["Paris"], [1, 2, 3])


def test_exact_form_wins_over_lowercase(tmp_path):
    path = write(tmp_path, "paris 9 9\nParis 1 2\nberlin 5 6\n")
    found, _ = read_vectors(path, ["Paris", "Berlin"])
    np.testing.assert_allclose(found["Paris"], [1, 2])      # exact, although "paris" came first
    np.testing.assert_allclose(found["Berlin"], [5, 6])     # by its lowercase form


@pytest.mark.parametrize("text, where", [("a 1 2\nb 1 2 3\n", 2), ("a 1 x\n", 1), ("a\n", 1)])
def test_bad_lines_name_file_and_line(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(SeqtagError) as e:
        read_vectors(path, ["a", "b"])
    assert f"{path}:{where}:" in str(e.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(SeqtagError, match="no vectors"):
        read_vectors(write(tmp_path, "\n"), ["a"])
    with pytest.raises(SeqtagError, match="cannot read"):
        read_vectors(tmp_path / "nope.txt", ["a"])


@pytest.mark.parametrize("dim", [3, 8, 20])
def test_projection_keeps_geometry(dim):
    rng = np.random.default_rng(0)
    H = 8
    Wax = np.asfortranarray(rng.uniform(-0.3, 0.3, (H, 6)).astype(np.float32))
    before = Wax.copy()
    v = {w: rng.normal(size=dim).astype(np.float32) for w in ("a", "b", "c")}
    v["twin"] = v["a"].copy()
    words = ["<pad>", "<unk>", "a", "b", "twin", "c"]
    Wax = np.asfortranarray(np.hstack([Wax, Wax[:, :1]]))
    before = Wax.copy()
    words.append("none")
    assert project_into(Wax, words, v, dim, rng) == 4
    # Same vector, same column; words without a vector keep their initial columns.
    np.testing.assert_array_equal(Wax[:, 2], Wax[:, 4])
    np.testing.assert_array_equal(Wax[:, [0, 1, 6]], before[:, [0, 1, 6]])
    assert not np.allclose(Wax[:, 3], before[:, 3])
    if dim <= H:   # orthonormal projection, one scale: distances keep their ratios
        d = lambda x, y: np.linalg.norm(x - y)  # noqa: E731
        r1 = d(Wax[:, 2], Wax[:, 3]) / d(v["a"], v["b"])
        r2 = d(Wax[:, 2], Wax[:, 5]) / d(v["a"], v["c"])
        assert r1 == pytest.approx(r2, rel=1e-4)


def test_training_starts_from_the_vectors(tmp_path):
    sents = [Sentence(["Sam", "met", "Ana"], ["B-PER", "O", "B-PER"], [], 1)] * 4
    vec = write(tmp_path, "Sam 1 0 0\nAna 1 0 0\nmet 0 1 0\n")
    cfg = dict(hidden=6, epochs=1, lr=1e-9, word_dropout=0.0, patience=0, seed=3)
    with_vec = Trainer(TrainConfig.textbook(**cfg, embeddings=str(vec))).fit(sents)
    without = Trainer(TrainConfig.textbook(**cfg)).fit(sents)
    assert with_vec.pretrained_ == 3 and without.pretrained_ == 0
    Wax, words = with_vec.model_.params["Wax"], with_vec.model_.vocab.words
    # lr ≈ 0: the columns are (nearly) where the vectors put them: equal vectors, equal columns.
    np.testing.assert_allclose(Wax[:, words.index("Sam")], Wax[:, words.index("Ana")], atol=1e-6)
    assert not np.allclose(without.model_.params["Wax"][:, words.index("Sam")],
                           without.model_.params["Wax"][:, words.index("Ana")])
    assert with_vec.model_.meta["pretrained_words"] == 3


def test_the_default_model_starts_its_embeddings_from_the_vectors(tmp_path):
    # With the embedded input (the default) the vectors go into Ex, shared by both directions.
    sents = [Sentence(["Sam", "met", "Ana"], ["B-PER", "O", "B-PER"], [], 1)] * 4
    vec = write(tmp_path, "Sam 1 0 0\nAna 1 0 0\nmet 0 1 0\n")
    t = Trainer(TrainConfig(hidden=4, embed_dim=5, epochs=1, lr=1e-9, patience=0,
                            embeddings=str(vec))).fit(sents)
    Ex, words = t.model_.params["Ex"], t.model_.vocab.words
    assert t.pretrained_ == 3 and Ex.shape[0] == 5
    np.testing.assert_allclose(Ex[:, words.index("Sam")], Ex[:, words.index("Ana")], atol=1e-6)
    assert not np.allclose(Ex[:, words.index("Sam")], Ex[:, words.index("met")])


def test_blosum62_is_built_in_and_starts_every_table_of_the_window(tmp_path, monkeypatch):
    from seqtag.embeddings import vectors_path

    path = vectors_path("blosum62")
    vectors, dim = read_vectors(path, list("ACDEFGHIKLMNPQRSTVWY"))
    B = np.stack([vectors[a] for a in "ARNDCQEGHILKMFPSTWYV"])
    assert dim == 20 and np.array_equal(B, B.T)           # a substitution matrix: symmetric
    assert B[0, 0] == 4 and B[17, 17] == 11 and B[4, 4] == 9  # A-A, W-W, C-C

    aa = "ACDEFGHIKLMNPQRSTVWY"
    sents = [Sentence(list(aa[i:] + aa[:i]), ["h"] * 20, [], i + 1) for i in range(20)]
    k = 2
    t = Trainer(TrainConfig(level="char", embed_dim=24, hidden=4, window=k, epochs=1, lr=1e-9,
                            patience=0, ensemble=1, refit=False, threads=1,
                            embeddings="blosum62")).fit(sents)
    Ex, words = t.model_.params["Ex"], t.model_.vocab.words
    n, cols = len(words), [words.index(a) for a in aa]
    E = np.stack([vectors[a] for a in aa]).astype(np.float64)
    E -= E.mean(axis=0)
    for b in range(1 + 2 * k):                 # the token's table, then each neighbour's
        block = Ex[:, b * n:(b + 1) * n][:, cols].astype(np.float64)
        gram = block.T @ block
        # an orthonormal projection keeps the vectors' geometry, up to a common scale
        np.testing.assert_allclose(gram / gram[0, 0], (E @ E.T) / (E @ E.T)[0, 0], atol=1e-3)
    # each table through a projection of its own
    assert not np.allclose(Ex[:, cols], Ex[:, [n + c for c in cols]])
    monkeypatch.chdir(tmp_path)                # a file of that name wins over the built-in
    (tmp_path / "blosum62").write_text("A 1 2\n")
    assert vectors_path("blosum62") == "blosum62"
