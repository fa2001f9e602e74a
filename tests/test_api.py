"""The Python API exported from seqtag: train, Tagger (load, fit, tag, predict, score, save)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import seqtag
from seqtag.errors import SeqtagError

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TINY = SAMPLES / "tiny.tsv"
SMALL = dict(hidden=8, epochs=3, embed_dim=8, char_filters=4, char_dim=4, seed=2)


def test_train_then_save_load_tag_predict_score(tmp_path):
    tagger = seqtag.train(TINY, **SMALL)
    assert isinstance(tagger, seqtag.Tagger) and tagger.model_ is not None
    assert 1 <= tagger.best_epoch_ <= 3 and len(tagger.history_) >= 1
    assert "dev_accuracy" in tagger.history_[0]        # a held-out tenth chose the epoch
    [pairs] = tagger.tag(["Sam met Li in Rome ."])
    assert [tok for tok, _ in pairs] == ["Sam", "met", "Li", "in", "Rome", "."]
    assert all(lab in tagger.labels_ for _, lab in pairs)
    path = tmp_path / "m.npz"
    tagger.save(path)
    again = seqtag.Tagger.load(path)
    tokens = [["Sam", "met", "Li"], ["in", "Rome", "."]]
    assert again.predict(tokens) == tagger.predict(tokens)
    scores = again.score(TINY)
    assert set(scores) >= {"accuracy", "precision", "recall", "f1"}
    # score() gives `seqtag eval --json`'s numbers
    cli = subprocess.run([sys.executable, "-m", "seqtag", "eval", str(TINY), "-m", str(path),
                          "--json"], capture_output=True, text=True, timeout=300)
    import json
    got = json.loads(cli.stdout)
    # The calibration comes from probabilities, which the two engines give equal to 1e-4.
    cal_cli, cal_api = got.pop("calibration"), dict(scores).pop("calibration")
    assert got == {k: v for k, v in scores.items() if k != "calibration"}
    for key in ("token_ece", "nono_token_ece", "entity_ece"):
        assert cal_cli[key] == pytest.approx(cal_api[key], abs=0.02)


def test_fit_returns_self_and_takes_pairs():
    pairs = [(["Sam", "met", "Li"], ["B-PER", "O", "B-PER"]),
             (["Ann", "left", "."], ["B-PER", "O", "O"])] * 5
    tagger = seqtag.Tagger(**SMALL)
    assert tagger.fit(pairs, holdout=0) is tagger
    assert tagger.best_epoch_ == 3            # no dev: the last epoch is kept
    assert seqtag.Tagger(**SMALL).fit(pairs, dev=pairs[:2]).best_epoch_ >= 1
    with pytest.raises(SeqtagError, match="2 tokens but 1 labels"):
        seqtag.Tagger(**SMALL).fit([(["a", "b"], ["O"])])


def test_unfitted_and_bad_options_say_so():
    with pytest.raises(ValueError, match="not fitted"):
        seqtag.Tagger().predict([["a"]])
    with pytest.raises(SeqtagError, match="--cell"):
        seqtag.Tagger(cell="transformer").fit([(["a"], ["O"])] * 3)


def test_the_bundled_model_without_a_path():
    [pairs] = seqtag.Tagger.load().tag(["Sam Li and Tom date on Tuesday."])
    assert pairs[:2] == [("Sam", "B-PER"), ("Li", "I-PER")]


def test_importing_seqtag_imports_no_numpy():
    code = "import sys, seqtag; print('numpy' in sys.modules, seqtag.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert out == ["False", seqtag.__version__]


def test_train_with_a_time_budget_stops_early_with_a_usable_tagger(tmp_path):
    # The budget counts from fit's start: a millisecond is spent by the first epoch, which
    # always runs, so the run stops there instead of training 500.
    tagger = seqtag.train(TINY, dev=TINY, **{**SMALL, "epochs": 500, "patience": 0},
                          time_budget=0.001)
    assert len(tagger.history_) == 1 and tagger.best_epoch_ == 1
    tokens = [t for t, _ in tagger.tag(["Sam Li and Tom date on Tuesday."])[0]]
    assert tokens == ["Sam", "Li", "and", "Tom", "date", "on", "Tuesday", "."]
    tagger.save(tmp_path / "budget.npz")
    again = seqtag.Tagger.load(tmp_path / "budget.npz")
    assert "time_budget" not in again.model_.meta["hyperparameters"]
