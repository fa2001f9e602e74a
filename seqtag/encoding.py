"""Input encoding: tokens to the rows of column indices the network reads.

A token's row is its word id, then each feature value's column (offset past the words and the
earlier features' values: the columns of Wax, or of Ex with embeddings), then, with a character
CNN, its word type: an index into the spellings kept here, which the CNN turns into a vector
once per distinct type of a batch. With a window of k neighbours (character-level models), the
words at offsets -k..-1, 1..k come between the features and the word type, each offset with its
own block of columns (past the features: base + j·V + word), <pad> beyond the sentence's ends.
With document context, the token's document code (seqtag.documents, carried by the sentence's
token list) comes next, as one column among N_CODES past the window's. Rows and spellings are
cached per token string, and the caches
are dropped when they grow large (``trim``), so that a long stream of new tokens keeps memory
bounded.
"""

from __future__ import annotations

from itertools import chain
from typing import Sequence

import numpy as np

from seqtag.chars import CharVocab
from seqtag.documents import N_CODES, context_of
from seqtag.features import FeatureSet
from seqtag.layers.charcnn import CHAR_WIDTH
from seqtag.vocab import PAD_ID, UNK_ID, Vocabulary

_CACHE_LIMIT = 1_000_000     # cached token strings before the caches are dropped


class Encoder:
    def __init__(self, vocab: Vocabulary, features: FeatureSet | None = None,
                 chars: CharVocab | None = None, window: int = 0, context: bool = False):
        self.vocab, self.features, self.chars, self.window = vocab, features, chars, window
        self.context = context
        self._byte_ids: np.ndarray | None = None
        # Each token string seen: its index into _table, whose rows are the tokens' rows; a
        # batch gathers its rows with one fancy index (building an array from a million row
        # tuples took a second per million tokens).
        self._index: dict[str, int] = {}
        self._table = np.empty((1024, self._own_columns), np.int32)
        # Character CNN: word types by first sight and their spellings end to end, as arrays
        # (_spelled) plus the types added since they were last made (_new_chars, _new_ends):
        # each batch converts only its new spellings, not every one seen so far.
        self._types: dict[str, int] = {}
        self.generation = 0     # times trim dropped the caches: rows and types numbered anew
        self._clear_spellings()
        if chars is not None:
            self._type_of("")   # type 0: no spelling, what feature dropout turns a word into

    @property
    def n_inputs(self) -> int:
        """Columns of Wax (or Ex): words, then each feature's values, then the window's words,
        then the document codes."""
        return self._context_base + (N_CODES if self.context else 0)

    @property
    def _context_base(self) -> int:
        return self._window_base + 2 * self.window * self.vocab.n_words

    @property
    def _window_base(self) -> int:
        return self.vocab.n_words + (sum(self.features.sizes) if self.features else 0)

    @property
    def n_columns(self) -> int:
        """Entries of a row: the word, each feature, each neighbour of the window, the
        document code with context, and the word type with a char CNN."""
        return self._own_columns + 2 * self.window + self.context

    @property
    def _own_columns(self) -> int:
        """Entries of a row that depend on the token alone (all but the window's)."""
        return 1 + (len(self.features.names) if self.features else 0) + \
            (self.chars is not None)

    def unknown_row(self) -> np.ndarray:
        """(n_columns,) int32: the row of a token taken away, alone in its sentence and
        document: the unknown word, every feature's unknown value (its first), no neighbours in
        the window, document code 0 and no spelling (what word and feature dropout turn a token
        into in training)."""
        row = [UNK_ID]
        base = self.vocab.n_words
        for size in (self.features.sizes if self.features is not None else ()):
            row.append(base)
            base += size
        row += [self._window_base + j * self.vocab.n_words + PAD_ID
                for j in range(2 * self.window)]
        if self.context:
            row.append(self._context_base)
        if self.chars is not None:
            row.append(0)
        return np.array(row, dtype=np.int32)

    def encode(self, tokens: Sequence[str] | str) -> np.ndarray:
        """(T, n_columns) int32: each token's row. A string is a sequence of one-character
        tokens (a DNA or protein sequence)."""
        return self.encode_batch([tokens])[0]

    def encode_batch(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, offsets) of sentences, as ``pack`` of their ``encode``: ids (N, n_columns)
        int32, sentence s in ids[offsets[s]:offsets[s+1]]."""
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in sentences], out=offsets[1:])
        if self.features is None and self.chars is None:
            if any(isinstance(s, str) for s in sentences):
                # sequences as strings: their ASCII letters through the byte table (char_ids)
                parts = [self.char_ids(s) if isinstance(s, str) else None for s in sentences]
                ids = np.concatenate(
                    [p if p is not None else self.vocab.word_ids(s)
                     for p, s in zip(parts, sentences)] or [np.zeros(0, np.int32)])
            else:
                ids = self.vocab.word_ids([tok for s in sentences for tok in s])
            ids = np.ascontiguousarray(ids, np.int32).reshape(-1, 1)
            return self._with_context(self._with_window(ids, offsets), sentences), offsets
        flat = list(chain.from_iterable(sentences))
        index = self._index
        # The batch's new token strings, by first sight (the order one token at a time would
        # add them in: the word types, and so the rows, come out the same), added at once.
        new = [tok for tok in dict.fromkeys(flat) if tok not in index]
        if new:
            self._add_all(new)
        at = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = self._with_window(self._table[at], offsets)
        return self._with_context(rows, sentences), offsets

    def _with_context(self, rows: np.ndarray, sentences) -> np.ndarray:
        """``rows`` with each token's document code inserted before the word type (if any);
        code 0 for a sentence that carries none."""
        if not self.context:
            return rows
        codes = [context_of(s) for s in sentences]
        code = np.concatenate([np.zeros(len(s), np.int32) if c is None else
                               np.asarray(c, np.int32) for s, c in zip(sentences, codes)]
                              or [np.zeros(0, np.int32)])
        at = rows.shape[1] - (self.chars is not None)
        return np.ascontiguousarray(np.insert(rows, at, self._context_base + code, axis=1))

    def char_ids(self, sequence: str) -> np.ndarray | None:
        """The word ids of a string's characters through a byte → id table, as
        ``vocab.word_ids(list(sequence))`` gives them; None when it holds a non-ASCII character
        (that path then serves it)."""
        try:
            raw = sequence.encode("ascii")
        except UnicodeEncodeError:
            return None
        if self._byte_ids is None:
            table = np.full(128, UNK_ID, np.int32)
            for i, w in enumerate(self.vocab.words):
                if len(w) == 1 and ord(w) < 128 and i > UNK_ID:
                    table[ord(w)] = i
            self._byte_ids = table
        return self._byte_ids[np.frombuffer(raw, np.uint8)]

    def _with_window(self, rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``rows`` (each token's own columns) with the window's columns inserted before the
        word type (if any): the words k..1 before and 1..k after in the same sentence."""
        k = self.window
        if not k:
            return rows
        N, V = len(rows), self.vocab.n_words
        n_own = rows.shape[1] - (self.chars is not None)
        lengths = np.diff(offsets)
        first = np.repeat(offsets[:-1], lengths)
        end = np.repeat(offsets[1:], lengths)
        at = np.arange(N)
        words = rows[:, 0]
        # (the document code, if any, is inserted after this: _with_context)
        out = np.empty((N, rows.shape[1] + 2 * k), np.int32)
        out[:, :n_own] = rows[:, :n_own]
        out[:, n_own + 2 * k:] = rows[:, n_own:]
        base = self._window_base
        for j, o in enumerate([*range(-k, 0), *range(1, k + 1)]):
            q = at + o
            inside = (q >= first) & (q < end)
            neighbour = np.where(inside, words[np.clip(q, 0, max(N - 1, 0))], PAD_ID)
            out[:, n_own + j] = base + j * V + neighbour
        return out

    def _add_all(self, tokens: list[str]) -> None:
        """Append the rows of ``tokens`` (none of them in the cache yet), in their order, with
        the word ids and each feature's values computed for all of them at once."""
        n, k = len(self._index), len(tokens)
        if n + k > len(self._table):
            grown = np.empty((max(2 * len(self._table), n + k), self._own_columns), np.int32)
            grown[:n] = self._table[:n]
            self._table = grown
        rows = self._table[n:n + k]
        rows[:, 0] = self.vocab.word_ids(tokens)
        col, base = 1, self.vocab.n_words
        if self.features is not None:
            for size, values in zip(self.features.sizes, self.features.ids_of_all(tokens)):
                rows[:, col] = np.asarray(values, np.int32) + base
                base += size
                col += 1
        if self.chars is not None:
            type_of = self._type_of
            rows[:, col] = [type_of(tok) for tok in tokens]
        self._index.update(zip(tokens, range(n, n + k)))

    def _type_of(self, token: str) -> int:
        t = self._types.get(token)
        if t is None:
            t = self._types[token] = len(self._types)
            self._new_chars += self.chars.spell(token, CHAR_WIDTH)
            self._new_ends.append(len(self._spelled[0]) + len(self._new_chars))
        return t

    def spellings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every word type's character ids end to end, and where each starts (new arrays
        whenever types were added: those returned before stay as they were)."""
        if self._new_ends:
            chars, starts = self._spelled
            self._spelled = (np.concatenate([chars, np.array(self._new_chars, np.int32)]),
                             np.concatenate([starts, np.array(self._new_ends, np.int64)]))
            self._new_chars, self._new_ends = [], []
        return self._spelled

    def _clear_spellings(self) -> None:
        self._spelled = (np.zeros(0, np.int32), np.zeros(1, np.int64))
        self._new_chars: list[int] = []
        self._new_ends: list[int] = []

    def trim(self) -> None:
        """Drop the caches once they are large (between batches: a batch's rows stay valid)."""
        if len(self._index) > _CACHE_LIMIT or len(self._types) > _CACHE_LIMIT:
            self.generation += 1
            self._index.clear()
            self._table = np.empty((1024, self._own_columns), np.int32)
            if self.chars is not None:
                self._types.clear()
                self._clear_spellings()
                self._type_of("")


def pack(id_arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-sentence index arrays (1-D, or 2-D with one row per token) into
    (ids, offsets) for the kernels: sentence s is ids[offsets[s]:offsets[s+1]]."""
    offsets = np.zeros(len(id_arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in id_arrays], out=offsets[1:])
    ids = np.concatenate(id_arrays).astype(np.int32, copy=False) if id_arrays else \
        np.zeros(0, np.int32)
    return np.ascontiguousarray(ids), offsets


# Odd 64-bit multipliers of a row's entries: a row's key is Σ row[c]·K[c] mod 2^64. Eight
# fixed ones, then splitmix64's outputs (made odd) for the wide rows of a window's columns.
def _splitmix64(n: int, state: int = 0x5EED) -> list[int]:
    out, mask = [], (1 << 64) - 1
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append((z ^ (z >> 31)) | 1)
    return out


_KEYS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                  0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                  0x94D049BB133111EB, 0xBF58476D1CE4E5B9] + _splitmix64(72), dtype=np.uint64)
# Rows below which np.unique(axis=0) is used. The key path is quicker from a few dozen rows
# (numpy 2.4: 131 against 385 us for a training batch of 470 rows of 8 columns, on the
# training thread's serial path at every step); np.unique keeps the empty and tiny cases.
_SMALL = 32


def unique_rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows of ``ids`` in lexicographic order, each row's index among them):
    np.unique(ids, axis=0, return_inverse=True), exactly, in a fraction of its time on large
    batches (it sorts rows as records; here one 64-bit key per row is sorted, and the result
    is checked against ``ids``, so a collision of keys falls back to np.unique)."""
    n, c = ids.shape
    if n < _SMALL or c > len(_KEYS):
        rows, inverse = np.unique(ids, axis=0, return_inverse=True)
        return rows, inverse.reshape(-1)
    with np.errstate(over="ignore"):
        key = (ids.astype(np.uint64) * _KEYS[:c]).sum(axis=1, dtype=np.uint64)
    perm = np.argsort(key)                    # any order of equal keys will do
    sorted_key = key[perm]
    starts = np.empty(n, bool)
    starts[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=starts[1:])
    inverse = np.empty(n, np.int64)
    inverse[perm] = np.cumsum(starts) - 1
    rows = ids[perm[starts]]
    if not np.array_equal(rows[inverse], ids):
        rows, inverse = np.unique(ids, axis=0, return_inverse=True)
        return rows, inverse.reshape(-1)
    order = np.lexsort(rows.T[::-1])          # column 0 first, as np.unique(axis=0) sorts
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rows[order], rank[inverse]
