"""Property-based fuzzing of the corpus reader (seqtag.corpus.read_sentences).

Property: on a generated column file the reader returns exactly the sentences that a simple
reference split gives (lines end at LF, CRLF or CR; blank or whitespace-only lines and
``-DOCSTART-`` end sentences; a line's columns are TAB-separated if it has a TAB, else separated
by runs of spaces; the token is the first column and the label the last), and on broken input it
raises one SeqtagError naming the file and the offending line.
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import assume, example, given, settings, strategies as st

import fuzz_harness as H
from seqtag.corpus import read_sentences
from seqtag.errors import SeqtagError

NAME = "gen.tsv"

# Characters of tokens and labels: anything but the separators the format defines (TAB, space,
# the line ends, \f \v which runs of spaces include) and NUL. NBSP, U+2028, U+0085 and friends
# stay in: they are not separators, and a reader that split on them would shift columns.
_CHARS = st.characters(blacklist_categories=("Cs",),
                       blacklist_characters="\t\n\r \x0b\x0c\x00\ufeff")
_WORD = st.text(_CHARS, min_size=1, max_size=8)
# A first token "1" (with 3+ columns) or a "# x = y" first line would make the file CoNLL-U-like.
_FIRST_OK = lambda t: t != "1" and not t.startswith("#")  # noqa: E731

_SEPS = st.sampled_from(["\t", " ", "  ", "    "])
_ENDS = {"LF": st.just("\n"), "CRLF": st.just("\r\n"), "mixed": st.sampled_from(["\n", "\r\n"]),
         "CR": st.just("\r"), "CR+LF+CRLF": st.sampled_from(["\n", "\r\n", "\r"])}


@st.composite
def column_files(draw, ends: str = "mixed", bom: bool | None = None):
    """(bytes of a column file, its sentences as lists of column lists)."""
    ncols = draw(st.integers(1, 4))
    n_sent = draw(st.integers(1, 6))
    sentences = []
    for _ in range(n_sent):
        rows = draw(st.lists(st.lists(_WORD, min_size=ncols, max_size=ncols), min_size=1,
                             max_size=8))
        sentences.append(rows)
    if not _FIRST_OK(sentences[0][0][0]):
        sentences[0][0][0] = "w" + sentences[0][0][0]
    sentences = [[[("x" + c if c == "-DOCSTART-" else c) for c in row] for row in s]
                 for s in sentences]
    end = _ENDS[ends]
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append("-DOCSTART- -X- O O" if draw(st.booleans()) else "-DOCSTART-")
        lines.append("")
    for i, rows in enumerate(sentences):
        for row in rows:
            sep = draw(_SEPS)
            lead = draw(st.sampled_from(["", " "])) if sep != "\t" else ""
            lines.append(lead + sep.join(row))
        # Sentences end with a blank line, a whitespace-only line or a -DOCSTART- line.
        lines.append(draw(st.sampled_from(["", "", " ", "\t", " \t ", "-DOCSTART-\tO"])))
        if draw(st.integers(0, 4)) == 0:
            lines.append("")
    if not draw(st.booleans()):
        lines.pop()   # the last sentence may end at the end of the file
    text, prev = "", ""
    for k, line in enumerate(lines):
        text += line
        if k < len(lines) - 1 or draw(st.booleans()):   # the last line may lack its end
            e = draw(end)
            if prev == "\r" and not line and e == "\n":
                e = "\r\n"   # a CR, then an empty line's LF, would read as one CRLF
            text += e
            prev = e
    data = text.encode("utf-8")
    if bom if bom is not None else draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, sentences


def reference(data: bytes) -> list[tuple[list[str], list[str] | None]]:
    """The sentences of a column file by the README's rules, written independently of corpus.py."""
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    out, tokens, labels, with_labels = [], [], [], None
    for line in re.split(r"\r\n|\n|\r", text):
        cols = (line.split("\t") if "\t" in line
                else [c for c in re.split(r" +", line.strip(" ")) if c])
        if not line.strip(" \t") or cols[0] == "-DOCSTART-":
            if tokens:
                out.append((tokens, labels if with_labels else None))
                tokens, labels = [], []
            continue
        if with_labels is None:
            with_labels = len(cols) >= 2
        tokens.append(cols[0])
        labels.append(cols[-1])
    if tokens:
        out.append((tokens, labels if with_labels else None))
    return out


def read(data: bytes, **kw):
    return [(s.tokens, s.labels) for s in read_sentences(io.BytesIO(data), name=NAME, **kw)]


def check_matches_reference(data: bytes, sentences, cls: str) -> None:
    with H.observe(cls) as box:
        got = read(data)
        want = reference(data)
        assert got == want
        assert [t for t, _ in got] == [[row[0] for row in s] for s in sentences]
        box["outcome"] = "correct"


@settings(max_examples=H.budget(1500, 60))
@given(column_files(ends="mixed"))
def test_reader_returns_the_reference_sentences(case):
    check_matches_reference(*case, "corpus: LF/CRLF, tabs/spaces, DOCSTART, BOM at start")


@settings(max_examples=H.budget(300, 20))
@given(column_files(ends="CR+LF+CRLF"))
@example((b"a\tO\rb\tO\r\rc\tO\r", [[["a", "O"], ["b", "O"]], [["c", "O"]]]))
def test_reader_cr_only_line_endings(case):
    check_matches_reference(*case, "corpus: CR-only line endings")


# -- a BOM in mid-file -------------------------------------------------------------------------

@settings(max_examples=H.budget(200, 10))
@given(column_files(ends="LF", bom=False), st.data())
@example((b"a\tO\nb\tO\n", [[["a", "O"], ["b", "O"]]]), None)
def test_reader_bom_in_mid_file(case, data):
    """A BOM that a concatenation left before a later line is dropped, or refused on its line;
    it never becomes part of a token."""
    raw, _ = case
    lines = raw.split(b"\n")
    assume(len(lines) > 1)   # a file of one line has no middle
    at = data.draw(st.integers(1, len(lines) - 1)) if data is not None else 1
    lines[at] = b"\xef\xbb\xbf" + lines[at]
    spoiled = b"\n".join(lines)
    with H.observe("corpus: BOM in mid-file") as box:
        try:
            got = read(spoiled)
        except SeqtagError as e:
            H.assert_seqtag_error(e, NAME, at + 1)
            box["outcome"] = "error"
            return
        assert got == reference(raw.replace(b"\xef\xbb\xbf", b""))
        box["outcome"] = "correct"


# -- broken bytes ------------------------------------------------------------------------------

_BAD_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
                             b"\xf8\x88\x80\x80\x80", b"\x80abc", b"\xf4\x90\x80\x80"])


@settings(max_examples=H.budget(600, 30))
@given(column_files(ends="mixed", bom=False), st.data(),
       st.sampled_from(["invalid UTF-8", "NUL"]))
def test_reader_names_the_line_of_a_bad_byte(case, data, what):
    raw, _ = case
    lines = raw.split(b"\n")
    at = data.draw(st.integers(0, len(lines) - 1))
    bad = data.draw(_BAD_UTF8) if what == "invalid UTF-8" else b"\x00"
    # Not between the CR and the LF of a CRLF: that would end the line at the CR.
    pos = data.draw(st.integers(0, len(lines[at]) - lines[at].endswith(b"\r")))
    lines[at] = lines[at][:pos] + bad + lines[at][pos:]
    spoiled = b"\n".join(lines)
    with H.observe(f"corpus: {what}") as box:
        with pytest.raises(SeqtagError) as info:
            read(spoiled)
        H.assert_seqtag_error(info.value, NAME, at + 1)
        box["outcome"] = "error"


@settings(max_examples=H.budget(1500, 60))
@given(st.binary(max_size=2000) | st.lists(
    st.sampled_from([b"\t", b" ", b"\n", b"\r", b"\r\n", b"O", b"B-X", b"I-", b"a", b"\xef\xbb\xbf",
                     b"\x00", b"\xff", b"-DOCSTART-", b"# x = 1", b"1", b"#", b"\xc3\xa9"]),
    max_size=200).map(b"".join))
def test_reader_on_random_bytes(data):
    """Anything: sentences whose tokens have no line breaks, or one SeqtagError naming the file
    and (for a bad line) a line of it."""
    n_lines = len(re.split(rb"\r\n|\n|\r", data))
    with H.observe("corpus: random bytes") as box:
        try:
            got = read(data)
        except SeqtagError as e:
            H.assert_seqtag_error(e, NAME)
            assert e.line is None or 1 <= e.line <= n_lines
            box["outcome"] = "error"
            return
        assert got and all(tokens for tokens, _ in got)
        for tokens, labels in got:
            assert labels is None or len(labels) == len(tokens)
            assert not any("\n" in t for t in tokens)
        box["outcome"] = "correct"


# -- ragged columns, only -DOCSTART- ----------------------------------------------------------

@st.composite
def ragged_files(draw):
    """(bytes, line number of the first line whose column count differs from its sentence's)."""
    ncols = draw(st.integers(1, 4))
    lines, bad = [], None
    for _ in range(draw(st.integers(1, 4))):
        rows = draw(st.integers(1, 6))
        for r in range(rows):
            n = ncols
            if bad is None and r > 0 and draw(st.integers(0, 2)) == 0:
                n = draw(st.integers(1, 6).filter(lambda k: k != ncols))
                bad = len(lines) + 1
            sep = draw(_SEPS)
            words = draw(st.lists(_WORD.filter(_FIRST_OK), min_size=n, max_size=n))
            lines.append(sep.join(words))
        lines.append("")
    if bad is None:
        n = draw(st.integers(1, 6).filter(lambda k: k != ncols))
        lines[-1:] = [" ".join(["w"] * ncols), " ".join(["v"] * n), ""]
        bad = len(lines) - 1
    end = draw(_ENDS["mixed"])
    return end.join(lines).encode("utf-8"), bad


@settings(max_examples=H.budget(500, 30))
@given(ragged_files())
def test_reader_refuses_ragged_columns_at_their_line(case):
    data, bad = case
    with H.observe("corpus: ragged columns") as box:
        with pytest.raises(SeqtagError) as info:
            read(data)
        H.assert_seqtag_error(info.value, NAME, bad)
        box["outcome"] = "error"


@settings(max_examples=H.budget(300, 20))
@given(st.lists(st.sampled_from(["-DOCSTART-", "-DOCSTART- -X- O O", "-DOCSTART-\tO", "", " ",
                                 "\t"]), min_size=1, max_size=20),
       st.sampled_from(["\n", "\r\n"]))
def test_reader_only_docstart(lines, end):
    data = end.join(lines).encode()
    with H.observe("corpus: only -DOCSTART-") as box:
        with pytest.raises(SeqtagError) as info:
            read(data)
        H.assert_seqtag_error(info.value, NAME)
        box["outcome"] = "error"


# -- odd labels ----------------------------------------------------------------------------------

_ODD_LABELS = st.sampled_from(["O", "B-PER", "I-PER", "b-per", "B-PER-X", "B--", "B", "I", "S-X",
                               "E-X", "U-LOC", "L-LOC", "NN", "PRP$", "-", "--", "O-", "X-Y",
                               "B-\u00e9t\u00e9", "B-[/]", "[bold]", "I-\u200b"])


@settings(max_examples=H.budget(400, 20))
@given(st.lists(st.lists(st.tuples(_WORD.filter(_FIRST_OK), _ODD_LABELS), min_size=1,
                         max_size=6), min_size=1, max_size=5))
def test_reader_keeps_odd_but_valid_labels(sentences):
    """A label with a type (or one that is no chunk tag at all) is read as written."""
    data = "\n\n".join("\n".join(f"{t}\t{lab}" for t, lab in s) for s in sentences).encode()
    with H.observe("corpus: odd labels") as box:
        got = read(data, labels="required")
        assert got == [([t for t, _ in s], [lab for _, lab in s]) for s in sentences]
        box["outcome"] = "correct"


# -- size: 10 MB lines, a million tokens --------------------------------------------------------

@settings(max_examples=H.budget(3, 1), deadline=None)
@given(st.sampled_from(["a", "\u00e9", "\U0001f600"]), st.booleans())
def test_reader_10_mb_line(char, labelled):
    token = char * (10_000_000 // len(char.encode()))
    data = (token + ("\tB-X" if labelled else "") + "\nb" + ("\tO" if labelled else "")).encode()
    with H.observe("corpus: 10 MB line") as box:
        got = read(data)
        assert got == [([token, "b"], ["B-X", "O"] if labelled else None)]
        box["outcome"] = "correct"


@settings(max_examples=H.budget(2, 1), deadline=None)
@given(st.sampled_from(["\n", "\r\n"]))
def test_reader_million_token_sentence(end):
    n = 1_000_000
    data = f"w\tO{end}".encode() * n
    with H.observe("corpus: million-token sentence") as box:
        (s,) = list(read_sentences(io.BytesIO(data), name=NAME))
        assert len(s.tokens) == n and set(s.labels) == {"O"}
        box["outcome"] = "correct"
