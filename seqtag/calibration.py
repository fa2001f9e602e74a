"""Calibration: whether a probability of 0.9 is right 90% of the time, and a temperature that
makes it closer.

Expected calibration error (Naeini et al. 2015; Guo et al. 2017) over M equal-width bins of
confidence, bin m holding the predictions with confidence in ((m-1)/M, m/M] (the first bin also
takes 0):

    ECE = Σ_m |B_m| / n · | acc(B_m) − conf(B_m) |

with acc the fraction correct and conf the mean confidence of the bin. seqtag reports three:
  token      every token: confidence = the marginal of its predicted label, correct = it equals
             the gold label;
  non-O      the same over tokens whose gold or predicted label is not O (on NER most tokens
             are O and sure, which makes the token ECE small whatever happens on entities);
  entity     every predicted entity: confidence = its exact probability (CRF: the span and
             type and nothing more, seqtag.decoding.span_probabilities), correct = the gold has
             the same span and type. Beside it, the recall of entities predicted with
             probability above 0.5, so that what is missed altogether is seen.

Temperature scaling (Guo et al. 2017): every score of the output layer is divided by τ before
probabilities are computed (seqtag.layers.output); the best labels stay the same. ``fit_temperature``
chooses τ on a labelled set (training's dev set) by the negative log-likelihood of the gold
labels under the token marginals, a proper scoring rule, on a fixed grid (deterministic, and
the likelihood is smooth in τ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from seqtag.schemes import spans

BINS = 15
# τ from 1/4 to 4 in steps of 2^(1/16) (about 4%): finer than the ECE moves.
GRID = tuple(float(2.0 ** (k / 16)) for k in range(-32, 33))


def bin_of(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The bin of each confidence: m-1 for (m-1)/M < c <= m/M, and 0 for c = 0."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    return np.clip(np.ceil(c * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability(confidence, correct, bins: int = BINS) -> list[dict]:
    """Per bin: its bounds, count, mean confidence and accuracy (None when empty)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    which = bin_of(conf, bins)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    ok_sum = np.bincount(which, weights=ok, minlength=bins)
    out = []
    for m in range(bins):
        n = int(count[m])
        out.append({"lo": m / bins, "hi": (m + 1) / bins, "count": n,
                    "confidence": float(conf_sum[m] / n) if n else None,
                    "accuracy": float(ok_sum[m] / n) if n else None})
    return out


def ece(confidence, correct, bins: int = BINS) -> float:
    """Expected calibration error, as a fraction (0 when there is nothing to score)."""
    table = reliability(confidence, correct, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"])
                     for b in table if b["count"]) / n)


@dataclass
class Calibration:
    """The three ECEs (fractions), what they were computed over, and their reliability
    tables."""

    token_ece: float
    nono_token_ece: float
    entity_ece: float
    entity_recall_above_half: float | None
    tokens: int
    nono_tokens: int
    entities: int
    gold_entities: int
    temperature: float = 1.0
    tables: dict = field(default_factory=dict, repr=False)

    def as_json(self) -> dict:
        """What `seqtag eval --json` prints under "calibration": ECEs and recall in percent,
        the counts, and the reliability tables."""
        pct = lambda x: None if x is None else round(100 * x, 2)     # noqa: E731
        return {"bins": len(self.tables.get("token", [])) or BINS,
                "temperature": self.temperature, "token_ece": pct(self.token_ece),
                "nono_token_ece": pct(self.nono_token_ece),
                "entity_ece": pct(self.entity_ece) if self.entities else None,
                "entity_recall_above_half": pct(self.entity_recall_above_half),
                "tokens": self.tokens, "nono_tokens": self.nono_tokens,
                "entities": self.entities, "gold_entities": self.gold_entities,
                "reliability": self.tables}


def calibration_of(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                   token_probs: Sequence[np.ndarray],
                   entity_probs: Sequence[Sequence[float]] | None = None,
                   bins: int = BINS, temperature: float = 1.0) -> Calibration:
    """Calibration of predictions against gold labels: ``token_probs`` the probability of each
    predicted label, ``entity_probs`` each predicted entity's probability (in schemes.spans
    order; without them there is no entity ECE: 0 over 0 entities)."""
    conf, ok, nono = [], [], []
    e_conf, e_ok = [], []
    found_above, n_gold = 0, 0
    for i, (g, p, probs) in enumerate(zip(gold, predicted, token_probs)):
        conf.append(np.asarray(probs, dtype=np.float64))
        ok.append(np.fromiter((a == b for a, b in zip(g, p)), dtype=bool, count=len(p)))
        nono.append(np.fromiter((a != "O" or b != "O" for a, b in zip(g, p)), dtype=bool,
                                count=len(p)))
        gold_spans = set(spans(list(g)))
        n_gold += len(gold_spans)
        if entity_probs is not None:
            # None: a sentence too long for entity probabilities (tagging.SCORES_LIMIT)
            for span, prob in zip(spans(list(p)), entity_probs[i] or ()):
                e_conf.append(prob)
                e_ok.append(span in gold_spans)
                found_above += prob > 0.5 and span in gold_spans
    conf_a = np.concatenate(conf) if conf else np.zeros(0)
    ok_a = np.concatenate(ok) if ok else np.zeros(0, bool)
    nono_a = np.concatenate(nono) if nono else np.zeros(0, bool)
    tables = {"token": reliability(conf_a, ok_a, bins),
              "nono_token": reliability(conf_a[nono_a], ok_a[nono_a], bins),
              "entity": reliability(e_conf, e_ok, bins)}
    return Calibration(
        token_ece=ece(conf_a, ok_a, bins), nono_token_ece=ece(conf_a[nono_a], ok_a[nono_a], bins),
        entity_ece=ece(e_conf, e_ok, bins),
        entity_recall_above_half=(found_above / n_gold if n_gold and entity_probs is not None
                                  else None),
        tokens=int(len(conf_a)), nono_tokens=int(nono_a.sum()), entities=len(e_conf),
        gold_entities=n_gold, temperature=temperature, tables=tables)


class _GoldLoss:
    """Sentences' emissions, computed once (one network pass), and the mean -log P(gold label)
    of their tokens under the marginals at any temperatures (tokens whose gold label the model
    does not know are left out)."""

    def __init__(self, model, token_lists: Sequence[Sequence[str]],
                 gold: Sequence[Sequence[str]], batch_size: int = 256) -> None:
        index = {lab: k for k, lab in enumerate(model.labels)}
        self.model, self.batches, self.n = model, [], 0
        for lo in range(0, len(token_lists), batch_size):
            toks = [list(t) for t in token_lists[lo:lo + batch_size] if len(t)]
            golds = [g for t, g in zip(token_lists[lo:lo + batch_size],
                                       gold[lo:lo + batch_size]) if len(t)]
            if not toks:
                continue
            E, offsets = self.model.emissions(toks)
            y = np.array([index.get(lab, -1) for g in golds for lab in g], dtype=np.int64)
            rows = np.flatnonzero(y >= 0)
            self.batches.append((E, offsets, rows, y[rows]))
            self.n += len(rows)

    def __call__(self, temperatures: Sequence[float]) -> np.ndarray:
        output = self.model.network.output
        total = np.zeros(len(temperatures))
        try:
            for E, offsets, rows, y in self.batches:
                for k, tau in enumerate(temperatures):
                    output.temperature = float(tau)
                    P = output.marginals(E, offsets)
                    total[k] -= np.log(np.maximum(P[rows, y].astype(np.float64), 1e-30)).sum()
        finally:
            output.temperature = self.model.temperature
        return total / max(self.n, 1)


def gold_nll(model, token_lists: Sequence[Sequence[str]], gold: Sequence[Sequence[str]],
             temperatures: Sequence[float] = GRID, batch_size: int = 256) -> np.ndarray:
    """Mean -log P(gold label) of the tokens under the model's marginals at each temperature
    (tokens whose gold label the model does not know are left out)."""
    return _GoldLoss(model, token_lists, gold, batch_size)(temperatures)


# The grid is searched every STRIDE-th point, then between the best of those and its
# neighbours: 23 marginal passes instead of 65, the whole grid's minimum whenever the loss falls
# and then rises over the grid (tests compare the two). Training with --time-budget waits for
# the fit after its last epoch, so its cost is the run's.
STRIDE = 4


def fit_temperature(model, token_lists: Sequence[Sequence[str]],
                    gold: Sequence[Sequence[str]], grid: Sequence[float] = GRID) -> dict:
    """The temperature of ``grid`` with the least gold negative log-likelihood on these
    sentences (searched coarse to fine), and the likelihoods at 1 and at it: {"temperature",
    "nll_before", "nll_after", "tokens"}. Does not change the model
    (RNNTagger.set_temperature does)."""
    loss, grid = _GoldLoss(model, token_lists, gold), list(grid)
    coarse = sorted(set(range(0, len(grid), STRIDE)) | {len(grid) - 1})
    nll = dict(zip(coarse, loss([grid[i] for i in coarse])))
    c = min(coarse, key=nll.__getitem__)
    fine = [i for i in range(max(0, c - STRIDE + 1), min(len(grid), c + STRIDE)) if i not in nll]
    nll.update(zip(fine, loss([grid[i] for i in fine])))
    best = min(sorted(nll), key=nll.__getitem__)        # the first of equals, as np.argmin
    one = grid.index(1.0) if 1.0 in grid else None
    at_one = nll[one] if one in nll else loss((1.0,))[0]
    return {"temperature": round(float(grid[best]), 6), "nll_before": round(float(at_one), 6),
            "nll_after": round(float(nll[best]), 6),
            "tokens": int(sum(len(t) for t in token_lists))}


def text_diagram(table: list[dict], width: int = 30) -> list[str]:
    """A reliability diagram as lines of text: per non-empty bin, accuracy (#) against
    confidence (|), and the count."""
    lines = []
    for b in table:
        if not b["count"]:
            continue
        acc, conf = b["accuracy"], b["confidence"]
        bar = ["#" if k < round(acc * width) else " " for k in range(width + 1)]
        bar[min(width, round(conf * width))] = "|"
        lines.append(f"{b['lo']:.2f}-{b['hi']:.2f} {''.join(bar)} acc {acc:6.1%} "
                     f"conf {conf:6.1%} n={b['count']:,}")
    return lines
