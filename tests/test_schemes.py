import warnings

import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities

from seqtag.schemes import (allowed_end, allowed_transitions, convert, detect_scheme,
                            is_chunk_labels, spans, split_label)


@pytest.mark.parametrize("label, expected", [
    ("B-PER", ("B", "PER")), ("I-LOC", ("I", "LOC")), ("E-ORG", ("E", "ORG")),
    ("S-MISC", ("S", "MISC")), ("L-X", ("E", "X")), ("U-X", ("S", "X")), ("O", ("O", "")),
    ("B-DATE-TIME", ("B", "DATE-TIME")), ("B", ("B", "")), ("NN", ("", "NN")),
    ("-LRB-", ("", "-LRB-")), ("B_PER", ("", "B_PER")), ("IN", ("", "IN")), ("X-Y", ("", "X-Y")),
])
def test_split_label(label, expected):
    assert split_label(label) == expected


def _to_iob1(labels):
    return convert(labels, "IOB1")


def _to_iob2(labels):
    return convert(labels, "IOB2")


def _to_iobes(labels):
    return convert(labels, "IOBES")


def test_is_chunk_labels():
    assert is_chunk_labels(["O", "B-PER", "I-PER"])
    assert is_chunk_labels(["O", "O"])
    assert not is_chunk_labels(["NN", "VB", "DT"])
    assert not is_chunk_labels(["O", "B-PER", "NNP"])
    assert not is_chunk_labels([])


@pytest.mark.parametrize("labels, expected", [
    # IOB2
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    # IOB1: I- after O or another type starts a chunk; B- separates same-type neighbours
    (["I-PER", "I-PER", "O", "I-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["I-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
    (["I-LOC", "I-LOC", "B-LOC", "I-LOC", "O"], [("LOC", 0, 2), ("LOC", 2, 4)]),
    # type change inside what would be a chunk
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
    # IOBES
    (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "S-PER", "S-PER"],
     [("PER", 0, 1), ("LOC", 1, 4), ("PER", 5, 6), ("PER", 6, 7)]),
    (["B-PER", "E-PER", "E-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
    (["E-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
    (["B-PER", "I-PER"], [("PER", 0, 2)]),   # unclosed chunk still ends at the sequence end
    (["B-PER", "S-PER", "I-PER", "O"], [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3)]),
    # BILOU, bare tags, non-chunk labels read as O
    (["U-PER", "B-LOC", "L-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
    (["B", "I", "O", "I"], [("", 0, 2), ("", 3, 4)]),
    (["B-PER", "NNP", "I-PER"], [("PER", 0, 1), ("PER", 2, 3)]),
    ([], []), (["O", "O"], []),
])
def test_spans(labels, expected):
    assert spans(labels) == expected


@pytest.mark.parametrize("labels, expected", [
    (["O", "B-PER", "I-PER", "O", "B-LOC"], "IOB2"),
    (["O", "I-PER", "I-PER", "O", "I-LOC"], "IOB1"),
    (["I-LOC", "B-LOC", "O", "I-PER", "I-ORG"], "IOB1"),
    (["S-PER", "O", "B-LOC", "E-LOC"], "IOBES"),
    (["U-PER", "O"], "IOBES"),
    (["B-NP", "B-NP", "O"], "IOB2"),
    (["O", "O"], "IOB2"),
    (["NN", "VB", "DT"], "none"),
    (["O", "B-PER", "NNP"], "none"),
    ([], "none"),
])
def test_detect_scheme(labels, expected):
    assert detect_scheme(labels) == expected


def test_detect_scheme_per_sentence():
    # Flattened, the second sentence's I-PER would continue a chunk; on its own it starts one.
    sentences = [["B-PER", "I-PER"], ["I-PER", "I-PER"], ["I-LOC"]]
    assert detect_scheme(sentences) == "IOB1"
    assert detect_scheme([x for s in sentences for x in s]) == "IOB2"
    assert detect_scheme(x for x in [["O", "B-PER", "I-PER"], ["B-LOC"]]) == "IOB2"
    # One annotation slip does not outvote the rest of the corpus.
    assert detect_scheme([["O", "B-PER"]] * 5 + [["I-LOC"]]) == "IOB2"


def test_convert_examples():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "O", "NNP"]
    assert _to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "O", "NNP"]
    assert _to_iobes(iob1) == ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG", "O", "NNP"]
    assert _to_iob1(_to_iob2(iob1)) == iob1
    assert _to_iob2(["U-PER", "B-LOC", "I-LOC", "L-LOC"]) == ["B-PER", "B-LOC", "I-LOC", "I-LOC"]
    assert _to_iobes(["B", "I", "I", "O", "B"]) == ["B", "I", "E", "O", "S"]
    assert convert(["NN", "VB"], "none") == ["NN", "VB"]
    with pytest.raises(ValueError):
        convert(["O"], "BIO")


def _random_labels(rng, n, prefixes, types=("PER", "LOC", "MISC-X")):
    pool = ["O"] + [f"{p}-{t}" for p in prefixes for t in types]
    return [pool[i] for i in rng.integers(0, len(pool), size=n)]


def test_convert_round_trips():
    rng = np.random.default_rng(0)
    for _ in range(500):
        labels = _random_labels(rng, int(rng.integers(0, 15)), "BIES")
        iob2 = _to_iob2(labels)
        assert spans(iob2) == spans(labels)
        if spans(labels):
            assert detect_scheme(iob2) == "IOB2"
            assert detect_scheme(_to_iob1(labels)) == "IOB1"
            assert detect_scheme(_to_iobes(labels)) == "IOBES"
        assert _to_iob2(_to_iobes(iob2)) == iob2
        assert _to_iob2(_to_iob1(iob2)) == iob2
        assert _to_iobes(_to_iob2(_to_iobes(labels))) == _to_iobes(labels)
        assert _to_iob1(_to_iob1(labels)) == _to_iob1(labels)


def _valid(labels, scheme):
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    start, trans = allowed_transitions(names, scheme)
    end = allowed_end(names, scheme)
    ids = [index[x] for x in labels]
    return (not ids or (start[ids[0]] and end[ids[-1]])) and all(
        trans[a, b] for a, b in zip(ids, ids[1:]))


def test_allowed_transitions_iob2():
    names = ["O", "B-A", "I-A", "B-B", "I-B"]
    start, trans = allowed_transitions(names, "IOB2")
    assert start.tolist() == [True, True, False, True, False]
    assert trans.dtype == bool and trans.shape == (5, 5)
    # column I-A: only after B-A or I-A
    assert trans[:, 2].tolist() == [False, True, True, False, False]
    assert trans[:, [0, 1, 3]].all()
    assert allowed_end(names, "IOB2").all()


def test_allowed_transitions_iob1():
    names = ["O", "B-A", "I-A", "I-B"]
    start, trans = allowed_transitions(names, "IOB1")
    assert start.tolist() == [True, False, True, True]
    assert trans[:, 1].tolist() == [False, True, True, False]   # B-A only after an A chunk
    assert trans[:, [0, 2, 3]].all()


def test_allowed_transitions_iobes():
    names = ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "E-B"]
    start, trans = allowed_transitions(names, "IOBES")
    assert start.tolist() == [True, True, False, False, True, True, False]
    assert trans[1].tolist() == [False, False, True, True, False, False, False]   # after B-A
    assert trans[2].tolist() == [False, False, True, True, False, False, False]   # after I-A
    for row in (0, 3, 4, 6):   # after O, E-A, S-A, E-B
        assert trans[row].tolist() == [True, True, False, False, True, True, False]
    assert allowed_end(names, "IOBES").tolist() == [True, False, False, True, True, False, True]


def test_allowed_transitions_none_and_errors():
    start, trans = allowed_transitions(["NN", "VB"], "none")
    assert start.all() and trans.all() and trans.shape == (2, 2)
    with pytest.raises(ValueError):
        allowed_transitions(["O"], "BILOU")


def test_allowed_transitions_accept_exactly_the_converted_sequences():
    rng = np.random.default_rng(1)
    for _ in range(300):
        labels = _random_labels(rng, int(rng.integers(1, 12)), "BIES", types=("A", "B"))
        for scheme in ("IOB1", "IOB2", "IOBES"):
            assert _valid(convert(labels, scheme), scheme)
        # A sequence in the scheme's own tags is valid exactly when conversion leaves it alone.
        for scheme, prefixes in (("IOB1", "BI"), ("IOB2", "BI"), ("IOBES", "BIES")):
            raw = _random_labels(rng, int(rng.integers(1, 8)), prefixes, types=("A", "B"))
            assert _valid(raw, scheme) == (convert(raw, scheme) == raw), (scheme, raw)


def test_spans_agree_with_seqeval_on_random_sequences():
    rng = np.random.default_rng(2003)
    mixes = ["BI", "I", "BIES", "IES", "BE", "S", "BIES"]
    warnings.simplefilter("ignore")
    for k in range(3000):
        prefixes = mixes[k % len(mixes)]
        labels = _random_labels(rng, int(rng.integers(0, 25)), prefixes)
        if k % 5 == 0:   # bare tags: seqeval names their type "_", conlleval and we ""
            labels = [lab.split("-")[0] if rng.random() < 0.5 else lab for lab in labels]
        expected = [(t if t != "_" else "", s, e + 1) for t, s, e in get_entities(labels)]
        assert spans(labels) == expected, labels


def test_spans_shortcut_for_o_runs_reads_as_conlleval():
    """A label outside the scheme (NN) reads as O but is parsed every time: with it in place of
    every O, spans takes no shortcut, and must find the same chunks."""
    # O-typed and non-chunk labels among the O runs: the labels a shortcut could misread
    rng = np.random.default_rng(7)
    pool = ["O", "O", "O", "O-PER", "NNP", "B", "I", "E-LOC", "S-PER", "B-PER", "I-PER",
            "I-LOC", "L-LOC", "U-PER"]
    for _ in range(3000):
        labels = [pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 20)))]
        parsed = ["NN" if label == "O" else label for label in labels]
        assert spans(labels) == spans(parsed), labels


def test_continues_names_the_labels_that_would_extend_an_entity():
    from seqtag.schemes import continues

    names = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "I-LOC", "B-LOC"]
    assert continues(names, "PER") == [2, 3]
    assert continues(names, "LOC") == [5]
    assert continues(names, "ORG") == []
