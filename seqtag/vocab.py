"""Word vocabulary and label inventory: tokens and labels to indices and back.

The vocabulary file is text: one ``word<TAB>count`` line per word, most frequent first, with the
reserved entries ``<pad>`` (index 0) and ``<unk>`` (index 1) at the top; then a blank line; then one
``label<TAB>count`` line per label.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

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
        # dict(zip()) rather than a comprehension: a model's 40,000 words load 3x faster, and
        # the sizes tell a repeated entry without a set of them.
        self._word_index = dict(zip(self.words, range(len(self.words))))
        self._label_index = dict(zip(self.labels, range(len(self.labels))))
        if len(self._word_index) != len(self.words) or \
                len(self._label_index) != len(self.labels):
            raise ValueError("a vocabulary lists each word and each label once")
        # A corpus token that spells a reserved entry is an ordinary word that cannot be stored
        # under its own name; it maps to the unknown entry.
        self._word_index[PAD] = UNK_ID

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
        from seqtag.atomic import write_text_atomic

        write_text_atomic(path, self.to_text())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary file; every problem is a SeqtagError naming the file and line."""
        from seqtag.textfile import open_input, read_lines

        name = str(path)
        sections: list[list[tuple[str, int]]] = [[], []]
        section, last, seen = 0, 0, [{}, {}]
        with open_input(path, name, "vocabulary file") as f:
            for no, line in read_lines(f, name, max_line=_MAX_LINE, hint=_WRITTEN_BY):
                last = no
                if not line:
                    # The blank line after the words (or after the labels, where a third
                    # section would begin); more blank lines are harmless.
                    if section < 2 and sections[section]:
                        section += 1
                    continue
                if section == 2:
                    raise SeqtagError("a third section (entries after a second blank line); a "
                                      "vocabulary is words, a blank line, labels", path=name,
                                      line=no, hint=_WRITTEN_BY)
                entry, count = _entry(line, name, no)
                first = seen[section].setdefault(entry, no)
                if first != no:
                    what = "word" if section == 0 else "label"
                    raise SeqtagError(f"{what} {entry!r} is listed twice (lines {first} and {no})",
                                      path=name, line=no, hint="each entry appears once")
                sections[section].append((entry, count))
        words, labels = sections
        if not words:
            raise SeqtagError("is not a seqtag vocabulary (it is empty)", path=name,
                              hint="write one with 'seqtag build-vocab'")
        if [w for w, _ in words[:2]] != [PAD, UNK]:
            raise SeqtagError(f"is not a seqtag vocabulary (its words start with {PAD} and "
                              f"{UNK})", path=name, line=1,
                              hint="write one with 'seqtag build-vocab'")
        if not labels:
            raise SeqtagError("is not a seqtag vocabulary: it ends here without the blank line "
                              "and the labels that follow the words", path=name, line=last,
                              hint="write one with 'seqtag build-vocab'")
        return cls([w for w, _ in words], [c for _, c in words],
                   [lab for lab, _ in labels], [c for _, c in labels])


_WRITTEN_BY = "a vocabulary is written by 'seqtag build-vocab'"
# A word and its count; far longer lines are not a vocabulary (a binary file, /dev/zero).
_MAX_LINE = 1 << 20
_MAX_COUNT = 2 ** 63 - 1   # counts are stored as int64


def _entry(line: str, name: str, no: int) -> tuple[str, int]:
    entry, sep, count = line.rpartition("\t")
    if not sep:
        raise SeqtagError("expected 'entry<TAB>count'", path=name, line=no, hint=_WRITTEN_BY)
    # ASCII digits only: int() would also take "²", "1_000" and " 5 ".
    if not (count.isascii() and count.isdigit()):
        raise SeqtagError(f"count {count!r} is not a whole number >= 0; expected "
                          "'entry<TAB>count'", path=name, line=no, hint=_WRITTEN_BY)
    value = int(count)
    if value > _MAX_COUNT:
        raise SeqtagError(f"count {count} is too large (at most {_MAX_COUNT})", path=name,
                          line=no, hint=_WRITTEN_BY)
    return entry, value
