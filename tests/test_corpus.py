"""Tests for seqtag.corpus: formats, blank-line rules, errors, stdin, streaming, real corpora."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seqtag import textfile
from seqtag.corpus import CorpusInfo, Sentence, read_corpus, read_sentences
from seqtag.errors import SeqtagError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str | bytes, name: str = "corpus.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def read(tmp_path, text, name="corpus.tsv", **kw) -> list[Sentence]:
    return list(read_sentences(write(tmp_path, text, name), **kw))


def error(tmp_path, text, name="corpus.tsv", **kw) -> SeqtagError:
    path = write(tmp_path, text, name)
    with pytest.raises(SeqtagError) as info:
        list(read_sentences(path, **kw))
    assert info.value.path == str(path)
    assert str(info.value).startswith(str(path) + ":")
    return info.value


# --- formats ----------------------------------------------------------------------------------

def test_tab_conll_tokens_labels_lines_and_line_numbers(tmp_path):
    sents = read(tmp_path, "I\tO\nlove\tO\nParis\tB-LOC\n\nHi\tO\n")
    assert [s.tokens for s in sents] == [["I", "love", "Paris"], ["Hi"]]
    assert [s.labels for s in sents] == [["O", "O", "B-LOC"], ["O"]]
    assert sents[0].lines == ["I\tO", "love\tO", "Paris\tB-LOC"]
    assert [s.line_no for s in sents] == [1, 5]


def test_space_separated_conll2003_style(tmp_path):
    text = "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects  VBZ I-VP O \n\n-DOCSTART- -X- O O\n\nA DT B-NP O\n"
    sents = read(tmp_path, text)
    assert [s.tokens for s in sents] == [["EU", "rejects"], ["A"]]
    assert [s.labels for s in sents] == [["I-ORG", "O"], ["O"]]
    assert [s.line_no for s in sents] == [3, 8]
    assert sents[0].lines[1] == "rejects  VBZ I-VP O "
    chunks = read(tmp_path, text, token_col=1, label_col=2)
    assert chunks[0].tokens == ["NNP", "VBZ"] and chunks[0].labels == ["I-NP", "I-VP"]


def test_lines_that_are_not_tokens_are_kept_before_their_sentence(tmp_path):
    """For `tag` to write them back: -DOCSTART- lines of CoNLL, comments of CoNLL-U."""
    text = ("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\n\nA DT B-NP O\n\n"
            "-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\nB DT B-NP O\n")
    assert [s.before for s in read(tmp_path, text)] == [
        ["-DOCSTART- -X- O O"], None, ["-DOCSTART- -X- O O"] * 2]
    sents = read(tmp_path, CONLLU, name="x.conllu")
    assert [s.before for s in sents] == [
        ["# newdoc id = d1", "# sent_id = s1", "# text = I don't."], ["# sent_id = s2"]]
    # a hashtag token of a CoNLL file is a token, not a comment
    assert read(tmp_path, "#darwin\tB-LOC\n")[0].before is None


def test_docstart_without_blank_line_still_ends_the_sentence(tmp_path):
    sents = read(tmp_path, "a O\n-DOCSTART- -X- O O\nb O\n")
    assert [s.tokens for s in sents] == [["a"], ["b"]]


def test_hashtags_spaces_and_empty_tokens_in_tab_conll(tmp_path):
    sents = read(tmp_path, "#darwin\tB-LOC\n# x\tO\nNew York\tB-LOC\n\tO\n😀 \tO\n")
    assert sents[0].tokens == ["#darwin", "# x", "New York", "", "😀 "]
    assert sents[0].labels == ["B-LOC", "O", "B-LOC", "O", "O"]


def test_nbsp_is_not_a_column_separator(tmp_path):
    assert read(tmp_path, "a\u00a0b O\n")[0].tokens == ["a\u00a0b"]


def test_labels_are_stripped_of_stray_spaces(tmp_path):
    assert read(tmp_path, "a\tO \n")[0].labels == ["O"]


CONLLU = (
    "# newdoc id = d1\n# sent_id = s1\n# text = I don't.\n"
    "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_\n"
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_\n"
    "3\tn't\tnot\tPART\tRB\t_\t0\troot\t_\t_\n"
    "3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t0:root\t_\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n\n"
    "# sent_id = s2\n1\t#tag\t#tag\tX\tADD\t_\t0\troot\t_\t_\n\n"
)


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    sents = read(tmp_path, CONLLU, name="x.conllu")
    assert [s.tokens for s in sents] == [["I", "do", "n't", "."], ["#tag"]]
    assert sents[0].labels == ["PRON", "AUX", "PART", "PUNCT"]
    assert [s.line_no for s in sents] == [4, 12]
    assert sents[0].lines[1].startswith("2\tdo\t")
    assert read(tmp_path, CONLLU, name="x.conllu", label_col=4)[0].labels == ["PRP", "VBP", "RB", "."]


INDEXED = "# sent_id = a\n# text = Paris rocks\n1\tParis\tB-LOC\t-\tann\n2\trocks\tO\t-\t-\n\n"


def test_indexed_uner_style(tmp_path):
    sents = read(tmp_path, INDEXED, name="x.iob2")
    assert sents[0].tokens == ["Paris", "rocks"] and sents[0].labels == ["B-LOC", "O"]
    assert sents[0].line_no == 3


@pytest.mark.parametrize("text, name, tokens", [
    (CONLLU, "x.conllu", ["I", "do", "n't", "."]),         # extension
    (CONLLU, "x.txt", ["I", "do", "n't", "."]),            # comment first, 10 columns
    (CONLLU[CONLLU.index("1\t"):], "x.txt", ["I", "do", "n't", "."]),  # "1<TAB>" first
    (INDEXED, "x.txt", ["Paris", "rocks"]),                # comment first, 5 columns
    (INDEXED[INDEXED.index("1\t"):], "x.txt", ["Paris", "rocks"]),
    ("#darwin\tB-LOC\n#x = y\tO\n", "x.txt", ["#darwin", "#x = y"]),  # hashtags: conll
    ("1\tO\n2\tO\n", "x.txt", ["1", "2"]),                 # "1" but only 2 columns: conll
])
def test_auto_format_detection(tmp_path, text, name, tokens):
    assert read(tmp_path, text, name=name)[0].tokens == tokens


def test_explicit_conll_format_reads_hash_lines_as_tokens(tmp_path):
    sents = read(tmp_path, "# sent_id=1\n1\tParis\n", fmt="conll")
    assert sents[0].tokens == ["#", "1"] and sents[0].labels == ["sent_id=1", "Paris"]


# --- blank lines, encodings -------------------------------------------------------------------

def test_blank_and_whitespace_only_lines_break_sentences(tmp_path):
    sents = read(tmp_path, "\n\na\tO\n\n\n\nb\tO\n\t\nc\tO\n \nd\tO\n \t \ne\tO")  # no final newline
    assert [s.tokens for s in sents] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert [s.line_no for s in sents] == [3, 7, 9, 11, 13]


def test_bom_and_crlf(tmp_path):
    sents = read(tmp_path, b"\xef\xbb\xbfa\tB-X\r\nb\tO\r\n\r\nc\tO\r\n")
    assert [s.tokens for s in sents] == [["a", "b"], ["c"]]
    assert sents[0].labels == ["B-X", "O"] and sents[0].lines == ["a\tB-X", "b\tO"]


# --- labels modes -----------------------------------------------------------------------------

def test_labels_none_and_auto(tmp_path):
    assert read(tmp_path, "a\tO\n", labels="none")[0].labels is None
    assert read(tmp_path, "a\nb\n", labels="auto")[0].labels is None
    assert read(tmp_path, "a\tO\n", labels="auto")[0].labels == ["O"]
    assert read(tmp_path, "a\n\nb\tO\n", labels="auto")[1].labels is None


def test_required_labels_missing(tmp_path):
    e = error(tmp_path, "a\tO\n\nb\n", labels="required")
    assert e.line == 3 and "training data needs a label column" in str(e)


def test_auto_labels_missing_after_labeled_sentence(tmp_path):
    e = error(tmp_path, "a\tO\n\nb\n", labels="auto")
    assert e.line == 3 and "only a token column" in e.message


def test_column_count_mismatch(tmp_path):
    e = error(tmp_path, "a\tb\tc\tO\n\nx\tb\tc\tO\ny\tc\tO\n")
    assert e.line == 4
    assert str(e).endswith(": has 3 columns but its sentence has 4 "
                           "(every line of a sentence needs the same columns)")


@pytest.mark.parametrize("kw", [{"token_col": 5}, {"label_col": 7}, {"label_col": -9}])
def test_column_out_of_range(tmp_path, kw):
    e = error(tmp_path, "a\tO\n\nb\tO\n", **kw)
    assert e.line == 1 and "has no column" in e.message


def test_bad_settings_fail_at_the_call():
    with pytest.raises(SeqtagError, match="unknown corpus format"):
        read_sentences("nowhere", fmt="csv")
    with pytest.raises(SeqtagError, match="unknown labels mode"):
        read_sentences("nowhere", labels="maybe")


# --- file errors ------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    sentences = read_sentences(path)  # lazy: nothing is opened before iteration
    with pytest.raises(SeqtagError, match="no such file") as info:
        next(sentences)
    assert str(info.value).startswith(f"{path}: ")


def test_directory(tmp_path):
    with pytest.raises(SeqtagError, match="is a directory") as info:
        list(read_sentences(tmp_path))
    assert info.value.path == str(tmp_path)


def test_permission_denied(tmp_path, monkeypatch):
    # Tests may run as root, where chmod 000 still reads; fake the refusal instead.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(textfile, "open", refuse, raising=False)  # where corpora are opened
    path = write(tmp_path, "a\tO\n")
    with pytest.raises(SeqtagError, match="permission denied") as info:
        list(read_sentences(path))
    assert info.value.path == str(path)


@pytest.mark.parametrize("text", [b"", b"\n\n", b" \t\r\n\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SeqtagError, match="is empty") as info:
        list(read_sentences(path))
    assert str(info.value).startswith(f"{path}: is empty")


@pytest.mark.parametrize("text, name", [
    ("-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\n", "x.txt"),
    ("# sent_id = 1\n# text = nothing\n\n", "x.conllu"),
    ("# newdoc id = d\n2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n", "x.txt"),
])
def test_no_sentence(tmp_path, text, name):
    path = write(tmp_path, text, name)
    sentences = read_sentences(path)
    with pytest.raises(SeqtagError, match="holds no sentence") as info:
        list(sentences)
    assert info.value.path == str(path)


def test_invalid_utf8_names_line_and_byte_offset(tmp_path):
    e = error(tmp_path, b"a\tO\n\ncaf\xe9\tO\n")
    assert e.line == 3 and "invalid UTF-8 at byte offset 8" in e.message


def test_invalid_utf8_offset_counts_the_bom(tmp_path):
    e = error(tmp_path, b"\xef\xbb\xbfa\xff\tO\n")
    assert e.line == 1 and "byte offset 4" in e.message


def test_binary_file(tmp_path):
    e = error(tmp_path, b"a\tO\nb\x00c\tO\n")
    assert e.line == 2 and "looks like a binary file (NUL byte at byte offset 5)" in e.message


def test_utf16_file_is_reported_as_binary(tmp_path):
    e = error(tmp_path, "a\tO\n".encode("utf-16"))
    assert e.line == 1 and "binary" in e.message and "utf-16" in e.hint


def test_errors_after_good_sentences_still_stream_them_first(tmp_path):
    sentences = read_sentences(write(tmp_path, b"a\tO\n\nb\xff\tO\n"))
    assert next(sentences).tokens == ["a"]
    with pytest.raises(SeqtagError):
        next(sentences)


# --- sources: file objects, stdin, streaming --------------------------------------------------

def test_file_object_and_name(tmp_path):
    sents = list(read_sentences(io.BytesIO(b"a\tO\n"), name="mem.tsv"))
    assert sents[0].tokens == ["a"]
    with pytest.raises(SeqtagError) as info:
        list(read_sentences(io.BytesIO(b"a\tO\nb\n"), name="mem.tsv", labels="required"))
    assert str(info.value).startswith("mem.tsv:2: ")
    with pytest.raises(SeqtagError, match=r"^<stream>:1: "):
        list(read_sentences(io.BytesIO(b"\xff\n")))


def test_text_file_object_is_a_type_error():
    with pytest.raises(TypeError, match="binary"):
        list(read_sentences(io.StringIO("a\tO\n")))


def test_stdin_dash(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\tO\n\nb\tB-X\n")))
    assert [s.tokens for s in read_sentences("-")] == [["a"], ["b"]]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\tO\nb\n")))
    with pytest.raises(SeqtagError, match=r"^<stdin>:2: "):
        list(read_sentences("-", labels="required"))


def test_stdin_dash_in_a_real_pipe():
    raw = b"a\tO\n\nb\tB-X\nc\tI-X\n"
    code = ("from seqtag.corpus import read_corpus\n"
            "s, info = read_corpus('-')\n"
            "print(info.name, info.sentences, info.tokens, info.bytes, *s[1].labels)")
    out = subprocess.run([sys.executable, "-c", code], input=raw,
                         capture_output=True, cwd=REPO, check=True, timeout=60).stdout
    assert out.decode().split() == ["<stdin>", "2", "3", str(len(raw)), "B-X", "I-X"]


class StopsAfterFirstSentence:
    """A stream that fails if read past the first sentence's blank line."""

    def __init__(self):
        self.lines = [b"a\tO\n", b"b\tO\n", b"\n"]

    def readline(self):
        if not self.lines:
            raise AssertionError("read past the first sentence before yielding it")
        return self.lines.pop(0)


def test_yields_each_sentence_before_reading_on():
    sentences = read_sentences(StopsAfterFirstSentence(), fmt="auto")
    assert next(sentences).tokens == ["a", "b"]
    with pytest.raises(AssertionError):
        next(sentences)


def test_streams_from_an_open_pipe():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reader, os.fdopen(write_end, "wb") as writer:
        sentences = read_sentences(reader)
        got = []
        worker = threading.Thread(target=lambda: got.append(next(sentences)), daemon=True)
        writer.write(b"# not conll-u\tO\nhi\tO\n\n")
        writer.flush()
        worker.start()
        worker.join(timeout=5)
        alive = worker.is_alive()
        writer.close()  # unblocks the reader if it was (wrongly) waiting for more
        worker.join(timeout=5)
        assert not alive, "the first sentence was not yielded while the pipe stayed open"
        assert got[0].tokens == ["# not conll-u", "hi"]


# --- read_corpus ------------------------------------------------------------------------------

def test_read_corpus_counts_and_hash(tmp_path):
    import hashlib
    raw = b"\xef\xbb\xbfa\tO\nb\tO\n\n\nc\tB-X\n"
    sents, info = read_corpus(write(tmp_path, raw), labels="required")
    assert len(sents) == 2
    assert info == CorpusInfo(name=str(tmp_path / "corpus.tsv"), sentences=2, tokens=3,
                              sha256=hashlib.sha256(raw).hexdigest(), bytes=len(raw))
    _, info = read_corpus(io.BytesIO(raw), name="x")
    assert info.name == "x" and info.bytes == len(raw)


# --- the real corpora in ../shared/data -------------------------------------------------------

def real(relative: str) -> Path:
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.parametrize("relative, sentences, tokens, sha_prefix", [
    ("conll2003/eng.train", 14041, 203621, "eac0822f5013"),
    ("conll2000/test.txt", 2012, 47377, "73b7b1e565fa"),
    ("ud_english_ewt/en_ewt-ud-train.conllu", 12544, 204577, "3fb78e2b5548"),
    ("uner_english_ewt/en_ewt-ud-dev.iob2", 2001, 25149, "0cafd881cf31"),
    ("btc/btc.train", 6338, 99933, "2117732e744d"),
    ("btc/btc.dev", 1001, 15027, "9f7d33bcd195"),
    # The README counts 2,000 tweets, but line 13045 is a lone space, which (like every
    # whitespace-only line) ends a sentence: one tweet is read as two. Tokens are unaffected.
    ("btc/btc.test", 2001, 35428, "3bd2387dfc98"),
])
def test_real_corpus_counts(relative, sentences, tokens, sha_prefix):
    sents, info = read_corpus(real(relative), labels="required")
    assert (info.sentences, info.tokens) == (sentences, tokens)
    assert info.sha256.startswith(sha_prefix)
    assert all(len(s.tokens) == len(s.labels) == len(s.lines) for s in sents)


def test_real_corpus_label_sets():
    labels = {"conll2003/eng.train": {"O", "I-PER", "I-ORG", "I-LOC", "I-MISC",
                                      "B-MISC", "B-ORG", "B-LOC"},
              "uner_english_ewt/en_ewt-ud-dev.iob2": {"O", "B-PER", "I-PER", "B-LOC", "I-LOC",
                                                      "B-ORG", "I-ORG"}}
    for relative, expected in labels.items():
        sents, _ = read_corpus(real(relative))
        assert {label for s in sents for label in s.labels} == expected


def test_real_btc_hashtags_spaces_and_empty_tokens():
    sents = list(read_sentences(real("btc/btc.test"), labels="required"))
    tokens = [t for s in sents for t in s.tokens]
    assert sum(t.startswith("#") for t in tokens) == 771
    assert sum(" " in t for t in tokens) == 119
    assert tokens.count("") == 2
    assert sents[0].line_no == 1
    split = next(s for s in sents if s.line_no == 13046)  # the fragment after the lone space
    assert split.tokens == ["", "tps://t.co/PSleTSIEmD"]


def test_real_ewt_auto_detected_without_extension():
    with open(real("ud_english_ewt/en_ewt-ud-dev.conllu"), "rb") as f:
        sents, info = read_corpus(io.BytesIO(f.read()), name="ewt-dev")
    assert (info.sentences, info.tokens) == (2001, 25147)
    assert sents[0].tokens[:3] == ["From", "the", "AP"] and sents[0].labels[:3] == ["ADP", "DET", "PROPN"]
