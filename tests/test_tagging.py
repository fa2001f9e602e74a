"""Tests for seqtag.tagging: tagging text and column files, the output formats, entities,
streaming."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest

from seqtag.corpus import Sentence, read_sentences
from seqtag.model import RNNTagger
from seqtag.tagging import (Tagged, format_conll, format_inline, format_jsonl,
                            tag_sentences, tag_texts)
from seqtag.tokenizer import tokenize
from seqtag.config import TrainConfig
from seqtag.training import Trainer

TRAIN = """\
John B-PER
Smith I-PER
lives O
in O
Paris B-LOC
. O

Mary B-PER
visited O
New B-LOC
York I-LOC
yesterday O
. O

Acme B-ORG
hired O
John B-PER
in O
Berlin B-LOC
. O

She O
left O
London B-LOC
for O
Paris B-LOC
. O
"""


@pytest.fixture(scope="module")
def model() -> RNNTagger:
    train = list(read_sentences(io.BytesIO(TRAIN.encode())))
    config = TrainConfig.textbook(hidden=16, epochs=40, lr=0.05, batch_size=2, word_dropout=0.0,
                         patience=0, seed=3)
    trained = Trainer(config).fit(train).model_
    # the fixture is only useful if the model has learned to find some entities
    assert trained.predict([["John", "lives", "in", "Paris", "."]]) == \
        [["B-PER", "O", "O", "B-LOC", "O"]]
    return trained


TEXTS = [
    "John Smith lives in Paris.",
    "Mary visited New York yesterday!",
    "",
    "   spaced    out   Berlin  ",
    "Acme hired John (in London), didn't they? #news @acme https://acme.com",
]


# -- tag_texts -----------------------------------------------------------------------------------

def test_tag_texts_tokenizes_and_labels(model):
    out = list(tag_texts(model, TEXTS))
    assert len(out) == len(TEXTS)
    for text, t in zip(TEXTS, out):
        expected = tokenize(text)
        assert t.text == text
        assert t.tokens == [w for w, _, _ in expected]
        assert t.offsets == [(s, e) for _, s, e in expected]
        assert [text[s:e] for s, e in t.offsets] == t.tokens
        assert len(t.labels) == len(t.tokens) == len(t.probs)
        assert set(t.labels) <= set(model.labels)
        assert t.lines is None


def test_tag_texts_without_offsets_as_with_them(model):
    """offsets=False (what the CLI asks for conll and inline output) leaves Tagged.offsets None
    and changes nothing else: the tokens (tokens_of, not tokens_and_offsets), labels, output
    text and the entities, whose character offsets entities() then finds itself."""
    texts = TEXTS + ["Sam Li met Tom in N.Y. on 12/03/2020, didn't he?  gonna go :)",
                     "naïve café in Zürich x\u0301 😀 U.S.-based"]
    for a, b in zip(tag_texts(model, texts), tag_texts(model, texts, offsets=False)):
        assert b.offsets is None and a.offsets is not None
        assert (a.tokens, a.labels, a.text) == (b.tokens, b.labels, b.text)
        np.testing.assert_array_equal(a.probs, b.probs)
        assert a.entities() == b.entities()
        assert format_conll(a) == format_conll(b) and format_jsonl(a) == format_jsonl(b)


def test_tag_texts_agrees_with_the_model(model):
    for t in tag_texts(model, TEXTS):
        if not t.tokens:
            continue
        y = model.predict_proba([t.tokens])[0]
        assert t.labels == [model.labels[k] for k in y.argmax(axis=1)]
        np.testing.assert_array_equal(t.probs, y.max(axis=1))
        assert ((t.probs > 0) & (t.probs <= 1)).all()
        assert (t.probs >= 1 / len(model.labels) - 1e-6).all()


def test_empty_text_gives_an_empty_sequence(model):
    (t,) = tag_texts(model, [""])
    assert t.tokens == [] and t.labels == [] and t.offsets == []
    # an empty line still gives its (empty) block, so blocks stay aligned with input lines
    out = "".join(format_conll(t) for t in tag_texts(model, ["Paris", "", "John"]))
    blocks = out.split("\n\n")
    assert [b.split("\t")[0] for b in blocks] == ["Paris", "", "John", ""]
    assert json.loads(format_jsonl(t)) == {"text": "", "tokens": [], "labels": [],
                                           "entities": []}


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_batch_size_does_not_change_results(model, batch_size):
    ref = list(tag_texts(model, TEXTS, batch_size=256))
    got = list(tag_texts(model, TEXTS, batch_size=batch_size))
    assert [t.labels for t in got] == [t.labels for t in ref]
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a.probs, b.probs)


# -- tag_sentences -------------------------------------------------------------------------------

COLUMNS_TAB = "1\tJohn\tNNP\n2\tlives\tVBZ\n3\tin\tIN\n4\tParis\tNNP\n\n1\tMary\tNNP\n2\t.\t.\n"
COLUMNS_SPACE = "John NNP x\nlives VBZ x\nin IN x\nParis NNP x\n\nMary  NNP x\n. . x\n"


def column_sentences(text: str, **kw) -> list[Sentence]:
    return list(read_sentences(io.BytesIO(text.encode()), fmt="conll", labels="none", **kw))


def test_tag_sentences_keeps_lines(model):
    sents = column_sentences(COLUMNS_TAB, token_col=1)
    out = list(tag_sentences(model, sents))
    assert len(out) == 2
    for s, t in zip(sents, out):
        assert t.lines == s.lines
        assert t.tokens == s.tokens
        assert t.text is None and t.offsets is None
        assert t.labels == model.predict([s.tokens])[0]
    assert out[0].tokens == ["John", "lives", "in", "Paris"]


def test_format_conll_appends_a_tab_column(model):
    sents = column_sentences(COLUMNS_TAB, token_col=1)
    out = list(tag_sentences(model, sents))
    text = "".join(format_conll(t) for t in out)
    blocks = text.split("\n\n")
    assert blocks[-1] == "" and len(blocks) == 3
    for s, t, block in zip(sents, out, blocks):
        rows = block.split("\n")
        assert rows == [f"{line}\t{lab}" for line, lab in zip(s.lines, t.labels)]
    # read back: the original columns and the predictions in the last one
    back = list(read_sentences(io.BytesIO(text.encode()), fmt="conll", token_col=1,
                               labels="none", pred_col=-1))
    assert [b.tokens for b in back] == [s.tokens for s in sents]
    assert [b.predicted for b in back] == [t.labels for t in out]


def test_format_conll_appends_a_space_column(model):
    sents = column_sentences(COLUMNS_SPACE, token_col=0)
    out = list(tag_sentences(model, sents))
    for s, t in zip(sents, out):
        text = format_conll(t)
        assert text.endswith("\n\n") and not text.endswith("\n\n\n")
        rows = text[:-2].split("\n")
        assert "\t" not in text
        assert rows == [f"{line} {lab}" for line, lab in zip(s.lines, t.labels)]
        assert [r.split()[-1] for r in rows] == t.labels
    # the doubled space inside a line is kept as it was
    assert out[1].lines[0] == "Mary  NNP x"
    assert format_conll(out[1]).startswith("Mary  NNP x ")


def test_format_conll_writes_back_docstart_and_comment_lines(model):
    text = ("-DOCSTART- -X- O O\n\nJohn NNP B-PER\nlives VBZ O\n\nMary NNP B-PER\n\n"
            "-DOCSTART- -X- O O\n\nParis NNP B-LOC\n")
    sents = list(read_sentences(io.BytesIO(text.encode()), fmt="conll", labels="auto",
                                check_labels=False))
    out = list(tag_sentences(model, sents))
    written = "".join(format_conll(t) for t in out)
    # the input again, each line with its predicted label, the documents' lines with an O
    labels = iter(lab for t in out for lab in t.labels)
    want = [line + (" O" if line.startswith("-DOCSTART-") else f" {next(labels)}") if line
            else "" for line in text.splitlines()]
    assert written == "\n".join(want) + "\n\n"
    with_scores = "".join(format_conll(t, scores=True) for t in out)
    assert with_scores.startswith("-DOCSTART- -X- O O O 1.0000\n\nJohn NNP B-PER ")
    # read back, the predictions in the last column: the same sentences and documents
    back = list(read_sentences(io.BytesIO(written.encode()), fmt="conll", labels="auto",
                               pred_col=-1))
    assert [(b.tokens, b.document) for b in back] == [(s.tokens, s.document) for s in sents]
    # comments come back as they were, before their sentence
    conllu = "# sent_id = a\n# text = Paris\n1\tParis\tB-LOC\n\n"
    t = next(tag_sentences(model, read_sentences(io.BytesIO(conllu.encode()), fmt="indexed")))
    assert format_conll(t) == f"# sent_id = a\n# text = Paris\n1\tParis\tB-LOC\t{t.labels[0]}\n\n"
    t.nbest = [(t.labels, 0.9)]
    assert format_conll(t).startswith("# sent_id = a\n# text = Paris\n# 0 0.900000\n1\tParis")


def test_format_conll_for_text_input(model):
    out = list(tag_texts(model, TEXTS[:2]))
    text = "".join(format_conll(t) for t in out)
    blocks = text.split("\n\n")
    assert len(blocks) == 3 and blocks[-1] == ""
    for t, block in zip(out, blocks):
        assert block.split("\n") == [f"{w}\t{lab}" for w, lab in zip(t.tokens, t.labels)]


def test_format_inline(model):
    for t in tag_texts(model, TEXTS):
        line = format_inline(t)
        assert line.endswith("\n") and line.count("\n") == 1
        pairs = [p.rsplit("/", 1) for p in line[:-1].split(" ")] if t.tokens else []
        assert [p[0] for p in pairs] == t.tokens
        assert [p[1] for p in pairs] == t.labels


def check_jsonl(t: Tagged, line: str) -> dict:
    assert line.endswith("\n") and line.count("\n") == 1
    rec = json.loads(line)
    assert rec["tokens"] == t.tokens and rec["labels"] == t.labels
    text = t.text if t.text is not None else " ".join(t.tokens)
    for ent in rec["entities"]:
        assert ent["text"] == text[ent["start"]:ent["end"]]
        i, j = ent["token_start"], ent["token_end"]
        assert 0 <= i < j <= len(t.tokens)
        labels = t.labels[i:j]
        assert labels[0].endswith("-" + ent["label"])
        assert all(lab.endswith("-" + ent["label"]) for lab in labels)
        assert ent["prob"] == pytest.approx(float(min(t.probs[i:j])), abs=1e-4)
    # every token with an entity label is inside some entity
    covered = {k for e in rec["entities"] for k in range(e["token_start"], e["token_end"])}
    assert covered == {k for k, lab in enumerate(t.labels) if lab != "O"}
    return rec


def test_format_jsonl_for_text(model):
    records = [check_jsonl(t, format_jsonl(t)) for t in tag_texts(model, TEXTS)]
    assert [r["text"] for r in records] == TEXTS
    assert list(records[0]) == ["text", "tokens", "labels", "entities"]
    found = [e["text"] for r in records for e in r["entities"]]
    assert "John" in found or "John Smith" in found
    assert "Paris" in found


def test_format_jsonl_for_column_input(model):
    sents = column_sentences(COLUMNS_TAB, token_col=1)
    records = [check_jsonl(t, format_jsonl(t)) for t in tag_sentences(model, sents)]
    assert all("text" not in r for r in records)
    assert any(r["entities"] for r in records)


# -- Tagged.entities -----------------------------------------------------------------------------

def test_entities_on_text_with_offsets():
    text = "John  Smith visited New York ."
    toks = tokenize(text)
    t = Tagged([w for w, _, _ in toks], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
               np.array([0.9, 0.8, 0.99, 0.7, 0.6, 0.95], np.float32), text=text,
               offsets=[(s, e) for _, s, e in toks])
    assert t.entities() == [
        {"label": "PER", "start": 0, "end": 11, "text": "John  Smith", "token_start": 0,
         "token_end": 2, "prob": 0.8},
        {"label": "LOC", "start": 20, "end": 28, "text": "New York", "token_start": 3,
         "token_end": 5, "prob": 0.6},
    ]


def test_entities_without_text_use_tokens_joined_by_spaces():
    t = Tagged(["In", "New", "York", "City", "now"], ["O", "B-LOC", "I-LOC", "I-LOC", "B-MISC"],
               np.array([1.0, 0.5, 0.25, 0.75, 0.125]))
    assert t.entities() == [
        {"label": "LOC", "start": 3, "end": 16, "text": "New York City", "token_start": 1,
         "token_end": 4, "prob": 0.25},
        {"label": "MISC", "start": 17, "end": 20, "text": "now", "token_start": 4,
         "token_end": 5, "prob": 0.125},
    ]


def test_entities_iobes_and_ill_formed():
    t = Tagged(list("abcdefg"), ["S-X", "B-Y", "E-Y", "I-Z", "I-Z", "O", "I-X"],
               np.ones(7))
    assert [(e["label"], e["token_start"], e["token_end"], e["text"]) for e in t.entities()] == [
        ("X", 0, 1, "a"), ("Y", 1, 3, "b c"), ("Z", 3, 5, "d e"), ("X", 6, 7, "g")]


def test_entities_of_non_chunk_labels_and_empty():
    assert Tagged(["a", "b"], ["NN", "VB"], np.ones(2)).entities() == []
    assert Tagged([], [], np.ones(0)).entities() == []
    assert Tagged(["a", "b"], ["O", "O"], np.ones(2), text="a b",
                  offsets=[(0, 1), (2, 3)]).entities() == []


# -- streaming -----------------------------------------------------------------------------------

def test_tag_texts_streams_an_endless_input(model):
    consumed = 0

    def endless():
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            # fail rather than hang if the tagger tries to read everything
            assert consumed < 1000, "tag_texts read far ahead of its output"
            yield f"John visited Paris {i} times."

    first = list(itertools.islice(tag_texts(model, endless(), batch_size=2), 3))
    assert len(first) == 3
    assert [t.text for t in first] == [f"John visited Paris {i} times." for i in range(3)]
    assert consumed <= 4


def test_tag_sentences_streams_an_endless_input(model):
    consumed = 0

    def endless():
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            assert consumed < 1000, "tag_sentences read far ahead of its output"
            yield Sentence(["John", "in", "Paris", str(i)], None, [f"line {i}"] * 4, i)

    gen = tag_sentences(model, endless(), batch_size=3)
    first = next(gen)
    assert first.tokens[-1] == "0"
    assert consumed == 3


def test_first_result_before_the_input_ends(model):
    """Results of a batch come out before the next batch is read (an interactive pipe)."""
    pipe = iter(["John lives in Paris.", "Mary visited Berlin."])
    read = []

    def lines():
        for line in pipe:
            read.append(line)
            yield line
        raise AssertionError("read past the first line")

    gen = tag_texts(model, lines(), batch_size=1)
    t = next(gen)
    assert t.text == "John lives in Paris." and read == ["John lives in Paris."]
