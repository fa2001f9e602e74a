"""Building a model from a configuration and a corpus: inventories, features, characters,
initial parameters (and pretrained vectors), architecture and metadata.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Sequence

import numpy as np

from seqtag.chars import CharVocab
from seqtag.config import RUN_ONLY, TrainConfig, plain
from seqtag.corpus import Sentence
from seqtag.embeddings import project_into, read_vectors, vectors_path
from seqtag.errors import SeqtagError
from seqtag.features import FeatureSet, parse_features
from seqtag.layers.charcnn import CHAR_WIDTH
from seqtag.layers.recurrent import GATES
from seqtag.memory import ensure_memory
from seqtag.documents import N_CODES
from seqtag.modelfile import DOCUMENT, WINDOW
from seqtag.model import RNNTagger
from seqtag.network import Architecture
from seqtag.schemes import detect_scheme
from seqtag.vocab import Vocabulary


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
    G = GATES[plain(cell)] * hidden

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



def check_corpus(train: Sequence[Sentence], dev: Sequence[Sentence] | None) -> None:
    if not any(len(s.tokens) for s in train):
        raise SeqtagError("no training tokens", hint="give a corpus with labelled sentences")
    if any(s.labels is None for s in list(train) + list(dev or [])):
        raise SeqtagError("training and dev sentences need labels")


def check_labels(vocab: Vocabulary, train: Sequence[Sentence],
                 dev: Sequence[Sentence] | None) -> None:
    """Every label of the data is in the model's label inventory."""
    for s in list(train) + list(dev or []):
        for lab in s.labels or ():
            if not vocab.has_label(lab):
                raise SeqtagError(
                    f"label {lab!r} (sentence at line {s.line_no}) is not in the "
                    f"vocabulary's label inventory ({', '.join(vocab.labels)})",
                    hint="the vocabulary does not match this data; rebuild it with "
                         "'seqtag build-vocab' on the training files")


def build_model(cfg: TrainConfig, train: Sequence[Sentence], rng: np.random.Generator,
                vocab: Vocabulary | None = None,
                dev: Sequence[Sentence] | None = None) -> tuple[RNNTagger, int]:
    """A freshly initialised model for ``train`` under ``cfg`` (its inventories from the
    training sentences unless ``vocab`` is given), and how many words started from pretrained
    vectors. Draws the initial weights from ``rng``."""
    if vocab is None:
        vocab, _ = Vocabulary.build(train, min_count=cfg.min_count, max_size=cfg.max_size)
    check_labels(vocab, train, dev)
    names = parse_features(cfg.features)
    features = FeatureSet.build((t for s in train for t in s.tokens), names,
                                cfg.feature_min_count) if names else None
    # Ex's columns: the words, each feature's values, then the words again at each of the
    # window's 2k neighbour positions (seqtag.encoding), then the document codes.
    n_inputs = vocab.n_words * (1 + 2 * cfg.window) + (sum(features.sizes) if features else 0) \
        + (N_CODES if cfg.document_context else 0)
    chars = CharVocab.build(t for s in train for t in s.tokens) if cfg.char_filters else None
    # input columns summed into x (then the word type)
    n_real = 1 + len(names) + 2 * cfg.window + cfg.document_context
    lengths = np.sort([len(s.tokens) for s in train])
    ensure_memory(training_bytes(cfg, n_inputs, vocab.n_labels, len(chars) if chars else 0,
                                 int(lengths[-cfg.batch_size:].sum()), int(lengths.sum()),
                                 n_real + (chars is not None)),
                  "training this model",
                  "lower --hidden, --embed-dim, --char-filters or --batch-size, or shrink the "
                  "vocabulary with --min-count or --max-size")
    params = init_params(n_inputs, vocab.n_labels, cfg.hidden, rng, cfg.bidirectional,
                         cfg.crf, cfg.cell,
                         (len(chars), cfg.char_dim, cfg.char_filters) if chars else None,
                         cfg.embed_dim, n_real)
    pretrained = 0
    if cfg.embeddings:
        vectors, dim = read_vectors(vectors_path(cfg.embeddings), vocab.words[2:])
        if cfg.embed_dim:
            # the token's table, then one per neighbour position of the window: each starts
            # from the vectors, through a projection of its own
            n, base = vocab.n_words, vocab.n_words + (sum(features.sizes) if features else 0)
            tables = [params["Ex"][:, :n]] + [params["Ex"][:, base + b * n:base + (b + 1) * n]
                                              for b in range(2 * cfg.window)]
        else:
            tables = [params[w] for w in (("Wax", "Wax_b") if cfg.bidirectional else ("Wax",))]
        for table in tables:
            pretrained = project_into(table, vocab.words, vectors, dim, rng)
    architecture = Architecture(
        cell=plain(cfg.cell),
        bidirectional=cfg.bidirectional, crf=cfg.crf, hidden=cfg.hidden,
        features=tuple(names), embed_dim=cfg.embed_dim,
        char_filters=cfg.char_filters if chars else 0, char_dim=cfg.char_dim if chars else 0,
        window=cfg.window, document=cfg.document_context)
    meta = {"level": "char" if plain(cfg.level) == "char" else "word",
            "architecture": architecture.as_meta(),
            "label_scheme": "none" if train and all(s.residues for s in train) else
            detect_scheme([s.labels for s in train])}
    requires = [WINDOW] * bool(cfg.window) + [DOCUMENT] * bool(cfg.document_context)
    if requires:
        meta["requires"] = requires
    return RNNTagger(vocab, params, meta, features=features, chars=chars), pretrained


def training_bytes(cfg: TrainConfig, n_inputs: int, n_labels: int, n_chars: int,
                   max_tokens: int, n_tokens: int, n_cols: int) -> int:
    """About how many bytes a training run allocates: the parameters with their gradients,
    Adam's moments and the kept copies (best epoch, average), the largest batch's scratch
    arrays, and the corpus as arrays (an epoch's shuffled copy included). Estimated before
    anything is allocated: Linux overcommits, so an allocation too large for the machine kills
    the process later instead of failing now."""
    H, L = cfg.hidden, n_labels
    G, dirs = GATES[plain(cfg.cell)] * H, 2 if cfg.bidirectional else 1
    chars = cfg.char_filters if cfg.embed_dim and n_chars else 0
    n_x = cfg.embed_dim + chars if cfg.embed_dim else n_inputs
    weights = dirs * G * (n_x + H + 1) + L * (dirs * H + 1) + (L * L + 2 * L if cfg.crf else 0) \
        + (n_chars * cfg.char_dim + chars * (CHAR_WIDTH * cfg.char_dim + 1) if chars else 0) \
        + cfg.embed_dim * n_inputs
    copies = 2 + (2 if plain(cfg.optimizer) == "adam" else 0) + 1 \
        + (cfg.average > 0)
    rows = max(max_tokens, 256)
    scratch = max_tokens * (2 * dirs * H + 2 * L + dirs * 5 * H) + \
        (dirs * 2 * G * rows + rows * n_x if cfg.embed_dim else 0)
    corpus = n_tokens * (n_cols * 4 * 3 + 8 * 4)
    return 4 * (weights * copies + scratch) + corpus


def hyperparameters(cfg: TrainConfig) -> dict:
    """The configuration as the model file records it (plain JSON values)."""
    return {k: plain(v) for k, v in asdict(cfg).items() if k not in RUN_ONLY}
