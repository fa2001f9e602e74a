"""The recurrent tagger: its parameters, vocabulary, features, metadata and ``.npz`` file format.

The textbook Elman RNN is the base case: one direction, one input id per token. Options add a
backward direction (its own Wax_b, Waa_b, ba_b, states joined before the output layer, so Wya is
L × 2H) and word-form features (more columns of Wax; see seqtag.features): x<t> is multi-hot and
Wax·x<t> a sum of columns.

With embeddings (embed_dim d > 0) x<t> is instead a dense vector, the sum of the token's columns
of an embedding matrix Ex (d × inputs) joined to the character CNN's vector c of its spelling
(seqtag.kernels_chars), and Wax is G × (d + filters): the usual BiLSTM-CNN-CRF input, and a model
about 4H/d times smaller. The recurrent kernels still read columns: for each distinct input row
of a batch ("word type"), Wax·x is computed once into a column of a slot array, and every token
reads its type's slot; the kernels' gradient in a slot is dL/d(Wax·x) of that type.

Model file (a zip of ``.npy`` arrays that ``numpy.load(..., allow_pickle=False)`` reads):
  magic           uint8  UTF-8 of "seqtag-model"
  format_version  int64  scalar; a reader refuses versions newer than its own
  meta            uint8  UTF-8 JSON: versions, hyperparameters, corpus, history, creation time
  words, labels   uint8  UTF-8 of the entries joined by "\\n" (index order)
  word_counts, label_counts  int64
  feature_<name>  uint8  UTF-8 of a feature's values joined by "\n" (one per feature in meta)
  chars           uint8  UTF-8 of the character inventory (when the model has a character CNN)
  Wax (G, V+ΣF), Waa (G, H), ba (G,)  [and Wax_b, Waa_b, ba_b],  Wya (L, D), by (L,)  float32
  (G = H, 3H or 4H for the Elman, GRU and LSTM cells)  [trans (L, L), start (L,), end (L,)]
  with embeddings: Ex (d, V+ΣF), and Wax (G, d+F) [Ec (C, dc), Wconv (F, 3·dc), bconv (F,)]
Entries carry a fixed timestamp, so equal models give byte-identical files.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from seqtag import __version__
from seqtag.atomic import write_bytes_atomic
from seqtag.chars import CharVocab
from seqtag.errors import SeqtagError
from seqtag.features import FeatureSet
from seqtag.vocab import Vocabulary

MAGIC = "seqtag-model"
FORMAT_VERSION = 2      # 2: embeddings and character CNN (Ex, chars, Ec, ...); reads 1 too
PARAM_NAMES = ("Wax", "Waa", "Wya", "ba", "by")        # the textbook model's
BACKWARD_NAMES = ("Wax_b", "Waa_b", "ba_b")            # the backward direction's
CRF_NAMES = ("trans", "start", "end")                  # the CRF output layer's
CHAR_NAMES = ("Ec", "Wconv", "bconv")                  # the character CNN's
CHAR_WIDTH = 3                                         # characters per CNN window
# Recurrent cells: how many gate blocks of H rows Wax, Waa and ba stack, and how many H-wide
# columns per token the forward pass keeps for the backward one (seqtag.kernels_gated).
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CACHE = {"rnn": 0, "gru": 4, "lstm": 5}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def init_params(n_inputs: int, n_labels: int, hidden: int, rng: np.random.Generator,
                bidirectional: bool = False, crf: bool = False, cell: str = "rnn",
                chars: tuple[int, int, int] | None = None, embed_dim: int = 0,
                columns: int = 1) -> dict[str, np.ndarray]:
    """Uniform(±1/√H) weights as in the usual RNN initialisation, zero biases (an LSTM's forget
    gate starts at 1, so that it remembers by default).

    n_inputs counts Wax's columns: the words, plus every feature value when there are features.
    embed_dim = d > 0 gives the embedded input Ex (d × n_inputs; ``columns`` per token are
    summed, so each starts with variance 1/columns) and Wax of G × (d + F);
    chars = (characters, embedding size dc, filters F) adds the character CNN (embed_dim > 0).
    """
    s = 1.0 / np.sqrt(hidden)
    u = lambda *shape: rng.uniform(-s, s, size=shape).astype(np.float32)  # noqa: E731
    D = hidden * (2 if bidirectional else 1)
    G = GATES[cell] * hidden

    def bias():
        b = np.zeros(G, np.float32)
        if cell == "lstm":
            b[hidden:2 * hidden] = 1.0
        return b

    if chars and not embed_dim:
        raise ValueError("the character CNN needs embed_dim > 0")
    n_x = embed_dim + (chars[2] if chars else 0) if embed_dim else n_inputs
    wax = (lambda: u(G, n_x)) if embed_dim else (lambda: np.asfortranarray(u(G, n_inputs)))
    params = {
        "Wax": wax(),
        "Waa": u(G, hidden),
        "Wya": u(n_labels, D),
        "ba": bias(),
        "by": np.zeros(n_labels, np.float32),
    }
    if bidirectional:
        params["Wax_b"] = wax()
        params["Waa_b"] = u(G, hidden)
        params["ba_b"] = bias()
    if crf:
        params["trans"] = np.zeros((n_labels, n_labels), np.float32)
        params["start"] = np.zeros(n_labels, np.float32)
        params["end"] = np.zeros(n_labels, np.float32)
    if chars:
        n_chars, dc, F = chars
        k = CHAR_WIDTH * dc
        params["Ec"] = rng.uniform(-np.sqrt(3 / dc), np.sqrt(3 / dc),
                                   size=(n_chars, dc)).astype(np.float32)
        params["Wconv"] = rng.uniform(-1 / np.sqrt(k), 1 / np.sqrt(k), size=(F, k)).astype(
            np.float32)
        params["bconv"] = np.zeros(F, np.float32)
    if embed_dim:
        r = np.sqrt(3 / columns)
        params["Ex"] = np.asfortranarray(
            rng.uniform(-r, r, size=(embed_dim, n_inputs)).astype(np.float32))
    return params


@dataclass
class Embedded:
    """A batch through the embedded input: the kernels' ids (each token's slot), the distinct
    input rows in slot order, their x (embedding sums, then c), and the CNN's winning windows."""

    ids: np.ndarray
    rows: np.ndarray
    X: np.ndarray
    arg: np.ndarray | None
    mask: np.ndarray | None = None     # input dropout's scaled mask, when training with it


def pack(id_arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-sentence index arrays (1-D, or 2-D with one row per token) into
    (ids, offsets) for the kernels."""
    offsets = np.zeros(len(id_arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in id_arrays], out=offsets[1:])
    ids = np.concatenate(id_arrays).astype(np.int32, copy=False) if id_arrays else \
        np.zeros(0, np.int32)
    return np.ascontiguousarray(ids), offsets


@dataclass
class RNNTagger:
    """a<t> = tanh(Waa·a<t-1> + Wax·x<t> + ba) per direction, ŷ<t> = softmax(Wya·a<t> + by)."""

    vocab: Vocabulary
    params: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    features: FeatureSet | None = None
    chars: CharVocab | None = None
    format_version: int = FORMAT_VERSION     # of the file it was loaded from

    def __post_init__(self):
        self._rows: dict[str, tuple[int, ...]] = {}
        self._masks = None
        # Character CNN: word types by first sight and their spellings end to end. Embedded
        # input: each direction's slot array, what its kernels read as "Wax".
        self._types: dict[str, int] = {}
        self._spellings: list[int] = []
        self._starts: list[int] = [0]
        self._spelled = None
        self._slot_arrays: dict[str, np.ndarray] = {}
        if self.chars is not None:
            self._type_of("")   # type 0: no spelling, what feature dropout turns a word into

    @property
    def hidden(self) -> int:
        return self.params["Waa"].shape[1]

    @property
    def cell(self) -> str:
        return self.meta.get("architecture", {}).get("cell", "rnn")

    @property
    def bidirectional(self) -> bool:
        return "Wax_b" in self.params

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    @property
    def scheme(self) -> str:
        return self.meta.get("label_scheme", "none")

    @property
    def n_inputs(self) -> int:
        """Columns of Wax: words, then each feature's values."""
        return self.vocab.n_words + (sum(self.features.sizes) if self.features else 0)

    @property
    def embedded(self) -> bool:
        return "Ex" in self.params

    @property
    def n_columns(self) -> int:
        """Entries of x<t>: the word, each feature, and the word type's slot with a char CNN."""
        return 1 + (len(self.features.names) if self.features else 0) + \
            (self.chars is not None)

    def directions(self):
        """(Wax, Waa, ba, reverse, column of A, parameter-name suffix) of each direction; with
        the embedded input, the "Wax" the kernels read is the direction's slot array."""
        p, H = self.params, self.hidden
        yield self._slot_arrays.get("Wax", p["Wax"]), p["Waa"], p["ba"], False, 0, ""
        if self.bidirectional:
            yield self._slot_arrays.get("Wax_b", p["Wax_b"]), p["Waa_b"], p["ba_b"], True, H, "_b"

    def slot_arrays(self, n: int) -> dict[str, np.ndarray]:
        """Each direction's slot array (G × at least n, column-major), grown when needed."""
        if self._slot_arrays and next(iter(self._slot_arrays.values())).shape[1] >= n:
            return self._slot_arrays
        n = max(n, 256)
        for key in ("Wax", "Wax_b") if self.bidirectional else ("Wax",):
            W = self.params[key]
            self._slot_arrays[key] = np.zeros((W.shape[0], n), dtype=W.dtype, order="F")
        return self._slot_arrays

    def forward(self, ids: np.ndarray, offsets: np.ndarray, A: np.ndarray,
                caches: list[np.ndarray], exact: bool = False,
                input_dropout: tuple[float, np.random.Generator] | None = None
                ) -> "Embedded | None":
        """Every direction's states into its columns of A (caches: one per direction, what a
        gated cell's backward pass needs; empty for the Elman cell). With the embedded input,
        what its backward pass needs comes back as an Embedded; input_dropout = (p, rng) drops
        entries of x (training only)."""
        from seqtag import kernels

        batch = self._embed_forward(ids, input_dropout) if self.embedded else None
        if batch is not None:
            ids = batch.ids
        for (Wax, Waa, ba, reverse, col, _), C in zip(self.directions(), caches):
            if self.cell == "rnn":
                kernels.rnn_forward(Wax, Waa, ba, ids, offsets, reverse, exact, A, col)
            else:
                from seqtag import kernels_gated

                step = kernels_gated.lstm_forward if self.cell == "lstm" else \
                    kernels_gated.gru_forward
                step(Wax, Waa, ba, ids, offsets, reverse, exact, A, col, C)
        return batch

    def _type_of(self, token: str) -> int:
        t = self._types.get(token)
        if t is None:
            t = self._types[token] = len(self._types)
            self._spellings += self.chars.spell(token, CHAR_WIDTH)
            self._starts.append(len(self._spellings))
            self._spelled = None
        return t

    def spellings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every word type's character ids end to end, and where each starts (kernel inputs)."""
        if self._spelled is None:
            self._spelled = (np.array(self._spellings, dtype=np.int32),
                             np.array(self._starts, dtype=np.int64))
        return self._spelled

    def _embed_forward(self, ids: np.ndarray,
                       input_dropout: tuple[float, np.random.Generator] | None = None
                       ) -> Embedded:
        """x of each distinct input row of the batch, and Wax·x of each direction into its
        slot array."""
        from seqtag import kernels
        from seqtag.kernels_chars import charcnn_forward, embed_sum

        p = self.params
        rows, inverse = np.unique(ids, axis=0, return_inverse=True)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        n, d = len(rows), p["Ex"].shape[0]
        n_cols = rows.shape[1] - (self.chars is not None)
        X = np.empty((n, p["Wax"].shape[1]), dtype=p["Wax"].dtype)
        embed_sum(p["Ex"], rows, n_cols, X)
        arg = None
        if self.chars is not None:
            spelled, starts = self.spellings()
            c = np.empty((n, p["Wconv"].shape[0]), dtype=X.dtype)
            arg = np.empty(c.shape, dtype=np.int32)
            charcnn_forward(p["Ec"], p["Wconv"], p["bconv"], spelled, starts,
                            np.ascontiguousarray(rows[:, -1]), CHAR_WIDTH, c, arg)
            X[:, d:] = c
        mask = None
        if input_dropout is not None and input_dropout[0] > 0:
            # Inverted dropout of x, one mask per distinct input of the batch.
            rate, rng = input_dropout
            mask = (rng.random(X.shape, dtype=np.float32) >= rate) * np.float32(1 / (1 - rate))
            mask = mask.astype(X.dtype, copy=False)
            X_in = X * mask
        else:
            X_in = X
        no_bias = np.zeros(p["Wax"].shape[0], dtype=X.dtype)
        for key, slots in self.slot_arrays(n).items():
            # slots[:, :n].T is a C-ordered (n, G) view: the product lands in the slots.
            # (Numba's product, not NumPy's: BLAS threads spin on a busy machine.)
            kernels.linear_forward(X_in, p[key], no_bias, slots[:, :n].T)
        slot_ids = inverse.reshape(-1, 1).astype(np.int32)
        return Embedded(slot_ids, rows, X, arg, mask)

    def embed_backward(self, batch: Embedded, grads: dict[str, np.ndarray],
                       slot_grads: dict[str, np.ndarray]) -> None:
        """Adds the gradients of Wax, Ex and the character CNN into ``grads``, from the
        kernels' gradients in the slot arrays (``slot_grads``), and zeroes those slots."""
        from seqtag import kernels
        from seqtag.kernels_chars import charcnn_backward, embed_scatter

        p, n = self.params, len(batch.rows)
        d = p["Ex"].shape[0]
        dX = np.zeros_like(batch.X)
        dX_part = np.empty_like(batch.X)
        no_bias = np.zeros(p["Wax"].shape[0], dtype=dX.dtype)
        X_in = batch.X if batch.mask is None else batch.X * batch.mask
        for key, slots in slot_grads.items():
            dP = slots[:, :n].T          # (n, G): dL/d(Wax·x) of each input row
            kernels.linear_backward(X_in, p[key], dP, dX_part, grads[key], no_bias)
            dX += dX_part
            dP[...] = 0
        if batch.mask is not None:
            dX *= batch.mask
        n_cols = batch.rows.shape[1] - (self.chars is not None)
        embed_scatter(dX, batch.rows, n_cols, grads["Ex"])
        if self.chars is not None:
            spelled, starts = self.spellings()
            charcnn_backward(p["Ec"], p["Wconv"], spelled, starts,
                             np.ascontiguousarray(batch.rows[:, -1]), CHAR_WIDTH,
                             np.ascontiguousarray(batch.X[:, d:]), batch.arg,
                             np.ascontiguousarray(dX[:, d:]), grads["Ec"], grads["Wconv"],
                             grads["bconv"])

    def caches(self, n_tokens: int) -> list[np.ndarray]:
        width = CACHE[self.cell] * self.hidden
        return [np.empty((n_tokens, width), self.params["Waa"].dtype)
                for _ in range(2 if self.bidirectional else 1)]

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """x<t> of each token as its Wax column indices: (T, 1 + number of features) int32."""
        if self.features is None and self.chars is None:
            return self.vocab.word_ids(tokens).reshape(-1, 1)
        rows = self._rows
        out = np.empty((len(tokens), self.n_columns), dtype=np.int32)
        for t, tok in enumerate(tokens):
            row = rows.get(tok)
            if row is None:
                row = rows[tok] = self._columns(tok)
            out[t] = row
        return out

    def _columns(self, token: str) -> tuple[int, ...]:
        word = self.vocab.word_ids([token])[0]
        base, cols = self.vocab.n_words, [int(word)]
        if self.features is not None:
            for size, value in zip(self.features.sizes, self.features.ids(token)):
                cols.append(base + value)
                base += size
        if self.chars is not None:
            cols.append(self._type_of(token))   # a word type, made a slot column per batch
        return tuple(cols)

    def trim_caches(self) -> None:
        """Forget the per-token caches once they are large, so that a long stream of new
        tokens does not grow memory forever (between batches: ids of a batch stay valid)."""
        if len(self._rows) > 1_000_000 or len(self._types) > 1_000_000:
            self._rows.clear()
            if self.chars is not None:
                self._types.clear()
                self._spellings.clear()
                del self._starts[1:]
                self._spelled = None
                self._type_of("")

    def states(self, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """A (N, D): each token's hidden state, the directions side by side."""
        A = np.empty((len(ids), self.params["Wya"].shape[1]), dtype=np.float32)
        self.forward(ids, offsets, A, self.caches(len(ids)))
        return A

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """P(y<t> = label) for each token: one (T, L) float32 array per sentence (ŷ<t> of the
        softmax, or the CRF's marginals)."""
        if not sentences:
            return []
        E, offsets = self._emissions(sentences)
        P = self._proba(E, offsets)
        return [P[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    def _emissions(self, sentences) -> tuple[np.ndarray, np.ndarray]:
        """Wya·a<t> + by for every token of the packed sentences, and their offsets."""
        # Imported here: Numba costs a third of a second, which inspect and errors need not pay.
        from seqtag import kernels

        self.trim_caches()
        ids, offsets = pack([self.encode(s) for s in sentences])
        ids = ids.reshape(len(ids), self.n_columns)
        A = self.states(ids, offsets)
        E = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        kernels.linear_forward(A, self.params["Wya"], self.params["by"], E)
        return E, offsets

    def _proba(self, E: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        if self.crf:
            from seqtag.crf import crf_marginals

            P = np.empty_like(E)
            p = self.params
            crf_marginals(E, offsets, p["trans"], p["start"], p["end"], P)
            return P
        from seqtag import kernels

        P = E.copy()
        kernels.softmax_rows(P, False)
        return P

    @property
    def crf(self) -> bool:
        return "trans" in self.params

    def decode(self, sentences: Sequence[Sequence[str]], proba: bool = True
               ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per sentence: the label indices of the best sequence that is valid for the tag scheme
        (never I-PER after O in IOB2), and each chosen label's probability (None when ``proba``
        is false: a CRF then skips its forward-backward pass).

        With a CRF, the best sequence under its scores; without, the most probable sequence
        under the per-token softmax. Invalid transitions are masked either way."""
        from seqtag.decoding import decode_batch, transition_mask

        if not sentences:
            return []
        E, offsets = self._emissions(sentences)
        P = self._proba(E, offsets) if proba or not self.crf else None
        if self._masks is None:
            self._masks = transition_mask(self.labels, self.scheme)
        start, trans, end = self._masks
        if self.crf:
            p = self.params
            best = decode_batch(E, offsets, p["trans"] + trans, p["start"] + start,
                                p["end"] + end)
        else:
            best = decode_batch(np.log(np.maximum(P, 1e-30)), offsets, trans, start, end)
        if not proba:
            return [(best[offsets[i]:offsets[i + 1]], None) for i in range(len(sentences))]
        chosen = P[np.arange(len(best)), best]
        return [(best[offsets[i]:offsets[i + 1]], chosen[offsets[i]:offsets[i + 1]])
                for i in range(len(sentences))]

    def _chain(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The model as a linear chain: (potentials, trans, start, end) whose normalised path
        scores are its sequence probabilities. A CRF is one already; a softmax model is the chain
        of its log ŷ with zero transitions (so the probability of a path is Π ŷ<t>[y<t>])."""
        if self.crf:
            p = self.params
            return E, p["trans"], p["start"], p["end"]
        from seqtag import kernels

        P = E.copy()
        kernels.softmax_rows(P, False)
        L = len(self.labels)
        zero = np.zeros(L, np.float32)
        return np.log(np.maximum(P, 1e-30)), np.zeros((L, L), np.float32), zero, zero

    def nbest(self, tokens: Sequence[str], k: int) -> list[tuple[list[str], float]]:
        """The k most probable label sequences of one sentence that are valid for the tag
        scheme, each with its probability under the model (CRF++ -n, Wapiti -n)."""
        from seqtag.crf import crf_log_partition, nbest
        from seqtag.decoding import transition_mask

        if not tokens:
            return [([], 1.0)]
        E, offsets = self._emissions([tokens])
        U, trans, start, end = self._chain(E)
        log_z = np.zeros(1)
        crf_log_partition(U, offsets, trans, start, end, log_z)
        # -inf, not the finite mask: a valid path of a long sentence may score below any finite
        # threshold, and only -inf tells the forbidden ones apart exactly.
        m_start, m_trans, m_end = transition_mask(self.labels, self.scheme, -np.inf)
        paths, scores = nbest(U, trans + m_trans, start + m_start, end + m_end, k)
        return [([self.labels[j] for j in path], float(np.exp(score - log_z[0])))
                for path, score in zip(paths, scores) if score > -np.inf]

    def span_probabilities(self, tokens: Sequence[str], labels: Sequence[str]) -> list[float]:
        """For each entity (type, i, j) of the labelling ``labels`` (in schemes.spans order),
        P(tokens i..j-1 carry exactly these labels and the next token does not continue the
        entity): a ratio of two partition functions, exact for a CRF."""
        from seqtag.crf import crf_log_partition
        from seqtag.schemes import spans as find_spans, split_label

        spans = find_spans(labels)
        if not spans:
            return []
        E, offsets = self._emissions([tokens])
        U, trans, start, end = self._chain(E)
        best = list(labels)
        log_z = np.zeros(1)
        crf_log_partition(U, offsets, trans, start, end, log_z)
        out = []
        for type_, i, j in spans:
            V = U.copy()
            for t in range(i, j):
                keep = self.labels.index(best[t])
                V[t, :keep] = V[t, keep + 1:] = -1e30
            if j < len(tokens):
                for k, lab in enumerate(self.labels):
                    prefix, typ = split_label(lab)
                    if typ == type_ and prefix in ("I", "E"):
                        V[j, k] = -1e30
            part = np.zeros(1)
            crf_log_partition(V, offsets, trans, start, end, part)
            out.append(float(np.exp(part[0] - log_z[0])))
        return out

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The most probable valid label sequence of each sentence."""
        labels = self.vocab.labels
        return [[labels[k] for k in best] for best, _ in self.decode(sentences, proba=False)]

    # -- file format ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically (a temporary file renamed over ``path``)."""
        arrays = {
            "magic": _utf8(MAGIC),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "meta": _utf8(json.dumps(self.meta, sort_keys=True, ensure_ascii=False)),
            "words": _utf8("\n".join(self.vocab.words)),
            "word_counts": self.vocab.word_counts,
            "labels": _utf8("\n".join(self.vocab.labels)),
            "label_counts": self.vocab.label_counts,
            **{f"feature_{name}": _utf8("\n".join(values)) for name, values in
               (zip(self.features.names, self.features.values) if self.features else ())},
            **({"chars": _utf8(self.chars.to_text())} if self.chars is not None else {}),
            **self.params,
        }

        def write(f):
            with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
                for name, arr in arrays.items():
                    info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
                    # Weights barely compress; storing them keeps loading a plain read.
                    info.compress_type = (zipfile.ZIP_STORED if arr.dtype == np.float32
                                          else zipfile.ZIP_DEFLATED)
                    info.external_attr = 0o644 << 16
                    with zf.open(info, "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)

        write_bytes_atomic(path, writer=write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RNNTagger":
        """Read and check a model file; every problem is a SeqtagError naming the file."""
        name = str(path)
        hint = "train one with 'seqtag train', or pass the right file with -m"
        if not Path(path).exists():
            raise SeqtagError("no such model file", path=name, hint=hint)
        if Path(path).is_dir():
            raise SeqtagError("is a directory, not a model file", path=name, hint=hint)
        try:
            with open(path, "rb") as f:
                # Not a zip at all (text, .npy, gzip...): say so, rather than numpy's pickle message.
                if f.read(4) != b"PK\x03\x04":
                    raise SeqtagError("is not a seqtag model file (not a zip archive)", path=name,
                                      hint=hint)
            with np.load(path, allow_pickle=False) as z:
                if "magic.npy" not in z.zip.namelist() or _text(z["magic"]) != MAGIC:
                    raise SeqtagError("is not a seqtag model file", path=name, hint=hint)
                version = int(z["format_version"])
                if version > FORMAT_VERSION:
                    raise SeqtagError(
                        f"was written in model format {version}, newer than this seqtag "
                        f"{__version__} reads (format {FORMAT_VERSION})", path=name,
                        hint="upgrade seqtag: pip install -U seqtag")
                arrays = {k: z[k] for k in z.files}
        except SeqtagError:
            raise
        except PermissionError as e:
            raise SeqtagError(f"cannot read the model ({e.strerror})", path=name) from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise SeqtagError(f"is not a seqtag model file, or is truncated or damaged ({e})",
                              path=name, hint=hint) from None
        except (ValueError, KeyError, OSError) as e:
            raise SeqtagError(f"is a damaged or truncated model file ({e})",
                              path=name, hint=hint) from None
        missing = [k for k in ("meta", "words", "word_counts", "labels", "label_counts",
                               *PARAM_NAMES) if k not in arrays]
        if missing:
            raise SeqtagError(f"is a damaged model file: no {', '.join(missing)}", path=name,
                              hint=hint)
        try:
            meta = json.loads(_text(arrays["meta"]))
            vocab = Vocabulary(_text(arrays["words"]).split("\n"), arrays["word_counts"],
                               _text(arrays["labels"]).split("\n"), arrays["label_counts"])
        except (ValueError, UnicodeDecodeError) as e:
            raise SeqtagError(f"is a damaged model file ({e})", path=name, hint=hint) from None
        arch = meta.get("architecture", {}) if isinstance(meta, dict) else {}
        has_chars = bool(arch.get("char_filters"))
        names = list(PARAM_NAMES) + (list(BACKWARD_NAMES) if arch.get("bidirectional") else []) \
            + (list(CRF_NAMES) if arch.get("crf") else []) \
            + (list(CHAR_NAMES) if has_chars else []) \
            + (["Ex"] if arch.get("embed_dim") else [])
        feature_names = arch.get("features", [])
        try:
            features = FeatureSet(feature_names, [_text(arrays[f"feature_{n}"]).split("\n")
                                                  for n in feature_names]) \
                if feature_names else None
            params = {k: arrays[k] for k in names}
            chars = CharVocab.from_text(_text(arrays["chars"])) if has_chars else None
        except (KeyError, ValueError, UnicodeDecodeError) as e:
            raise SeqtagError(f"is a damaged model file (no or bad {e})", path=name,
                              hint=hint) from None
        n_inputs = vocab.n_words + (sum(features.sizes) if features else 0)
        if arch.get("cell", "rnn") not in GATES:
            raise SeqtagError(f"has an unknown cell {arch.get('cell')!r}", path=name,
                              hint="upgrade seqtag, or retrain the model")
        _check_shapes(params, vocab, n_inputs, name, GATES[arch.get("cell", "rnn")],
                      len(chars) if chars else 0)
        for k in names:
            column_major = k == "Ex" or (k.startswith("Wax") and not arch.get("embed_dim"))
            params[k] = (np.asfortranarray if column_major else np.ascontiguousarray)(
                params[k], dtype=np.float32)
        return cls(vocab=vocab, params=params, meta=meta, features=features, chars=chars,
                   format_version=version)


def _check_shapes(params: dict[str, np.ndarray], vocab: Vocabulary, n_inputs: int,
                  name: str, gates: int = 1, n_chars: int = 0) -> None:
    H = params["Waa"].shape[1] if params["Waa"].ndim == 2 else -1
    G = gates * H
    V, L = n_inputs, vocab.n_labels
    D = H * (2 if "Wax_b" in params else 1)
    expected = {"Wax": (G, V), "Waa": (G, H), "Wya": (L, D), "ba": (G,), "by": (L,),
                "Wax_b": (G, V), "Waa_b": (G, H), "ba_b": (G,),
                "trans": (L, L), "start": (L,), "end": (L,)}
    if "Ex" in params:
        F = params["bconv"].shape[0] if "bconv" in params and params["bconv"].ndim == 1 else 0
        dc = params["Ec"].shape[1] if "Ec" in params and params["Ec"].ndim == 2 else -1
        d = params["Ex"].shape[0] if params["Ex"].ndim == 2 else -1
        expected.update({"Ex": (d, V), "Wax": (G, d + F), "Wax_b": (G, d + F),
                         "Ec": (n_chars, dc), "Wconv": (F, CHAR_WIDTH * dc), "bconv": (F,)})
    for k in params:
        shape = expected[k]
        if params[k].shape != shape:
            raise SeqtagError(
                f"its vocabulary does not match its weights: {k} is {params[k].shape}, "
                f"expected {shape} for {V} inputs (words and feature values), {L} labels "
                f"and {H} hidden units",
                path=name, hint="the file is damaged; retrain or restore it")
        if params[k].dtype.kind != "f" or not np.isfinite(params[k]).all():
            raise SeqtagError(f"parameter {k} holds non-finite or non-float values", path=name,
                              hint="the file is damaged; retrain or restore it")
    if len(vocab.word_counts) != vocab.n_words or len(vocab.label_counts) != L:
        raise SeqtagError("its vocabulary counts do not match its entries", path=name,
                          hint="the file is damaged; retrain or restore it")


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(arr: np.ndarray) -> str:
    if arr.dtype != np.uint8:
        raise ValueError("expected UTF-8 bytes")
    return arr.tobytes().decode("utf-8")
