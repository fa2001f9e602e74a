"""Property-based fuzzing of the vocabulary and embeddings readers.

Properties: a vocabulary built from generated sentences survives save and load unchanged; any
other file either loads into a consistent vocabulary or raises one SeqtagError naming the file
(and the line); an embeddings file gives exactly the vectors of the wanted words (as written,
else lowercased), all finite, or one SeqtagError naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import fuzz_harness as H
from seqtag.corpus import Sentence
from seqtag.embeddings import read_vectors
from seqtag.errors import SeqtagError
from seqtag.vocab import PAD, UNK, Vocabulary

# Not the characters no file seqtag reads can hold in a token: TAB, the line ends, NUL and the
# byte order mark (refused anywhere but at the very start of a file).
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x00\ufeff")
_WORD = st.text(_CHARS, min_size=1, max_size=8) | st.sampled_from([PAD, UNK, "O", "B-PER"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-vocab")


@settings(max_examples=H.budget(800, 40))
@given(st.lists(st.lists(st.tuples(_WORD, _WORD), min_size=1, max_size=8), min_size=1,
                max_size=8), st.integers(1, 3), st.none() | st.integers(3, 20))
def test_vocabulary_round_trip(workdir, sents, min_count, max_size):
    sentences = [Sentence([t for t, _ in s], [lab for _, lab in s], [], 1) for s in sents]
    path = workdir / "round.tsv"
    with H.observe("vocabulary: build, save, load") as box:
        vocab, _ = Vocabulary.build(sentences, min_count=min_count, max_size=max_size)
        vocab.save(path)
        back = Vocabulary.load(path)
        assert back.words == vocab.words and back.labels == vocab.labels
        assert back.word_counts.tolist() == vocab.word_counts.tolist()
        assert back.label_counts.tolist() == vocab.label_counts.tolist()
        box["outcome"] = "correct"


_ODD_LINE = st.sampled_from(["<pad>\t0", "<unk>\t3", "", "O\t4", "\t5", "a\tb\t1", "noc ount",
                             "x\t-1", "x\t1.5", "x\t\u0661", "x\t", "x\t+3", "\r", "y\t01",
                             "dup\t1", "O\t1", "\u00e9t\u00e9\t7"])


@st.composite
def vocab_lines(draw):
    """A valid vocabulary's lines with a few random lines inserted, dropped or replaced."""
    words = draw(st.lists(st.tuples(_WORD, st.integers(0, 10 ** 6)), max_size=8))
    labels = draw(st.lists(st.tuples(_WORD, st.integers(0, 10 ** 6)), min_size=1, max_size=4))
    lines = ["<pad>\t0", f"<unk>\t{draw(st.integers(0, 99))}"] + \
        [f"{w}\t{c}" for w, c in words] + [""] + [f"{lab}\t{c}" for lab, c in labels]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(lines)))
        how = draw(st.sampled_from(["insert", "drop", "replace"]))
        if how == "insert":
            lines.insert(at, draw(_ODD_LINE))
        elif at < len(lines):
            if how == "drop":
                del lines[at]
            else:
                lines[at] = draw(_ODD_LINE)
    return lines


@settings(max_examples=H.budget(800, 40))
@given(vocab_lines(), st.sampled_from(["\n", "\r\n"]), st.booleans())
@example(["<pad>\t0", "<unk>\t3", "a\t1", "", "O\t4"], "\n", True)
@example(["<pad>\t0", "<unk>\t3", "a\t1", "", "O\t4", "", ""], "\n", True)  # blank lines at the end
def test_vocabulary_load_any_lines(workdir, lines, end, final):
    path = workdir / "lines.tsv"
    path.write_bytes((end.join(lines) + (end if final else "")).encode("utf-8"))
    with H.observe("vocabulary: generated lines") as box:
        try:
            vocab = Vocabulary.load(path)
        except SeqtagError as e:
            H.assert_seqtag_error(e, str(path))
            # Lines end at LF, CRLF or CR, like everywhere (an odd line "\r" is a line end).
            n_lines = len(re.split(r"\r\n|\n|\r", end.join(lines)))
            assert e.line is None or 1 <= e.line <= n_lines
            box["outcome"] = "error"
            return
        assert vocab.words[:2] == [PAD, UNK] and vocab.labels
        assert len(vocab.word_counts) == len(vocab.words)
        assert len(vocab.label_counts) == len(vocab.labels)
        assert (vocab.word_counts >= 0).all() and (vocab.label_counts >= 0).all()
        box["outcome"] = "correct"


@settings(max_examples=H.budget(500, 30))
@given(st.binary(max_size=500))
def test_vocabulary_load_random_bytes(workdir, data):
    path = workdir / "random.tsv"
    path.write_bytes(data)
    with H.observe("vocabulary: random bytes") as box:
        try:
            Vocabulary.load(path)
        except SeqtagError as e:
            H.assert_seqtag_error(e, str(path))
            box["outcome"] = "error"
            return
        box["outcome"] = "correct"


@settings(max_examples=H.budget(50, 5))
@given(st.integers(2 ** 63, 10 ** 40), st.sampled_from(["word", "label"]))
@example(2 ** 63, "word")
def test_vocabulary_count_too_large(workdir, count, where):
    words = ["<pad>\t0", "<unk>\t1"] + ([f"big\t{count}"] if where == "word" else [])
    labels = ["O\t1"] + ([f"B-X\t{count}"] if where == "label" else [])
    path = workdir / "big.tsv"
    path.write_text("\n".join(words + [""] + labels) + "\n", encoding="utf-8")
    bad = 3 if where == "word" else len(words) + 3
    with H.observe("vocabulary: count >= 2^63") as box:
        with pytest.raises(SeqtagError) as info:
            Vocabulary.load(path)
        H.assert_seqtag_error(info.value, str(path), bad)
        box["outcome"] = "error"


@settings(max_examples=H.budget(100, 5))
@given(st.integers(1, 6), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
@example(3, b"\xff")
def test_vocabulary_invalid_utf8_names_the_line(workdir, at, bad):
    lines = [b"<pad>\t0", b"<unk>\t1", b"a\t1", b"b\t1", b"", b"O\t2"]
    lines[at - 1] = bad + lines[at - 1]
    path = workdir / "bad.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with H.observe("vocabulary: invalid UTF-8") as box:
        with pytest.raises(SeqtagError) as info:
            Vocabulary.load(path)
        H.assert_seqtag_error(info.value, str(path), at)
        box["outcome"] = "error"


# -- embeddings ----------------------------------------------------------------------------------

_EWORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
                 min_size=1, max_size=6)
_NUMBER = st.floats(-1e3, 1e3, allow_nan=False, width=32).map(lambda x: f"{x:.6g}")


@st.composite
def vector_files(draw):
    dim = draw(st.integers(1, 6))
    words = draw(st.lists(_EWORD, min_size=1, max_size=12))
    rows = [(w, draw(st.lists(_NUMBER, min_size=dim, max_size=dim))) for w in words]
    header = [f"{len(rows)} {dim}"] if draw(st.booleans()) else []
    if not header and dim == 1 and rows[0][0].isdigit() and rows[0][1][0].isdigit():
        # "7 3" first is word2vec's "count dim" header by the format's own rule
        rows[0] = ("w" + rows[0][0], rows[0][1])
        words[0] = rows[0][0]
    end = draw(st.sampled_from(["\n", "\r\n"]))
    trail = draw(st.sampled_from(["", " "]))
    text = end.join(header + [" ".join([w, *v]) + trail for w, v in rows]) + end
    wanted = draw(st.lists(st.sampled_from(words) | _EWORD | st.sampled_from(words).map(
        str.upper), max_size=10))
    return text.encode("utf-8"), rows, dim, wanted


@settings(max_examples=H.budget(800, 40))
@given(vector_files())
def test_embeddings_give_the_wanted_vectors(workdir, case):
    data, rows, dim, wanted = case
    path = workdir / "vectors.txt"
    path.write_bytes(data)
    with H.observe("embeddings: generated file") as box:
        found, d = read_vectors(path, wanted)
        assert d == dim
        exact = {}
        lower = {}
        for w, v in rows:
            exact[w] = v
            lower.setdefault(w.lower(), v)
        want = {}
        for w in set(wanted):
            if w in exact:
                want[w] = exact[w]
            elif w.lower() in lower:
                want[w] = lower[w.lower()]
        assert set(found) == set(want)
        for w, v in want.items():
            assert np.allclose(found[w], np.array(v, dtype=np.float32))
        box["outcome"] = "correct"


@settings(max_examples=H.budget(800, 40))
@given(st.lists(st.sampled_from(["a 1 2", "b 0.5 -1", "3 2", "c", "", " ", "d 1", "e 1 2 3",
                                 "f x y", "g 1e3 2", "A 1 2", "h\t1\t2", "\u00e9 1 2"])
                | st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
                max_size=12), st.lists(st.sampled_from(["a", "b", "c", "A", "\u00e9", "g"])))
def test_embeddings_any_lines(workdir, lines, wanted):
    path = workdir / "lines.txt"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    with H.observe("embeddings: generated lines") as box:
        try:
            found, d = read_vectors(path, wanted)
        except SeqtagError as e:
            H.assert_seqtag_error(e, str(path))
            box["outcome"] = "error"
            return
        assert d >= 1 and all(v.shape == (d,) for v in found.values())
        box["outcome"] = "correct"


@settings(max_examples=H.budget(50, 5))
@given(st.sampled_from(["nan", "inf", "-inf", "1e39", "NaN", "Infinity"]), st.integers(1, 3))
@example("nan", 1)
def test_embeddings_non_finite_values(workdir, value, at):
    lines = ["a 1 2", "b 3 4", "c 5 6"]
    lines[at - 1] = lines[at - 1].split(" ")[0] + f" 1 {value}"
    path = workdir / "nonfinite.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with H.observe("embeddings: non-finite values") as box:
        with pytest.raises(SeqtagError) as info:
            read_vectors(path, ["a", "b", "c"])
        H.assert_seqtag_error(info.value, str(path), at)
        box["outcome"] = "error"


@settings(max_examples=H.budget(50, 5))
@given(st.sampled_from(["word", "label"]), _WORD.filter(lambda w: w not in (PAD, UNK)))
@example("label", "O")
def test_vocabulary_duplicate_entries(workdir, where, entry):
    words = ["<pad>\t0", "<unk>\t1", f"{entry}\t2"] + ([f"{entry}\t1"] if where == "word" else [])
    labels = [f"{entry}\t3", "Z\t1"] + ([f"{entry}\t1"] if where == "label" else [])
    path = workdir / "dup.tsv"
    path.write_text("\n".join(words + [""] + labels) + "\n", encoding="utf-8")
    with H.observe("vocabulary: duplicate entries") as box:
        with pytest.raises(SeqtagError) as info:
            Vocabulary.load(path)
        H.assert_seqtag_error(info.value, str(path))
        box["outcome"] = "error"
