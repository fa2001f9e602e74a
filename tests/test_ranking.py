"""Tests for seqtag.ranking and `seqtag rank`: the scores against brute-force enumeration and
plain NumPy, the selection rules, and the command in a real process (its pre-filled labels are
the model's own: eval of its output with the same model scores 100%)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtag.ranking import rank, score_sentences

REPO = Path(__file__).resolve().parents[1]
SENTS = [["Sam", "Li", "and", "Tom", "date", "on", "Tuesday", "."],
         ["Corn", "Dog"], ["the", "the", "the"], ["Rumba", "Room", "in", "Paris"],
         ["I", "went", "home", "."], [], ["Apple", "sues", "Samsung"], ["ok"]]


def brute_force_best(model, tokens):
    """P of the best valid label sequence, over every sequence of labels (CRF)."""
    E = model.emissions([tokens])[0].astype(np.float64)
    p = {k: model.params[k].astype(np.float64) for k in ("trans", "start", "end")}
    m_start, m_trans, m_end = model.masks
    scores, valid = [], []
    for path in itertools.product(range(len(model.labels)), repeat=len(tokens)):
        s = p["start"][path[0]] + E[0, path[0]] + p["end"][path[-1]]
        ok = m_start[path[0]] == 0 and m_end[path[-1]] == 0
        for t in range(1, len(path)):
            s += p["trans"][path[t - 1], path[t]] + E[t, path[t]]
            ok = ok and m_trans[path[t - 1], path[t]] == 0
        scores.append(s)
        valid.append(ok)
    scores = np.array(scores)
    log_z = np.logaddexp.reduce(scores)
    return float(np.exp(scores[np.array(valid)].max() - log_z))


@pytest.mark.parametrize("tokens", [["Corn", "Dog"], ["Apple", "sues", "Samsung"]])
def test_mnlp_and_least_against_enumeration(bundled_model, tokens):
    p_best = brute_force_best(bundled_model, tokens)
    (r,) = score_sentences(bundled_model, [(tokens, None)], "mnlp")
    assert r.score == pytest.approx(-np.log(p_best) / len(tokens), rel=1e-4)
    (r,) = score_sentences(bundled_model, [(tokens, None)], "least")
    assert r.score == pytest.approx(1 - p_best, abs=1e-5)
    assert r.labels == bundled_model.predict([tokens])[0]


def test_entropy_is_the_mean_token_entropy(bundled_model):
    got = list(score_sentences(bundled_model, [(s, i) for i, s in enumerate(SENTS)], "entropy"))
    for r, s in zip(got, SENTS):
        if not s:
            assert r.score == 0 and r.labels == []
            continue
        P = bundled_model.predict_proba([s])[0].astype(np.float64)
        want = -(P * np.log(np.clip(P, 1e-12, 1))).sum(axis=1).mean()
        assert r.score == pytest.approx(want, abs=1e-5)
        assert r.item == SENTS.index(s) or SENTS[r.item] == s


@pytest.mark.parametrize("strategy", ["mnlp", "entropy", "least"])
def test_selection_rules(bundled_model, strategy):
    items = [(s, i) for i, s in enumerate(SENTS)]
    everything = rank(bundled_model, items, strategy=strategy, batch_size=3)
    scores = [r.score for r in everything]
    assert scores == sorted(scores, reverse=True) and len(everything) == len(SENTS)
    assert [r.index for r in rank(bundled_model, items, top=3, strategy=strategy,
                                  batch_size=2)] == [r.index for r in everything[:3]]
    budget = rank(bundled_model, items, tokens=10, strategy=strategy)
    assert sum(len(r.tokens) for r in budget) <= 10 or len(budget) == 1
    assert [r.index for r in budget] == [r.index for r in everything[:len(budget)]]
    # The order does not depend on the input order (scores are per sentence).
    shuffled = [items[i] for i in (3, 0, 7, 5, 1, 6, 2, 4)]
    assert [r.item for r in rank(bundled_model, shuffled, strategy=strategy)] == \
        [r.item for r in everything] or strategy == "least"   # ties at 0 keep input order


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "seqtag", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO, **kw)


def test_rank_command_writes_the_models_labels_to_correct(tmp_path):
    texts = tmp_path / "pool.txt"
    texts.write_text("\n".join(" ".join(s) for s in SENTS if s) + "\n", encoding="utf-8")
    res = run("rank", str(texts), "--top", "3")
    assert res.returncode == 0, res.stderr
    blocks = [b for b in res.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == 3
    out = tmp_path / "to-correct.conll"
    out.write_text(res.stdout, encoding="utf-8")
    scored = run("eval", str(out), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["accuracy"] == 1.0
    js = run("rank", "-f", "jsonl", "--by", "entropy", "--tokens", "6", "-", input=texts.read_text())
    rows = [json.loads(line) for line in js.stdout.splitlines()]
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert sum(len(r["tokens"]) for r in rows) <= 6 or len(rows) == 1
    bad = run("rank", str(texts), "--by", "random")
    assert bad.returncode != 0 and bad.stderr.startswith("ERROR:") and "Traceback" not in bad.stderr
