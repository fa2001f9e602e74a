"""The character inventory of the character CNN, and the spelling of a word as character ids.

A word is spelled as <bow> c1 c2 ... cn <eow>, padded with <pad> to the CNN's window width, so that
even a one-letter word has a full window and the markers tell the filters where a word starts and
ends (capital first letter, "-ing" at the end). Long tokens (URLs, hashtags) keep their first and
last MAX_HALF characters: the ends carry what the filters look for, and the cost stays bounded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

PAD, UNK, BOW, EOW = 0, 1, 2, 3
RESERVED = ("<pad>", "<unk>", "<bow>", "<eow>")
MAX_HALF = 12
MAX_CHARS = 2000   # inventory cap: rarer characters of a large corpus share <unk>


@dataclass
class CharVocab:
    """Characters by training frequency after the four reserved entries."""

    alphabet: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        if tuple(self.alphabet[:4]) != RESERVED or any(
                len(ch) != 1 for ch in self.alphabet[4:]) \
                or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("bad character inventory")
        self._index = {ch: i for i, ch in enumerate(self.alphabet)}

    @classmethod
    def build(cls, tokens: Iterable[str], max_size: int = MAX_CHARS) -> "CharVocab":
        counts = Counter()
        for tok in tokens:
            counts.update(tok)
        kept = sorted(counts, key=lambda ch: (-counts[ch], ch))[:max_size]
        return cls(list(RESERVED) + kept)

    def __len__(self) -> int:
        return len(self.alphabet)

    def spell(self, token: str, width: int) -> list[int]:
        """<bow> + character ids + <eow>, padded to at least ``width`` entries."""
        if len(token) > 2 * MAX_HALF:
            token = token[:MAX_HALF] + token[-MAX_HALF:]
        ids = [BOW] + [self._index.get(ch, UNK) for ch in token] + [EOW]
        return ids + [PAD] * (width - len(ids))

    def to_text(self) -> str:
        """One string holding the inventory, for the model file (the reserved entries implied)."""
        return "".join(self.alphabet[4:])

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls(list(RESERVED) + list(text))
