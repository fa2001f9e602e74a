"""The character-level model: chosen from the data, recorded in the model file and shown by
inspect; its window of neighbours in the encoder (the byte-table fast path against the general
one), and the file's "window" requirement."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from seqtag.config import (CHAR, CHAR_LARGE_ALPHABET, CHAR_SMALL_ALPHABET,
                           SMALL_DATA_ENSEMBLE, TrainConfig, is_char_level)
from seqtag.corpus import Sentence
from seqtag.encoding import Encoder
from seqtag.errors import SeqtagError
from seqtag.vocab import PAD_ID, UNK_ID, Vocabulary

SEQTAG = [sys.executable, "-m", "seqtag"]
PROTEINS = [["ACDEFGHIKLMNPQRSTVWY"[(i * j) % 20] for i in range(40)] for j in range(30)]
DNA = [list("ACGTTGCA" * 5) for _ in range(1200)]


def test_char_data_gets_the_char_configuration():
    for data, alphabet in ((PROTEINS, CHAR_LARGE_ALPHABET), (DNA, CHAR_SMALL_ALPHABET)):
        cfg = TrainConfig().for_data(data)
        assert cfg.level.value == "char"
        for k, v in {**CHAR, **alphabet}.items():
            assert getattr(cfg, k) == v, k
        assert cfg.features == "" and cfg.char_filters == 0
    # few sequences: small batches (about 25 an epoch), more patience
    assert TrainConfig().for_data(PROTEINS).batch_size == 1
    assert TrainConfig().for_data(PROTEINS * 4).batch_size == 4
    assert TrainConfig().for_data(DNA).batch_size == TrainConfig().batch_size
    assert TrainConfig().for_data(PROTEINS).window > 0 == TrainConfig().for_data(DNA).window
    # few proteins: an ensemble; DNA, or many proteins: one model; one given: kept
    assert TrainConfig().for_data(PROTEINS).ensemble == SMALL_DATA_ENSEMBLE > 1
    assert TrainConfig().for_data(PROTEINS * 40).ensemble == 1
    assert TrainConfig().for_data(DNA).ensemble == 1
    assert TrainConfig(ensemble=1).for_data(PROTEINS).ensemble == 1
    # proteins start from BLOSUM62 (soft-masked ones too); few of them are refit on train + dev
    assert TrainConfig().for_data(PROTEINS).embeddings == "blosum62"
    assert TrainConfig().for_data([[t.lower() for t in s] for s in PROTEINS]).embeddings \
        == "blosum62"
    assert TrainConfig().for_data(PROTEINS).refit
    assert not TrainConfig().for_data(PROTEINS * 40).refit
    assert TrainConfig().for_data(DNA).embeddings is None and not TrainConfig().for_data(DNA).refit
    # a large alphabet that is not amino acids: no substitution matrix
    assert TrainConfig().for_data([list("0123456789#$%&") * 3]).embeddings is None
    assert TrainConfig(embeddings=None).for_data(PROTEINS).embeddings is None


def test_word_data_keeps_the_default():
    words = [["Sam", "Li", "and", "a", ",", "Tom"], ["x"]]
    assert not is_char_level(t for s in words for t in s) and not is_char_level([])
    cfg = TrainConfig().for_data(words)
    assert cfg == TrainConfig(level="word")


def test_level_and_options_override_the_choice():
    assert TrainConfig(level="word").for_data(PROTEINS) == TrainConfig(level="word")
    cfg = TrainConfig(hidden=7, window=0, batch_size=32).for_data(PROTEINS)
    assert (cfg.level.value, cfg.hidden, cfg.window, cfg.features, cfg.batch_size) == \
        ("char", 7, 0, "", 32)
    assert cfg.embed_dim == CHAR_LARGE_ALPHABET["embed_dim"]
    # a copy through __dict__ keeps what was given
    assert TrainConfig(**TrainConfig(hidden=7).__dict__).given == {"hidden"}
    # level char on word data: the char configuration all the same
    assert TrainConfig(level="char").for_data([["Sam", "Li"]]).features == ""
    with pytest.raises(SeqtagError, match="--level"):
        TrainConfig(level="letters").check()
    with pytest.raises(SeqtagError, match="--window"):
        TrainConfig(window=2, embed_dim=0, char_filters=0).check()


def window_reference(words: list[int], k: int, base: int, V: int) -> list[list[int]]:
    """Rows [word, then the words at -k..-1, 1..k in their blocks], by plain loops."""
    rows = []
    for t, w in enumerate(words):
        row = [w]
        for j, o in enumerate([*range(-k, 0), *range(1, k + 1)]):
            n = words[t + o] if 0 <= t + o < len(words) else PAD_ID
            row.append(base + j * V + n)
        rows.append(row)
    return rows


@pytest.mark.parametrize("k", [0, 1, 3])
def test_window_rows_and_the_byte_table_match_the_general_path(k):
    vocab, _ = Vocabulary.build([Sentence(list("ACGTACGGN"), ["x"] * 9, [], 1)])
    enc = Encoder(vocab, window=k)
    rng = np.random.default_rng(k)
    alphabet = list("ACGTNacgtX") + ["é", "<", ">"]
    for n in (0, 1, 2, 5, 40):
        seq = "".join(rng.choice(alphabet, n))
        general = enc.encode(list(seq))
        assert general.shape == (n, enc.n_columns) == (n, 1 + 2 * k)
        words = [vocab.word_ids([c])[0] for c in seq]
        assert general.tolist() == window_reference(words, k, vocab.n_words, vocab.n_words)
        assert np.array_equal(enc.encode(seq), general)
        ascii_seq = seq.replace("é", "A")
        assert np.array_equal(enc.char_ids(ascii_seq), vocab.word_ids(list(ascii_seq)))
    # a batch: no neighbour crosses from one sentence into the next
    seqs = ["ACGTN", "", "GGé", "T", "CATCATX"]
    ids, offsets = enc.encode_batch(seqs)
    assert np.array_equal(ids, np.concatenate([enc.encode(list(s)) for s in seqs]))
    assert offsets.tolist() == [0, 5, 5, 8, 9, 16]
    assert np.array_equal(enc.encode_batch([list(s) for s in seqs])[0], ids)
    assert enc.char_ids("Aé") is None
    assert enc.char_ids("<")[0] == UNK_ID          # not "<pad>"'s id, nor any word's
    assert enc.n_inputs == vocab.n_words * (1 + 2 * k)


def tiny_corpus(n=12, length=30, seed=0) -> list[Sentence]:
    rng = np.random.default_rng(seed)
    return [Sentence(list(seq), ["hi" if c in "CG" else "lo" for c in seq], [], i + 1)
            for i, seq in enumerate(rng.choice(list("ACGT"), (n, length)))]


def run(*args):
    proc = subprocess.run([*SEQTAG, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    from seqtag.training import Trainer

    tmp = tmp_path_factory.mktemp("char")
    # DNA gets no window by default: ask for one, to see it recorded
    trainer = Trainer(TrainConfig(epochs=1, threads=1, window=2)).fit(tiny_corpus())
    assert trainer.config_.level.value == "char"
    trainer.model_.save(tmp / "char.npz")
    return tmp


def test_the_level_is_recorded_and_shown_by_inspect(char_model):
    info = json.loads(run("inspect", "--json", char_model / "char.npz").stdout)
    assert info["level"] == "char"
    assert info["requires"] == ["window"]
    assert info["architecture"]["window"] == 2
    assert info["hyperparameters"]["level"] == "char"
    assert info["architecture"]["features"] == [] and info["architecture"]["char_filters"] == 0
    text = run("inspect", char_model / "char.npz").stdout
    assert "level: char" in text and "window=" in text
    # the char model tags residues given one per line
    (char_model / "dna.tsv").write_text("A\nC\nG\nT\n\nG\nC\n")
    out = run("tag", "-m", char_model / "char.npz", "--input-format", "conll",
              char_model / "dna.tsv").stdout
    rows = [line.split() for line in out.splitlines() if line]
    assert [r[0] for r in rows] == list("ACGTGC")
    assert {r[-1] for r in rows} <= {"hi", "lo"}


def test_a_word_model_says_so():
    from seqtag.cli.inspect import describe
    from seqtag.model import RNNTagger
    from seqtag.training import Trainer

    words = [Sentence(["Sam", "Li", "runs"], ["B-PER", "I-PER", "O"], [], 1)]
    trainer = Trainer(TrainConfig(epochs=1, threads=1, hidden=4, embed_dim=4,
                                  char_filters=2)).fit(words)
    model = trainer.model_
    assert trainer.config_ == TrainConfig(epochs=1, threads=1, hidden=4, embed_dim=4,
                                          char_filters=2, level="word")
    assert model.meta["level"] == "word" and "requires" not in model.meta
    assert isinstance(model, RNNTagger)
    assert describe(model, "m.npz")["level"] == "word"


def test_an_older_reader_refuses_a_window_model(char_model, monkeypatch):
    from seqtag import modelfile

    model = modelfile.load_model(char_model / "char.npz")
    assert model.architecture.window == 2
    monkeypatch.setattr(modelfile, "KNOWN_REQUIREMENTS", frozenset())
    with pytest.raises(SeqtagError, match="upgrade"):
        modelfile.load_model(char_model / "char.npz")


def test_a_window_without_its_requirement_is_damaged(char_model, tmp_path):
    from seqtag import modelfile

    model = modelfile.load_model(char_model / "char.npz")
    del model.meta["requires"]
    # written without its requirement, the file says "window" but would not stop older readers
    modelfile.save_model(model, tmp_path / "bad.npz")
    with pytest.raises(SeqtagError, match="requires"):
        modelfile.load_model(tmp_path / "bad.npz")


def test_train_keeps_the_options_given_on_the_command_line(tmp_path):
    """Options left at their defaults take the character-level ones; those given, even at the
    word default's value (--window 0), stay."""
    with open(tmp_path / "dna.tsv", "w") as f:
        for s in tiny_corpus(n=4, length=10):
            f.writelines(f"{t}\t{lab}\n" for t, lab in zip(s.tokens, s.labels))
            f.write("\n")
    run("train", tmp_path / "dna.tsv", "--epochs", "1", "--no-dev", "--threads", "1",
        "--window", "0", "--hidden", "4", "--cell", "rnn", "-o", tmp_path / "m.npz")
    info = json.loads(run("inspect", "--json", tmp_path / "m.npz").stdout)
    hyper = info["hyperparameters"]
    assert (info["level"], hyper["window"], hyper["hidden"]) == ("char", 0, 4)
    assert hyper["embed_dim"] == CHAR_SMALL_ALPHABET["embed_dim"] and hyper["features"] == ""
    assert info["requires"] == []


def test_window_columns_sit_between_the_features_and_the_word_type():
    from seqtag.chars import CharVocab
    from seqtag.features import FeatureSet

    sents = [["Sam", "Li", "runs"], ["Tom", "ran", "far", "away"]]
    vocab, _ = Vocabulary.build([Sentence(s, ["O"] * len(s), [], 1) for s in sents])
    features = FeatureSet.build((t for s in sents for t in s), ["shape", "suffix2"], 1)
    chars = CharVocab.build(t for s in sents for t in s)
    plain_enc = Encoder(vocab, features, chars)
    enc = Encoder(vocab, features, chars, window=2)
    base, V = vocab.n_words + sum(features.sizes), vocab.n_words
    ids, _ = enc.encode_batch(sents + [["new", "Sam"]])
    expected = []
    for s in sents + [["new", "Sam"]]:
        own = plain_enc.encode(s)
        window = window_reference(own[:, 0].tolist(), 2, base, V)
        expected += [list(row[:3]) + w[1:] + [row[3]] for row, w in zip(own.tolist(), window)]
    # the word types are numbered by first sight in each encoder alike
    assert ids.tolist() == expected
    assert enc.n_columns == 4 + 4 and enc.n_inputs == base + 4 * V
