"""What to annotate next: unlabelled sentences ordered by how much the model is unsure of them.

Each sentence x of T tokens gets an uncertainty score (higher = annotate first):

  mnlp      -(1/T) log P(ŷ | x), ŷ the best valid label sequence: the maximum normalised
            log-probability of Shen et al. 2018 ("Deep active learning for NER"), least
            confidence per token, so that long sentences are not favoured for their length;
  entropy   (1/T) Σt H(P(y<t> | x)), the mean entropy of the token marginals;
  least     1 - P(ŷ | x), least confidence of the whole sequence (favours long sentences).

The default is mnlp (see the README for how the strategies were compared). Ranking streams its
input and keeps only the best ``top`` sentences (a heap), or every sentence when a token budget
is asked for; ties keep input order.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

STRATEGIES = ("mnlp", "entropy", "least")
DEFAULT_STRATEGY = "mnlp"


@dataclass
class Ranked:
    score: float
    index: int                 # position in the input, from 0
    tokens: list[str]
    labels: list[str]          # the model's labels, pre-filled for correction
    probs: np.ndarray          # each label's marginal
    item: object = None        # what the caller passed with the tokens (a Sentence, a text)


def _scores(model, token_lists: Sequence[Sequence[str]], strategy: str) -> list[tuple]:
    """(score, labels, probs) of each sentence of a batch."""
    results = model.analyse(token_lists, proba=True, nbest=0 if strategy == "entropy" else 1)
    out = []
    for tokens, r in zip(token_lists, results):
        labels = [model.labels[k] for k in r["labels"]]
        T = len(tokens)
        if strategy == "entropy":
            # every label's marginal, from the emissions analyse computed (no second pass)
            P = model.network.output.marginals(r["emissions"], np.array([0, T], np.int64))
            P = np.clip(P.astype(np.float64), 1e-12, 1.0)
            score = float(-(P * np.log(P)).sum() / T)
        else:
            p_best = r["nbest"][0][1] if r["nbest"] else 1.0
            if strategy == "mnlp":
                score = -math.log(max(p_best, 1e-300)) / T
            else:
                score = 1.0 - p_best
        out.append((score, labels, r["probs"]))
    return out


def score_sentences(model, items: Iterable[tuple[Sequence[str], object]],
                    strategy: str = DEFAULT_STRATEGY, batch_size: int = 256
                    ) -> Iterator[Ranked]:
    """A Ranked for each (tokens, item) of ``items``, in input order (empty sentences score 0:
    there is nothing to annotate)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (use {', '.join(STRATEGIES)})")
    index = 0
    batch: list[tuple] = []

    def flush():
        nonlocal index
        nonempty = [list(t) for t, _ in batch if len(t)]
        scored = iter(_scores(model, nonempty, strategy) if nonempty else [])
        for tokens, item in batch:
            if len(tokens):
                score, labels, probs = next(scored)
            else:
                score, labels, probs = 0.0, [], np.zeros(0, np.float32)
            yield Ranked(score, index, list(tokens), labels, probs, item)
            index += 1

    for pair in items:
        batch.append(pair)
        if len(batch) == batch_size:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def rank(model, items: Iterable[tuple[Sequence[str], object]], *, top: int | None = None,
         tokens: int | None = None, strategy: str = DEFAULT_STRATEGY,
         batch_size: int = 256) -> list[Ranked]:
    """The most uncertain sentences first: the ``top`` best, or as many whole sentences as fit
    in ``tokens`` tokens (the first that does not fit ends the list; at least one), or all."""
    scored = score_sentences(model, items, strategy, batch_size)
    key = lambda r: (-r.score, r.index)     # noqa: E731
    if top is not None and tokens is None:
        return sorted(heapq.nsmallest(top, scored, key=key), key=key)
    ordered = sorted(scored, key=key)
    if tokens is not None:
        out, used = [], 0
        for r in ordered:
            if out and used + len(r.tokens) > tokens:
                break
            out.append(r)
            used += len(r.tokens)
        ordered = out
    return ordered[:top] if top is not None else ordered
