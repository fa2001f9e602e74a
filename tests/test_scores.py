"""Sequence and entity probabilities (tag --scores, --nbest), checked by brute force."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from seqtag.build import init_params
from seqtag.model import RNNTagger
from seqtag.schemes import allowed_end, allowed_transitions, spans
from seqtag.vocab import Vocabulary

LABELS = ["O", "B-PER", "I-PER", "B-LOC"]
WORDS = ["<pad>", "<unk>", "Sam", "Li", "in", "Paris"]


def make_model(crf: bool, seed: int) -> RNNTagger:
    rng = np.random.default_rng(seed)
    vocab = Vocabulary(WORDS, [0] * len(WORDS), LABELS, [1] * len(LABELS))
    params = init_params(len(WORDS), len(LABELS), 6, rng, bidirectional=True, crf=crf)
    for k in params:   # larger weights than the initialisation, so that probabilities differ
        params[k] = (params[k] * 3 + (rng.normal(0, 0.5, params[k].shape) if k in
                                      ("trans", "start", "end") else 0)).astype(np.float32)
        if k.startswith("Wax"):
            params[k] = np.asfortranarray(params[k])
    return RNNTagger(vocab, params, {"label_scheme": "IOB2"})


def brute_force(model: RNNTagger, tokens):
    """Every valid labelling with its probability under the model, normalised over ALL paths."""
    E, offsets = model.emissions([tokens])
    U, trans, start, end = model.network.output.chain(E, offsets)
    ok_start, ok_trans = allowed_transitions(LABELS, "IOB2")
    ok_end = allowed_end(LABELS, "IOB2")
    scored = []
    for path in itertools.product(range(len(LABELS)), repeat=len(tokens)):
        s = start[path[0]] + end[path[-1]] + sum(U[t, y] for t, y in enumerate(path)) + \
            sum(trans[a, b] for a, b in zip(path, path[1:]))
        valid = ok_start[path[0]] and ok_end[path[-1]] and \
            all(ok_trans[a, b] for a, b in zip(path, path[1:]))
        scored.append((path, float(s), valid))
    log_z = np.logaddexp.reduce([s for _, s, _ in scored])
    return [([LABELS[i] for i in p], float(np.exp(s - log_z))) for p, s, v in scored if v]


@pytest.mark.parametrize("crf", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nbest_equals_brute_force(crf, seed):
    model = make_model(crf, seed)
    tokens = ["Sam", "Li", "in", "Paris"]
    expected = sorted(brute_force(model, tokens), key=lambda lp: -lp[1])[:5]
    got = model.nbest(tokens, 5)
    assert [lab for lab, _ in got] == [lab for lab, _ in expected]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in expected], rtol=1e-4)
    # The first of the list is what decoding chooses.
    assert got[0][0] == model.predict([tokens])[0]


@pytest.mark.parametrize("crf", [False, True])
def test_span_probabilities_equal_brute_force(crf):
    model = make_model(crf, 3)
    tokens = ["Sam", "Li", "in", "Paris", "Sam"]
    decoded = model.predict([tokens])[0]
    found = spans(decoded)
    assert found, "the random model should find some entity"
    probs = model.span_probabilities(tokens, decoded)
    # Brute force over all paths (valid or not, as the model's own probability does).
    U, trans, start, end = model.network.output.chain(*model.emissions([tokens]))
    all_paths = []
    for path in itertools.product(range(len(LABELS)), repeat=len(tokens)):
        s = start[path[0]] + end[path[-1]] + sum(U[t, y] for t, y in enumerate(path)) + \
            sum(trans[a, b] for a, b in zip(path, path[1:]))
        all_paths.append(([LABELS[i] for i in path], s))
    log_z = np.logaddexp.reduce([s for _, s in all_paths])
    for (type_, i, j), p in zip(found, probs):
        mass = [s for labels, s in all_paths
                if labels[i:j] == decoded[i:j]
                and not (j < len(tokens) and labels[j] == f"I-{type_}")]
        assert p == pytest.approx(float(np.exp(np.logaddexp.reduce(mass) - log_z)), rel=1e-4)


def test_cli_scores_and_nbest(tmp_path):
    model = make_model(True, 4)
    path = tmp_path / "m.npz"
    model.meta.update({"architecture": {"bidirectional": True, "crf": True}})
    model.save(path)
    run = lambda *a: subprocess.run([sys.executable, "-m", "seqtag", "tag", "-m", str(path), *a],  # noqa: E731
                                    capture_output=True, text=True, check=True, timeout=120).stdout
    rec = json.loads(run("--scores", "-f", "jsonl", "Sam Li in Paris"))
    assert len(rec["probs"]) == 4 and all(0 < p <= 1 for p in rec["probs"])
    nb = json.loads(run("--nbest", "3", "-f", "jsonl", "Sam Li in Paris"))["nbest"]
    assert len(nb) == 3 and nb[0]["labels"] == rec["labels"]
    assert nb[0]["prob"] >= nb[1]["prob"] >= nb[2]["prob"]
    conll = run("--nbest", "2", "Sam Li in Paris")
    assert conll.startswith("# 0 ") and "\n# 1 " in conll
    cols = run("--scores", "Sam Li in Paris").splitlines()[0].split("\t")
    assert len(cols) == 3 and float(cols[2]) == pytest.approx(rec["probs"][0], abs=1e-4)
