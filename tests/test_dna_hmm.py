"""bench/dna_hmm.py: the seeded generator, its posterior decoding against brute-force
enumeration, and the character-level model learning its task above the context-free rule."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def dna():
    spec = importlib.util.spec_from_file_location("bench_dna_hmm", BENCH / "dna_hmm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_generator_is_seeded(dna):
    hmm = dna.HMM()
    x1, s1 = hmm.sample(5, 300, seed=7)
    x2, s2 = hmm.sample(5, 300, seed=7)
    x3, _ = hmm.sample(5, 300, seed=8)
    assert np.array_equal(x1, x2) and np.array_equal(s1, s2)
    assert not np.array_equal(x1, x3)
    assert set(np.unique(x1)) <= {0, 1, 2, 3} and set(np.unique(s1)) <= {0, 1}


def test_the_generator_follows_its_parameters(dna):
    hmm = dna.HMM(island=50, background=100)
    x, s = hmm.sample(200, 500, seed=1)
    assert abs(s.mean() - 1 / 3) < 0.03                      # 50 / (50 + 100)
    runs = np.diff(s, axis=1) != 0
    assert abs(runs.sum() / s.size - 2 / 150) < 0.002       # a switch every 75 nt
    for state, table in ((0, dna.MINUS), (1, dna.PLUS)):
        both = (s[:, 1:] == state) & (s[:, :-1] == state)
        counts = np.zeros((4, 4))
        np.add.at(counts, (x[:, :-1][both], x[:, 1:][both]), 1)
        freq = counts / counts.sum(axis=1, keepdims=True)
        assert np.abs(freq - table / table.sum(axis=1, keepdims=True)).max() < 0.02


def test_posterior_decoding_matches_brute_force(dna):
    hmm = dna.HMM(island=4, background=6)          # short runs: every path matters
    x, _ = hmm.sample(3, 8, seed=3)
    post = hmm.posterior(x)
    for r in range(3):
        marg = np.zeros((8, 2))
        for path in itertools.product((0, 1), repeat=8):
            p = hmm.joint(x[r], np.array(path))
            marg[np.arange(8), path] += p
        np.testing.assert_allclose(post[r], marg / marg.sum(axis=1, keepdims=True), rtol=1e-9)


def test_context_free_rule_is_the_best_single_nucleotide_rule(dna):
    x = np.array([[0, 0, 1, 1, 2, 3]])
    s = np.array([[0, 1, 1, 1, 0, 0]])
    # A: 1 of 2 either way; C: 2 of 2; G: 1; T: 1
    assert dna.context_free_accuracy(x, s) == pytest.approx(5 / 6)


def test_the_char_model_learns_the_hmm_above_the_context_free_rule(dna):
    import seqtag

    hmm = dna.HMM(island=30, background=60)
    train_x, train_s = hmm.sample(60, 200, seed=1)
    test_x, test_s = hmm.sample(20, 200, seed=2)
    tagger = seqtag.Tagger(seed=1, threads=1, epochs=6, engine="numba").fit(
        dna.as_records(train_x, train_s), holdout=0)
    assert tagger.model_.meta["level"] == "char"
    predicted = tagger.predict([seq for seq, _ in dna.as_records(test_x, test_s)])
    gold = [[dna.LABELS[k] for k in row] for row in test_s]
    acc = np.mean([p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)])
    free = dna.context_free_accuracy(test_x, test_s)
    bayes = dna.bayes_accuracy(hmm, test_x, test_s)
    assert bayes > free + 0.05
    assert acc > free + 0.03, (acc, free, bayes)
