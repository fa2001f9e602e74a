"""--ensemble N: N models trained apart (seeds seed, seed+1, ...) merged into one network that
scores with the mean of their emissions (seqtag.ensemble), against the members run on their own."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from seqtag.corpus import Sentence
from seqtag.ensemble import merge
from seqtag.model import RNNTagger
from seqtag.training import Trainer
from seqtag.config import TrainConfig
from seqtag.errors import SeqtagError

SEQTAG = [sys.executable, "-m", "seqtag"]


def _proteins(n: int, seed: int) -> list[Sentence]:
    """Residues whose label depends on the residue and its left neighbour (a window task)."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        s = [r.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(r.randint(8, 30))]
        labels = ["h" if s[max(0, i - 1)] in "ACDEFG" else "e" if c in "KLMN" else "_"
                  for i, c in enumerate(s)]
        out.append(Sentence(s, labels, [], len(out) + 1))
    return out


TRAIN, DEV = _proteins(80, 1), _proteins(20, 2)


def _member(seed: int, **options) -> RNNTagger:
    cfg = TrainConfig(seed=seed, epochs=3, hidden=8, embed_dim=6, window=2, threads=1,
                      ensemble=1, **options)
    return Trainer(cfg).fit(TRAIN, DEV).model_


@pytest.mark.parametrize("cell,bidirectional,crf", [
    ("gru", True, True), ("lstm", True, False), ("rnn", False, True), ("lstm", False, False)])
def test_merged_network_scores_the_members_mean(cell, bidirectional, crf):
    members = [_member(s, cell=cell, bidirectional=bidirectional, crf=crf) for s in (1, 2, 3)]
    merged = merge(members)
    assert merged.architecture.hidden == 3 * 8 and merged.architecture.embed_dim == 3 * 6
    tokens = [s.tokens for s in DEV]
    mean = np.mean([m.emissions(tokens)[0] for m in members], axis=0)
    E = merged.emissions(tokens)[0]
    assert np.abs(E - mean).max() < 1e-5 * (1 + np.abs(mean).max())
    for name in ("trans", "start", "end") if crf else ():
        np.testing.assert_allclose(merged.params[name],
                                   np.mean([m.params[name] for m in members], axis=0), atol=1e-7)
    # the members differ (else the mean proves nothing)
    assert np.abs(members[0].emissions(tokens)[0] - mean).max() > 1e-3


def test_ensemble_run_merges_the_seeded_runs(tmp_path):
    cfg = TrainConfig(seed=4, epochs=3, hidden=8, embed_dim=6, window=2, threads=1,
                      cell="gru", ensemble=2)
    trainer = Trainer(cfg).fit(TRAIN, DEV)
    model = trainer.model_
    assert [m["seed"] for m in model.meta["ensemble"]] == [4, 5]
    assert model.meta["hyperparameters"]["ensemble"] == 2
    assert model.meta["hyperparameters"]["hidden"] == 8 and model.architecture.hidden == 16
    # the members are the runs of their seeds, bit for bit
    alone = [_member(s, cell="gru") for s in (4, 5)]
    tokens = [s.tokens for s in DEV]
    np.testing.assert_allclose(model.emissions(tokens)[0], merge(alone).emissions(tokens)[0],
                               rtol=0, atol=1e-6)
    # an ordinary model file: saved and loaded, the same labels
    path = tmp_path / "ens.npz"
    model.save(path)
    assert RNNTagger.load(path).predict(tokens) == model.predict(tokens)
    assert "ensemble" not in (RNNTagger.load(path).meta.get("requires") or [])


def test_cli_ensemble_trains_and_inspect_shows_it(tmp_path):
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    for path, sents in ((train, TRAIN[:30]), (dev, DEV[:8])):
        path.write_text("".join("".join(f"{t}\t{l}\n" for t, l in zip(s.tokens, s.labels))
                                + "\n" for s in sents))
    model = tmp_path / "m.npz"
    run = subprocess.run(SEQTAG + ["train", str(train), "--dev", str(dev), "--ensemble", "2",
                                   "--epochs", "2", "--hidden", "8", "--embed-dim", "6",
                                   "--threads", "1", "-o", str(model)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ensemble member 2 of 2" in run.stderr and "2 ensemble members merged" in run.stderr
    assert not (tmp_path / "m.ckpt.npz").exists()
    shown = subprocess.run(SEQTAG + ["inspect", str(model)], capture_output=True, text=True)
    assert "ensemble: 2 members merged" in shown.stdout and "hidden=16" in shown.stdout
    # --resume continues one run: refused with one ERROR line
    out = subprocess.run(SEQTAG + ["train", str(train), "--ensemble", "2", "--resume",
                                   "--epochs", "1", "-o", str(tmp_path / "m2.npz")],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "ERROR" in out.stderr and "--ensemble 2" in out.stderr
    assert "Traceback" not in out.stderr


def test_ensemble_of_a_character_cnn_is_refused_before_training():
    words = [Sentence(["Sam", "Li", "and", "Tom"], ["B-P", "I-P", "O", "B-P"], [], 1)]
    with pytest.raises(SeqtagError, match="character CNN"):
        Trainer(TrainConfig(ensemble=2, epochs=1, threads=1)).fit(words, words)
