"""Property-based fuzzing of the pure helpers under the CLI: tag schemes, metrics, word-form
features, the character inventory and constrained decoding.

Properties: converting labels to any scheme keeps their chunks and gives a sequence the scheme
allows; scoring a labelling against itself is perfect, and the entity F1 agrees with seqeval's
(conlleval mode) on IOB2 labels; every feature maps any token to a value the feature set can
index; a spelling starts and ends with the markers and indexes the inventory; decoding always
returns a sequence the scheme allows, whatever the scores (NaN and infinities included).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import fuzz_harness as H
from seqtag.chars import BOW, EOW, MAX_HALF, CharVocab
from seqtag.decoding import decode_batch, transition_mask
from seqtag.features import FEATURES, FeatureSet
from seqtag.metrics import evaluate
from seqtag.schemes import allowed_end, allowed_transitions, convert, spans

_LABELS = st.sampled_from(["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "I-Y", "E-Y", "S-Y", "L-X",
                           "U-Y", "NN", "B", "I", "B-X-Z", "O"])
_TOKENS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def valid(labels: list[str], scheme: str) -> bool:
    names = sorted(set(labels))
    start, trans = allowed_transitions(names, scheme)
    end = allowed_end(names, scheme)
    ids = [names.index(lab) for lab in labels]
    if not ids:
        return True
    return bool(start[ids[0]] and end[ids[-1]] and all(trans[a, b] for a, b in zip(ids, ids[1:])))


@settings(max_examples=H.budget(1500, 60))
@given(st.lists(_LABELS, max_size=20), st.sampled_from(["IOB1", "IOB2", "IOBES"]))
def test_convert_keeps_chunks_and_is_valid(labels, scheme):
    with H.observe("schemes: convert") as box:
        out = convert(labels, scheme)
        assert len(out) == len(labels)
        assert spans(out) == spans(labels)
        assert valid(out, scheme), (labels, out)
        box["outcome"] = "correct"


_IOB2 = st.sampled_from(["O", "B-X", "I-X", "B-Y", "I-Y", "O"])


@settings(max_examples=H.budget(1000, 40))
@given(st.lists(st.lists(_IOB2, min_size=1, max_size=12), min_size=1, max_size=5), st.data())
def test_metrics_perfect_on_itself_and_agree_with_seqeval(gold, data):
    from seqeval.metrics import f1_score

    pred = [data.draw(st.lists(_IOB2, min_size=len(g), max_size=len(g))) for g in gold]
    with H.observe("metrics: evaluate") as box:
        same = evaluate(gold, gold)
        assert same.accuracy == 1.0
        if same.gold:
            assert same.precision == same.recall == same.f1 == 1.0
        scores = evaluate(gold, pred)
        assert abs(scores.f1 - f1_score(gold, pred)) < 1e-9
        box["outcome"] = "correct"


@settings(max_examples=H.budget(1000, 40))
@given(st.lists(_TOKENS, min_size=1, max_size=20), _TOKENS, st.integers(1, 3))
def test_features_index_any_token(tokens, other, min_count):
    names = list(FEATURES)
    with H.observe("features: values and indices") as box:
        fs = FeatureSet.build(tokens, names, min_count=min_count)
        for tok in tokens + [other]:
            for name in names:
                assert isinstance(FEATURES[name](tok), str)
            ids = fs.ids(tok)
            assert all(0 <= i < size for i, size in zip(ids, fs.sizes))
        again = FeatureSet(fs.names, fs.values)
        assert [again.ids(t) for t in tokens] == [fs.ids(t) for t in tokens]
        box["outcome"] = "correct"


@settings(max_examples=H.budget(1000, 40))
@given(st.lists(_TOKENS, max_size=20), _TOKENS, st.integers(1, 5))
def test_spellings_index_the_inventory(tokens, other, width):
    with H.observe("chars: spellings") as box:
        cv = CharVocab.build(tokens)
        assert CharVocab.from_text(cv.to_text()).alphabet == cv.alphabet
        for tok in tokens + [other]:
            ids = cv.spell(tok, width)
            n = min(len(tok), 2 * MAX_HALF)
            assert ids[0] == BOW and ids[n + 1] == EOW and len(ids) == max(width, n + 2)
            assert all(0 <= i < len(cv) for i in ids)
        box["outcome"] = "correct"


_SCORES = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-30, 30, width=32)


@settings(max_examples=H.budget(1000, 40), deadline=None)
@given(st.lists(st.sampled_from(["B-X", "I-X", "E-X", "S-X", "B-Y", "I-Y", "NN"]), min_size=0,
                max_size=6, unique=True).map(lambda ls: ["O"] + ls),
       st.sampled_from(["IOB1", "IOB2", "IOBES", "none"]),
       st.lists(st.integers(0, 8), min_size=1, max_size=4), st.data())
def test_decoding_is_always_valid(names, scheme, lengths, data):
    L, N = len(names), sum(lengths)
    E = np.array(data.draw(st.lists(_SCORES, min_size=N * L, max_size=N * L)),
                 dtype=np.float32).reshape(N, L)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    start, trans, end = transition_mask(names, scheme)
    with H.observe("decoding: constrained Viterbi") as box:
        best = decode_batch(E, offsets, trans, start, end)
        assert best.shape == (N,) and ((0 <= best) & (best < L)).all()
        for i in range(len(lengths)):
            path = [names[k] for k in best[offsets[i]:offsets[i + 1]]]
            assert scheme == "none" or valid(path, scheme), (path, scheme)
        box["outcome"] = "correct"
