"""The group plan every cell steps a batch by (seqtag.kernels.stepping), against its definition:
sentences longest first (stable) within each window of _WINDOW, groups of _GROUP in that order,
and at step t the sentences of a group with ≥ t tokens are its first m (m4: m padded to 4)."""

import numpy as np
import pytest

from seqtag.kernels.stepping import (_GROUP, _WINDOW, _backward_scratch, _group, _pad4, _plan,
                                     _running, _shrink)


def offsets_of(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


LENGTHS = [
    [],
    [0],
    [3, 1, 5, 2],
    [2, 2, 0, 7, 2, 7, 1],
    [int(n) for n in np.random.default_rng(1).integers(0, 40, 2 * _WINDOW + 37)],
]


@pytest.mark.parametrize("lengths", LENGTHS)
def test_plan_orders_each_window_longest_first_and_stably(lengths):
    n, got_lengths, order, rows = _plan(offsets_of(lengths))
    assert n == len(lengths)
    np.testing.assert_array_equal(got_lengths, lengths)
    assert rows == -(-min(_GROUP, n) // 4) * 4
    expected = [s for w in range(0, n, _WINDOW)
                for s in sorted(range(w, min(n, w + _WINDOW)), key=lambda s: -lengths[s])]
    np.testing.assert_array_equal(order, expected)


@pytest.mark.parametrize("lengths", LENGTHS[2:])
def test_forward_and_backward_steps_see_the_sentences_still_running(lengths):
    n, lengths_, order, rows = _plan(offsets_of(lengths))
    tokens, previous, active = _backward_scratch(n, lengths_, order, rows)
    assert tokens.shape == previous.shape == (rows,)
    assert active.shape == (max(lengths) + 2,)
    groups = 0
    for first in range(0, n, _GROUP):
        group, T = _group(lengths_, order, first)
        np.testing.assert_array_equal(group, order[first:first + _GROUP])
        assert T == max(lengths[s] for s in group)
        _running(lengths_, group, T, active)
        m = len(group)
        for t in range(1, T + 1):
            m, m4 = _shrink(lengths_, group, m, t, rows)
            running = [s for s in group if lengths[s] >= t]
            assert list(group[:m]) == running       # the first m, and only they
            assert active[t] == m
            assert m4 == _pad4(m, rows) == min(-(-m // 4) * 4, rows)
        assert active[T + 1] == 0
        groups += 1
    assert groups == -(-n // _GROUP)
