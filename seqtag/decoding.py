"""Decoding that never breaks the tag scheme: Viterbi under the scheme's transition constraints.

A per-token softmax tagger can emit I-PER right after O (IOB2), or end a sentence inside a chunk
(B-/I- last under IOBES); a CRF learns to make them unlikely, not impossible (seqtag trains its
CRF on the raw transition scores, so that a gold file with a stray invalid transition does not
cost a loss of 1e4). Here decoding is a Viterbi search over allowed sequences only:

  ŷ = argmax over valid y of  start[y_0] + Σt E[t, y_t] + Σ_{t≥1} trans[y_{t-1}, y_t] + end[y_{T-1}]

with E the per-token log-probabilities (softmax model; start/trans/end then only the mask) or a
CRF's emission scores (start/trans/end its scores plus the mask). A sequence is valid when its
first label may start, every label may follow the one before it and the last may end
(seqtag.schemes.allowed_transitions / allowed_end).

The guarantee. transition_mask gives forbidden entries the finite score MASK = -1e4 (no inf
arithmetic, exp(-1e4) is exactly 0). For decoding, every score at or below
MASK / 2 is made -inf and emissions are clipped to ±1e30 (NaN and -inf to -1e30), so that every
valid sequence scores above -inf and every invalid one -inf: the result is valid whenever some
sequence of that length is valid (with "O" or any B- tag in the labels, always).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqtag.schemes import allowed_end, allowed_transitions

MASK = -1e4  # the score of a forbidden transition, start or end
_FORBIDDEN = MASK / 2  # scores at or below this are forbidden when decoding
_CLIP = 1e30  # emissions are clipped to ±_CLIP so that no valid sequence scores -inf


def transition_mask(label_names: Sequence[str], scheme: str,
                    forbidden: float = MASK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start (L,), trans (L, L), end (L,)) float32: 0 where allowed, ``forbidden`` where not.

    trans[i, j] is for label j right after label i. Add them to a CRF's own scores, or pass them
    alone to decode a per-token model. Under scheme ``"none"`` everything is allowed.
    """
    start_ok, trans_ok = allowed_transitions(label_names, scheme)
    end_ok = allowed_end(label_names, scheme)

    def scores(ok):
        return np.where(ok, np.float32(0), np.float32(forbidden)).astype(np.float32)

    return scores(start_ok), scores(trans_ok), scores(end_ok)


def _hard(scores, dtype):
    """Scores as ``dtype``, with everything at or below MASK / 2 (and NaN) made -inf."""
    scores = np.array(scores, dtype=dtype)  # a copy
    scores[~(scores > _FORBIDDEN)] = -np.inf
    return scores


def decode_batch(E: np.ndarray, offsets: np.ndarray, trans: np.ndarray, start: np.ndarray,
                 end: np.ndarray, kernels=None) -> np.ndarray:
    """The best valid label sequence of each sentence of a packed batch: (N,) int32.

    E (N, L): emission scores or log-probabilities, sentence s at rows offsets[s]:offsets[s+1].
    trans (L, L), start (L,), end (L,): scores, forbidden entries ≤ MASK / 2 (e.g. a CRF's scores
    plus transition_mask, or transition_mask alone). Viterbi (``kernels.viterbi``: of
    seqtag.engines.kernel_set, Numba's by default).
    """
    if kernels is None:
        from seqtag.engines import numba_kernels as kernels  # Numba is imported only here

    E = np.asarray(E)
    dtype = E.dtype if E.dtype in (np.float32, np.float64) else np.float64
    E = np.clip(np.nan_to_num(E.astype(dtype, copy=False), nan=-_CLIP, neginf=-_CLIP),
                -_CLIP, _CLIP)
    L = E.shape[1]
    trans, start, end = (_hard(a, dtype) for a in (trans, start, end))
    if trans.shape != (L, L) or start.shape != (L,) or end.shape != (L,):
        raise ValueError(f"scores for {L} labels expected, got trans {trans.shape}, "
                         f"start {start.shape}, end {end.shape}")
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets[-1] != len(E):
        raise ValueError(f"offsets end at {offsets[-1]} but E has {len(E)} rows")
    out = np.zeros(len(E), dtype=np.int32)
    kernels.viterbi(np.ascontiguousarray(E), offsets, trans, start, end, out)
    return out


# -- from a model's emissions ---------------------------------------------------------------------
# Every function below takes the emissions E of a packed batch (or one sentence) and the model's
# output layer (seqtag.layers.output: Softmax or CRF), so that labels, marginals, n-best lists and
# span probabilities of one batch all come from one pass of the network, with the output layer's
# kernels (its engine's).

def decode_emissions(output, E: np.ndarray, offsets: np.ndarray, masks, proba: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """(best valid label of each token (N,), each chosen label's probability or None).

    ``masks`` = transition_mask(labels, scheme) as (start, trans, end). Without ``proba`` a CRF
    skips its forward-backward pass; a softmax model needs ŷ to decode anyway."""
    P = output.marginals(E, offsets) if proba or output.decodes_from_marginals else None
    U, trans, start, end = output.chain(E, offsets, P)
    m_start, m_trans, m_end = masks
    best = decode_batch(U, offsets, trans + m_trans, start + m_start, end + m_end,
                        output.kernels)
    if not proba:
        return best, None
    return best, P[np.arange(len(best)), best]


def _log_partition(kernels, U, offsets, trans, start, end) -> float:
    log_z = np.zeros(1)
    kernels.crf_log_partition(U, offsets, trans, start, end, log_z)
    return float(log_z[0])


def nbest_paths(output, E: np.ndarray, masks, k: int) -> list[tuple[np.ndarray, float]]:
    """The k most probable valid label sequences of ONE sentence's emissions E (T, L), each with
    its probability under the model (CRF++ -n, Wapiti -n)."""
    offsets = np.array([0, len(E)], dtype=np.int64)
    U, trans, start, end = output.chain(E, offsets)
    log_z = _log_partition(output.kernels, U, offsets, trans, start, end)
    # -inf, not the finite mask: a valid path of a long sentence may score below any finite
    # threshold, and only -inf tells the forbidden ones apart exactly.
    m_start, m_trans, m_end = (np.where(m > _FORBIDDEN, m, -np.inf).astype(m.dtype)
                               for m in masks)
    paths, scores = output.kernels.nbest(U, trans + m_trans, start + m_start, end + m_end, k)
    return [(path, float(np.exp(score - log_z)))
            for path, score in zip(paths, scores) if score > -np.inf]


def span_probabilities(output, E: np.ndarray, label_names: Sequence[str],
                       labels: Sequence[str]) -> list[float]:
    """For each entity (type, i, j) of the labelling ``labels`` of ONE sentence (in
    schemes.spans order), P(tokens i..j-1 carry exactly these labels and the next token does not
    continue the entity): a ratio of two partition functions, exact for a CRF."""
    from seqtag.schemes import continues, spans as find_spans

    spans = find_spans(labels)
    if not spans:
        return []
    offsets = np.array([0, len(E)], dtype=np.int64)
    U, trans, start, end = output.chain(E, offsets)
    log_z = _log_partition(output.kernels, U, offsets, trans, start, end)
    index = {lab: k for k, lab in enumerate(label_names)}
    out = []
    for type_, i, j in spans:
        V = U.copy()
        for t in range(i, j):
            keep = index[labels[t]]
            V[t, :keep] = V[t, keep + 1:] = -1e30
        if j < len(labels):
            V[j, continues(label_names, type_)] = -1e30
        log_z_span = _log_partition(output.kernels, V, offsets, trans, start, end)
        out.append(float(np.exp(log_z_span - log_z)))
    return out
