"""Tests for seqtag.vocab (building, indexing, the text file) and seqtag.atomic (all-or-nothing
writes)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from seqtag import atomic
from seqtag.atomic import write_bytes_atomic, write_text_atomic
from seqtag.corpus import Sentence
from seqtag.errors import SeqtagError
from seqtag.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocabulary


def sent(tokens: str | list[str], labels: str | list[str] | None = None) -> Sentence:
    toks = tokens.split() if isinstance(tokens, str) else tokens
    labs = labels.split() if isinstance(labels, str) else labels
    return Sentence(toks, labs, [], 1)


# b and a both occur 3 times (the tie goes to the word that sorts first), c twice, d once;
# labels: O 5 times, B-X 2 times, B-A 2 times (tie: B-A before B-X), I-X once.
CORPUS = [
    sent("b a c", "O B-X O"),
    sent("a b d", "B-A O I-X"),
    sent("c a b", "O B-X O"),
    sent("", ""),                           # an empty sentence counts as a sentence
    sent("<unk>", "B-A"),                   # a literal <unk> token is counted as unknown
]
N_TOKENS = 10


def test_reserved_entries_come_first():
    vocab, _ = Vocabulary.build(CORPUS)
    assert vocab.words[PAD_ID] == PAD == "<pad>"
    assert vocab.words[UNK_ID] == UNK == "<unk>"
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.words.count(UNK) == 1 and vocab.words.count(PAD) == 1


def test_build_orders_by_frequency_then_word():
    vocab, _ = Vocabulary.build(CORPUS)
    assert vocab.words == [PAD, UNK, "a", "b", "c", "d"]
    # <pad> is never counted; <unk> counts the tokens that map to it (the literal "<unk>").
    assert vocab.word_counts.tolist() == [0, 1, 3, 3, 2, 1]
    assert vocab.labels == ["O", "B-A", "B-X", "I-X"]
    assert vocab.label_counts.tolist() == [5, 2, 2, 1]
    assert vocab.n_words == 6 and vocab.n_labels == 4


def test_build_does_not_depend_on_corpus_order():
    first, _ = Vocabulary.build(CORPUS)
    shuffled = list(CORPUS)
    random.Random(3).shuffle(shuffled)
    shuffled = [sent(list(reversed(s.tokens)), list(reversed(s.labels))) for s in shuffled]
    second, _ = Vocabulary.build(shuffled)
    assert first.to_text() == second.to_text()


def test_build_accepts_a_generator_and_unlabelled_sentences():
    vocab, stats = Vocabulary.build(sent("x y x") for _ in range(2))
    assert vocab.words == [PAD, UNK, "x", "y"]
    assert vocab.labels == []
    assert stats.sentences == 2 and stats.tokens == 6


def test_min_count_drops_rare_words_into_unk():
    vocab, stats = Vocabulary.build(CORPUS, min_count=2)
    assert vocab.words == [PAD, UNK, "a", "b", "c"]
    # d (1) and the literal <unk> (1) are now both unknown
    assert vocab.word_counts.tolist() == [0, 2, 3, 3, 2]
    assert stats.kept == 3
    assert vocab.word_ids(["d"]).tolist() == [UNK_ID]


def test_max_size_counts_the_reserved_entries():
    vocab, stats = Vocabulary.build(CORPUS, max_size=4)
    assert vocab.words == [PAD, UNK, "a", "b"]
    assert vocab.word_counts.tolist() == [0, N_TOKENS - 6, 3, 3]
    assert stats.kept == 2
    tiny, _ = Vocabulary.build(CORPUS, max_size=2)
    assert tiny.words == [PAD, UNK]
    assert tiny.word_counts.tolist() == [0, N_TOKENS]


def test_min_count_and_max_size_together():
    vocab, _ = Vocabulary.build(CORPUS, min_count=2, max_size=100)
    assert vocab.words == [PAD, UNK, "a", "b", "c"]
    vocab, _ = Vocabulary.build(CORPUS, min_count=3, max_size=3)
    assert vocab.words == [PAD, UNK, "a"]


def test_stats_and_coverage():
    _, stats = Vocabulary.build(CORPUS)
    assert stats.sentences == 5
    assert stats.tokens == N_TOKENS
    assert stats.types == 5                  # a b c d <unk>
    assert stats.kept == 4                   # a b c d
    assert stats.covered_tokens == 9
    assert stats.coverage == pytest.approx(0.9)
    _, stats = Vocabulary.build(CORPUS, min_count=3)
    assert stats.covered_tokens == 6
    assert stats.coverage == pytest.approx(0.6)
    _, empty = Vocabulary.build([])
    assert empty.tokens == 0 and empty.coverage == 0.0


def test_word_ids_maps_unseen_and_reserved_spellings_to_unk():
    vocab, _ = Vocabulary.build(CORPUS)
    ids = vocab.word_ids(["a", "zzz", "d", "A", "<pad>", "<unk>", "c"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, UNK_ID, 5, UNK_ID, UNK_ID, UNK_ID, 4]
    # a corpus token never gets the padding index
    assert PAD_ID not in vocab.word_ids(["<pad>"] * 3).tolist()
    assert vocab.word_ids([]).tolist() == []


def test_label_ids_and_unknown_label():
    vocab, _ = Vocabulary.build(CORPUS)
    ids = vocab.label_ids(["I-X", "O", "B-A"])
    assert ids.dtype == np.int32
    assert [vocab.labels[i] for i in ids] == ["I-X", "O", "B-A"]
    assert vocab.has_label("B-X") and not vocab.has_label("B-PER")
    with pytest.raises(SeqtagError) as info:
        vocab.label_ids(["O", "B-PER", "O"], where="train.tsv")
    err = info.value
    assert "'B-PER'" in err.message
    assert err.path == "train.tsv"
    assert str(err).startswith("train.tsv: ")
    with pytest.raises(SeqtagError) as info:
        vocab.label_ids(["B-PER"])
    assert info.value.path is None


def test_constructor_requires_reserved_entries():
    with pytest.raises(ValueError):
        Vocabulary(["a", PAD, UNK], [1, 0, 0], ["O"], [1])


# -- the file ------------------------------------------------------------------------------------

ODD_TOKENS = ["", "New York", "#hashtag", "# newdoc", "naïve", "日本", "a=b", "3", " lead",
              "trail ", "tab-free\u00a0nbsp", "<Pad>"]


def odd_vocab() -> Vocabulary:
    sents = [sent(ODD_TOKENS[i:] + ODD_TOKENS[:i],
                  ["O"] * (len(ODD_TOKENS) - 1) + ["B-LOC-CITY" if i % 2 else "S-X"])
             for i in range(len(ODD_TOKENS))]
    sents.append(sent(["", "", "#hashtag"], ["O", "O", "O"]))
    vocab, _ = Vocabulary.build(sents)
    return vocab


def test_save_load_round_trip(tmp_path):
    vocab = odd_vocab()
    assert {"", "New York", "#hashtag"} <= set(vocab.words)
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.words == vocab.words
    assert loaded.labels == vocab.labels
    np.testing.assert_array_equal(loaded.word_counts, vocab.word_counts)
    np.testing.assert_array_equal(loaded.label_counts, vocab.label_counts)
    assert loaded.word_counts.dtype == np.int64
    probe = ODD_TOKENS + ["unseen", PAD, UNK]
    assert loaded.word_ids(probe).tolist() == vocab.word_ids(probe).tolist()
    assert loaded.word_ids([""]).tolist() == [vocab.words.index("")]
    assert loaded.word_ids(["#hashtag"]).tolist() == [vocab.words.index("#hashtag")]
    # saving the loaded copy gives the same bytes
    again = tmp_path / "again.txt"
    loaded.save(again)
    assert again.read_bytes() == path.read_bytes()


def test_file_layout(tmp_path):
    vocab, _ = Vocabulary.build(CORPUS)
    path = tmp_path / "v.txt"
    vocab.save(path)
    text = path.read_text("utf-8")
    words, labels = text.rstrip("\n").split("\n\n")
    assert words.split("\n")[:3] == ["<pad>\t0", "<unk>\t1", "a\t3"]
    assert labels.split("\n")[0] == "O\t5"
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_load_accepts_crlf_and_a_missing_final_newline(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"<pad>\t0\r\n<unk>\t2\r\nthe\t7\r\n\r\nO\t9\r\nB-X\t1")
    v = Vocabulary.load(path)
    assert v.words == [PAD, UNK, "the"] and v.word_counts.tolist() == [0, 2, 7]
    assert v.labels == ["O", "B-X"] and v.label_counts.tolist() == [9, 1]


def load_error(path) -> SeqtagError:
    with pytest.raises(SeqtagError) as info:
        Vocabulary.load(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(str(path) + ":")
    return info.value


def test_load_missing_file(tmp_path):
    err = load_error(tmp_path / "nope.txt")
    assert "no such" in err.message


def test_load_directory(tmp_path):
    load_error(tmp_path)


@pytest.mark.parametrize("text", [
    "the\t5\nof\t3\n\nO\t2\n",                    # no reserved entries
    "<pad>\t0\n<unk>\t1\nthe\t3\n",              # no label section
    "<pad>\t0\n<unk>\t1\n\nO\t1\n\nB-X\t1\n",    # three sections
    "<unk>\t1\n<pad>\t0\n\nO\t1\n",              # reserved entries swapped
    "",                                          # empty file
])
def test_load_not_a_vocabulary(tmp_path, text):
    path = tmp_path / "v.txt"
    path.write_text(text, "utf-8")
    err = load_error(path)
    assert err.line in (None, 1, 3, 6)  # the line where it stops being one (tests/test_safety.py)
    assert "vocabulary" in err.message


@pytest.mark.parametrize("bad, line_no", [
    ("oops", 4),              # no TAB
    ("the\tmany", 4),         # count is not a number
    ("the\t-3", 4),           # nor a negative one
    ("the 5", 4),             # space instead of TAB
    ("the\t\u00b2", 4),       # a digit to str.isdigit() but not to int()
])
def test_load_bad_line_names_file_and_line(tmp_path, bad, line_no):
    path = tmp_path / "v.txt"
    path.write_text(f"<pad>\t0\n<unk>\t1\nthe\t3\n{bad}\n\nO\t1\n", "utf-8")
    err = load_error(path)
    assert err.line == line_no
    assert str(err).startswith(f"{path}:{line_no}: ")


def test_load_bad_line_in_label_section(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("<pad>\t0\n<unk>\t1\n\nO\t1\nB-X\n", "utf-8")
    assert load_error(path).line == 5


def test_load_a_corpus_file_by_mistake(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("EU\tB-ORG\nrejects\tO\n", "utf-8")
    assert load_error(path).line == 1


def test_load_invalid_utf8(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"<pad>\t0\n<unk>\t1\ncaf\xe9\t1\n\nO\t1\n")
    err = load_error(path)
    assert "UTF-8" in err.message


# -- atomic writes -------------------------------------------------------------------------------

def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("old", "utf-8")
    vocab, _ = Vocabulary.build(CORPUS)
    vocab.save(path)
    assert Vocabulary.load(path).words == vocab.words
    assert os.listdir(tmp_path) == ["v.txt"]


def test_writer_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(b"old content")

    def writer(f):
        f.write(b"new partial content" * 1000)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_bytes_atomic(path, writer=writer)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["target.bin"]


def test_writer_oserror_becomes_seqtag_error(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(b"old content")

    def writer(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(SeqtagError) as info:
        write_bytes_atomic(path, writer=writer)
    assert info.value.path == str(path)
    assert "No space left" in info.value.message
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["target.bin"]


def test_keyboard_interrupt_mid_write_leaves_no_temp(tmp_path):
    path = tmp_path / "target.bin"

    def writer(f):
        f.write(b"x" * 100)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(path, writer=writer)
    assert os.listdir(tmp_path) == []


def test_failing_rename_leaves_old_vocabulary(tmp_path, monkeypatch):
    path = tmp_path / "v.txt"
    old, _ = Vocabulary.build([sent("old words", "O O")])
    old.save(path)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "replace", fail)
    new, _ = Vocabulary.build(CORPUS)
    with pytest.raises(SeqtagError) as info:
        new.save(path)
    assert info.value.path == str(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["v.txt"]


def test_write_into_missing_directory(tmp_path):
    path = tmp_path / "no" / "such" / "v.txt"
    with pytest.raises(SeqtagError) as info:
        write_text_atomic(path, "hello")
    assert info.value.path == str(path)
    assert not (tmp_path / "no").exists()


def test_write_over_a_directory(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()
    (target / "inside").write_text("keep", "utf-8")
    with pytest.raises(SeqtagError):
        write_bytes_atomic(target, b"data")
    assert target.is_dir() and (target / "inside").read_text("utf-8") == "keep"
    assert sorted(os.listdir(tmp_path)) == ["dir"]


def test_write_to_a_bare_file_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bytes_atomic("plain.bin", b"\x00\x01")
    assert Path("plain.bin").read_bytes() == b"\x00\x01"
    assert oct(Path("plain.bin").stat().st_mode & 0o777) == oct(0o644)
