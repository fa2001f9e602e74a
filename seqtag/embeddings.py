"""Pretrained word vectors (word2vec or GloVe text files) as a starting point for Wax's columns.

In the textbook model a word's input is its column Wax[:, w] (H numbers), so a d-dimensional
pretrained vector e_w enters through a fixed random projection: Wax[:, w] = P·e_w, P of shape
(H, d) with orthonormal rows or columns, scaled so that the columns have the spread of the usual
initialisation. When d = H, P is a rotation: distances between words are kept either way.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from seqtag.errors import SeqtagError


def read_vectors(path: str | os.PathLike, wanted: Iterable[str]) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of ``wanted`` words found in a word2vec/GloVe text file (an optional
    "count dim" header line, then "word v1 ... vd" per line), looked up as written, else
    lowercased. Returns ({word: vector}, d)."""
    name = str(path)
    want = set(wanted)
    lower: dict[str, list[str]] = {}
    for w in want:
        lower.setdefault(w.lower(), []).append(w)
    found: dict[str, np.ndarray] = {}
    exact: set[str] = set()
    dim = None
    try:
        f = open(path, "rb")
    except OSError as e:
        raise SeqtagError(f"cannot read the embeddings ({e.strerror})", path=name) from None
    with f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise SeqtagError(f"invalid UTF-8 at byte {e.start} of the line", path=name,
                                  line=no, hint="embeddings files are UTF-8 text") from None
            parts = line.rstrip(" ").split(" ")
            if no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's "count dim" header
            if not line.strip():
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
                if dim == 0:
                    raise SeqtagError("a word without numbers", path=name, line=no,
                                      hint="expected 'word v1 v2 ... vd' per line")
            if len(values) != dim:
                raise SeqtagError(f"has {len(values)} numbers where the file's vectors have {dim}",
                                  path=name, line=no, hint="every vector needs the same length")
            targets = [word] if word in want else []
            targets += [w for w in lower.get(word.lower(), ()) if w not in exact and w != word]
            if not targets:
                continue
            try:
                vec = np.array(values, dtype=np.float32)
            except ValueError:
                raise SeqtagError("holds a value that is not a number", path=name, line=no,
                                  hint="expected 'word v1 v2 ... vd' per line") from None
            for w in targets:
                if w == word:
                    exact.add(w)
                    found[w] = vec
                else:
                    found.setdefault(w, vec)
    if dim is None:
        raise SeqtagError("holds no vectors", path=name,
                          hint="give a word2vec or GloVe text file")
    return found, dim


def project_into(Wax: np.ndarray, words: list[str], vectors: dict[str, np.ndarray], dim: int,
                 rng: np.random.Generator) -> int:
    """Set Wax[:, w] = P·e_w for every word with a vector; returns how many were set."""
    H = Wax.shape[0]
    # A random matrix with orthonormal columns (d ≤ H) or rows (d > H).
    q, _ = np.linalg.qr(rng.normal(size=(max(H, dim), min(H, dim))))
    P = q if dim <= H else q.T                       # (H, d)
    rows = [i for i, w in enumerate(words) if w in vectors]
    if not rows:
        return 0
    E = np.stack([vectors[words[i]] for i in rows]).astype(np.float64)   # (n, d)
    if len(rows) > 1:
        E -= E.mean(axis=0)  # a common offset would push every word the same way
    cols = E @ P.T                                    # (n, H)
    target = np.std(Wax) or 1.0 / np.sqrt(3 * H)
    cols *= target / (np.std(cols) or 1.0)
    Wax[:, rows] = cols.T.astype(Wax.dtype)
    return len(rows)
