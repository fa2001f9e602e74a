"""--refit: once dev has chosen the epoch count, the model is trained again on train + dev for
that many epochs (scikit-learn's refit), against the same run made by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np

from seqtag.config import TrainConfig
from seqtag.training import Trainer
from tests.test_ensemble import DEV, TRAIN

SEQTAG = [sys.executable, "-m", "seqtag"]


def _cfg(**options) -> TrainConfig:
    # residues: the character level, whose defaults fill the options not given here
    return TrainConfig(**{"seed": 3, "epochs": 6, "patience": 2, "hidden": 8, "embed_dim": 6,
                          "window": 2, "threads": 1, "ensemble": 1, "refit": False, **options})


def _by_hand(run: Trainer, seed: int, epochs: int):
    """What --refit should give: the configuration that ran, for ``epochs`` epochs without
    early stopping, on train + dev."""
    cfg = replace(run.config_, seed=seed, ensemble=1, refit=False, epochs=epochs, patience=0)
    return Trainer(cfg).fit(TRAIN + DEV, None).model_


def _same(a, b) -> bool:
    return a.params.keys() == b.params.keys() and all(
        np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_refit_is_the_chosen_epochs_trained_on_train_and_dev():
    events = []
    refit = Trainer(_cfg(refit=True), lambda e, i: events.append((e, i))).fit(TRAIN, DEV)
    early = Trainer(_cfg()).fit(TRAIN, DEV)
    assert refit.best_epoch_ == early.best_epoch_ >= 1
    assert _same(refit.model_, _by_hand(refit, 3, early.best_epoch_))
    assert not _same(refit.model_, early.model_)        # it did change the model
    meta = refit.model_.meta
    assert meta["refit"] == {"epochs": early.best_epoch_, "sentences": len(TRAIN) + len(DEV)}
    assert meta["hyperparameters"]["refit"] is True
    # the dev run's history and temperature: dev cannot score a model trained on it
    assert meta["history"] == early.model_.meta["history"]
    assert refit.model_.temperature == early.model_.temperature
    assert ("refit", {"epochs": early.best_epoch_, "sentences": len(TRAIN) + len(DEV)}) in events


def test_refit_members_of_an_ensemble_each_keep_their_own_count():
    run = Trainer(_cfg(refit=True, ensemble=2)).fit(TRAIN, DEV)
    members = run.model_.meta["ensemble"]
    assert [m["refit"]["epochs"] for m in members] == [m["best_epoch"] for m in members]
    assert [m["seed"] for m in members] == [3, 4]
    # the merged network is the merge of the refit members
    from seqtag.ensemble import merge
    tokens = [s.tokens for s in DEV]
    by_hand = merge([_by_hand(run, m["seed"], m["best_epoch"]) for m in members])
    np.testing.assert_array_equal(run.model_.emissions(tokens)[0], by_hand.emissions(tokens)[0])


def test_a_refit_past_the_time_budget_keeps_the_model_chosen_on_dev():
    events = []
    # the budget lets the dev run end (its first epoch always runs) but not a second run
    run = Trainer(_cfg(refit=True, epochs=1, time_budget=1e-9),
                  lambda e, i: events.append(e)).fit(TRAIN, DEV)
    early = Trainer(_cfg(epochs=1)).fit(TRAIN, DEV)
    assert "refit" not in run.model_.meta
    assert _same(run.model_, early.model_)


def test_cli_refit_says_so_and_inspect_shows_it(tmp_path):
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    for path, sents in ((train, TRAIN), (dev, DEV)):
        path.write_text("".join("".join(f"{t}\t{l}\n" for t, l in zip(s.tokens, s.labels))
                                + "\n" for s in sents))
    model = tmp_path / "m.npz"
    r = subprocess.run(SEQTAG + ["train", str(train), "--dev", str(dev), "-o", str(model),
                                 "--refit", "--epochs", "4", "--hidden", "8", "--embed-dim", "6",
                                 "--threads", "1", "--seed", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "--refit: training again on the training and dev sentences together " \
           f"({len(TRAIN) + len(DEV)})" in r.stderr
    out = subprocess.run(SEQTAG + ["inspect", str(model), "--json"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    # residues: the protein defaults, an ensemble of 3 whose members are each refit
    members = info["ensemble"]
    assert len(members) == 3 and info["refit"] is None
    assert [m["refit"]["epochs"] for m in members] == [m["best_epoch"] for m in members]
    text = subprocess.run(SEQTAG + ["inspect", str(model)], capture_output=True, text=True)
    assert text.stdout.count(f"(refit for ") == 3, text.stdout
