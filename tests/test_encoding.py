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
