"""The recurrent tagger: a network with its inventories and metadata.

RNNTagger is what a model file holds (seqtag.modelfile reads and writes it): the vocabulary and
labels, the word-form features and the character inventory, the parameters, and the metadata
(architecture, training history). From them it builds, once, the input encoder
(seqtag.encoding) and the network (seqtag.network, a composition of seqtag.layers); tagging is
encode → network → decode (seqtag.decoding), all from one pass of emissions per batch.

The textbook Elman RNN is the base case: one direction, one input id per token,
a<t> = tanh(Waa·a<t-1> + Wax·x<t> + ba), ŷ<t> = softmax(Wya·a<t> + by). The architecture adds a
backward direction (its own Wax_b, Waa_b, ba_b, states joined before the output layer, so Wya
is L × 2H), GRU or LSTM cells (gates stacked in the rows of Wax, Waa, ba), word-form features
(more columns of Wax; see seqtag.features), a CRF output layer (trans, start, end), and the
embedded input: x<t> = [Σ Ex columns of the word and its features ; the character CNN's vector
of its spelling] with Wax of G × (d + filters) — the usual BiLSTM-CNN-CRF, about 4H/d times
smaller than the multi-hot model.

File format (a zip of ``.npy`` arrays that ``numpy.load(..., allow_pickle=False)`` reads):
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
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from seqtag import __version__
from seqtag.atomic import write_bytes_atomic
from seqtag.chars import CharVocab
from seqtag.encoding import Encoder, pack  # noqa: F401  (pack: the batch layout, re-exported)
from seqtag.errors import SeqtagError
from seqtag.features import FeatureSet
from seqtag.layers.charcnn import CHAR_WIDTH
from seqtag.layers.recurrent import CACHE, GATES  # noqa: F401
from seqtag.network import Architecture, Network
from seqtag.vocab import Vocabulary

MAGIC = "seqtag-model"
FORMAT_VERSION = 2      # 2: embeddings and character CNN (Ex, chars, Ec, ...); reads 1 too
PARAM_NAMES = ("Wax", "Waa", "Wya", "ba", "by")        # the textbook model's
BACKWARD_NAMES = ("Wax_b", "Waa_b", "ba_b")            # the backward direction's
CRF_NAMES = ("trans", "start", "end")                  # the CRF output layer's
CHAR_NAMES = ("Ec", "Wconv", "bconv")                  # the character CNN's
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class RNNTagger:
    """A tagger: inventories, parameters, metadata; its encoder and network built from them."""

    vocab: Vocabulary
    params: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    features: FeatureSet | None = None
    chars: CharVocab | None = None
    format_version: int = FORMAT_VERSION     # of the file it was loaded from

    def __post_init__(self):
        self.architecture = Architecture.of(self.meta, self.params)
        self.encoder = Encoder(self.vocab, self.features, self.chars)
        self.network = Network(self.params, self.architecture, self.encoder.spellings)

    @property
    def cell(self) -> str:
        return self.architecture.cell

    @property
    def hidden(self) -> int:
        return self.params["Waa"].shape[1]

    @property
    def bidirectional(self) -> bool:
        return "Wax_b" in self.params

    @property
    def crf(self) -> bool:
        return "trans" in self.params

    @property
    def embedded(self) -> bool:
        return "Ex" in self.params

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    @property
    def scheme(self) -> str:
        return self.meta.get("label_scheme", "none")

    @property
    def n_inputs(self) -> int:
        return self.encoder.n_inputs

    @property
    def n_columns(self) -> int:
        return self.encoder.n_columns

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(tokens)

    @cached_property
    def masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start, trans, end) forbidding what the tag scheme forbids."""
        from seqtag.decoding import transition_mask

        return transition_mask(self.labels, self.scheme)

    def emissions(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Wya·a<t> + by for every token of the packed sentences, and their offsets."""
        self.encoder.trim()
        ids, offsets = pack([self.encoder.encode(s) for s in sentences])
        ids = ids.reshape(len(ids), self.encoder.n_columns)
        E, _ = self.network.forward(ids, offsets)
        return E, offsets

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """P(y<t> = label) for each token: one (T, L) float32 array per sentence (ŷ<t> of the
        softmax, or the CRF's marginals)."""
        if not sentences:
            return []
        E, offsets = self.emissions(sentences)
        P = self.network.output.marginals(E, offsets)
        return [P[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    def analyse(self, sentences: Sequence[Sequence[str]], proba: bool = True,
                scores: bool = False, nbest: int = 0) -> list[dict]:
        """Everything tagging can show of each sentence, from one pass of the network: its
        best valid labels ("labels", indices), their probabilities ("probs", or None without
        ``proba``), with ``scores`` each entity's probability ("spans"), with ``nbest`` > 0 the
        n best sequences and their probabilities ("nbest")."""
        from seqtag.decoding import decode_emissions, nbest_paths, span_probabilities

        if not sentences:
            return []
        E, offsets = self.emissions(sentences)
        output = self.network.output
        best, P = decode_emissions(output, E, offsets, self.masks, proba or scores)
        out = []
        for i in range(len(sentences)):
            lo, hi = offsets[i], offsets[i + 1]
            r = {"labels": best[lo:hi], "probs": None if P is None or not proba else P[lo:hi]}
            if scores:
                r["spans"] = span_probabilities(output, E[lo:hi], self.labels,
                                                [self.labels[k] for k in best[lo:hi]])
            if nbest > 0:
                r["nbest"] = [([self.labels[j] for j in path], p) for path, p in
                              nbest_paths(output, E[lo:hi], self.masks, nbest)]
            out.append(r)
        return out

    def decode(self, sentences: Sequence[Sequence[str]], proba: bool = True
               ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per sentence: the label indices of the best sequence that is valid for the tag scheme
        (never I-PER after O in IOB2), and each chosen label's probability (None when ``proba``
        is false: a CRF then skips its forward-backward pass)."""
        return [(r["labels"], r["probs"]) for r in self.analyse(sentences, proba)]

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The most probable valid label sequence of each sentence."""
        labels = self.vocab.labels
        return [[labels[k] for k in best] for best, _ in self.decode(sentences, proba=False)]

    def nbest(self, tokens: Sequence[str], k: int) -> list[tuple[list[str], float]]:
        """The k most probable valid label sequences of one sentence, with probabilities."""
        if not tokens:
            return [([], 1.0)]
        return self.analyse([tokens], proba=False, nbest=k)[0]["nbest"]

    def span_probabilities(self, tokens: Sequence[str], labels: Sequence[str]) -> list[float]:
        """For each entity of the labelling ``labels`` (in schemes.spans order), the
        probability that exactly it is there (seqtag.decoding.span_probabilities)."""
        from seqtag.decoding import span_probabilities

        E, _ = self.emissions([tokens])
        return span_probabilities(self.network.output, E, self.labels, list(labels))

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
