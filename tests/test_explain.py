"""Tests for seqtag.explain: the attributions against central differences of the target's
log-probability (float64, exact functions), the target probabilities against the model's own,
taking tokens away, and `seqtag explain` in a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtag.explain import Explainer
from seqtag.model import RNNTagger

REPO = Path(__file__).resolve().parents[1]
SENT = "Sam Li and Tom date on Tuesday .".split()


def _exact_model(bundled_model):
    params = {k: v.astype(np.float64) for k, v in bundled_model.params.items()}
    return RNNTagger(bundled_model.vocab, params, dict(bundled_model.meta),
                     features=bundled_model.features, chars=bundled_model.chars)


@pytest.fixture(scope="module")
def exact(bundled_model):
    """The bundled model in float64 with exact tanh and exp, one gradient (steps=1): differences
    then measure the gradient, not the rounding."""
    return Explainer(_exact_model(bundled_model), exact=True, steps=1)


def log_p(ex: Explainer, e, delta) -> float:
    E, _, _ = ex._forward(ex.model.encoder.encode(e.tokens), delta)
    return np.log(ex._target_grad(E, e.clamp)[0])


def baseline_input(ex: Explainer):
    _, X0, _ = ex._forward(ex.unk_row().reshape(1, -1))
    return X0[0].copy()


@pytest.mark.parametrize("target", [dict(entity=0), dict(entity=1), dict(token=4)])
def test_one_step_is_gradient_times_input_minus_baseline(exact, target):
    (e,) = exact.explain(SENT, **target)
    x0 = baseline_input(exact)
    ids = exact.model.encoder.encode(SENT)
    _, X, _ = exact._forward(ids)
    Ex = exact.model.params["Ex"]
    d = Ex.shape[0]
    h = 1e-5
    for t in range(len(SENT)):
        # The whole token: d/dα log P(x<t> + α (x<t> − x0)) = (x<t> − x0) · ∂log P/∂x<t>.
        delta = np.zeros_like(X)
        delta[t] = h * (X[t] - x0)
        num = (log_p(exact, e, delta) - log_p(exact, e, -delta)) / (2 * h)
        assert e.total[t] == pytest.approx(num, rel=1e-4, abs=1e-7), (t, target)
        # One part: the word's embedding column against the unknown word's.
        delta = np.zeros_like(X)
        delta[t, :d] = h * (Ex[:, ids[t, 0]] - Ex[:, 1])
        num = (log_p(exact, e, delta) - log_p(exact, e, -delta)) / (2 * h)
        assert e.attribution[t, 0] == pytest.approx(num, rel=1e-4, abs=1e-7), (t, target)


def test_integrated_gradients_are_complete(bundled_model):
    """The totals add up to log P(sentence) − log P(every token at its baseline)."""
    ex = Explainer(_exact_model(bundled_model), exact=True, steps=64)
    x0 = baseline_input(ex)
    for e in ex.explain(SENT) + ex.explain(SENT, token=4):
        _, X, _ = ex._forward(ex.model.encoder.encode(SENT))
        gap = np.log(e.prob) - log_p(ex, e, x0 - X)
        assert e.total.sum() == pytest.approx(gap, rel=0.02, abs=1e-3), e.target
    assert "integrated gradients" in e.method


def test_probabilities_are_the_models(bundled_model):
    ex = Explainer(bundled_model)
    found = ex.explain(SENT)
    labels = bundled_model.predict([SENT])[0]
    want = bundled_model.span_probabilities(SENT, labels)
    assert [e.prob for e in found] == pytest.approx(want, abs=1e-4)
    assert [e.target["text"] for e in found] == ["Sam Li", "Tom"]
    (li,) = ex.explain(SENT, token=1)
    assert li.target["label"] == "I-PER"
    assert li.prob == pytest.approx(float(bundled_model.predict_proba([SENT])[0][1].max()),
                                    abs=1e-4)
    # Equal tokens keep their own attributions (the network's shared rows are not used).
    twice = "Tom met Tom".split()
    (first, second) = ex.explain(twice)
    assert first.total[0] != pytest.approx(first.total[2])


def test_taking_tokens_away(bundled_model):
    ex = Explainer(bundled_model)
    e = ex.explain(SENT, entity=1)[0]
    assert ex.probability_without(e, []) == pytest.approx(e.prob, abs=1e-5)
    assert ex.probability_without(e, [0, 1, 2, 4, 5, 6, 7]) != pytest.approx(e.prob, abs=1e-3)
    row = ex.unk_row()
    assert row[0] == 1 and len(row) == bundled_model.encoder.n_columns


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "seqtag", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO, **kw)


def test_explain_command():
    res = run("explain", "Sam Li and Tom date on Tuesday.", "--token", "2", "-f", "jsonl")
    assert res.returncode == 0, res.stderr
    (row,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert row["target"]["text"] == "Li" and row["target"]["label"] == "I-PER"
    assert {r["token"] for r in row["attribution"]} <= set(SENT)
    for r in row["attribution"]:
        assert r["total"] == pytest.approx(sum(r["parts"].values()), abs=1e-5)
    text = run("explain", "Sam Li and Tom date on Tuesday.")
    assert text.returncode == 0 and "Sam Li  PER" in text.stdout and "Tom  PER" in text.stdout
    bad = run("explain", "Sam Li", "--entity", "3")
    assert bad.returncode != 0 and bad.stderr.startswith("ERROR:") and \
        len(bad.stderr.strip().splitlines()) == 1


def _document_model(**changes) -> RNNTagger:
    """A small model trained on 40 two-sentence documents (so with document context), with a
    character CNN; ``changes`` to its configuration."""
    from seqtag.config import TrainConfig
    from seqtag.corpus import Sentence
    from seqtag.training import Trainer

    words = ["Kor", "Bel", "Tam", "Vex"]
    sents = []
    for d in range(40):
        w = words[d % 4]
        sents += [Sentence([w, "went", "home", "."], ["B-PER", "O", "O", "O"], [], 0, document=d),
                  Sentence(["we", "saw", w, "."], ["O", "O", "B-PER", "O"], [], 0, document=d)]
    cfg = TrainConfig(**{**dict(hidden=8, embed_dim=8, char_filters=4, char_dim=3, epochs=3,
                                patience=0, seed=1, threads=1), **changes})
    return Trainer(cfg).fit(sents).model_


def test_a_model_with_document_context_explains_against_a_whole_baseline_row():
    """A model trained on documents has a document-code column before the word type: the
    baseline row and the rows of taken-away tokens must have it too (they had one column too
    few, so the word type was read past the row)."""
    model = _document_model()
    assert model.architecture.document and model.chars is not None
    ex = Explainer(model, steps=4)
    assert len(ex.unk_row()) == model.encoder.n_columns
    tokens = ["Kor", "went", "home", "."]
    (e,) = ex.explain(tokens, token=0)
    assert np.all(np.isfinite(e.attribution))
    assert ex.probability_without(e, []) == pytest.approx(e.prob, abs=1e-5)
    assert 0.0 <= ex.probability_without(e, [1, 2, 3]) <= 1.0


def test_window_and_document_parts_keep_the_totals_complete():
    """With a window and document context the neighbours' columns are a part of their own
    ("window", and "document" for the code): the parts still add up to log P(x) − log P(x0)."""
    model = _document_model(window=1)
    assert model.architecture.window == 1 and model.architecture.document
    ex = Explainer(_exact_model(model), exact=True, steps=64)
    assert ex.parts[-3:] == ["window", "document", "spelling"]
    tokens = ["we", "saw", "Kor", "."]
    x0 = baseline_input(ex)
    (e,) = ex.explain(tokens, token=2)
    _, X, _ = ex._forward(ex.model.encoder.encode(tokens))
    gap = np.log(e.prob) - log_p(ex, e, x0 - X)
    assert e.total.sum() == pytest.approx(gap, rel=0.02, abs=1e-3)
    assert np.any(e.attribution[:, ex.parts.index("window")] != 0)
    np.testing.assert_array_equal(e.attribution[:, ex.parts.index("document")], 0)
