"""Features of a word's form, for words the vocabulary has never seen.

Each feature maps a token to a string (its shape, its last three letters, ...) and has its own
inventory of values learned from the training data; the model sees every feature value as one more
column of Wax, so the input x<t> is multi-hot and Wax·x<t> is a sum of columns:
    Wax·x<t> = Wax[:, word] + Wax[:, shape] + Wax[:, suffix3] + ...
That keeps the textbook equation while letting "Li" after "Sam" look like a name by its form.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence


from seqtag.errors import SeqtagError

UNK_VALUE = "<unk>"   # index 0 of every feature inventory: a value not seen often enough


def _shape(token: str) -> str:
    """Characters as X (upper), x (lower), d (digit) or themselves, runs collapsed after two:
    "Sam" → "Xxx", "McDonald's" → "XxXxx'x", "U.S." → "X.X.", "2024" → "dd"."""
    out = []
    for ch in token:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if len(out) >= 2 and out[-1] == c and out[-2] == c:
            continue
        out.append(c)
    return "".join(out[:12])


_DIGITS = re.compile(r"\d")


def _casing(token: str) -> str:
    if not token:
        return "empty"
    if token.isdigit():
        return "number"
    if any(ch.isdigit() for ch in token):
        return "has-digit"
    if token.isupper():
        return "upper"
    if token[0].isupper():
        return "title" if token[1:].islower() else "mixed-cap"
    if token.islower():
        return "lower"
    return "other"


FEATURES: dict[str, Callable[[str], str]] = {
    "lower": lambda t: _DIGITS.sub("0", t.lower()),
    "shape": _shape,
    "casing": _casing,
    "prefix2": lambda t: t[:2].lower(),
    "prefix3": lambda t: t[:3].lower(),
    "suffix2": lambda t: t[-2:].lower(),
    "suffix3": lambda t: t[-3:].lower(),
}


def parse_features(spec: str) -> list[str]:
    """"shape,suffix3" → ["shape", "suffix3"]; "" or "none" → []."""
    names = [n.strip() for n in spec.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise SeqtagError(f"unknown feature {unknown[0]!r}",
                          hint="choose from " + ", ".join(FEATURES) + " (comma-separated)")
    if len(set(names)) != len(names):
        raise SeqtagError("a feature is named twice in --features")
    return names


@dataclass
class FeatureSet:
    """Inventories of feature values; ``ids`` gives a token's column of each feature."""

    names: list[str]
    values: list[list[str]]                      # per feature: UNK_VALUE first, then by frequency
    _index: list[dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self):
        # zip() below would silently drop a feature without an inventory (or the reverse)
        if len(self.names) != len(self.values) or len(set(self.names)) != len(self.names):
            raise ValueError(f"bad feature inventories for {self.names!r}: one per feature, "
                             f"each feature once")
        for name, vals in zip(self.names, self.values):
            if name not in FEATURES or not vals or vals[0] != UNK_VALUE:
                raise ValueError(f"bad feature inventory {name!r}")
        self._index = [dict(zip(vals, range(len(vals)))) for vals in self.values]
        for name, vals, index in zip(self.names, self.values, self._index):
            if len(index) != len(vals):
                raise ValueError(f"feature inventory {name!r} lists a value twice")

    @classmethod
    def build(cls, tokens: Iterable[str], names: Sequence[str], min_count: int = 2
              ) -> "FeatureSet":
        counters = [Counter() for _ in names]
        fns = [FEATURES[n] for n in names]
        for tok in tokens:
            for fn, c in zip(fns, counters):
                c[fn(tok)] += 1
        values = []
        for c in counters:
            kept = sorted((v for v, k in c.items() if k >= min_count and v != UNK_VALUE),
                          key=lambda v: (-c[v], v))
            values.append([UNK_VALUE] + kept)
        return cls(list(names), values)

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.values]

    def ids_of_all(self, tokens: Sequence[str]) -> list[list[int]]:
        """Per feature, the value index of each token: ``ids`` of each token, transposed."""
        out = []
        for name, index in zip(self.names, self._index):
            get, fn = index.get, FEATURES[name]
            out.append([get(v, 0) for v in map(fn, tokens)])
        return out

    def ids(self, token: str) -> list[int]:
        """The value index of each feature for ``token`` (0 for an unseen value)."""
        return [index.get(FEATURES[name](token), 0)
                for name, index in zip(self.names, self._index)]
