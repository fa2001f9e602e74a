"""conlleval-style scores: token accuracy, and chunk precision/recall/F1 overall and per type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import zip_longest

from seqtag.schemes import is_chunk_labels, spans


@dataclass
class TypeScore:
    precision: float
    recall: float
    f1: float
    gold: int
    found: int
    correct: int


@dataclass
class Scores:
    tokens: int
    correct_tokens: int
    accuracy: float
    gold: int
    found: int
    correct: int
    precision: float
    recall: float
    f1: float
    per_type: dict[str, TypeScore]
    chunked: bool


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _prf(gold: int, found: int, correct: int) -> tuple[float, float, float]:
    p, r = _ratio(correct, found), _ratio(correct, gold)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(gold: Iterable[Sequence[str]], pred: Iterable[Sequence[str]]) -> Scores:
    """Score predicted label sequences against gold ones, paired in order.

    Each sequence is scored as a sentence of its own: a chunk never runs across two of them
    (conlleval's blank line). Raises ValueError when the sequences or a pair's lengths differ.
    """
    tokens = correct_tokens = 0
    gold_n, found_n, correct_n = Counter(), Counter(), Counter()
    gold_labels: set[str] = set()
    pairs = []
    missing = object()
    for i, (g, p) in enumerate(zip_longest(gold, pred, fillvalue=missing)):
        if g is missing or p is missing:
            raise ValueError(f"gold and predicted sequences differ in number (from sequence {i})")
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold labels but {len(p)} predicted")
        tokens += len(g)
        correct_tokens += sum(a == b for a, b in zip(g, p))
        gold_labels.update(g)
        pairs.append((g, p))

    # POS tags and the like have no chunks; scoring spans over them would only produce zeros
    # that look like a failure.
    chunked = not gold_labels or is_chunk_labels(gold_labels)
    if chunked:
        for g, p in pairs:
            gs, ps = spans(g), spans(p)
            gold_n.update(t for t, _, _ in gs)
            found_n.update(t for t, _, _ in ps)
            correct_n.update(t for t, _, _ in set(gs) & set(ps))

    per_type = {}
    for t in sorted(gold_n.keys() | found_n.keys()):
        per_type[t] = TypeScore(*_prf(gold_n[t], found_n[t], correct_n[t]),
                                gold=gold_n[t], found=found_n[t], correct=correct_n[t])
    g_all, f_all, c_all = gold_n.total(), found_n.total(), correct_n.total()
    precision, recall, f1 = _prf(g_all, f_all, c_all)
    return Scores(tokens=tokens, correct_tokens=correct_tokens,
                  accuracy=_ratio(correct_tokens, tokens),
                  gold=g_all, found=f_all, correct=c_all,
                  precision=precision, recall=recall, f1=f1,
                  per_type=per_type, chunked=chunked)


def format_report(scores: Scores) -> str:
    """conlleval's text report (no trailing newline); only tokens and accuracy when not chunked."""
    s = scores
    if not s.chunked:
        lines = [f"processed {s.tokens} tokens."]
        if s.tokens:
            lines.append(f"accuracy: {100 * s.accuracy:6.2f}%")
        return "\n".join(lines)
    lines = [f"processed {s.tokens} tokens with {s.gold} phrases; "
             f"found: {s.found} phrases; correct: {s.correct}."]
    # conlleval skips the score lines on empty input rather than print meaningless zeros.
    if s.tokens:
        lines.append(f"accuracy: {100 * s.accuracy:6.2f}%; precision: {100 * s.precision:6.2f}%; "
                     f"recall: {100 * s.recall:6.2f}%; FB1: {100 * s.f1:6.2f}")
    for name, t in s.per_type.items():
        lines.append(f"{name:>17}: precision: {100 * t.precision:6.2f}%; "
                     f"recall: {100 * t.recall:6.2f}%; FB1: {100 * t.f1:6.2f}  {t.found}")
    return "\n".join(lines)


def scores_to_dict(scores: Scores) -> dict:
    """A JSON-ready dict with the same field names (fractions, not percentages)."""
    return asdict(scores)
