import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import (accuracy_score, classification_report, f1_score, precision_score,
                             recall_score)

from seqtag.metrics import Scores, TypeScore, evaluate, format_report, scores_to_dict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

GOLD = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-LOC", "I-LOC", "O"], ["O", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-LOC", "O", "O"], ["B-PER", "O"]]


def test_evaluate_hand_counted():
    s = evaluate(GOLD, PRED)
    # gold: PER 0-2, LOC 3-4 | LOC 0-2; pred: PER 0-2, ORG 3-4 | LOC 0-1 | PER 0-1
    assert (s.tokens, s.correct_tokens, s.gold, s.found, s.correct) == (10, 7, 3, 4, 1)
    assert s.accuracy == pytest.approx(0.7)
    assert (s.precision, s.recall, s.f1) == pytest.approx((1 / 4, 1 / 3, 2 / 7))
    assert list(s.per_type) == ["LOC", "ORG", "PER"]
    assert s.per_type["LOC"] == TypeScore(0.0, 0.0, 0.0, gold=2, found=1, correct=0)
    assert s.per_type["ORG"] == TypeScore(0.0, 0.0, 0.0, gold=0, found=1, correct=0)
    assert s.per_type["PER"] == TypeScore(0.5, 1.0, pytest.approx(2 / 3), gold=1, found=2,
                                          correct=1)
    assert s.chunked


def test_chunks_do_not_cross_sequences():
    s = evaluate([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]])
    assert (s.gold, s.found, s.correct) == (2, 2, 2)
    s = evaluate([["I-PER", "I-PER"]], [["I-PER", "B-PER"]])   # IOB1: B- splits the chunk
    assert (s.gold, s.found, s.correct, s.correct_tokens) == (1, 2, 0, 1)


def test_evaluate_length_mismatch():
    with pytest.raises(ValueError, match="sequence 1"):
        evaluate([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="number"):
        evaluate([["O"], ["O"]], [["O"]])


def test_format_report_layout():
    assert format_report(evaluate(GOLD, PRED)) == (
        "processed 10 tokens with 3 phrases; found: 4 phrases; correct: 1.\n"
        "accuracy:  70.00%; precision:  25.00%; recall:  33.33%; FB1:  28.57\n"
        "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        "              PER: precision:  50.00%; recall: 100.00%; FB1:  66.67  2")


def test_non_chunk_labels_report_accuracy_only():
    s = evaluate([["DT", "NN", "VBZ"]], [["DT", "NN", "NNS"]])
    assert not s.chunked and s.per_type == {} and (s.gold, s.found) == (0, 0)
    assert format_report(s) == "processed 3 tokens.\naccuracy:  66.67%"


def test_empty_input():
    s = evaluate([], [])
    assert (s.tokens, s.accuracy, s.f1) == (0, 0.0, 0.0)
    assert format_report(s) == "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0."


def test_scores_to_dict_is_json():
    d = scores_to_dict(evaluate(GOLD, PRED))
    back = json.loads(json.dumps(d))
    assert back["per_type"]["PER"]["found"] == 2 and back["chunked"] is True
    assert set(back) == set(Scores.__dataclass_fields__)


# --- agreement with seqeval on real corpora ----------------------------------------------------

def _read(path, sep, skip_docstart=False):
    """Label column (last) of a CoNLL-style file, one list per sentence."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line:
            if current:
                sentences.append(current)
            current = []
            continue
        cols = line.split(sep)
        if len(cols) < 2 or (skip_docstart and cols[0] == "-DOCSTART-"):
            continue   # BTC has one token broken across lines: a lone space, no tab
        current.append(cols[-1])
    if current:
        sentences.append(current)
    return sentences


def _corrupt(sentences, rate, seed):
    rng = np.random.default_rng(seed)
    names = sorted({x for s in sentences for x in s})
    out = []
    for s in sentences:
        flips = rng.random(len(s)) < rate
        picks = rng.integers(0, len(names), len(s))
        out.append([names[k] if f else x for x, f, k in zip(s, flips, picks)])
    return out


def _pct(x):
    return f"{100 * x:.2f}"


CORPORA = {
    "conll2003": ("conll2003/eng.testb", " ", True, {"PER": 1617, "LOC": 1668, "ORG": 1661,
                                                      "MISC": 702}),
    "btc": ("btc/btc.test", "\t", False, {"PER": 2650, "LOC": 636, "ORG": 1090}),
}


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_agrees_with_seqeval_on_real_data(corpus):
    rel, sep, docstart, counts = CORPORA[corpus]
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"{path} not available")
    gold = _read(path, sep, docstart)
    pred = _corrupt(gold, 0.10, seed=7)

    perfect = evaluate(gold, gold)
    assert {t: ts.gold for t, ts in perfect.per_type.items()} == counts
    assert perfect.f1 == 1.0 and perfect.accuracy == 1.0

    s = evaluate(gold, pred)
    assert s.chunked and 0 < s.correct < min(s.gold, s.found)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, pred, output_dict=True)
        overall = (precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred))
        accuracy = accuracy_score(gold, pred)

    assert _pct(s.accuracy) == _pct(accuracy)
    assert [_pct(x) for x in (s.precision, s.recall, s.f1)] == [_pct(x) for x in overall]
    micro = report.pop("micro avg")
    assert [_pct(x) for x in (s.precision, s.recall, s.f1)] == [
        _pct(micro[k]) for k in ("precision", "recall", "f1-score")]
    assert s.gold == micro["support"]
    types = {k: v for k, v in report.items() if not k.endswith(" avg")}
    assert list(s.per_type) == list(types)
    for name, ts in s.per_type.items():
        ref = types[name]
        assert [_pct(ts.precision), _pct(ts.recall), _pct(ts.f1)] == [
            _pct(ref["precision"]), _pct(ref["recall"]), _pct(ref["f1-score"])], name
        assert ts.gold == ref["support"]
