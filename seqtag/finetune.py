"""Fine-tuning: a new training run that starts from an existing model's weights.

  the init model ─▶ init_config (its architecture; the run's training options on top)
                 ─▶ to_scheme (the new data's labels in the model's tag scheme)
                 ─▶ extend (its inventories grown by the new data's entries, old weights kept)
                 ─▶ training as usual (seqtag.training), with a fresh optimizer

What is new gets what a fresh model would get: a word, feature value or character that the new
data brings (by the same count rules as a fresh vocabulary: ``min_count``,
``feature_min_count``, ``max_size``, the character cap) is appended to its inventory with a
column (row) drawn as init_params draws it; a new label gets a row of Wya drawn the same way, a
zero bias, and zero CRF transition, start and end scores (a fresh CRF starts at zero too; the tag
scheme's constraints are not weights but the decoder's mask, made from the labels). Every old
entry keeps its index and its weights exactly, so before any update the extended model gives the
old labels the same scores as the model it came from.

Resuming an interrupted run (``--resume``) is another thing: it continues a run with its
optimizer's state; this starts a new run from weights only.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Sequence

import numpy as np

from seqtag.chars import MAX_CHARS, CharVocab
from seqtag.config import TrainConfig, plain
from seqtag.corpus import Sentence
from seqtag.documents import N_CODES
from seqtag.errors import SeqtagError
from seqtag.features import FEATURES, FeatureSet, parse_features
from seqtag.model import RNNTagger
from seqtag.schemes import convert, detect_scheme
from seqtag.vocab import PAD, UNK, Vocabulary

# The options that make the network what it is: fine-tuning takes them from the init model.
ARCHITECTURE = ("hidden", "bidirectional", "crf", "cell", "features", "embed_dim",
                "char_filters", "char_dim", "window", "document_context")
# The keyword that names the bundled model where a model path is expected.
BUNDLED = "default"


def bundled_model_path():
    from importlib import resources

    return resources.files("seqtag") / "data" / "default.npz"


def resolve_init(name) -> str:
    """The path of the model ``name`` names: BUNDLED is the bundled model (a file of that name
    is ./default), anything else a path."""
    return str(bundled_model_path()) if str(name) == BUNDLED else str(name)


def file_sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_init(init) -> tuple[RNNTagger, dict]:
    """(the model, what the new model records of it) for ``init``: a path, BUNDLED, or a
    model (an RNNTagger) already loaded."""
    if isinstance(init, RNNTagger):
        return init, {"name": "a model given in memory"}
    path = resolve_init(init)
    name = f"{BUNDLED} (the bundled model)" if str(init) == BUNDLED else str(init)
    try:
        model = RNNTagger.load(path)
    except SeqtagError as e:
        if e.hint and "-m" in e.hint:     # the loader's hint speaks of tag's -m
            e.hint = f"give --init a model file written by 'seqtag train', or '{BUNDLED}' for " \
                     f"the bundled model"
            e.args = (str(e),)
        raise
    return model, {"name": name, "sha256": file_sha256(path)}


def architecture_of(model: RNNTagger) -> dict:
    """The init model's architecture as TrainConfig values."""
    arch = model.architecture
    out = {"hidden": model.hidden, "bidirectional": model.bidirectional, "crf": model.crf,
           "cell": arch.cell, "features": ",".join(model.features.names if model.features
                                                   else ()),
           "embed_dim": model.params["Ex"].shape[0] if model.embedded else 0,
           "char_filters": model.params["Wconv"].shape[0] if "Wconv" in model.params else 0}
    if "Ec" in model.params:
        out["char_dim"] = model.params["Ec"].shape[1]
    out["window"] = arch.window
    out["document_context"] = arch.document
    return out


def init_config(model: RNNTagger, options: dict) -> TrainConfig:
    """The configuration of a run that starts from ``model``: its recorded hyperparameters and
    its architecture, with ``options`` (those the caller gave) on top. An option that would
    change the architecture raises a SeqtagError naming it; ``embeddings`` is refused (the words
    of the model did not start from these vectors' projection)."""
    from seqtag.config import flag_of

    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    recorded = model.meta.get("hyperparameters")
    values = {k: v for k, v in (recorded if isinstance(recorded, dict) else {}).items()
              if k in names}
    arch = architecture_of(model)
    if arch["window"]:
        # Its input columns hold the vocabulary once per window position (seqtag.build): not
        # extended here yet.
        raise SeqtagError(f"fine-tuning a model with a window of neighbours (window "
                          f"{arch['window']}, as character-level models have) is not supported "
                          f"yet", hint="train from scratch without --init")
    values.update(arch)
    values["embeddings"] = None
    # An ensemble's merged network is one model to fine-tune (ensemble members start from
    # scratch).
    values["ensemble"] = 1
    for key, value in options.items():
        if key not in names:
            raise TypeError(f"unknown training option {key!r}")
        if key == "embeddings" and value is not None:
            raise SeqtagError("--embeddings starts a new model's words from vectors; with --init "
                              "the words start from the model's own weights",
                              hint="drop --embeddings, or train from scratch without --init")
        if key in arch and not _same(key, value, arch[key]):
            flags = flag_of(names[key]).split("/")
            if isinstance(value, bool):     # --crf/--no-crf: the one given
                given = flag = flags[0] if value else flags[-1]
            else:
                flag = flags[0]
                given = f"{flag} {value}"
            shown = plain(arch[key]) if key != "features" else (arch[key] or "none")
            if isinstance(shown, bool):
                shown = "on" if shown else "off"
            raise SeqtagError(f"{given} would change the architecture of the model given to "
                              f"--init ({key}: {shown}); fine-tuning keeps the model's "
                              f"architecture",
                              hint=f"drop {flag}, or train from scratch without --init")
    values.update({k: v for k, v in options.items() if k not in arch})
    return TrainConfig(**values)


def _same(key: str, given, model_value) -> bool:
    if key == "features":
        try:
            # the same features in another order: the same model (the model's order is kept)
            return sorted(parse_features(str(given))) == sorted(parse_features(model_value))
        except SeqtagError:
            return False
    return plain(given) == plain(model_value)


def to_scheme(sentences: Sequence[Sentence], scheme: str) -> tuple[list[Sentence], str | None]:
    """The sentences with their labels in ``scheme`` (the model's), and the scheme they were in
    when they had to be converted (None when they were not: already in it, not chunk labels, or
    a model without a scheme)."""
    sentences = list(sentences)
    if scheme == "none" or not sentences:
        return sentences, None
    found = detect_scheme([s.labels for s in sentences if s.labels])
    if found in ("none", scheme):
        return sentences, None
    return [dataclasses.replace(s, labels=convert(s.labels, scheme)) if s.labels else s
            for s in sentences], found


@dataclasses.dataclass
class Extension:
    """What the new data added to the init model's inventories."""

    words: int = 0
    feature_values: int = 0
    chars: int = 0
    labels: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _ranked_new(counts: Counter, known, min_count: int, exclude=()) -> list[str]:
    """Entries of ``counts`` that are not ``known``, seen at least ``min_count`` times, most
    frequent first (ties by the entry: independent of the corpus order, as Vocabulary.build)."""
    return sorted((e for e, c in counts.items()
                   if c >= min_count and e not in known and e not in exclude),
                  key=lambda e: (-counts[e], e))


def extend(model: RNNTagger, train: Sequence[Sentence], cfg: TrainConfig,
           rng: np.random.Generator) -> tuple[RNNTagger, Extension]:
    """A new model: ``model``'s inventories with the entries ``train`` adds appended, its
    weights for the old entries, fresh ones (drawn from ``rng``) for the new. ``model`` is left
    as it was. Labels must already be in the model's scheme (to_scheme). The new model is
    uncalibrated (temperature 1), as a model in training is: the run fits its own on dev."""
    from seqtag.build import init_params, training_bytes
    from seqtag.memory import ensure_memory

    vocab, old_features, old_chars = model.vocab, model.features, model.chars
    report = Extension()
    words = Counter(t for s in train for t in s.tokens)
    labels = Counter(lab for s in train for lab in s.labels or ())

    new_words = _ranked_new(words, set(vocab.words), cfg.min_count, (PAD, UNK))
    if cfg.max_size is not None:
        new_words = new_words[:max(0, cfg.max_size - vocab.n_words)]
    report.words = len(new_words)
    word_list = vocab.words + new_words
    index = dict(zip(word_list, range(len(word_list))))
    word_counts = np.concatenate([vocab.word_counts, np.zeros(len(new_words), np.int64)])
    for w, c in words.items():
        word_counts[index.get(w, 1) if w != PAD else 1] += c
    new_labels = _ranked_new(labels, set(vocab.labels), 1)
    report.labels = new_labels
    label_list = vocab.labels + new_labels
    label_counts = np.concatenate([vocab.label_counts, np.zeros(len(new_labels), np.int64)])
    lindex = dict(zip(label_list, range(len(label_list))))
    for lab, c in labels.items():
        label_counts[lindex[lab]] += c
    new_vocab = Vocabulary(word_list, word_counts, label_list, label_counts)

    # Input columns: the words, then each feature's values. (old column, new column) blocks.
    blocks = [(0, 0, vocab.n_words)]
    features = None
    if old_features is not None:
        values = []
        old_base, new_base = vocab.n_words, len(word_list)
        for name, old in zip(old_features.names, old_features.values):
            counts: Counter = Counter()
            fn = FEATURES[name]
            for w, c in words.items():
                counts[fn(w)] += c
            added = _ranked_new(counts, set(old), cfg.feature_min_count)
            report.feature_values += len(added)
            values.append(old + added)
            blocks.append((old_base, new_base, len(old)))
            old_base += len(old)
            new_base += len(old) + len(added)
        features = FeatureSet(list(old_features.names), values)
    n_inputs = len(word_list) + (sum(features.sizes) if features else 0)
    document = model.architecture.document
    if document:        # the document codes' columns come last (seqtag.encoding)
        blocks.append((model.encoder.n_inputs - N_CODES, n_inputs, N_CODES))
        n_inputs += N_CODES

    chars = None
    if old_chars is not None:
        counts = _char_counts(words)
        room = max(0, MAX_CHARS - (len(old_chars) - 4))
        added = _ranked_new(counts, set(old_chars.alphabet), 1)[:room]
        report.chars = len(added)
        chars = CharVocab(old_chars.alphabet + added)

    lengths = np.sort([len(s.tokens) for s in train])
    n_cols = 1 + (len(features.names) if features else 0) + document
    ensure_memory(training_bytes(cfg, n_inputs, len(label_list), len(chars) if chars else 0,
                                 int(lengths[-cfg.batch_size:].sum()), int(lengths.sum()),
                                 n_cols + (chars is not None)),
                  "fine-tuning this model", "lower --batch-size, or add fewer words with "
                                            "--min-count or --max-size")
    # Fresh weights for everything, as a new model of these sizes would start; then the old
    # entries' weights copied over them.
    arch = model.architecture
    fresh = init_params(n_inputs, len(label_list), model.hidden, rng, model.bidirectional,
                        model.crf, arch.cell,
                        (len(chars), model.params["Ec"].shape[1],
                         model.params["Wconv"].shape[0]) if chars is not None else None,
                        model.params["Ex"].shape[0] if model.embedded else 0,
                        n_cols)
    params = {}
    n_old_labels = vocab.n_labels
    for name, old in model.params.items():
        new = np.zeros(fresh[name].shape, old.dtype,
                       order="F" if old.flags.f_contiguous and not old.flags.c_contiguous
                       else "C")
        new[...] = fresh[name]
        if name in ("Ex", "Wax", "Wax_b") and new.shape[1] != old.shape[1]:
            for o, n, size in blocks:               # columns of the inputs
                new[:, n:n + size] = old[:, o:o + size]
        elif name == "Ec":
            new[:len(old)] = old
        elif name in ("Wya", "by", "start", "end"):
            new[:n_old_labels] = old
        elif name == "trans":
            new[:n_old_labels, :n_old_labels] = old
        else:
            new[...] = old
        params[name] = new
    meta = {"level": model.meta.get("level", "word"), "architecture": arch.as_meta(),
            "label_scheme": model.scheme}
    if "requires" in model.meta:
        meta["requires"] = list(model.meta["requires"])
    if model.scheme == "none":
        meta["label_scheme"] = detect_scheme([s.labels for s in train])
    return RNNTagger(new_vocab, params, meta, features=features, chars=chars), report


def _char_counts(words: Counter) -> Counter:
    counts: Counter = Counter()
    for w, c in words.items():
        for ch in w:
            counts[ch] += c
    return counts
