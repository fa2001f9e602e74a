"""Training loop: minibatches, backpropagation through time, clipping, SGD or Adam, early stopping.

The library never prints: it reports through ``progress(event, info)`` and returns the trainer,
whose learned state ends in ``_`` (``model_``, ``history_``, ``best_epoch_``, ``interrupted_``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np

from seqtag import __version__, kernels
from seqtag.corpus import CorpusInfo, Sentence
from seqtag.errors import SeqtagError
from seqtag.metrics import evaluate
from seqtag.model import PARAM_NAMES, RNNTagger, init_params, pack
from seqtag.schemes import detect_scheme
from seqtag.vocab import UNK_ID, Vocabulary

Progress = Callable[[str, dict], None]


@dataclass
class TrainConfig:
    hidden: int = 128
    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"          # "adam" or "sgd"
    batch_size: int = 32
    clip: float = 5.0                # max global gradient norm; 0 turns clipping off
    seed: int = 1
    patience: int = 4                # epochs without dev improvement before stopping; 0 = never
    min_count: int = 1               # rarer words map to <unk>
    max_size: int | None = None      # vocabulary size cap, reserved entries included
    word_dropout: float = 0.25       # α: a known word w becomes <unk> with p = α / (α + count(w))

    def check(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise SeqtagError(f"unknown optimizer {self.optimizer!r}", hint="use adam or sgd")
        for name in ("hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SeqtagError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:  # also rejects NaN
            raise SeqtagError("--lr must be positive")
        if self.max_size is not None and self.max_size < 3:
            raise SeqtagError("--max-size must be at least 3 (<pad>, <unk> and one word)")
        if not (self.clip >= 0 and self.word_dropout >= 0) or self.patience < 0 \
                or self.min_count < 1:
            raise SeqtagError("--clip, --word-dropout and --patience must be ≥ 0, "
                              "--min-count ≥ 1")


def created_now() -> str:
    """Creation time, from SOURCE_DATE_EPOCH when set (reproducible builds) else the clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    try:
        t = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isascii() \
            and epoch.isdigit() else datetime.now(timezone.utc)
    except (OverflowError, OSError, ValueError):
        t = datetime.now(timezone.utc)
    return t.replace(microsecond=0).isoformat()


class Trainer:
    """Fits an RNNTagger to labelled sentences."""

    def __init__(self, config: TrainConfig | None = None, progress: Progress | None = None):
        self.config = config or TrainConfig()
        self.progress = progress or (lambda event, info: None)

    def fit(self, train: Sequence[Sentence], dev: Sequence[Sentence] | None = None, *,
            vocab: Vocabulary | None = None, corpus: Sequence[CorpusInfo] = (),
            dev_corpus: CorpusInfo | None = None) -> "Trainer":
        cfg = self.config
        cfg.check()
        rng = np.random.default_rng(cfg.seed)
        if not any(len(s.tokens) for s in train):
            raise SeqtagError("no training tokens", hint="give a corpus with labelled sentences")
        if any(s.labels is None for s in list(train) + list(dev or [])):
            raise SeqtagError("training and dev sentences need labels")
        if vocab is None:
            vocab, _ = Vocabulary.build(train, min_count=cfg.min_count, max_size=cfg.max_size)
        for s in list(train) + list(dev or []):
            for lab in s.labels or ():
                if not vocab.has_label(lab):
                    raise SeqtagError(
                        f"label {lab!r} (sentence at line {s.line_no}) is not in the "
                        f"vocabulary's label inventory ({', '.join(vocab.labels)})",
                        hint="the vocabulary does not match this data; rebuild it with "
                             "'seqtag build-vocab' on the training files")
        # The corpus as flat arrays (sentence s is ids[offsets[s]:offsets[s+1]]); an epoch gathers
        # them in shuffled order once, so that each batch is two slices.
        ids_all, offsets_all = pack([vocab.word_ids(s.tokens) for s in train])
        labels_all, _ = pack([vocab.label_ids(s.labels) for s in train])
        lengths = np.diff(offsets_all)
        n_sents, n_tokens = len(lengths), len(ids_all)
        # Per-token probability of being replaced by <unk>, so that <unk>'s column is learned
        # from contexts like those where unseen words will appear.
        counts = vocab.word_counts.astype(np.float64)
        drop_p = np.where(ids_all > UNK_ID,
                          cfg.word_dropout / (cfg.word_dropout + counts[ids_all]), 0.0)

        params = init_params(vocab.n_words, vocab.n_labels, cfg.hidden, rng)
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        grads["Wax"] = np.asfortranarray(grads["Wax"])
        dense = tuple(params[k].reshape(-1) for k in PARAM_NAMES[1:])
        dense_g = tuple(grads[k].reshape(-1) for k in PARAM_NAMES[1:])
        if cfg.optimizer == "adam":
            moments = [tuple(np.zeros_like(p) for p in dense) for _ in range(2)]
            mWax = np.zeros_like(params["Wax"], order="F")
            vWax = np.zeros_like(params["Wax"], order="F")
        f32 = np.float32

        scheme = detect_scheme([s.labels for s in train])
        self.history_: list[dict] = []
        self.best_epoch_ = 0
        self.interrupted_ = False
        best_params = None
        best_score = -np.inf
        step = 0
        n_batches = (n_sents + cfg.batch_size - 1) // cfg.batch_size
        self.progress("start", {"epochs": cfg.epochs, "batches": n_batches,
                                "sentences": n_sents, "tokens": n_tokens,
                                "words": vocab.n_words, "labels": vocab.n_labels})
        t_start = time.perf_counter()
        try:
            for epoch in range(1, cfg.epochs + 1):
                t0 = time.perf_counter()
                order = rng.permutation(n_sents)
                ends = np.cumsum(lengths[order])
                # Token positions of the shuffled sentences, in order.
                gather = np.repeat(offsets_all[order] - (ends - lengths[order]),
                                   lengths[order]) + np.arange(n_tokens)
                ep_ids = ids_all[gather]
                ep_labels = labels_all[gather]
                if cfg.word_dropout > 0:
                    ep_ids[rng.random(n_tokens) < drop_p[gather]] = UNK_ID
                ep_offsets = np.concatenate(([0], ends))
                total_loss = 0.0
                for b in range(n_batches):
                    first, last = b * cfg.batch_size, min((b + 1) * cfg.batch_size, n_sents)
                    lo, hi = ep_offsets[first], ep_offsets[last]
                    ids, labels = ep_ids[lo:hi], ep_labels[lo:hi]
                    offsets = ep_offsets[first:last + 1] - lo
                    loss = kernels.train_batch(
                        params["Wax"], params["Waa"], params["Wya"], params["ba"], params["by"],
                        ids, offsets, labels, grads["Wax"], grads["Waa"], grads["Wya"],
                        grads["ba"], grads["by"], False)
                    total_loss += loss
                    cols = np.unique(ids)
                    scale = 1.0 / len(ids)
                    if cfg.clip > 0:
                        norm = np.sqrt(kernels.grad_sq_norm(grads["Wax"], cols, grads["Waa"],
                                                            grads["Wya"], grads["ba"],
                                                            grads["by"])) * scale
                        if norm > cfg.clip:
                            scale *= cfg.clip / norm
                    step += 1
                    if cfg.optimizer == "adam":
                        b1, b2 = 0.9, 0.999
                        lr_t = cfg.lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
                        kernels.adam_step(dense, dense_g, moments[0], moments[1],
                                          params["Wax"], grads["Wax"], mWax, vWax, cols,
                                          f32(scale), f32(lr_t), f32(b1), f32(b2), f32(1e-8))
                    else:
                        kernels.sgd_step(dense, dense_g, params["Wax"], grads["Wax"], cols,
                                         f32(cfg.lr * scale))
                    self.progress("batch", {"epoch": epoch, "batch": b + 1,
                                            "batches": n_batches, "loss": loss / len(ids)})
                seconds = time.perf_counter() - t0
                row = {"epoch": epoch, "train_loss": round(total_loss / n_tokens, 6)}
                model = RNNTagger(vocab, params)
                if dev:
                    scores = evaluate([s.labels for s in dev],
                                      model.predict([s.tokens for s in dev]))
                    row["dev_accuracy"] = round(scores.accuracy, 6)
                    if scores.chunked:
                        row["dev_f1"] = round(scores.f1, 6)
                    score = scores.f1 if scores.chunked else scores.accuracy
                else:
                    score = -row["train_loss"]
                improved = score > best_score
                if improved:
                    best_score, self.best_epoch_ = score, epoch
                    best_params = {k: v.copy(order="K") for k, v in params.items()}
                self.history_.append(row)
                self.progress("epoch", {**row, "best": improved, "seconds": seconds,
                                        "tokens_per_second": n_tokens / seconds,
                                        "elapsed": time.perf_counter() - t_start})
                if not np.isfinite(total_loss):
                    raise SeqtagError("training diverged (the loss is not finite)",
                                      hint="lower --lr or set --clip")
                if cfg.patience and epoch - self.best_epoch_ >= cfg.patience:
                    break
        except KeyboardInterrupt:
            self.interrupted_ = True
        if best_params is None:
            self.model_ = None
            return self
        meta = {
            "seqtag_version": __version__,
            "created": created_now(),
            "architecture": {"cell": "rnn", "bidirectional": False, "crf": False,
                             "hidden": cfg.hidden},
            "hyperparameters": asdict(cfg),
            "seed": cfg.seed,
            "label_scheme": scheme,
            "corpus": [asdict(c) for c in corpus],
            "dev_corpus": asdict(dev_corpus) if dev_corpus else None,
            "history": self.history_,
            "best_epoch": self.best_epoch_,
            "interrupted": self.interrupted_,
        }
        self.model_ = RNNTagger(vocab, best_params, meta)
        return self
