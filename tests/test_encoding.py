"""seqtag.encoding: tokens to rows of input columns, packing, and the distinct rows of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from seqtag import encoding
from seqtag.encoding import pack, unique_rows


@pytest.mark.parametrize("n, cols, values, distinct", [
    (10, 1, 5, None), (5000, 6, 50, None), (20000, 7, 3, None), (50000, 7, 40, 700),
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


def test_unique_rows_falls_back_when_keys_collide(monkeypatch):
    monkeypatch.setattr(encoding, "_KEYS", np.zeros(8, np.uint64))   # every key equal
    ids = np.random.default_rng(1).integers(0, 9, (6000, 3)).astype(np.int32)
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
