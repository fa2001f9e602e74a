"""The model file: ``save_model``, ``load_model``, and the schema every file is checked against.

A model file is a zip of ``.npy`` arrays (``numpy.load(path, allow_pickle=False)`` reads it;
seqtag reads it itself, so that each array's declared size is checked before anything is
allocated, and never unpickles):
  magic           uint8  UTF-8 of "seqtag-model"
  format_version  int64  scalar; a reader refuses versions newer than its own
  meta            uint8  UTF-8 JSON: versions, hyperparameters, corpus, history, creation time
  words, labels   uint8  UTF-8 of the entries joined by "\\n" (index order)
  word_counts, label_counts  int64
  feature_<name>  uint8  UTF-8 of a feature's values joined by "\\n" (one per feature in meta)
  chars           uint8  UTF-8 of the character inventory (when the model has a character CNN)
  Wax (G, V+ΣF), Waa (G, H), ba (G,)  [and Wax_b, Waa_b, ba_b],  Wya (L, D), by (L,)  float32
  (G = H, 3H or 4H for the Elman, GRU and LSTM cells)  [trans (L, L), start (L,), end (L,)]
  with embeddings: Ex (d, V+ΣF), and Wax (G, d+F) [Ec (C, dc), Wconv (F, 3·dc), bconv (F,)]
  <section>/...   optional sections (format 3), e.g. a checkpoint's training state
Entries carry a fixed timestamp, so equal models give byte-identical files.

Format versions: 1, the textbook model with a backward direction, features and a CRF;
2 adds embeddings and the character CNN (Ex, chars, Ec, Wconv, bconv); 3 adds requirements and
optional sections, so that later additions need no new incompatible format:

* ``meta["requires"]`` (absent means none) lists capabilities a reader must understand to use
  the file correctly (ext4's incompatible feature flags). A reader refuses a file that requires
  a name missing from its KNOWN_REQUIREMENTS and says to upgrade. A change that makes seqtag
  read something new (document context, a character-sequence input) adds its name there and
  writes it only into the files that need it: older readers then refuse those files alone.
* Anything else a reader does not know is optional and ignored: meta keys (a calibration
  temperature an older seqtag may drop) and entries. An optional section is the entries named
  ``<section>/<name>``; its JSON, if any, is the UTF-8 entry ``<section>/.json``.
* The section ``state`` is a checkpoint's training state::

      save_model(model, "ckpt.npz", state=State(
          arrays={"adam/m/Wax": m, "adam/v/Wax": v},            # any non-object dtype
          meta={"step": 1200, "epoch": 7, "rng": rng.bit_generator.state,
                "best_epoch": 5, "best_score": 0.81}))         # JSON
      model, state = load_model("ckpt.npz", with_state=True)    # state is None without one

  Tagging ignores it (``load_model(path)`` does not even read it); re-saving a model without
  ``state=`` drops it, and any section this seqtag does not know.

Every file is validated before use: each entry's dtype and rank (ENTRIES), the metadata against
META_SCHEMA (types, ranges, known values), and the weights' shapes against the vocabulary,
features and architecture. Every problem is one SeqtagError naming the file and the offending
entry or key.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from seqtag import __version__
from seqtag.chars import CharVocab
from seqtag.documents import FLAGS, N_CODES
from seqtag.errors import SeqtagError
from seqtag.features import FEATURES, FeatureSet
from seqtag.layers.charcnn import CHAR_WIDTH
from seqtag.layers.recurrent import GATES
from seqtag.model import (BACKWARD_NAMES, CHAR_NAMES, CRF_NAMES, FORMAT_VERSION, MAGIC,
                          PARAM_NAMES, RNNTagger)
from seqtag.schemes import SCHEMES
from seqtag.vocab import PAD, UNK, Vocabulary

# Capabilities this reader understands, for meta["requires"]. "window": the embedded input sums
# the token's neighbours too (meta.architecture.window), so Ex has more columns than words and
# features and the encoder must build them. "document-context": each token's input also sums a
# column of its document code (meta.architecture.document_context, seqtag.documents), which
# the reader must compute from the token's document.
WINDOW = "window"
DOCUMENT = "document-context"
KNOWN_REQUIREMENTS: frozenset[str] = frozenset({WINDOW, DOCUMENT})
STATE = "state"
SECTION_JSON = ".json"
_SECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Deflate expands at most about 1032:1; an entry claiming more is damaged or a zip bomb.
_MAX_DEFLATE_RATIO = 1100
MAX_DIM = 1 << 20
_CHUNK = 1 << 18

NOT_A_MODEL = "train one with 'seqtag train', or pass the right file with -m"
DAMAGED = "the file is damaged; retrain or restore it"
UPGRADE = "upgrade seqtag: pip install -U seqtag"


@dataclass
class State:
    """A checkpoint's training state, saved beside the model as the optional section ``state``:
    arrays (optimizer moments, ...) and JSON (step count, epoch, RNG state, early stopping)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


# -- the schema ----------------------------------------------------------------------------------

class Rule(NamedTuple):
    """What one meta key may hold: JSON types ("int" excludes booleans, "number" is an int or a
    finite float), whether it must be present, allowed values, and a closed range."""

    types: str
    required: bool = False
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    unique: bool = False          # a list's items are distinct


_CORPUS = {"name": Rule("str", True), "sentences": Rule("int", True, lo=0),
           "tokens": Rule("int", True, lo=0), "sha256": Rule("str", True),
           "bytes": Rule("int", lo=0)}

# Keys are paths into meta: "a.b" is key b of object a, "a[]" every item of list a. A parent's
# rule comes before its children's, so a child is only looked for in a parent of the right type.
# Keys not listed are optional extras that this reader ignores.
META_SCHEMA: dict[str, Rule] = {
    "requires": Rule("list", unique=True),
    "requires[]": Rule("str"),
    "seqtag_version": Rule("str"),
    "created": Rule("str"),
    "architecture": Rule("object"),
    "architecture.cell": Rule("str", choices=tuple(GATES)),
    "architecture.bidirectional": Rule("bool"),
    "architecture.crf": Rule("bool"),
    "architecture.hidden": Rule("int", lo=1, hi=MAX_DIM),
    "architecture.features": Rule("list", unique=True),
    "architecture.features[]": Rule("str", choices=tuple(FEATURES)),
    "architecture.embed_dim": Rule("int", lo=0, hi=MAX_DIM),
    "architecture.char_filters": Rule("int", lo=0, hi=MAX_DIM),
    "architecture.char_dim": Rule("int", lo=0, hi=MAX_DIM),
    "architecture.window": Rule("int", lo=0, hi=1024),
    "architecture.document_context": Rule("list", unique=True),
    "architecture.document_context[]": Rule("str", choices=FLAGS),
    "level": Rule("str", choices=("word", "char")),
    "label_scheme": Rule("str", choices=SCHEMES),
    "hyperparameters": Rule("object"),
    "seed": Rule("int|null"),
    "pretrained_words": Rule("int", lo=0),
    "corpus": Rule("list"),
    "corpus[]": Rule("object"),
    **{f"corpus[].{k}": r for k, r in _CORPUS.items()},
    "dev_corpus": Rule("object|null"),
    **{f"dev_corpus.{k}": r for k, r in _CORPUS.items()},
    "history": Rule("list"),
    "history[]": Rule("object"),
    "history[].epoch": Rule("int", True, lo=1),
    "history[].train_loss": Rule("number", lo=0),
    "history[].dev_accuracy": Rule("number", lo=0, hi=1),
    "history[].dev_f1": Rule("number", lo=0, hi=1),
    "best_epoch": Rule("int", lo=0),
    "interrupted": Rule("bool"),
    # Divides the output layer's scores when probabilities are computed (seqtag.calibration);
    # labels do not depend on it. A reader that ignores it gives uncalibrated probabilities.
    "temperature": Rule("number", lo=0.01, hi=100),
    "temperature_fit": Rule("object"),
    # The model a fine-tuning run started from (seqtag train --init): shown by inspect.
    "init": Rule("object"),
    "init.name": Rule("str"),
    "init.sha256": Rule("str"),
    "init.added": Rule("object"),
}

# Entries other than weights: dtype and rank. (Weights are float32 of the shapes _check_weights
# derives.)
_TEXT = (np.dtype(np.uint8), 1)
ENTRIES: dict[str, tuple[np.dtype, int]] = {
    "magic": _TEXT, "format_version": (np.dtype(np.int64), 0), "meta": _TEXT,
    "words": _TEXT, "labels": _TEXT, "chars": _TEXT,
    "word_counts": (np.dtype(np.int64), 1), "label_counts": (np.dtype(np.int64), 1),
}

_TYPES = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v)),
          "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
          "list": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict),
          "null": lambda v: v is None}
_NAMES = {"int": "an integer", "number": "a finite number", "bool": "true or false",
          "str": "a string", "list": "a list", "object": "an object", "null": "null"}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(meta: Any, schema: dict[str, Rule] = META_SCHEMA) -> str | None:
    """The first way ``meta`` breaks ``schema``, as "meta.key is ..., expected ...", or None."""
    if not isinstance(meta, dict):
        return f"meta is {_show(meta)}, expected an object"
    for key, rule in schema.items():
        *parents, last = key.split(".")
        places = [("meta", meta)]
        for part in parents:
            places = _step(places, part)
        list_items = last.endswith("[]")
        name = last.removesuffix("[]")
        for where, obj in places:
            if not isinstance(obj, dict):
                continue           # the parent's own rule allowed null (or reported it)
            if name not in obj:
                if rule.required:
                    return f"{where}.{name} is missing"
                continue
            value = obj[name]
            if list_items:
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        problem = _check(f"{where}.{name}[{i}]", item, rule)
                        if problem:
                            return problem
                continue
            problem = _check(f"{where}.{name}", value, rule)
            if problem:
                return problem
    return None


def _step(places: list, part: str) -> list:
    name, items = part.removesuffix("[]"), part.endswith("[]")
    out = []
    for where, obj in places:
        if isinstance(obj, dict) and name in obj:
            value = obj[name]
            if items:
                if isinstance(value, list):
                    out += [(f"{where}.{name}[{i}]", v) for i, v in enumerate(value)]
            else:
                out.append((f"{where}.{name}", value))
    return out


def _check(where: str, value: Any, rule: Rule) -> str | None:
    types = rule.types.split("|")
    if not any(_TYPES[t](value) for t in types):
        return f"{where} is {_show(value)}, expected {' or '.join(_NAMES[t] for t in types)}"
    if rule.choices is not None and value not in rule.choices:
        return f"{where} is {_show(value)}, expected one of {', '.join(rule.choices)}"
    if rule.lo is not None and isinstance(value, (int, float)) and value < rule.lo:
        return f"{where} is {_show(value)}, expected at least {rule.lo}"
    if rule.hi is not None and isinstance(value, (int, float)) and value > rule.hi:
        return f"{where} is {_show(value)}, expected at most {rule.hi}"
    if rule.unique and isinstance(value, list):
        seen = set()
        for item in value:
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                return f"{where} holds {_show(item)} twice"
            seen.add(key)
    return None


# -- saving --------------------------------------------------------------------------------------

def save_model(model: RNNTagger, path: str | os.PathLike, *, state: State | None = None) -> None:
    """Write ``model`` (and a checkpoint's ``state``, see State) atomically: a temporary file
    renamed over ``path``. Equal models and states give byte-identical files."""
    unknown = set(model.meta.get("requires", ())) - KNOWN_REQUIREMENTS
    if unknown:
        # This reader would refuse the file: a bug in the code that set meta["requires"].
        raise ValueError(f"meta requires {sorted(unknown)}, unknown to KNOWN_REQUIREMENTS")
    features = model.features
    arrays = {
        "magic": _utf8(MAGIC),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "meta": _utf8(json.dumps(model.meta, sort_keys=True, ensure_ascii=False)),
        "words": _utf8("\n".join(model.vocab.words)),
        "word_counts": model.vocab.word_counts,
        "labels": _utf8("\n".join(model.vocab.labels)),
        "label_counts": model.vocab.label_counts,
        **{f"feature_{name}": _utf8("\n".join(values)) for name, values in
           (zip(features.names, features.values) if features else ())},
        **({"chars": _utf8(model.chars.to_text())} if model.chars is not None else {}),
        **model.params,
    }
    if state is not None:
        arrays.update(_section(STATE, state.arrays, state.meta))

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

    from seqtag.atomic import write_bytes_atomic    # socket, tempfile: not for loading

    write_bytes_atomic(path, writer=write)


def _section(section: str, arrays: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    if not isinstance(meta, dict):
        raise TypeError(f"the {section} section's meta must be a dict, not {type(meta)}")
    out = {f"{section}/{SECTION_JSON}": _utf8(json.dumps(meta, sort_keys=True,
                                                         ensure_ascii=False))}
    for name in sorted(arrays):   # sorted: the same state in any order gives the same bytes
        arr = np.asanyarray(arrays[name])
        if not isinstance(name, str) or not _SECTION_NAME.fullmatch(name):
            raise ValueError(f"bad {section} array name {name!r}: letters, digits, _ . - "
                             f"and inner slashes only")
        if arr.dtype.hasobject:
            raise ValueError(f"{section} array {name!r} holds Python objects")
        out[f"{section}/{name}"] = arr
    return out


# -- loading -------------------------------------------------------------------------------------

def load_model(path: str | os.PathLike, *, cls: type | None = None, with_state: bool = False):
    """Read and validate a model file: an RNNTagger (or ``cls``), or with ``with_state`` the pair
    (model, State or None). Every problem is a SeqtagError naming the file."""
    name = str(path)
    p = Path(path)
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as e:        # e.g. a name too long for the file system (ENAMETOOLONG)
        raise SeqtagError(f"cannot open the model ({e.strerror})", path=name,
                          hint=NOT_A_MODEL) from None
    if not exists:
        raise SeqtagError("no such model file", path=name, hint=NOT_A_MODEL)
    if is_dir:
        raise SeqtagError("is a directory, not a model file", path=name, hint=NOT_A_MODEL)
    try:
        with open(path, "rb") as f:
            # Not a zip at all (text, .npy, gzip...): say so, rather than a zip library message.
            if f.read(4) != b"PK\x03\x04":
                raise SeqtagError("is not a seqtag model file (not a zip archive)", path=name,
                                  hint=NOT_A_MODEL)
            with zipfile.ZipFile(f) as zf:
                reader = _Reader(zf, name, os.fstat(f.fileno()).st_size, f)
                version, meta, arrays = reader.core()
                state = reader.state() if with_state else None
    except SeqtagError:
        raise
    except PermissionError as e:
        raise SeqtagError(f"cannot read the model ({e.strerror})", path=name) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError) as e:   # RuntimeError: an encrypted entry
        raise SeqtagError(f"is not a seqtag model file, or is truncated or damaged ({e})",
                          path=name, hint=NOT_A_MODEL) from None
    except (ValueError, KeyError, OSError, MemoryError) as e:
        raise SeqtagError(f"is a damaged or truncated model file ({e})",
                          path=name, hint=NOT_A_MODEL) from None
    model = _build(cls or RNNTagger, name, version, meta, arrays)
    return (model, state) if with_state else model


def list_sections(path: str | os.PathLike) -> dict[str, list[str]]:
    """The optional sections of a model file, known or not, and their entries' names (from the
    zip directory alone: nothing is read or checked)."""
    sections: dict[str, list[str]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for entry in zf.namelist():
                head, slash, rest = entry.removesuffix(".npy").partition("/")
                if slash:
                    sections.setdefault(head, []).append(rest)
    except (OSError, zipfile.BadZipFile) as e:
        raise SeqtagError(f"cannot list the model's sections ({e})", path=str(path)) from None
    return sections


def _damaged(name: str, what: str) -> SeqtagError:
    return SeqtagError(what, path=name, hint=DAMAGED)


class _Reader:
    """Reads a model zip's entries, each checked against its declared header first."""

    def __init__(self, zf: zipfile.ZipFile, name: str, size: int, raw=None):
        self.zf, self.name, self.size, self.raw = zf, name, size, raw
        self.infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}

    def _stored(self, info: zipfile.ZipInfo):
        """The file positioned at a stored entry's data, after the checks of zipfile's open():
        zipfile reads a stored entry in chunks, copied twice and each summed apart; reading it
        whole into the array is a quarter of the bundled model's load."""
        f = self.raw
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local file header of {info.filename}")
        n, m = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
        stored_name = f.read(n).decode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if stored_name != info.orig_filename:
            raise zipfile.BadZipFile(f"file name in directory {info.orig_filename!r} and "
                                     f"header {stored_name!r} differ")
        f.seek(m, os.SEEK_CUR)
        end = getattr(info, "_end_offset", None)     # where newer zipfiles check for overlaps
        if end is not None and f.tell() + info.compress_size > end:
            raise zipfile.BadZipFile("Overlapped entries")
        return f

    def read(self, key: str) -> np.ndarray:
        info = self.infos[key]
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size or \
                info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024 or \
                info.compress_size > self.size:
            raise _damaged(self.name, f"{key} claims {info.file_size:,} bytes from "
                                      f"{info.compress_size:,} in the archive")
        # Encrypted, patched or strongly encrypted (flags 0x61): zipfile's refusal.
        whole = info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x61 and \
            self.raw is not None
        with (contextlib.nullcontext(self._stored(info)) if whole else self.zf.open(info)) as fh:
            start = fh.tell()
            major, _ = np.lib.format.read_magic(fh)
            if major not in (1, 2):
                raise _damaged(self.name, f"{key} is a .npy of version {major}, expected 1 or 2")
            read_header = (np.lib.format.read_array_header_1_0 if major == 1 else
                           np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                raise SeqtagError(f"{key} holds Python objects (a pickle), which a model file "
                                  f"never does", path=self.name, hint=NOT_A_MODEL)
            count = math.prod(shape)
            size = count * dtype.itemsize
            header = fh.tell() - start
            # The declared shape must fit the entry: nothing larger than the file is allocated.
            if size != info.file_size - header:
                raise _damaged(self.name, f"{key} declares {shape} {dtype} ({size:,} bytes) "
                                          f"but holds {info.file_size - header:,} bytes")
            flat = np.empty(count, dtype)
            view, done = memoryview(flat.view(np.uint8)), 0
            while done < size:
                # In chunks from zipfile: one read() of a large entry makes it join many small
                # ones. A stored entry is read whole, its CRC checked below as zipfile would.
                n = fh.readinto(view[done:] if whole else view[done:done + _CHUNK])
                if not n:
                    raise _damaged(self.name, f"{key} is truncated")
                done += n
            if whole:
                fh.seek(start)
                crc = zlib.crc32(view, zlib.crc32(fh.read(header)))
                if crc != info.CRC:
                    raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        return flat.reshape(shape, order="F" if fortran else "C")

    def entry(self, key: str) -> np.ndarray:
        """An entry listed in ENTRIES, of its dtype and rank."""
        if key not in self.infos:
            raise SeqtagError(f"is a damaged model file: no {key}", path=self.name,
                              hint=NOT_A_MODEL)
        arr = self.read(key)
        dtype, ndim = ENTRIES.get(key, _TEXT)
        if arr.dtype != dtype or arr.ndim != ndim:
            raise _damaged(self.name, f"{key} is a {arr.ndim}-d {arr.dtype} array, expected "
                                      f"{ndim}-d {dtype}")
        return arr

    def text(self, key: str) -> str:
        try:
            return self.entry(key).tobytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise _damaged(self.name, f"{key} is not UTF-8 (byte {e.start})") from None

    def core(self) -> tuple[int, dict, dict[str, np.ndarray]]:
        name = self.name
        if "magic" not in self.infos or self.read("magic").tobytes() != MAGIC.encode():
            raise SeqtagError("is not a seqtag model file", path=name, hint=NOT_A_MODEL)
        version = int(self.entry("format_version"))
        if version > FORMAT_VERSION:
            raise SeqtagError(
                f"was written in model format {version}, newer than this seqtag "
                f"{__version__} reads (format {FORMAT_VERSION})", path=name, hint=UPGRADE)
        if version < 1:
            raise _damaged(name, f"format_version is {version}, expected 1 to {FORMAT_VERSION}")
        try:
            meta = json.loads(self.text("meta"))
        except (ValueError, RecursionError) as e:
            raise _damaged(name, f"meta is not valid JSON ({e})") from None
        _check_requires(meta, name)
        problem = validate(meta)
        if problem:
            raise _damaged(name, problem)
        arch = meta.get("architecture", {})
        _check_architecture(arch, version, name, meta.get("requires", ()))
        weights = _weight_names(arch)
        names = ["words", "word_counts", "labels", "label_counts"] + \
            [f"feature_{f}" for f in arch.get("features", [])] + \
            (["chars"] if arch.get("char_filters") else []) + weights
        stray = [k for k in ALL_WEIGHTS if k in self.infos and k not in weights]
        if stray:
            # e.g. a CRF's transitions in a file whose meta says crf: false, which would load
            # as a different model
            raise _damaged(name, f"{stray[0]} is present, but meta.architecture does not have "
                                 f"{_OPTION[stray[0]]}")
        missing = [k for k in names if k not in self.infos]
        if missing:
            raise SeqtagError(f"is a damaged model file: no {', '.join(missing)}", path=name,
                              hint=DAMAGED)
        arrays = {k: self.read(k) if k in weights else
                  self.text(k) if ENTRIES.get(k, _TEXT) == _TEXT else self.entry(k)
                  for k in names}
        return version, meta, arrays

    def state(self) -> State | None:
        prefix = STATE + "/"
        keys = [k for k in self.infos if k.startswith(prefix)]
        if not keys:
            return None
        json_key = prefix + SECTION_JSON
        meta: Any = {}
        if json_key in self.infos:
            try:
                meta = json.loads(self.text(json_key))
            except (ValueError, RecursionError) as e:
                raise _damaged(self.name, f"{json_key} is not valid JSON ({e})") from None
            if not isinstance(meta, dict):
                raise _damaged(self.name, f"{json_key} is {_show(meta)}, expected an object")
        arrays = {k[len(prefix):]: self.read(k) for k in sorted(keys) if k != json_key}
        return State(arrays, meta)


def _check_requires(meta: Any, name: str) -> None:
    """Refuse a file needing a capability this seqtag lacks, before judging the rest of it
    (what a newer writer put there may well look wrong to this schema)."""
    if not isinstance(meta, dict) or "requires" not in meta:
        return
    problem = validate({"requires": meta["requires"]},
                       {k: META_SCHEMA[k] for k in ("requires", "requires[]")})
    if problem:
        raise _damaged(name, problem)
    unknown = [r for r in meta["requires"] if r not in KNOWN_REQUIREMENTS]
    if unknown:
        raise SeqtagError(
            f"needs {', '.join(map(repr, unknown))}, which this seqtag {__version__} cannot "
            f"read (meta.requires)", path=name, hint=UPGRADE)


def _check_architecture(arch: dict, version: int, name: str, requires=()) -> None:
    """What the schema's per-key rules cannot say: options that need each other."""
    d, F, dc = arch.get("embed_dim", 0), arch.get("char_filters", 0), arch.get("char_dim", 0)
    k = arch.get("window", 0)
    if k and not d:
        raise _damaged(name, f"meta.architecture.window is {k}, but embed_dim is 0 (the window "
                             f"needs embeddings)")
    if k and WINDOW not in requires:
        raise _damaged(name, f"meta.architecture.window is {k}, but meta.requires does not "
                             f"list {WINDOW!r}")
    doc = arch.get("document_context")
    if doc is not None and list(doc) != list(FLAGS):
        raise _damaged(name, f"meta.architecture.document_context is {doc}, but this reader "
                             f"computes {list(FLAGS)}")
    if doc and DOCUMENT not in requires:
        raise _damaged(name, f"meta.architecture.document_context is set, but meta.requires "
                             f"does not list {DOCUMENT!r}")
    if version < 2 and (d or F):
        raise _damaged(name, f"meta.architecture.{'embed_dim' if d else 'char_filters'} is "
                             f"{d or F}, but a format {version} file has no embeddings")
    if F and not d:
        raise _damaged(name, f"meta.architecture.char_filters is {F}, but embed_dim is 0 "
                             f"(the character CNN needs embeddings)")
    if F and not dc:
        raise _damaged(name, f"meta.architecture.char_filters is {F}, but char_dim is 0")


ALL_WEIGHTS = (*PARAM_NAMES, *BACKWARD_NAMES, *CRF_NAMES, *CHAR_NAMES, "Ex")
_OPTION = {**{k: "bidirectional: true" for k in BACKWARD_NAMES},
           **{k: "crf: true" for k in CRF_NAMES},
           **{k: "char_filters > 0" for k in CHAR_NAMES}, "Ex": "embed_dim > 0"}


def _weight_names(arch: dict) -> list[str]:
    return list(PARAM_NAMES) + (list(BACKWARD_NAMES) if arch.get("bidirectional") else []) \
        + (list(CRF_NAMES) if arch.get("crf") else []) \
        + (list(CHAR_NAMES) if arch.get("char_filters") else []) \
        + (["Ex"] if arch.get("embed_dim") else [])


def _unique(name: str, key: str, items: list[str]) -> None:
    if len(set(items)) != len(items):
        seen = set()
        for item in items:
            if item in seen:
                raise _damaged(name, f"{key} holds {item!r} twice")
            seen.add(item)


def _build(cls: type, name: str, version: int, meta: dict,
           arrays: dict[str, Any]) -> RNNTagger:
    """The model, once the entries agree with each other and with meta."""
    arch = meta.get("architecture", {})
    words, labels = arrays["words"].split("\n"), arrays["labels"].split("\n")
    if words[:2] != [PAD, UNK]:
        raise _damaged(name, f"words starts with {words[:2]!r}, expected {[PAD, UNK]!r}")
    try:
        vocab = Vocabulary(words, arrays["word_counts"], labels, arrays["label_counts"])
    except ValueError:
        vocab = None                        # an entry twice: _unique names it
    if vocab is None:
        _unique(name, "words", words)
    if "" in labels:
        raise _damaged(name, "labels holds an empty label")
    if vocab is None:
        _unique(name, "labels", labels)
        raise _damaged(name, "words or labels list an entry twice")
    for key, entries in (("word_counts", words), ("label_counts", labels)):
        counts = arrays[key]
        if len(counts) != len(entries):
            raise _damaged(name, f"{key} has {len(counts)} entries, which does not match "
                                 f"the {len(entries)} {key.split('_')[0]}s")
        if len(counts) and counts.min() < 0:
            raise _damaged(name, f"{key} holds a negative count")

    features = None
    if arch.get("features"):
        values = []
        for f in arch["features"]:
            vals = arrays[f"feature_{f}"].split("\n")
            if vals[0] != "<unk>":
                raise _damaged(name, f"feature_{f} starts with {vals[0]!r}, expected '<unk>'")
            values.append(vals)
        try:
            features = FeatureSet(list(arch["features"]), values)
        except ValueError:
            for f, vals in zip(arch["features"], values):
                _unique(name, f"feature_{f}", vals)
            raise _damaged(name, "a feature inventory lists a value twice") from None
    chars = None
    if arch.get("char_filters"):
        try:
            chars = CharVocab.from_text(arrays["chars"])
        except ValueError:
            raise _damaged(name, "chars is not a character inventory (each character once)") \
                from None

    d = arch.get("embed_dim", 0)
    params = {k: arrays[k] for k in _weight_names(arch)}
    _check_weights(params, name, arch, vocab, features, len(chars) if chars else 0)
    for k in params:
        column_major = k == "Ex" or (k.startswith("Wax") and not d)
        params[k] = (np.asfortranarray if column_major else np.ascontiguousarray)(params[k])
    return cls(vocab=vocab, params=params, meta=meta, features=features, chars=chars,
               format_version=version)


def _check_weights(params: dict[str, np.ndarray], name: str, arch: dict, vocab: Vocabulary,
                   features: FeatureSet | None, n_chars: int) -> None:
    waa = params["Waa"]
    H = arch.get("hidden", waa.shape[1] if waa.ndim == 2 else -1)
    if waa.ndim == 2 and waa.shape[1] != H:
        raise _damaged(name, f"meta.architecture.hidden is {H}, but Waa is {waa.shape}")
    G = GATES[arch.get("cell", "rnn")] * H
    V = vocab.n_words * (1 + 2 * arch.get("window", 0)) + \
        (sum(features.sizes) if features else 0) + (N_CODES if arch.get("document_context") else 0)
    L = vocab.n_labels
    D = H * (2 if arch.get("bidirectional") else 1)
    d, F, dc = arch.get("embed_dim", 0), arch.get("char_filters", 0), arch.get("char_dim", 0)
    x = d + F if d else V
    expected = {"Wax": (G, x), "Waa": (G, H), "Wya": (L, D), "ba": (G,), "by": (L,),
                "Wax_b": (G, x), "Waa_b": (G, H), "ba_b": (G,),
                "trans": (L, L), "start": (L,), "end": (L,),
                "Ex": (d, V), "Ec": (n_chars, dc), "Wconv": (F, CHAR_WIDTH * dc), "bconv": (F,)}
    for k, arr in params.items():
        if arr.shape != expected[k]:
            raise _damaged(name, f"{k} is {arr.shape}, which does not match the rest of the "
                                 f"model: expected {expected[k]} for {V} inputs (words, "
                                 f"feature values and the window's words), {L} labels and {H} hidden units")
        if arr.dtype != np.float32:
            raise _damaged(name, f"{k} is {arr.dtype}, expected float32")
        if not np.isfinite(arr).all():
            raise _damaged(name, f"{k} holds non-finite values")


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
