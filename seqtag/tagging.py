"""Applying a model to a stream: raw text lines or column-file sentences in, tagged sentences out.

Input is consumed in batches of sentences, so memory stays flat however long the stream is.
The output formats here are plain text (stable, for pipes); the CLI adds the coloured view.
"""

from __future__ import annotations

import json
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
    probs: np.ndarray                          # probability of each chosen label
    text: str | None = None                    # the raw text, for text input
    offsets: list[tuple[int, int]] | None = None   # character span of each token in text
    lines: list[str] | None = None             # the input lines, for column-file input

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
        for label, i, j in spans(self.labels):
            start, end = offsets[i][0], offsets[j - 1][1]
            out.append({"label": label, "start": start, "end": end, "text": text[start:end],
                        "token_start": i, "token_end": j,
                        "prob": round(float(np.min(self.probs[i:j])), 4)})
        return out


def _batches(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _tag_batch(model: RNNTagger, token_lists: list[list[str]]):
    labels = model.labels
    for best, probs in model.decode(token_lists):
        yield [labels[k] for k in best], probs


def tag_texts(model: RNNTagger, texts: Iterable[str], batch_size: int = 256
              ) -> Iterator[Tagged]:
    """Tokenize and tag each text (one sequence per text)."""
    for batch in _batches(texts, batch_size):
        toks = [tokenize(t) for t in batch]
        token_lists = [[w for w, _, _ in tk] for tk in toks]
        for text, tk, words, (labels, probs) in zip(
                batch, toks, token_lists, _tag_batch(model, token_lists)):
            yield Tagged(words, labels, probs, text=text, offsets=[(s, e) for _, s, e in tk])


def tag_sentences(model: RNNTagger, sentences: Iterable[Sentence], batch_size: int = 256
                  ) -> Iterator[Tagged]:
    """Tag sentences read from a column file, keeping their lines for crf_test-style output."""
    for batch in _batches(sentences, batch_size):
        token_lists = [s.tokens for s in batch]
        for s, (labels, probs) in zip(batch, _tag_batch(model, token_lists)):
            yield Tagged(s.tokens, labels, probs, lines=s.lines)


def format_conll(t: Tagged) -> str:
    """token TAB label per line, a blank line after the sentence; column-file input gets every
    input line back with the label appended as a new last column (crf_test's convention)."""
    if t.lines is not None:
        sep = "\t" if any("\t" in line for line in t.lines) else " "
        rows = [f"{line}{sep}{lab}" for line, lab in zip(t.lines, t.labels)]
    else:
        rows = [f"{tok}\t{lab}" for tok, lab in zip(t.tokens, t.labels)]
    return "\n".join(rows) + "\n\n"


def format_inline(t: Tagged) -> str:
    """One line per sequence: token/label separated by spaces."""
    return " ".join(f"{tok}/{lab}" for tok, lab in zip(t.tokens, t.labels)) + "\n"


def format_jsonl(t: Tagged) -> str:
    record = {"tokens": t.tokens, "labels": t.labels, "entities": t.entities()}
    if t.text is not None:
        record = {"text": t.text, **record}
    return json.dumps(record, ensure_ascii=False) + "\n"


FORMATTERS = {"conll": format_conll, "inline": format_inline, "jsonl": format_jsonl}
