"""seqtag.encoding: tokens to rows of input columns, packing, and the distinct rows of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from seqtag import encoding
from seqtag.encoding import pack, unique_rows


@pytest.mark.parametrize("n, cols, values, distinct", [
    (10, 1, 5, None), (32, 3, 4, None), (470, 8, 300, 200), (1000, 8, 3, None),
    (5000, 6, 50, None), (20000, 7, 3, None), (50000, 7, 40, 700),
    (50000, 1, 100, None), (9000, 2, 2**31 - 1, None)])
def test_unique_rows_equals_numpys(n, cols, values, distinct):
    rng = np.random.default_rng(n + cols)
    ids = rng.integers(0, values, (n, cols)).astype(np.int32)
    if distinct:                 # few distinct rows, each repeated: a batch of text
        ids = ids[rng.integers(0, distinct, n)]
    rows, inverse = unique_rows(ids)
    ref_rows, ref_inverse = np.unique(ids, axis=0, return_inverse=True)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(inverse, ref_inverse.reshape(-1))
    np.testing.assert_array_equal(rows[inverse], ids)


@pytest.mark.parametrize("n", [40, 6000])
def test_unique_rows_falls_back_when_keys_collide(monkeypatch, n):
    monkeypatch.setattr(encoding, "_KEYS", np.zeros(8, np.uint64))   # every key equal
    ids = np.random.default_rng(1).integers(0, 9, (n, 3)).astype(np.int32)
    rows, inverse = unique_rows(ids)
    ref_rows, ref_inverse = np.unique(ids, axis=0, return_inverse=True)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(inverse, ref_inverse.reshape(-1))


def test_pack_concatenates_with_offsets():
    ids, offsets = pack([np.array([[1, 2], [3, 4]]), np.zeros((0, 2), int), np.array([[5, 6]])])
    assert ids.dtype == np.int32 and ids.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert offsets.tolist() == [0, 2, 2, 3]


@pytest.mark.parametrize("with_features, with_chars", [(False, False), (True, False), (True, True),
                                                        (False, True)])
def test_encode_batch_equals_packed_encodes(with_features, with_chars):
    """A batch encoded at once gives the rows and offsets of its sentences encoded one by one and
    packed, with the same word types for the spelling CNN, whatever the cache held before."""
    from seqtag.chars import CharVocab
    from seqtag.corpus import Sentence
    from seqtag.encoding import Encoder
    from seqtag.features import FeatureSet
    from seqtag.vocab import Vocabulary

    rng = np.random.default_rng(3)
    words = ["Sam", "Li", "and", "Tom", "date", "on", "Tuesday", ".", "x", "ÿ", "2020", "", "A-B"]
    train = [[words[i] for i in rng.integers(0, 8, 6)] for _ in range(20)]
    vocab, _ = Vocabulary.build([Sentence(s, ["O"] * len(s), [], 0) for s in train])
    feats = FeatureSet.build([t for s in train for t in s], ["shape", "suffix3"], 1) \
        if with_features else None
    chars = CharVocab.build(t for s in train for t in s) if with_chars else None
    batches = [[[words[i] for i in rng.integers(0, len(words), n)] for n in rng.integers(0, 9, 7)]
               for _ in range(3)] + [[]]
    one, many = Encoder(vocab, feats, chars), Encoder(vocab, feats, chars)
    for batch in batches:
        ref_ids, ref_offsets = pack([one.encode(s) for s in batch])
        ids, offsets = many.encode_batch(batch)
        assert ids.dtype == np.int32 and ids.flags.c_contiguous
        np.testing.assert_array_equal(ids, ref_ids.reshape(ids.shape))
        np.testing.assert_array_equal(offsets, ref_offsets)
        if with_chars:
            for a, b in zip(one.spellings(), many.spellings()):
                np.testing.assert_array_equal(a, b)


def _add_one(enc, token: str) -> int:
    """The reference: one token's row, its word id and each feature's value on their own, added
    to the encoder's table on first sight (what encoding did before _add_all)."""
    n = len(enc._index)
    if n == len(enc._table):
        grown = np.empty((2 * n, enc._own_columns), np.int32)
        grown[:n] = enc._table
        enc._table = grown
    base, cols = enc.vocab.n_words, [int(enc.vocab.word_ids([token])[0])]
    if enc.features is not None:
        for size, value in zip(enc.features.sizes, enc.features.ids(token)):
            cols.append(base + value)
            base += size
    if enc.chars is not None:
        cols.append(enc._type_of(token))
    enc._table[n] = cols
    enc._index[token] = n
    return n


@pytest.mark.parametrize("with_chars", [False, True])
def test_new_tokens_added_at_once_as_one_at_a_time(with_chars):
    """encode_batch adds a batch's new token strings at once (_add_all): the same rows, in the
    same order, with the same word types and spellings, as adding each token on first sight
    (_add_one), across batches and a table that has to grow."""
    from seqtag.chars import CharVocab
    from seqtag.corpus import Sentence
    from seqtag.encoding import Encoder
    from seqtag.features import FEATURES, FeatureSet
    from seqtag.vocab import Vocabulary

    rng = np.random.default_rng(5)
    alphabet = list("aAbZ09.-'_é ") + ["ll", "Ü", "xxx"]
    words = sorted({"".join(rng.choice(alphabet, rng.integers(1, 9))).replace(" ", "")
                    for _ in range(3000)} - {""})
    train = [[words[i] for i in rng.integers(0, len(words) // 2, 8)] for _ in range(200)]
    vocab, _ = Vocabulary.build([Sentence(s, ["O"] * len(s), [], 0) for s in train])
    feats = FeatureSet.build([t for s in train for t in s], list(FEATURES), 1)
    chars = CharVocab.build(t for s in train for t in s) if with_chars else None
    batches = [[[words[i] for i in rng.integers(0, len(words), n)] for n in
                rng.integers(0, 40, 30)] for _ in range(4)]
    ref, enc = Encoder(vocab, feats, chars), Encoder(vocab, feats, chars)
    for batch in batches:
        ids, _ = enc.encode_batch(batch)
        at = [ref._index[t] if t in ref._index else _add_one(ref, t) for s in batch for t in s]
        rows = ref._table[np.array(at, np.int64)]
        np.testing.assert_array_equal(ids, rows.reshape(ids.shape))
    assert enc._index == ref._index and len(enc._index) > 1024     # the table grew
    np.testing.assert_array_equal(enc._table[:len(enc._index)], ref._table[:len(ref._index)])
    if with_chars:
        assert enc._types == ref._types
        for a, b in zip(enc.spellings(), ref.spellings()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("window, context", [(0, False), (0, True), (1, False), (2, True)])
def test_the_unknown_row_is_a_lone_token_with_nothing_known(window, context):
    """Encoder.unknown_row (what explain takes a token away to): every column of the layout,
    the unknown word and feature values and no spelling in the token's own columns, and in the
    window's and the document code's what a one-token sentence of its own gets."""
    from seqtag.chars import CharVocab
    from seqtag.corpus import Sentence
    from seqtag.encoding import Encoder
    from seqtag.features import FeatureSet
    from seqtag.vocab import UNK_ID, Vocabulary

    train = [["Sam", "Li", "met", "Tom", "."], ["Tom", "met", "Sam", "."]]
    vocab, _ = Vocabulary.build([Sentence(s, ["O"] * len(s), [], 0) for s in train])
    feats = FeatureSet.build([t for s in train for t in s], ["casing", "suffix3"], 1)
    chars = CharVocab.build(t for s in train for t in s)
    enc = Encoder(vocab, feats, chars, window=window, context=context)
    row = enc.unknown_row()
    assert row.dtype == np.int32 and row.shape == (enc.n_columns,)
    assert row[0] == UNK_ID and row[-1] == 0
    bases = vocab.n_words + np.concatenate([[0], np.cumsum(feats.sizes)[:-1]])
    np.testing.assert_array_equal(row[1:1 + len(feats.sizes)], bases)
    assert enc.encode(["Tom", "Sam", "x"]).shape == (3, enc.n_columns)
    lone = enc.encode(["Tom"])[0]        # a sentence of one token, no document
    shared = slice(1 + len(feats.sizes), enc.n_columns - 1)
    np.testing.assert_array_equal(row[shared], lone[shared])
