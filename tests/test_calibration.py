"""Tests for seqtag.calibration: the ECE against a plain loop, the three calibrations on hand-made
predictions, temperature scaling against a model whose output weights are divided instead, the
fitted temperature of a model made overconfident on purpose, and eval/train in real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtag.calibration import (BINS, GRID, bin_of, calibration_of, ece, fit_temperature,
                                gold_nll, reliability)
from seqtag.config import TrainConfig
from seqtag.corpus import read_corpus
from seqtag.model import RNNTagger
from seqtag.training import Trainer

REPO = Path(__file__).resolve().parents[1]


def ece_loop(conf, correct, bins=BINS):
    """ECE as written in Guo et al. 2017, one bin at a time: bin m is ((m-1)/M, m/M]."""
    n, total = len(conf), 0.0
    for m in range(1, bins + 1):
        lo, hi = (m - 1) / bins, m / bins
        idx = [i for i, c in enumerate(conf) if (lo < c <= hi) or (m == 1 and c == 0)]
        if idx:
            acc = sum(correct[i] for i in idx) / len(idx)
            avg = sum(conf[i] for i in idx) / len(idx)
            total += len(idx) / n * abs(acc - avg)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ece_equals_the_loop(seed):
    rng = np.random.default_rng(seed)
    conf = rng.random(500)
    conf[:20] = np.arange(20) / 15 % 1        # on the bin edges
    conf[20] = 0.0
    correct = rng.random(500) < conf ** 2
    assert ece(conf, correct) == pytest.approx(ece_loop(list(conf), list(correct)), abs=1e-12)


def test_bins_are_right_closed():
    assert list(bin_of(np.array([0.0, 1 / 15, 1 / 15 + 1e-9, 0.5, 1.0]))) == [0, 0, 1, 7, 14]


def test_calibrated_and_overconfident_predictions():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 200_000)
    assert ece(conf, rng.random(len(conf)) < conf) < 0.005
    # Right only as often as a confidence 0.2 lower says.
    assert ece(conf, rng.random(len(conf)) < conf - 0.2) == pytest.approx(0.2, abs=0.01)
    table = reliability(conf, rng.random(len(conf)) < conf)
    assert sum(b["count"] for b in table) == len(conf) and table[0]["count"] == 0


def test_calibration_of_hand_made_predictions():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-ORG"]]
    token_probs = [np.array([0.9, 0.9, 1.0, 0.6]), np.array([0.4, 0.8])]
    entity_probs = [[0.85], [0.3, 0.7]]
    c = calibration_of(gold, pred, token_probs, entity_probs)
    conf = [0.9, 0.9, 1.0, 0.6, 0.4, 0.8]
    ok = [1, 1, 1, 0, 0, 1]
    assert c.token_ece == pytest.approx(ece_loop(conf, ok))
    # Non-O: every token but the third (gold O, predicted O).
    keep = [0, 1, 3, 4, 5]
    assert c.nono_tokens == 5
    assert c.nono_token_ece == pytest.approx(ece_loop([conf[i] for i in keep],
                                                      [ok[i] for i in keep]))
    # Entities: PER right (0.85), LOC wrong (0.3), ORG right (0.7).
    assert c.entities == 3 and c.gold_entities == 3
    assert c.entity_ece == pytest.approx(ece_loop([0.85, 0.3, 0.7], [1, 0, 1]))
    assert c.entity_recall_above_half == pytest.approx(2 / 3)
    assert calibration_of(gold, pred, token_probs).entity_recall_above_half is None


@pytest.fixture(scope="module")
def btc_dev(samples):
    return read_corpus(str(samples / "btc.dev"))[0][:150]


def _divided(model: RNNTagger, tau: float) -> RNNTagger:
    """The same model with its output scores divided by tau in the weights themselves."""
    params = dict(model.params)
    for k in ("Wya", "by", "trans", "start", "end"):
        if k in params:
            params[k] = (params[k] / np.float32(tau)).astype(np.float32)
    meta = {k: v for k, v in model.meta.items() if not k.startswith("temperature")}
    return RNNTagger(model.vocab, params, meta, features=model.features,
                     chars=model.chars).use_engine("numpy")


@pytest.mark.parametrize("tau", [0.5, 1.7])
def test_temperature_divides_the_scores_and_keeps_the_labels(bundled_model, btc_dev, tau):
    tokens = [s.tokens for s in btc_dev[:60]]
    model = RNNTagger(bundled_model.vocab, bundled_model.params, dict(bundled_model.meta),
                      features=bundled_model.features, chars=bundled_model.chars)
    model.use_engine("numpy")
    plain = model.predict(tokens)
    model.set_temperature(tau)
    assert model.predict(tokens) == plain
    reference = _divided(model, tau)
    assert reference.temperature == 1.0
    for p, q in zip(model.predict_proba(tokens), reference.predict_proba(tokens)):
        np.testing.assert_allclose(p, q, atol=2e-5)
    sent = tokens[3]
    labels = plain[3]
    np.testing.assert_allclose(model.span_probabilities(sent, labels),
                               reference.span_probabilities(sent, labels), atol=2e-5)
    assert [p for _, p in model.nbest(sent, 3)] == pytest.approx(
        [p for _, p in reference.nbest(sent, 3)], abs=2e-5)


def test_fit_finds_the_temperature_of_an_overconfident_model(bundled_model, btc_dev):
    tokens, gold = [s.tokens for s in btc_dev], [s.labels for s in btc_dev]
    model = _divided(bundled_model, 1.0)
    base = fit_temperature(model, tokens, gold)
    sure = _divided(bundled_model, 1 / 2.0)          # every score doubled
    fit = fit_temperature(sure, tokens, gold)
    assert fit["temperature"] == pytest.approx(2.0 * base["temperature"], rel=0.05)
    assert fit["nll_after"] < fit["nll_before"]
    assert fit["nll_after"] == pytest.approx(base["nll_after"], rel=0.01)
    # The fit is the grid's argmin of the gold log-loss.
    nll = gold_nll(sure, tokens, gold)
    assert GRID[int(np.argmin(nll))] == pytest.approx(fit["temperature"])
    assert sure.temperature == 1.0       # fitting does not change the model


def test_temperature_is_saved_and_checked(bundled_model, tmp_path):
    from seqtag.errors import SeqtagError
    from seqtag.modelfile import load_model, save_model

    model = RNNTagger(bundled_model.vocab, bundled_model.params, dict(bundled_model.meta),
                      features=bundled_model.features, chars=bundled_model.chars)
    model.set_temperature(1.3, {"temperature": 1.3})
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.temperature == 1.3 and loaded.network.output.temperature == 1.3
    model.meta["temperature"] = -1.0
    save_model(model, tmp_path / "bad.npz")
    with pytest.raises(SeqtagError, match="temperature"):
        load_model(tmp_path / "bad.npz")


def test_training_with_dev_fits_a_temperature(tiny):
    cfg = TrainConfig.textbook(epochs=3, hidden=8, seed=1, threads=1)
    trainer = Trainer(cfg).fit(tiny[:10], tiny[10:])
    meta = trainer.model_.meta
    assert meta["temperature"] in [round(t, 6) for t in GRID]
    assert meta["temperature_fit"]["nll_after"] <= meta["temperature_fit"]["nll_before"]
    without_dev = Trainer(cfg).fit(tiny[:10]).model_
    assert "temperature" not in without_dev.meta and without_dev.temperature == 1.0


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "seqtag", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO, **kw)


def test_eval_reports_calibration_and_plots(tmp_path, samples):
    gold = tmp_path / "gold.conll"
    gold.write_text("\n\n".join(
        (samples / "btc.test").read_text(encoding="utf-8").split("\n\n")[:80]) + "\n",
        encoding="utf-8")
    res = run("eval", str(gold), "--json", "--plot", str(tmp_path / "r.png"))
    assert res.returncode == 0, res.stderr
    cal = json.loads(res.stdout)["calibration"]
    assert cal["bins"] == 15 and cal["tokens"] == sum(b["count"] for b in
                                                     cal["reliability"]["token"])
    for key in ("token_ece", "nono_token_ece", "entity_ece", "entity_recall_above_half"):
        assert 0 <= cal[key] <= 100
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = run("eval", str(gold))
    assert text.returncode == 0 and "calibration (ECE, 15 bins" in text.stdout
    for args in (["--plot", str(tmp_path / "r.txt")], ["--tagged", "--plot",
                                                       str(tmp_path / "x.png")]):
        bad = run("eval", str(gold), *args)
        assert bad.returncode != 0 and bad.stderr.startswith("ERROR:"), bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
