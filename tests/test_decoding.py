"""Constrained decoding: the result is always valid for the tag scheme, and the best valid one."""

import itertools

import numpy as np
import pytest

from collections.abc import Sequence

from seqtag.decoding import MASK, decode_batch, transition_mask
from seqtag.schemes import allowed_end, allowed_transitions, convert


def constrained_argmax(log_probs: np.ndarray, label_names: Sequence[str], scheme: str) -> list[int]:
    """The most probable valid sequence under a per-token model: argmax Σt log ŷ<t>[y_t].

    log_probs (T, L) with L = len(label_names); Viterbi over them with the scheme's transition
    mask, so that, say, I-PER never follows O under IOB2. A token's zero probability (-inf) is
    avoided whenever possible, never at the price of validity.
    """
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2 or log_probs.shape[1] != len(label_names):
        raise ValueError(f"log_probs of shape (T, {len(label_names)}) expected, "
                         f"got {log_probs.shape}")
    if len(log_probs) == 0:
        return []
    start, trans, end = transition_mask(label_names, scheme)
    offsets = np.array([0, len(log_probs)], dtype=np.int64)
    return decode_batch(log_probs, offsets, trans, start, end).tolist()


IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def is_valid(seq, label_names, scheme):
    start, trans = allowed_transitions(label_names, scheme)
    end = allowed_end(label_names, scheme)
    return bool(start[seq[0]] and end[seq[-1]]
                and all(trans[a, b] for a, b in zip(seq[:-1], seq[1:])))


def brute_force(log_probs, label_names, scheme):
    """The valid sequence of largest Σt log_probs[t, y_t] (None if none is valid)."""
    T, L = log_probs.shape
    start, trans = allowed_transitions(label_names, scheme)
    end = allowed_end(label_names, scheme)
    best, best_score = None, -np.inf
    for seq in itertools.product(range(L), repeat=T):
        if start[seq[0]] and end[seq[-1]] and all(trans[a, b] for a, b in zip(seq, seq[1:])):
            score = log_probs[np.arange(T), seq].sum()
            if best is None or score > best_score:
                best, best_score = list(seq), score
    return best


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_transition_mask():
    start, trans, end = transition_mask(IOB2, "IOB2")
    assert start.dtype == trans.dtype == end.dtype == np.float32
    assert start.tolist() == [0, 0, MASK, 0, MASK]
    assert trans[0, 2] == MASK and trans[1, 2] == 0 and trans[2, 2] == 0 and trans[3, 2] == MASK
    assert not end.any()
    _, _, end = transition_mask(["O", "B-X", "I-X", "E-X", "S-X"], "IOBES", forbidden=-np.inf)
    assert end.tolist() == [0, -np.inf, -np.inf, 0, 0]
    assert not any(a.any() for a in transition_mask(IOB2, "none"))


def test_o_then_i_per_is_repaired():
    # Plain argmax: O I-PER I-PER O, invalid under IOB2.
    probs = np.array([[0.90, 0.02, 0.04, 0.02, 0.02],
                      [0.30, 0.25, 0.35, 0.05, 0.05],
                      [0.10, 0.10, 0.70, 0.05, 0.05],
                      [0.80, 0.05, 0.05, 0.05, 0.05]])
    log_probs = np.log(probs)
    plain = log_probs.argmax(1).tolist()
    assert plain == [0, 2, 2, 0] and not is_valid(plain, IOB2, "IOB2")
    got = constrained_argmax(log_probs, IOB2, "IOB2")
    assert is_valid(got, IOB2, "IOB2")
    assert got == brute_force(log_probs, IOB2, "IOB2") == [0, 1, 2, 0]  # O B-PER I-PER O
    # float32 input, and a valid argmax is left alone.
    assert constrained_argmax(log_probs.astype(np.float32), IOB2, "IOB2") == [0, 1, 2, 0]
    log_probs[1, 1] = np.log(0.5)
    assert constrained_argmax(log_probs, IOB2, "IOB2") == log_probs.argmax(1).tolist()


def test_sentence_must_not_end_inside_an_iobes_chunk():
    labels = ["O", "B-X", "I-X", "E-X", "S-X"]
    log_probs = np.log(np.array([[0.1, 0.6, 0.1, 0.1, 0.1],
                                 [0.1, 0.1, 0.6, 0.1, 0.1]]))
    got = constrained_argmax(log_probs, labels, "IOBES")
    assert got == brute_force(log_probs, labels, "IOBES") == [1, 3]  # B-X E-X
    assert constrained_argmax(log_probs, labels, "none") == [1, 2]


def test_zero_probabilities_and_empty_input():
    log_probs = np.full((3, len(IOB2)), -np.inf)
    log_probs[:, 2] = 0.0  # all mass on I-PER, which cannot start
    got = constrained_argmax(log_probs, IOB2, "IOB2")
    assert is_valid(got, IOB2, "IOB2")
    assert got[1:] == [2, 2]  # one impossible token, not three
    assert constrained_argmax(np.zeros((0, 5)), IOB2, "IOB2") == []
    with pytest.raises(ValueError):
        constrained_argmax(np.zeros((2, 4)), IOB2, "IOB2")


def label_set(scheme, types):
    prefixes = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES"])
def test_random_log_probs_decode_to_the_best_valid_sequence(scheme):
    rng = np.random.default_rng(len(scheme))
    labels = label_set(scheme, ["PER", "LOC"])
    rng.shuffle(labels)  # nothing depends on label order
    L = len(labels)
    invalid_argmax = 0
    for _ in range(40):
        T = int(rng.integers(1, 5))
        log_probs = log_softmax(rng.normal(0, 3, (T, L)))
        got = constrained_argmax(log_probs, labels, scheme)
        assert is_valid(got, labels, scheme)
        assert got == brute_force(log_probs, labels, scheme)
        invalid_argmax += not is_valid(log_probs.argmax(1).tolist(), labels, scheme)
    assert invalid_argmax >= 10  # the constraint had work to do


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES"])
def test_decoded_sequences_are_always_valid(scheme):
    """Longer sentences, packed batches, CRF-like scores with the mask added, huge emissions."""
    rng = np.random.default_rng(10 + len(scheme))
    labels = label_set(scheme, ["PER", "LOC", "ORG", "MISC"])
    L = len(labels)
    start, trans, end = transition_mask(labels, scheme)
    lengths = rng.integers(1, 40, 200)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = offsets[-1]
    for scale in (1.0, 10.0, 1e5):  # 1e5: emission gaps beyond the finite mask
        E = rng.normal(0, scale, (N, L)).astype(np.float32)
        crf = [rng.normal(0, 1, a.shape).astype(np.float32) for a in (trans, start, end)]
        for t_, s_, e_ in ((trans, start, end), (trans + crf[0], start + crf[1], end + crf[2])):
            out = decode_batch(E, offsets, t_, s_, e_)
            assert out.dtype == np.int32 and out.shape == (N,)
            for s in range(len(lengths)):
                seq = out[offsets[s]:offsets[s + 1]].tolist()
                assert is_valid(seq, labels, scheme), (scale, seq)
                # the decoded labels are a fixed point of scheme conversion
                names = [labels[i] for i in seq]
                assert convert(names, scheme) == names
    # A packed batch decodes as its sentences one by one.
    log_probs = log_softmax(rng.normal(0, 3, (N, L)))
    out = decode_batch(log_probs, offsets, trans, start, end)
    for s in range(0, len(lengths), 17):
        a, b = offsets[s], offsets[s + 1]
        assert out[a:b].tolist() == constrained_argmax(log_probs[a:b], labels, scheme)
