"""Edits of a model file's metadata and arrays, named so that the fuzz tests can report them.

An edit is (target, how): ``("meta.cell", "vector")`` sets architecture.cell in the metadata
JSON to a vector, ``("Wax", "transpose")`` transposes an array, ``("format_version", "2.5")``
stores that version (``"current"`` is the reader's own FORMAT_VERSION, ``"newer"`` the next one,
which it must refuse). ``apply_edit`` rewrites a copy of a model file with it.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from seqtag.model import FORMAT_VERSION

# Values an edited metadata field may take (JSON allows NaN and Infinity as Python writes them).
META_VALUES = {
    "null": None, "zero": 0, "minus1": -1, "2.5": 2.5, "1e308": 1e308, "inf": math.inf,
    "nan": math.nan, "2^70": 2 ** 70, "str": "x", "empty-str": "", "vector": [1, 2],
    "empty-list": [], "dict": {"a": 1}, "true": True, "false": False,
    "str-list": ["casing", "casing"], "unknown-list": ["nope"], "lower-list": ["lower"],
    "rnn": "rnn", "gru": "gru", "lstm": "lstm", "IOB1": "IOB1", "IOBES": "IOBES", "none": "none",
    "[/]": "[/]", "rows": [{"epoch": 1}], "bad-rows": [{"epoch": "x", "train_loss": "y"}],
    "row-nan": [{"epoch": 1, "train_loss": math.nan, "dev_f1": "z", "dev_accuracy": None}],
}
# Where an edited metadata value goes: architecture fields, top-level fields, or the whole.
META_FIELDS = {
    "meta.cell": ("architecture", "cell"), "meta.features": ("architecture", "features"),
    "meta.bidirectional": ("architecture", "bidirectional"), "meta.crf": ("architecture", "crf"),
    "meta.embed_dim": ("architecture", "embed_dim"),
    "meta.char_filters": ("architecture", "char_filters"),
    "meta.architecture": (None, "architecture"), "meta.label_scheme": (None, "label_scheme"),
    "meta.history": (None, "history"), "meta.best_epoch": (None, "best_epoch"),
    "meta.hyperparameters": (None, "hyperparameters"), "meta.corpus": (None, "corpus"),
    "meta.dev_corpus": (None, "dev_corpus"), "meta.created": (None, "created"),
    "meta.seqtag_version": (None, "seqtag_version"), "meta.seed": (None, "seed"),
    "meta.interrupted": (None, "interrupted"), "meta": ("", ""),
}
FORMAT_VERSIONS = {
    "0": np.array(0), "minus1": np.array(-1), "1": np.array(1), "2": np.array(2),
    "current": np.array(FORMAT_VERSION), "newer": np.array(FORMAT_VERSION + 1),
    "2.5": np.array(2.5), "2.0": np.array(2.0), '"2"': np.array("2"),
    "vector": np.array([2, 2]), "inf": np.array(np.inf), "nan": np.array(np.nan),
    "true": np.array(True), "empty": np.array([], dtype=np.int64),
    "2^62": np.array(2 ** 62), "uint8": np.array(2, dtype=np.uint8),
    "matrix": np.full((1, 1), 2),
}
ARRAY_EDITS = ("float64", "int32", "bool", "complex64", "unicode", "transpose", "add-dim",
               "drop-row", "empty", "nan", "inf", "scalar", "delete", "huge")
TEXT_EDITS = ("bad-utf8", "dup-entry", "empty-entry", "delete", "as-float", "extra-entry",
              "nul-entry")
COUNT_EDITS = ("float", "negative", "huge-float", "nan", "delete", "wrong-length", "uint64-max",
               "2d")
TEXT_ENTRIES = ("words", "labels", "chars", "magic")
COUNT_ENTRIES = ("word_counts", "label_counts")


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _text(arr: np.ndarray) -> str:
    return arr.tobytes().decode("utf-8")


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def targets(arrays: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """Every (target, how) edit that applies to a model with these arrays."""
    out = [(t, v) for t in META_FIELDS for v in META_VALUES]
    out += [(t, h) for t in ("meta",) for h in ("not-json", "json-list", "json-number",
                                                 "bad-utf8", "json-null")]
    out += [("format_version", v) for v in FORMAT_VERSIONS]
    out += [("format_version", "delete")]
    text_like = [k for k in arrays if k in TEXT_ENTRIES or k.startswith("feature_")]
    out += [(k, h) for k in text_like for h in TEXT_EDITS]
    out += [(k, h) for k in COUNT_ENTRIES for h in COUNT_EDITS]
    params = [k for k in arrays if k not in (*TEXT_ENTRIES, *COUNT_ENTRIES, "meta",
                                             "format_version") and not k.startswith("feature_")]
    out += [(k, h) for k in params for h in ARRAY_EDITS]
    out += [("extra-entry", "junk.npy"), ("zip", "truncated"), ("zip", "duplicate-entry")]
    return sorted(set(out))


def _edit_meta(meta: dict, target: str, value):
    where, key = META_FIELDS[target]
    if where is None:
        meta[key] = value
    elif where == "":
        return value
    else:
        arch = meta.get(where)
        if not isinstance(arch, dict):
            arch = meta[where] = {}
        arch[key] = value
    return meta


def _edit_array(a: np.ndarray, how: str) -> np.ndarray | None:
    if how == "delete":
        return None
    if how in ("float64", "int32", "bool", "complex64"):
        return a.astype(how)
    if how == "unicode":
        return a.astype(str)
    if how == "transpose":
        return a.T.copy() if a.ndim == 2 else a.reshape(-1, 1)
    if how == "add-dim":
        return a[None]
    if how == "drop-row":
        return a[:-1] if len(a) else a
    if how == "empty":
        return np.zeros((0,) * a.ndim, a.dtype)
    if how == "scalar":
        return np.array(a.flat[0] if a.size else 0, a.dtype)
    out = a.copy()
    if out.size:
        out.flat[out.size // 2] = {"nan": np.nan, "inf": np.inf, "huge": 3e38}[how]
    return out


def _edit_text(a: np.ndarray, how: str) -> np.ndarray | None:
    if how == "delete":
        return None
    if how == "bad-utf8":
        return np.concatenate([a, np.array([0xff], np.uint8)])
    if how == "as-float":
        return a.astype(np.float32)
    items = _text(a).split("\n")
    if how == "dup-entry":
        items = items + [items[-1]] if len(items) < 2 else items[:-1] + [items[0]]
        if len(set(items)) == len(items):      # one-entry inventories: the same twice
            items = items + items[:1]
    elif how == "empty-entry":
        items[-1] = ""
    elif how == "extra-entry":
        items.append("zz-extra")
    elif how == "nul-entry":
        items[-1] = items[-1] + "\0"
    return _utf8("\n".join(items))


def _edit_counts(a: np.ndarray, how: str) -> np.ndarray | None:
    if how == "delete":
        return None
    if how == "float":
        return a.astype(np.float64) + 0.5 * (np.arange(len(a)) % 2)
    if how == "negative":
        out = a.copy()
        out[-1] = -5
        return out
    if how == "huge-float":
        return np.full(a.shape, 1e30)
    if how == "nan":
        return np.full(a.shape, np.nan)
    if how == "wrong-length":
        return a[:-1]
    if how == "uint64-max":
        return np.full(a.shape, np.iinfo(np.uint64).max, dtype=np.uint64)
    return a[None]


def apply_edit(src: Path, dst: Path, target: str, how: str) -> None:
    """Write ``dst``: the model ``src`` with one edit."""
    arrays = read_arrays(src)
    if target == "zip":
        data = src.read_bytes()
        if how == "truncated":
            dst.write_bytes(data[:len(data) * 2 // 3])
            return
        with zipfile.ZipFile(dst, "w") as zf:
            for name, arr in arrays.items():
                with zf.open(name + ".npy", "w") as fh:
                    np.lib.format.write_array(fh, arr, allow_pickle=False)
            with zf.open("labels.npy", "w") as fh:   # a second labels.npy, different
                np.lib.format.write_array(fh, _utf8("X\nY"), allow_pickle=False)
        return
    if target == "extra-entry":
        arrays["junk"] = np.arange(3)
    elif target.startswith("meta"):
        if how in META_VALUES:
            meta = json.loads(_text(arrays["meta"]))
            meta = _edit_meta(meta, target, META_VALUES[how])
            arrays["meta"] = _utf8(json.dumps(meta))
        else:
            arrays["meta"] = {"not-json": _utf8("{not json"), "json-list": _utf8("[1, 2]"),
                              "json-number": _utf8("7"), "json-null": _utf8("null"),
                              "bad-utf8": np.array([0x7b, 0xff, 0x7d], np.uint8)}[how]
    elif target == "format_version":
        if how == "delete":
            del arrays["format_version"]
        else:
            arrays["format_version"] = FORMAT_VERSIONS[how]
    else:
        a = arrays[target]
        if target in COUNT_ENTRIES:
            new = _edit_counts(a, how)
        elif target in TEXT_ENTRIES or target.startswith("feature_"):
            new = _edit_text(a, how)
        else:
            new = _edit_array(a, how)
        if new is None:
            del arrays[target]
        else:
            arrays[target] = new
    with zipfile.ZipFile(dst, "w") as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def must_refuse(target: str, how: str) -> bool:
    """Edits after which no model is left to trust: loading must fail with one ERROR line.
    (Every other edit may load, if the model then tags correctly, or be refused.)"""
    if target == "format_version":
        return how not in ("1", "2", "current", "2.0", "uint8", "true")
    if target == "labels":
        return how in ("dup-entry", "empty-entry", "bad-utf8", "delete", "as-float")
    if target in COUNT_ENTRIES or target == "magic":
        return True
    if target == "meta" and how in ("not-json", "json-list", "json-number", "bad-utf8",
                                    "json-null"):
        return True
    return target == "zip" and how == "truncated"
