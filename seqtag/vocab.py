"""Word vocabulary and label inventory: tokens and labels to indices and back.

The vocabulary file is text: one ``word<TAB>count`` line per word, most frequent first, with the
reserved entries ``<pad>`` (index 0) and ``<unk>`` (index 1) at the top; then a blank line; then one
``label<TAB>count`` line per label.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from seqtag.atomic import write_text_atomic
from seqtag.errors import SeqtagError

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


@dataclass
class VocabStats:
    sentences: int
    tokens: int
    types: int
    kept: int
    covered_tokens: int

    @property
    def coverage(self) -> float:
        return self.covered_tokens / self.tokens if self.tokens else 0.0


@dataclass
class Vocabulary:
    words: list[str]
    word_counts: np.ndarray
    labels: list[str]
    label_counts: np.ndarray
    _word_index: dict[str, int] = field(init=False, repr=False)
    _label_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.word_counts = np.asarray(self.word_counts, dtype=np.int64)
        self.label_counts = np.asarray(self.label_counts, dtype=np.int64)
        if self.words[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with the reserved entries <pad> and <unk>")
        self._word_index = {w: i for i, w in enumerate(self.words)}
        # A corpus token that spells a reserved entry is an ordinary word that cannot be stored
        # under its own name; it maps to the unknown entry.
        self._word_index[PAD] = UNK_ID
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}

    @classmethod
    def build(cls, sentences: Iterable, *, min_count: int = 1, max_size: int | None = None
              ) -> tuple["Vocabulary", VocabStats]:
        """Count words and labels of ``sentences`` (objects with .tokens and .labels)."""
        words: Counter[str] = Counter()
        labels: Counter[str] = Counter()
        n_sent = 0
        for s in sentences:
            n_sent += 1
            words.update(s.tokens)
            if s.labels is not None:
                labels.update(s.labels)
        # Sorting by (-count, word) makes the file and the indices independent of corpus order.
        ranked = sorted(((w, c) for w, c in words.items() if w not in (PAD, UNK)),
                        key=lambda wc: (-wc[1], wc[0]))
        kept = [(w, c) for w, c in ranked if c >= min_count]
        if max_size is not None:
            kept = kept[:max(0, max_size - 2)]
        kept_set = {w for w, _ in kept}
        tokens = sum(words.values())
        unk_count = tokens - sum(c for _, c in kept)
        vocab = cls(
            words=[PAD, UNK] + [w for w, _ in kept],
            word_counts=[0, unk_count] + [c for _, c in kept],
            labels=[lab for lab, _ in sorted(labels.items(), key=lambda lc: (-lc[1], lc[0]))],
            label_counts=sorted(labels.values(), reverse=True),
        )
        stats = VocabStats(n_sent, tokens, len(words), len(kept_set),
                           sum(c for _, c in kept))
        return vocab, stats

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def word_ids(self, tokens: Sequence[str]) -> np.ndarray:
        get = self._word_index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def label_ids(self, labels: Sequence[str], *, where: str = "") -> np.ndarray:
        try:
            return np.fromiter((self._label_index[lab] for lab in labels), dtype=np.int32,
                               count=len(labels))
        except KeyError as e:
            raise SeqtagError(f"label {e.args[0]!r} is not in the label inventory "
                              f"({', '.join(self.labels)})",
                              path=where or None,
                              hint="rebuild the vocabulary from this data, or fix the label") from None

    def has_label(self, label: str) -> bool:
        return label in self._label_index

    def to_text(self) -> str:
        lines = [f"{w}\t{c}" for w, c in zip(self.words, self.word_counts)]
        lines.append("")
        lines += [f"{lab}\t{c}" for lab, c in zip(self.labels, self.label_counts)]
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, self.to_text())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        name = str(path)
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise SeqtagError("no such vocabulary file", path=name) from None
        except (IsADirectoryError, PermissionError) as e:
            raise SeqtagError(f"cannot read the vocabulary ({e.strerror})", path=name) from None
        except UnicodeDecodeError as e:
            raise SeqtagError(f"invalid UTF-8 at byte offset {e.start}", path=name,
                              hint="a vocabulary is written by 'seqtag build-vocab'") from None
        sections: list[list[tuple[str, int]]] = [[]]
        for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else
                                 text.split("\n"), start=1):
            line = line.rstrip("\r")
            if line == "":
                sections.append([])
                continue
            word, sep, count = line.rpartition("\t")
            if not sep or not (count.isascii() and count.isdigit()):
                raise SeqtagError("expected 'entry<TAB>count'", path=name, line=n,
                                  hint="a vocabulary is written by 'seqtag build-vocab'")
            sections[-1].append((word, int(count)))
        sections = [s for s in sections if s]
        if len(sections) != 2 or [w for w, _ in sections[0][:2]] != [PAD, UNK]:
            raise SeqtagError("is not a seqtag vocabulary (words starting with <pad> and <unk>, "
                              "a blank line, then labels)", path=name,
                              hint="write one with 'seqtag build-vocab'")
        (words, labels) = sections
        return cls([w for w, _ in words], [c for _, c in words],
                   [lab for lab, _ in labels], [c for _, c in labels])
