"""The Elman RNN tagger: its parameters, its vocabulary, its metadata and its ``.npz`` file format.

Model file (a zip of ``.npy`` arrays that ``numpy.load(..., allow_pickle=False)`` reads):
  magic           uint8  UTF-8 of "seqtag-model"
  format_version  int64  scalar; a reader refuses versions newer than its own
  meta            uint8  UTF-8 JSON: versions, hyperparameters, corpus, history, creation time
  words, labels   uint8  UTF-8 of the entries joined by "\\n" (index order)
  word_counts, label_counts  int64
  Wax (H, V), Waa (H, H), Wya (L, H), ba (H,), by (L,)  float32
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
from seqtag.errors import SeqtagError
from seqtag.vocab import Vocabulary

MAGIC = "seqtag-model"
FORMAT_VERSION = 1
PARAM_NAMES = ("Wax", "Waa", "Wya", "ba", "by")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def init_params(n_words: int, n_labels: int, hidden: int, rng: np.random.Generator
                ) -> dict[str, np.ndarray]:
    """Uniform(±1/√H) weights as in the usual RNN initialisation, zero biases."""
    s = 1.0 / np.sqrt(hidden)
    u = lambda *shape: rng.uniform(-s, s, size=shape).astype(np.float32)  # noqa: E731
    return {
        "Wax": np.asfortranarray(u(hidden, n_words)),
        "Waa": u(hidden, hidden),
        "Wya": u(n_labels, hidden),
        "ba": np.zeros(hidden, np.float32),
        "by": np.zeros(n_labels, np.float32),
    }


def pack(id_arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-sentence index arrays into (ids, offsets) for the kernels."""
    offsets = np.zeros(len(id_arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in id_arrays], out=offsets[1:])
    ids = np.concatenate(id_arrays).astype(np.int32, copy=False) if id_arrays else \
        np.zeros(0, np.int32)
    return ids, offsets


@dataclass
class RNNTagger:
    """An Elman RNN tagger: a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba), ŷ<t> = softmax(Wya·a<t> + by)."""

    vocab: Vocabulary
    params: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION     # of the file it was loaded from

    @property
    def hidden(self) -> int:
        return self.params["Waa"].shape[0]

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """ŷ for each token: one (T, L) float32 array per sentence."""
        if not sentences:
            return []
        # Imported here: Numba costs a third of a second, which inspect and errors need not pay.
        from seqtag import kernels

        ids, offsets = pack([self.vocab.word_ids(s) for s in sentences])
        p = self.params
        y_hat = kernels.predict_proba(p["Wax"], p["Waa"], p["Wya"], p["ba"], p["by"],
                                      ids, offsets, False)
        return [y_hat[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The most probable label of each token."""
        labels = self.vocab.labels
        return [[labels[k] for k in y.argmax(axis=1)] for y in self.predict_proba(sentences)]

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
            **{name: self.params[name] for name in PARAM_NAMES},
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
        params = {k: arrays[k] for k in PARAM_NAMES}
        _check_shapes(params, vocab, name)
        params["Wax"] = np.asfortranarray(params["Wax"], dtype=np.float32)
        for k in PARAM_NAMES[1:]:
            params[k] = np.ascontiguousarray(params[k], dtype=np.float32)
        return cls(vocab=vocab, params=params, meta=meta, format_version=version)


def _check_shapes(params: dict[str, np.ndarray], vocab: Vocabulary, name: str) -> None:
    H = params["Waa"].shape[0] if params["Waa"].ndim == 2 else -1
    V, L = vocab.n_words, vocab.n_labels
    expected = {"Wax": (H, V), "Waa": (H, H), "Wya": (L, H), "ba": (H,), "by": (L,)}
    for k, shape in expected.items():
        if params[k].shape != shape:
            raise SeqtagError(
                f"its vocabulary does not match its weights: {k} is {params[k].shape}, "
                f"expected {shape} for {V} words, {L} labels and {H} hidden units",
                path=name, hint="the file is damaged; retrain or restore it")
        if params[k].dtype.kind != "f" or not np.isfinite(params[k]).all():
            raise SeqtagError(f"parameter {k} holds non-finite or non-float values", path=name,
                              hint="the file is damaged; retrain or restore it")
    if len(vocab.word_counts) != V or len(vocab.label_counts) != L:
        raise SeqtagError("its vocabulary counts do not match its entries", path=name,
                          hint="the file is damaged; retrain or restore it")


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(arr: np.ndarray) -> str:
    if arr.dtype != np.uint8:
        raise ValueError("expected UTF-8 bytes")
    return arr.tobytes().decode("utf-8")
