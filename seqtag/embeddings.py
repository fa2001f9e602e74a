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
from seqtag.memory import ensure_memory
from seqtag.textfile import read_lines


# Real word vectors have tens to a few thousand numbers; a line far longer than the longest of
# those is not a vector file (or would need more memory than the projection can have).
MAX_LINE_BYTES = 1 << 20
_FORMAT = "expected 'word v1 v2 ... vd' per line, after an optional 'count dim' header"


# Vectors that ship with seqtag, given by name to --embeddings: BLOSUM62 (Henikoff & Henikoff
# 1992), each amino acid's row of substitution scores, which says which residues stand in for
# each other in related proteins: a prior a protein model learns slowly from a few thousand
# residues (seqtag.config's protein defaults; README "Characters").
BUILTIN = {"blosum62": "blosum62.vec"}


def vectors_path(name: str | os.PathLike) -> str:
    """The file of the built-in set ``name`` (BUILTIN), unless a file of that name exists;
    otherwise the path as given."""
    name = str(name)
    if name in BUILTIN and not os.path.exists(name):
        from importlib import resources

        return str(resources.files("seqtag") / "data" / BUILTIN[name])
    return name


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
    header: tuple[int, int] | None = None
    rows = last = 0
    try:
        f = open(path, "rb")
    except OSError as e:
        raise SeqtagError(f"cannot read the embeddings ({e.strerror})", path=name) from None
    with f:
        for no, line in read_lines(f, name, max_line=MAX_LINE_BYTES, hint=_FORMAT):
            last = no
            parts = line.rstrip(" ").split(" ")
            if no == 1 and len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts):
                header = (int(parts[0]), int(parts[1]))  # word2vec's "count dim"
                continue
            if not line.strip():
                continue
            word, values = parts[0], parts[1:]
            rows += 1
            if header is not None and rows > header[0]:
                raise SeqtagError(f"vector {rows:,}, but the header (line 1) says the file has "
                                  f"{header[0]:,}", path=name, line=no,
                                  hint="fix the header's count, or remove the header")
            if dim is None:
                dim = len(values)
                if dim == 0:
                    raise SeqtagError("a word without numbers", path=name, line=no, hint=_FORMAT)
                if header is not None and dim != header[1]:
                    raise SeqtagError(f"has {dim} numbers, but the header (line 1) says "
                                      f"{header[1]}", path=name, line=no,
                                      hint="fix the header's dimension, or remove the header")
                # The vectors kept, and the float64 copies project_into makes of them.
                ensure_memory(len(want) * dim * 12, f"pretrained vectors of {dim:,} numbers "
                              f"for {len(want):,} words", "use vectors with fewer dimensions, or "
                              "a smaller vocabulary (--min-count, --max-size)")
            if len(values) != dim:
                raise SeqtagError(f"has {len(values)} numbers where the file's vectors have {dim}",
                                  path=name, line=no, hint="every vector needs the same length")
            targets = [word] if word in want else []
            targets += [w for w in lower.get(word.lower(), ()) if w not in exact and w != word]
            if not targets:
                continue  # not parsed: a big file is mostly words the corpus never uses
            vec = _numbers(values, name, no)
            for w in targets:
                if w == word:
                    exact.add(w)
                    found[w] = vec
                else:
                    found.setdefault(w, vec)
    if dim is None:
        raise SeqtagError("holds no vectors", path=name,
                          hint="give a word2vec or GloVe text file")
    if header is not None and rows != header[0]:
        raise SeqtagError(f"the header says {header[0]:,} vectors, but the file has {rows:,} "
                          f"(it ends at line {last})", path=name, line=1,
                          hint="fix the header's count, or the file may be cut short")
    return found, dim


def _numbers(values: list[str], name: str, no: int) -> np.ndarray:
    try:
        vec = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise SeqtagError(f"holds {bad!r}, which is not a number", path=name, line=no,
                          hint=_FORMAT) from None
    # float() takes "nan" and "inf", and float32 turns 1e39 into inf: none can start a weight.
    with np.errstate(over="ignore"):
        vec32 = vec.astype(np.float32)
    if not np.isfinite(vec32).all():
        bad = values[int(np.flatnonzero(~np.isfinite(vec32))[0])]
        raise SeqtagError(f"holds {bad!r}, which is not a finite number (of float32 range)",
                          path=name, line=no, hint="every value must be a finite number")
    return vec32


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
