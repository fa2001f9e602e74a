"""Document context: what the other sentences of a token's document say about its word.

A name is often written in full once ("Bill Clinton") and then repeated in short, ambiguous
forms ("Clinton", or "CLINTON" in a headline). Chieu & Ng (2002) give each token features from
the same word's other occurrences in its document; here three of them, case-folded, over the
occurrences other than the token itself:

  cap     another occurrence is capitalised and not its sentence's first token (a capital that
          is not just the sentence start's: a name, or part of one);
  inseq   another occurrence is inside a run of two or more capitalised tokens (a longer name);
  lower   another occurrence is all lower case (a common word).

Their combination is one code in 0..7 (bit 1: cap, 2: inseq, 4: lower), which the encoder
turns into one more input column (seqtag.encoding). A sentence outside any document (input
without document boundaries) gets code 0 everywhere, as a document whose words occur once: the
context is inert there. Codes are computed per document before encoding, at training and
tagging time alike, so the kernels need no change.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from typing import Iterable, Iterator, Sequence

import numpy as np

FLAGS = ("cap", "inseq", "lower")
N_CODES = 1 << len(FLAGS)


class InDocument(list):
    """A sentence's tokens (a list of str) carrying ``context``: each token's code (int8 array).

    The tokens travel through tagging and training as plain token lists (batches, threads,
    predict, calibration); a list that carries its codes lets them reach the encoder on every
    one of those paths without a parallel argument on each. A plain list has no context
    (codes 0)."""

    __slots__ = ("context",)

    def __init__(self, tokens: Iterable[str], context: np.ndarray):
        super().__init__(tokens)
        if len(context) != len(self):
            raise ValueError("one context code per token")
        self.context = context


def context_of(tokens: Sequence[str]) -> np.ndarray | None:
    """The codes ``tokens`` carry, or None (no document)."""
    return getattr(tokens, "context", None)


def _capitalised(tok: str) -> bool:
    return tok[:1].isupper()


def _has_letter(tok: str) -> bool:
    return any(ch.isalpha() for ch in tok)


def document_codes(document: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Each token's code (int8, 0..N_CODES-1) for the sentences of one document."""
    # Per case-folded word: how many occurrences show each flag; a token's own occurrence is
    # taken out again below, so that a word seen once has code 0.
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    own: list[list[tuple[str, tuple[int, int, int]]]] = []
    for sentence in document:
        caps = [_capitalised(t) and _has_letter(t) for t in sentence]
        mine = []
        for i, tok in enumerate(sentence):
            if not _has_letter(tok):
                mine.append(("", (0, 0, 0)))
                continue
            inseq = caps[i] and ((i > 0 and caps[i - 1]) or (i + 1 < len(caps) and caps[i + 1]))
            flags = (int(caps[i] and i > 0), int(inseq), int(tok.islower()))
            key = tok.casefold()
            c = counts[key]
            for k in range(3):
                c[k] += flags[k]
            mine.append((key, flags))
        own.append(mine)
    out = []
    for mine in own:
        codes = np.zeros(len(mine), np.int8)
        for i, (key, flags) in enumerate(mine):
            if key:
                c = counts[key]
                codes[i] = sum(1 << k for k in range(3) if c[k] - flags[k] > 0)
        out.append(codes)
    return out


def with_context(sentences: Iterable, document_of=lambda s: getattr(s, "document", None)
                 ) -> Iterator:
    """The sentences (objects with ``tokens``; corpus.Sentence) in order, each one's ``tokens``
    an InDocument with its document's codes. Consecutive sentences with the same document
    (``document_of``, not None) form a document, held in memory only until its last sentence
    is read; a sentence whose document is None stands alone, with code 0 for every token.
    Sentences that carry codes already keep them: a batch cut from a document (Dask's) is not
    its whole document."""
    for doc, group in groupby(sentences, key=document_of):
        if doc is None:
            for s in group:
                if context_of(s.tokens) is None:
                    s.tokens = InDocument(s.tokens, np.zeros(len(s.tokens), np.int8))
                yield s
            continue
        group = list(group)
        if all(context_of(s.tokens) is not None for s in group):
            yield from group
            continue
        for s, codes in zip(group, document_codes([s.tokens for s in group])):
            s.tokens = InDocument(s.tokens, codes)
            yield s


def token_documents(documents: Iterable[Sequence[Sequence[str]]]) -> Iterator[InDocument]:
    """Token lists of documents (each a list of sentences) → each sentence as an InDocument."""
    for document in documents:
        for tokens, codes in zip(document, document_codes(document)):
            yield InDocument(tokens, codes)
