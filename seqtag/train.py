"""Training loop: minibatches, backpropagation through time, clipping, SGD or Adam, early stopping.

The library never prints: it reports through ``progress(event, info)`` and returns the trainer,
whose learned state ends in ``_`` (``model_``, ``history_``, ``best_epoch_``, ``interrupted_``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np

from seqtag import __version__
from seqtag.config import TrainConfig
from seqtag.corpus import CorpusInfo, Sentence
from seqtag.embeddings import project_into, read_vectors
from seqtag.errors import SeqtagError
from seqtag.features import FeatureSet, parse_features
from seqtag.metrics import evaluate
from seqtag.kernels import elman, gru, lstm, matmul, optim, softmax
from seqtag.kernels.crf import crf_nll
from seqtag.chars import CharVocab
from seqtag.model import CRF_NAMES, RNNTagger, init_params, pack
from seqtag.schemes import detect_scheme
from seqtag.vocab import UNK_ID, Vocabulary

Progress = Callable[[str, dict], None]


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
        names = parse_features(cfg.features)
        features = FeatureSet.build((t for s in train for t in s.tokens), names,
                                    cfg.feature_min_count) if names else None
        n_inputs = vocab.n_words + (sum(features.sizes) if features else 0)
        chars = CharVocab.build(t for s in train for t in s.tokens) if cfg.char_filters else None
        n_real = 1 + len(names)   # ids columns that are input columns (then the word type)
        params = init_params(n_inputs, vocab.n_labels, cfg.hidden, rng, cfg.bidirectional,
                             cfg.crf, cfg.cell,
                             (len(chars), cfg.char_dim, cfg.char_filters) if chars else None,
                             cfg.embed_dim, n_real)
        self.pretrained_ = 0
        if cfg.embeddings:
            vectors, dim = read_vectors(cfg.embeddings, vocab.words[2:])
            for wax in ("Ex",) if cfg.embed_dim else \
                    ("Wax", "Wax_b") if cfg.bidirectional else ("Wax",):
                self.pretrained_ = project_into(params[wax], vocab.words, vectors, dim, rng)
        architecture = {"cell": cfg.cell, "bidirectional": cfg.bidirectional, "crf": cfg.crf,
                        "hidden": cfg.hidden, "features": names,
                        "embed_dim": cfg.embed_dim,
                        "char_filters": cfg.char_filters if chars else 0,
                        "char_dim": cfg.char_dim if chars else 0}
        scheme = detect_scheme([s.labels for s in train])
        meta = {"architecture": architecture, "label_scheme": scheme}
        model = RNNTagger(vocab, params, meta, features=features, chars=chars)
        # The corpus as flat arrays (sentence s is ids[offsets[s]:offsets[s+1]], one row of Wax
        # columns per token); an epoch gathers them in shuffled order once, so that each batch
        # is two slices.
        ids_all, offsets_all = pack([model.encode(s.tokens) for s in train])
        labels_all, _ = pack([vocab.label_ids(s.labels) for s in train])
        lengths = np.diff(offsets_all)
        n_sents, n_tokens = len(lengths), len(ids_all)
        # Per-token probability of the word being replaced by <unk>, so that <unk>'s column is
        # learned from contexts like those where unseen words will appear (features stay).
        counts = vocab.word_counts.astype(np.float64)
        words = ids_all[:, 0]
        drop_p = np.where(words > UNK_ID,
                          cfg.word_dropout / (cfg.word_dropout + counts[words]), 0.0)

        # What feature dropout turns each feature column into: the feature's <unk>, and for the
        # character CNN word type 0, the empty spelling.
        feature_unk = np.array(list(vocab.n_words + np.cumsum([0] + features.sizes[:-1])
                                    if features else []) + ([0] if chars else []), np.int32)
        optimizer = _Optimizer(cfg, model, int(np.sort(lengths)[-cfg.batch_size:].sum()))
        # Batches are drawn in shuffled order, so a batch can hold the longest sentences together.
        work = _Workspace(model, int(np.sort(lengths)[-cfg.batch_size:].sum()))

        self.history_: list[dict] = []
        self.best_epoch_ = 0
        self.interrupted_ = False
        best_params = averaged = None
        best_score = -np.inf
        n_batches = (n_sents + cfg.batch_size - 1) // cfg.batch_size
        self.progress("start", {"epochs": cfg.epochs, "batches": n_batches,
                                "sentences": n_sents, "tokens": n_tokens,
                                "words": vocab.n_words, "labels": vocab.n_labels,
                                "pretrained": self.pretrained_})
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
                    ep_ids[rng.random(n_tokens) < drop_p[gather], 0] = UNK_ID
                if cfg.feature_dropout > 0 and len(feature_unk):
                    # so that no single cue (the word, its suffix, ...) carries a label alone
                    drop = rng.random((n_tokens, len(feature_unk))) < cfg.feature_dropout
                    ep_ids[:, 1:] = np.where(drop, feature_unk, ep_ids[:, 1:])
                optimizer.lr = cfg.lr / (1 + cfg.lr_decay * (epoch - 1))
                ep_offsets = np.concatenate(([0], ends))
                total_loss = 0.0
                for b in range(n_batches):
                    first, last = b * cfg.batch_size, min((b + 1) * cfg.batch_size, n_sents)
                    lo, hi = ep_offsets[first], ep_offsets[last]
                    ids, labels = ep_ids[lo:hi], ep_labels[lo:hi]
                    offsets = ep_offsets[first:last + 1] - lo
                    loss = _forward_backward(model, cfg, optimizer, work, ids, offsets,
                                             labels, rng)
                    total_loss += loss
                    optimizer.step(np.unique(ids[:, :n_real]), len(ids))
                    self.progress("batch", {"epoch": epoch, "batch": b + 1,
                                            "batches": n_batches, "loss": loss / len(ids)})
                seconds = time.perf_counter() - t0
                row = {"epoch": epoch, "train_loss": round(total_loss / n_tokens, 6)}
                # What is evaluated and kept: the weights, or their average over epoch ends
                # (exponential, factor cfg.average per epoch).
                if cfg.average > 0 and averaged is not None:
                    for k, v in averaged.items():
                        v *= cfg.average
                        v += (1 - cfg.average) * params[k]
                elif cfg.average > 0:
                    averaged = {k: v.copy(order="K") for k, v in params.items()}
                weights = averaged if cfg.average > 0 else params
                if dev:
                    current = RNNTagger(vocab, weights, meta, features=features, chars=chars)
                    scores = evaluate([s.labels for s in dev],
                                      current.predict([s.tokens for s in dev]))
                    row["dev_accuracy"] = round(scores.accuracy, 6)
                    if scores.chunked:
                        row["dev_f1"] = round(scores.f1, 6)
                    score = scores.f1 if scores.chunked else scores.accuracy
                else:
                    score = -row["train_loss"]
                improved = score > best_score
                if improved:
                    best_score, self.best_epoch_ = score, epoch
                    best_params = {k: v.copy(order="K") for k, v in weights.items()}
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
            "architecture": architecture,
            "hyperparameters": asdict(cfg),
            "seed": cfg.seed,
            "pretrained_words": self.pretrained_,
            "label_scheme": scheme,
            "corpus": [asdict(c) for c in corpus],
            "dev_corpus": asdict(dev_corpus) if dev_corpus else None,
            "history": self.history_,
            "best_epoch": self.best_epoch_,
            "interrupted": self.interrupted_,
        }
        self.model_ = RNNTagger(vocab, best_params, meta, features=features, chars=chars)
        return self


class _Workspace:
    """Buffers for the largest batch: states A, emissions E, their gradients, and what gated
    cells keep for their backward pass."""

    def __init__(self, model: RNNTagger, tokens: int):
        D, L = model.params["Wya"].shape[1], len(model.labels)
        dtype = model.params["Wya"].dtype   # float32; float64 in the gradient tests
        self.A = np.empty((tokens, D), dtype)
        self.dA = np.empty((tokens, D), dtype)
        self.E = np.empty((tokens, L), dtype)
        self.dE = np.empty((tokens, L), dtype)
        self.C = model.caches(tokens)


def _forward_backward(model: RNNTagger, cfg: TrainConfig, optimizer: "_Optimizer",
                      work: _Workspace, ids: np.ndarray, offsets: np.ndarray,
                      labels: np.ndarray, rng: np.random.Generator, exact: bool = False) -> float:
    """The summed loss of a packed batch; adds its gradients into ``optimizer.grads``."""
    p, grads = model.params, optimizer.grads
    n = len(ids)
    A, dA, E, dE = work.A[:n], work.dA[:n], work.E[:n], work.dE[:n]
    caches = [C[:n] for C in work.C]
    embedded = model.forward(ids, offsets, A, caches, exact, (cfg.input_dropout, rng))
    if embedded is not None:
        ids = embedded.ids
    if cfg.dropout > 0:
        # Inverted dropout: the output layer sees a<t> ⊙ m / (1 - p), and the recurrences keep
        # their own undropped states for BPTT.
        keep = rng.random(A.shape, dtype=np.float32) >= cfg.dropout
        mask = keep * np.float32(1 / (1 - cfg.dropout))
        A_out = A * mask
    else:
        A_out = A
    matmul.linear_forward(A_out, p["Wya"], p["by"], E)
    if model.crf:
        loss = crf_nll(E, offsets, labels, p["trans"], p["start"], p["end"], dE,
                       grads["trans"], grads["start"], grads["end"])
    else:
        loss = softmax.softmax_xent(E, labels, False, dE)
    matmul.linear_backward(A_out, p["Wya"], dE, dA, grads["Wya"], grads["by"])
    if cfg.dropout > 0:
        dA *= mask
    for (_, Waa, _, reverse, col, sfx), C in zip(model.directions(), caches):
        dWax = optimizer.slot_grads.get("Wax" + sfx, grads["Wax" + sfx])
        dWaa, dba = grads["Waa" + sfx], grads["ba" + sfx]
        if model.cell == "rnn":
            elman.rnn_backward(Waa, ids, offsets, reverse, A, col, dA, dWax, dWaa, dba, exact)
        else:
            step = lstm.lstm_backward if model.cell == "lstm" else \
                gru.gru_backward
            step(Waa, ids, offsets, reverse, A, col, C, dA, dWax, dWaa, dba, exact)
    if embedded is not None:
        model.embed_backward(embedded, grads, optimizer.slot_grads)
    return loss


class _Optimizer:
    """Gradient buffers, clipping, and SGD or Adam steps (lazy on Wax's columns)."""

    def __init__(self, cfg: TrainConfig, model: RNNTagger, max_tokens: int):
        self.cfg = cfg
        self.params = params = model.params
        self.grads = {k: np.zeros_like(v, order="K") for k, v in params.items()}
        # With the embedded input the backward kernels write into slot arrays (one column per
        # distinct input row of a batch: at most its tokens).
        self.slot_grads = {k: np.zeros_like(a, order="K")
                           for k, a in model.slot_arrays(max_tokens).items()} \
            if model.embedded else {}
        # Stepped together: a matrix whose columns are stepped lazily, only where the batch
        # read them (Wax, or Ex when embedded), and dense parameters.
        if model.embedded:
            self.groups = [("Ex", tuple(k for k in params if k != "Ex"))]
        else:
            self.groups = [("Wax", ("Waa", "ba", "Wya", "by") + (CRF_NAMES if cfg.crf else ()))]
            if cfg.bidirectional:
                self.groups.append(("Wax_b", ("Waa_b", "ba_b")))
        flat = lambda d, names: tuple(d[k].reshape(-1) for k in names)  # noqa: E731
        self.dense = [(flat(params, names), flat(self.grads, names)) for _, names in self.groups]
        if cfg.optimizer == "adam":
            self.moments = {k: (np.zeros_like(v, order="K"), np.zeros_like(v, order="K"))
                            for k, v in params.items()}
            self.dense_m = [tuple(flat({k: m[i] for k, m in self.moments.items()}, names)
                                  for i in (0, 1)) for _, names in self.groups]
        self.t = 0
        self.lr = cfg.lr

    def step(self, cols: np.ndarray, n_tokens: int) -> None:
        """One update from the summed gradients of n_tokens tokens; zeroes the gradients."""
        cfg, params, grads, f32 = self.cfg, self.params, self.grads, np.float32
        scale = 1.0 / n_tokens
        if cfg.clip > 0:
            norm = np.sqrt(_sq_norm(grads, cols, [w for w, _ in self.groups])) * scale
            if norm > cfg.clip:
                scale *= cfg.clip / norm
        self.t += 1
        for gi, (wax, _) in enumerate(self.groups):
            dense, dense_g = self.dense[gi]
            if cfg.optimizer == "adam":
                b1, b2 = 0.9, 0.999
                lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
                m, v = self.moments[wax]
                optim.adam_step(dense, dense_g, self.dense_m[gi][0], self.dense_m[gi][1],
                                params[wax], grads[wax], m, v, cols, f32(scale), f32(lr_t),
                                f32(b1), f32(b2), f32(1e-8))
            else:
                optim.sgd_step(dense, dense_g, params[wax], grads[wax], cols,
                               f32(self.lr * scale))


def _sq_norm(grads: dict[str, np.ndarray], cols: np.ndarray, lazy: list[str]) -> float:
    """‖g‖² of all gradients, reading the lazily stepped ones only in the columns the batch
    touched."""
    return sum(float(np.square(g[:, cols]).sum()) if k in lazy else float(np.vdot(g, g))
               for k, g in grads.items())
