"""Chunk tag schemes (IOB1, IOB2, IOBES): parsing, detection, conversion, spans, transitions.

Spans follow conlleval's chunk boundary rules, extended with S- the way seqeval and the usual
IOBES-aware conlleval ports do; the same rules read IOB1, IOB2 and IOBES, so nothing here needs
to know the scheme except conversion targets and decoding constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SCHEMES = ("IOB1", "IOB2", "IOBES", "none")

# BILOU's L/U are IOBES's E/S under other names; folding them here lets every rule below
# deal with five tags only.
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}


def split_label(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``, ``"NN"`` -> ``("", "NN")``.

    The prefix is one of B, I, E, S, O (L- and U- read as E- and S-), or ``""`` for a label that
    is not a chunk tag. Only the first ``-`` separates, as in conlleval, so types may contain
    hyphens. A bare ``B``/``I``/``E``/``S`` is a chunk tag of the empty type, again as in conlleval
    (single-type chunking such as keyphrases is often labelled that way).
    """
    if label == "O":
        return "O", ""
    head, _, tail = label.partition("-")
    prefix = _PREFIXES.get(head)
    return (prefix, tail) if prefix else ("", label)


def is_chunk_labels(labels: Iterable[str]) -> bool:
    """True when every label is ``O`` or a chunk tag (and there is at least one label)."""
    seen = False
    for label in labels:
        if not split_label(label)[0]:
            return False
        seen = True
    return seen


def _as_sequences(labels: Iterable[str] | Iterable[Sequence[str]]) -> list[Sequence[str]]:
    items = list(labels)
    return [items] if all(isinstance(x, str) for x in items) else items


def detect_scheme(labels: Iterable[str] | Iterable[Sequence[str]]) -> str:
    """Guess the tag scheme: ``"IOB1"``, ``"IOB2"``, ``"IOBES"`` or ``"none"`` (not chunk tags).

    Accepts one label sequence or an iterable of sequences; pass sentences separately when you
    can, since IOB1 and IOB2 differ only in what starts a chunk and a sentence start counts.
    IOB2 forbids I-X except after B-X/I-X; IOB1 forbids B-X except right after an X chunk. The
    scheme with fewer violations wins (ties, e.g. only O, go to IOB2), so a stray annotation
    error does not flip a corpus.
    """
    seqs = _as_sequences(labels)
    if not is_chunk_labels(label for seq in seqs for label in seq):
        return "none"
    iob2_violations = iob1_violations = 0
    for seq in seqs:
        prev_tag, prev_type = "O", ""
        for label in seq:
            tag, type_ = split_label(label)
            if tag in ("E", "S"):
                return "IOBES"
            continues = prev_tag in ("B", "I") and prev_type == type_
            if tag == "I" and not continues:
                iob2_violations += 1
            elif tag == "B" and not continues:
                iob1_violations += 1
            prev_tag, prev_type = tag, type_
    return "IOB1" if iob1_violations < iob2_violations else "IOB2"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag != "O" and prev_type != type_))


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("I", "E"))
            or (tag != "O" and prev_type != type_))


def _parse(label: str) -> tuple[str, str]:
    tag, type_ = split_label(label)
    # A label outside the scheme (a POS tag among NER tags, say) cannot be inside a chunk.
    return (tag, type_) if tag else ("O", "")


def spans(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Chunks as ``(type, start, end)`` with ``end`` exclusive, in order.

    Uses conlleval's startOfChunk/endOfChunk over B/I/E/S/O, so ill-formed input is read the way
    conlleval reads it (an I-X after O or after another type starts a chunk; E-/S- close one).
    """
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate([*labels, "O"]):
        if label == "O" and prev_tag == "O":
            # O after O neither ends nor starts a chunk: most tokens of a corpus, and dev is
            # scored at every epoch's end
            prev_type = ""
            continue
        tag, type_ = _parse(label)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def continues(label_names: Sequence[str], type_: str) -> list[int]:
    """The indices of the labels that would continue an entity of ``type_`` on the next token
    (I- and E- of that type): forbidding them there makes an entity end where it is."""
    return [k for k, lab in enumerate(label_names)
            if split_label(lab)[1] == type_ and split_label(lab)[0] in ("I", "E")]


def _label(prefix: str, type_: str) -> str:
    return f"{prefix}-{type_}" if type_ else prefix


def convert(labels: Sequence[str], scheme: str) -> list[str]:
    """Rewrite ``labels`` (in any scheme) into ``scheme`` with the same chunks.

    Labels that are not chunk tags are kept where no chunk covers them; ``"none"`` returns the
    labels unchanged.
    """
    if scheme == "none":
        return list(labels)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    out = [label if not split_label(label)[0] else "O" for label in labels]
    prev_end, prev_type = -1, None
    for type_, start, end in spans(labels):
        if scheme == "IOBES":
            if end - start == 1:
                out[start] = _label("S", type_)
            else:
                out[start] = _label("B", type_)
                out[start + 1:end - 1] = [_label("I", type_)] * (end - start - 2)
                out[end - 1] = _label("E", type_)
            continue
        # IOB1 spends B- only where a chunk touches one of the same type.
        first = "I" if scheme == "IOB1" and not (prev_end == start and prev_type == type_) else "B"
        out[start] = _label(first, type_)
        out[start + 1:end] = [_label("I", type_)] * (end - start - 1)
        prev_end, prev_type = end, type_
    return out


def allowed_transitions(label_names: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Which labels may start a sequence (``start[j]``) and follow label i (``trans[i, j]``).

    Labels that are not chunk tags count as O. Under ``"none"`` everything is allowed.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    n = len(label_names)
    parsed = [_parse(label) for label in label_names]
    start = np.ones(n, dtype=bool)
    trans = np.ones((n, n), dtype=bool)
    if scheme == "none":
        return start, trans
    for j, (tag, type_) in enumerate(parsed):
        if scheme == "IOB2":
            start[j] = tag != "I"
        elif scheme == "IOB1":
            start[j] = tag != "B"
        else:
            start[j] = tag in ("O", "B", "S")
        for i, (prev_tag, prev_type) in enumerate(parsed):
            same = prev_type == type_
            if scheme == "IOB2":
                ok = tag != "I" or (prev_tag in ("B", "I") and same)
            elif scheme == "IOB1":
                ok = tag != "B" or (prev_tag in ("B", "I") and same)
            elif prev_tag in ("B", "I"):
                ok = tag in ("I", "E") and same
            else:
                ok = tag in ("O", "B", "S")
            trans[i, j] = ok
    return start, trans


def allowed_end(label_names: Sequence[str], scheme: str) -> np.ndarray:
    """Which labels may end a sequence: all, except B-/I- under IOBES (a chunk must close)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return np.array([scheme != "IOBES" or _parse(label)[0] not in ("B", "I")
                     for label in label_names], dtype=bool)
