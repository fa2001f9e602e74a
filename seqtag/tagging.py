"""Applying a model to a stream: raw text lines or column-file sentences in, tagged sentences out.

Input is consumed in batches of sentences, so memory stays flat however long the stream is.
The output formats here are plain text (stable, for pipes); the CLI adds the coloured view.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator

import numpy as np

from seqtag.corpus import Sentence
from seqtag.model import RNNTagger
from seqtag.schemes import spans
from seqtag.tokenizer import tokenize

FORMATS = ("conll", "inline", "jsonl")


@dataclass
class Tagged:
    tokens: list[str]
    labels: list[str]
    probs: np.ndarray | None                   # probability of each chosen label, if computed
    text: str | None = None                    # the raw text, for text input
    offsets: list[tuple[int, int]] | None = None   # character span of each token in text
    lines: list[str] | None = None             # the input lines, for column-file input
    span_probs: list[float] | None = None      # with scores: P of each entity, in spans order
    nbest: list[tuple[list[str], float]] | None = None   # the n best sequences and their P

    def entities(self) -> list[dict]:
        """Labelled spans with token and character offsets (into ``text``, or into the tokens
        joined by single spaces for column input)."""
        offsets = self.offsets
        if offsets is None:
            offsets, pos = [], 0
            for tok in self.tokens:
                offsets.append((pos, pos + len(tok)))
                pos += len(tok) + 1
        text = self.text if self.text is not None else " ".join(self.tokens)
        out = []
        for n, (label, i, j) in enumerate(spans(self.labels)):
            start, end = offsets[i][0], offsets[j - 1][1]
            # Without --scores, the least sure token stands for the entity.
            prob = self.span_probs[n] if self.span_probs is not None else \
                float(np.min(self.probs[i:j]))
            out.append({"label": label, "start": start, "end": end, "text": text[start:end],
                        "token_start": i, "token_end": j, "prob": round(prob, 4)})
        return out


def _batches(items: Iterable, size: int) -> Iterator[list]:
    # islice refuses sizes beyond sys.maxsize (--batch-size 1e30 is a user's to give): such a
    # batch is the whole stream anyway.
    size = min(size, sys.maxsize)
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _tag_batch(model: RNNTagger, token_lists: list[list[str]], proba: bool):
    labels = model.labels
    for best, probs in model.decode(token_lists, proba):
        yield [labels[k] for k in best], probs


def _with_scores(model: RNNTagger, tagged: Tagged, scores: bool, nbest: int) -> Tagged:
    if scores:
        tagged.span_probs = model.span_probabilities(tagged.tokens, tagged.labels)
    if nbest > 1:
        tagged.nbest = model.nbest(tagged.tokens, nbest)
    return tagged


def tag_texts(model: RNNTagger, texts: Iterable[str], batch_size: int = 256, *,
              scores: bool = False, nbest: int = 1, probs: bool = True) -> Iterator[Tagged]:
    """Tokenize and tag each text (one sequence per text); with ``scores`` each entity gets its
    exact probability, with ``nbest`` > 1 the n best sequences are kept too; without ``probs``
    (and ``scores``) the labels' probabilities are not computed (Tagged.probs is None)."""
    for batch in _batches(texts, batch_size):
        toks = [tokenize(t) for t in batch]
        token_lists = [[w for w, _, _ in tk] for tk in toks]
        for text, tk, words, (labels, p) in zip(
                batch, toks, token_lists, _tag_batch(model, token_lists, probs or scores)):
            yield _with_scores(model, Tagged(words, labels, p, text=text,
                                             offsets=[(s, e) for _, s, e in tk]), scores, nbest)


def tag_sentences(model: RNNTagger, sentences: Iterable[Sentence], batch_size: int = 256, *,
                  scores: bool = False, nbest: int = 1, probs: bool = True) -> Iterator[Tagged]:
    """Tag sentences read from a column file, keeping their lines for crf_test-style output
    (``probs`` as for tag_texts)."""
    for batch in _batches(sentences, batch_size):
        token_lists = [s.tokens for s in batch]
        for s, (labels, p) in zip(batch, _tag_batch(model, token_lists, probs or scores)):
            yield _with_scores(model, Tagged(s.tokens, labels, p, lines=s.lines),
                               scores, nbest)


def format_conll(t: Tagged, scores: bool = False) -> str:
    """token TAB label per line, a blank line after the sentence; column-file input gets every
    input line back with the label appended as a new last column (crf_test's convention).
    With ``scores`` a further column holds the label's probability; with n-best lists, each
    sequence follows a ``# rank probability`` line (crf_test -n)."""
    if t.lines is not None:
        sep = "\t" if any("\t" in line for line in t.lines) else " "
        firsts = t.lines
    else:
        sep, firsts = "\t", t.tokens
    if t.nbest:
        blocks = []
        for rank, (labels, prob) in enumerate(t.nbest):
            rows = [f"{a}{sep}{lab}" for a, lab in zip(firsts, labels)]
            blocks.append(f"# {rank} {prob:.6f}\n" + "".join(r + "\n" for r in rows))
        return "".join(blocks) + "\n"
    if scores:
        rows = [f"{a}{sep}{lab}{sep}{p:.4f}" for a, lab, p in zip(firsts, t.labels, t.probs)]
    else:
        rows = [f"{a}{sep}{lab}" for a, lab in zip(firsts, t.labels)]
    return "\n".join(rows) + "\n\n"


def format_inline(t: Tagged, scores: bool = False) -> str:
    """One line per sequence: token/label (token/label/probability with scores)."""
    if scores:
        return " ".join(f"{tok}/{lab}/{p:.4f}"
                        for tok, lab, p in zip(t.tokens, t.labels, t.probs)) + "\n"
    return " ".join(f"{tok}/{lab}" for tok, lab in zip(t.tokens, t.labels)) + "\n"


def format_jsonl(t: Tagged, scores: bool = False) -> str:
    record = {"tokens": t.tokens, "labels": t.labels, "entities": t.entities()}
    if t.text is not None:
        record = {"text": t.text, **record}
    if scores:
        record["probs"] = [round(float(p), 4) for p in t.probs]
    if t.nbest:
        record["nbest"] = [{"labels": labels, "prob": round(prob, 6)} for labels, prob in t.nbest]
    return json.dumps(record, ensure_ascii=False) + "\n"


FORMATTERS = {"conll": format_conll, "inline": format_inline, "jsonl": format_jsonl}
