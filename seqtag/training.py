"""Training: the loop over epochs and batches, and the bookkeeping around it.

  build the model (seqtag.build) → for each epoch: shuffled batches with word and feature
  dropout (Batches) → forward, loss, backprop (train_step) → an optimizer step (seqtag.optim)
  → at the epoch's end, evaluate on dev and keep the best epoch (Selection), stop early.

The library never prints: it reports through ``progress(event, info)`` and returns the trainer,
whose learned state ends in ``_`` (``model_``, ``history_``, ``best_epoch_``, ``interrupted_``,
``stopped_by_budget_``).

Checkpoints. Given a ``checkpoint`` path, the trainer writes at every epoch's end (atomically) a
model file of the current weights whose ``state`` section holds everything else the next epoch
depends on: the optimizer's moments and step count, the random generator's state, the epoch,
the history and the early-stopping state (best score, epoch and weights; the running average).
``fit(..., resume=True)`` rebuilds the model as a fresh run would (the same draws), then takes
all of that back, so that a run stopped after any epoch and resumed ends with the same model,
bit for bit, as the run that was never stopped.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from typing import Callable, Sequence

import numpy as np

from seqtag import __version__, portable
from seqtag.build import build_model, check_corpus, hyperparameters
from seqtag.config import _MAX_SEED, TrainConfig, plain
from seqtag.corpus import CorpusInfo, Sentence
from seqtag.documents import with_context
from seqtag.encoding import pack
from seqtag.metrics import evaluate
from seqtag.model import RNNTagger
from seqtag.network import Network, chunk_order
from seqtag.optim import Optimizer
from seqtag.errors import SeqtagError
from seqtag.threads import Pool
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

    def __init__(self, config: TrainConfig | None = None, progress: Progress | None = None,
                 checkpoint: str | os.PathLike | None = None, started: float | None = None):
        """``started``: the time.monotonic() at which the run began, from which
        ``config.time_budget`` counts (the CLI gives its process's start); by default the call
        of ``fit``."""
        self.config = config or TrainConfig()
        self.progress = progress or (lambda event, info: None)
        self.checkpoint = checkpoint
        self.started = started

    def fit(self, train: Sequence[Sentence], dev: Sequence[Sentence] | None = None, *,
            vocab: Vocabulary | None = None, corpus: Sequence[CorpusInfo] = (),
            dev_corpus: CorpusInfo | None = None, resume: bool = False,
            init: RNNTagger | None = None, init_source: dict | None = None) -> "Trainer":
        """``init``: a model to start from (fine-tuning, seqtag.finetune): its architecture
        must be the configuration's (seqtag.finetune.init_config), its inventories grow by the
        data's new entries, and labels in another tag scheme are converted to its scheme (said
        by a "converted" progress event). ``init_source``: what the model file records of it
        (name, sha256)."""
        started = time.monotonic() if self.started is None else self.started
        check_corpus(train, dev)
        # The level (word or char) and its defaults follow the data: ``config_`` is what ran.
        cfg = self.config_ = self.config.check().for_data(
            s.tokens for s in list(train) + list(dev or [])).check()
        if cfg.ensemble > 1:
            return self._fit_ensemble(cfg, train, dev, vocab, corpus, dev_corpus, resume, init,
                                      started)
        given = (train, dev, vocab, corpus, init, init_source, started)
        rng = np.random.default_rng(cfg.seed)
        self.init_ = None
        if init is not None:
            model, self.pretrained_ = self._extend(init, init_source, train, dev, vocab, rng)
            train, dev = self._converted
        else:
            # Training data without document boundaries: the model is the one built without
            # the option, bit for bit (the context would be a constant input); the option stays
            # recorded as given.
            documents = any(getattr(s, "document", None) is not None for s in train)
            model, self.pretrained_ = build_model(
                cfg if documents else replace(cfg, document_context=False), train, rng, vocab,
                dev)
        if model.architecture.document:
            # each sentence's tokens carry their document codes from here on (encoding, dev
            # scoring, calibration)
            train = list(with_context(train))
            dev = None if dev is None else list(with_context(dev))
        batches = Batches(model, train, cfg)
        network = Network(model.params, model.architecture, model.encoder.spellings,
                          dropout=cfg.dropout, input_dropout=cfg.input_dropout)
        optimizer = Optimizer(cfg, model.params)
        network.attach_grads(optimizer.grads)
        network.reserve(batches.max_tokens)
        network.pool = optimizer.pool = Pool(cfg.threads)
        selection = Selection(cfg)
        first_epoch = 1
        if resume:
            first_epoch = self._resume(model, optimizer, selection, rng, corpus, dev_corpus)
            if selection.should_stop(first_epoch - 1):
                first_epoch = cfg.epochs + 1          # it had stopped early: nothing to train
        self.history_, self.interrupted_ = selection.history, False
        self.stopped_by_budget_ = False
        budget = Budget(cfg.time_budget, started)
        self.progress("start", {"epochs": cfg.epochs, "batches": batches.n_batches,
                                "sentences": batches.n_sents, "tokens": batches.n_tokens,
                                "words": model.vocab.n_words, "labels": model.vocab.n_labels,
                                "pretrained": self.pretrained_, "init": self.init_})
        t_start = time.perf_counter()
        try:
            for epoch in range(first_epoch, cfg.epochs + 1):
                t0 = time.perf_counter()
                optimizer.lr = cfg.lr / (1 + cfg.lr_decay * (epoch - 1))
                total_loss = 0.0
                stream = batches.epoch(rng)
                batch = next(stream, None)
                ahead = None if batch is None else prepare(network, optimizer, batches, batch[0])
                for b in range(batches.n_batches):
                    ids, offsets, labels = batch
                    distinct, cols = ahead
                    loss = train_step(network, ids, offsets, labels, rng, distinct=distinct)
                    batch = next(stream, None)
                    # the next batch's distinct rows and columns, beside this one's update
                    ahead = optimizer.step(cols, len(ids), None if batch is None else partial(
                        prepare, network, optimizer, batches, batch[0]))
                    total_loss += loss
                    self.progress("batch", {"epoch": epoch, "batch": b + 1, "batches":
                                            batches.n_batches, "loss": loss / len(ids)})
                seconds = time.perf_counter() - t0
                t_dev = time.perf_counter()
                row = selection.end_epoch(epoch, total_loss / batches.n_tokens, model, dev)
                if dev:
                    budget.scored(time.perf_counter() - t_dev)
                self.progress("epoch", {**row, "best": selection.best_epoch == epoch,
                                        "seconds": seconds,
                                        "tokens_per_second": batches.n_tokens / seconds,
                                        "elapsed": time.perf_counter() - t_start})
                if not np.isfinite(total_loss):
                    raise SeqtagError("training diverged (the loss is not finite)",
                                      hint="lower --lr or set --clip")
                if self.checkpoint is not None:
                    t_save = time.monotonic()
                    self._save_checkpoint(model, optimizer, selection, rng, epoch, corpus,
                                          dev_corpus)
                    budget.saved(time.monotonic() - t_save)
                budget.end_epoch(time.perf_counter() - t0)
                if selection.should_stop(epoch):
                    break
                if epoch < cfg.epochs and budget.exceeded_by_next():
                    self.stopped_by_budget_ = True
                    self.progress("budget", {"epoch": epoch, **budget.report()})
                    break
        except KeyboardInterrupt:
            self.interrupted_ = True
        finally:
            network.pool.close()
        self.best_epoch_ = selection.best_epoch
        self.model_ = None if selection.best_params is None else RNNTagger(
            model.vocab, selection.best_params, self._meta(model, selection, corpus, dev_corpus),
            features=model.features, chars=model.chars)
        if self.model_ is not None and dev and not self.interrupted_:
            # Calibrate --scores on the dev set (seqtag.calibration); labels stay the same.
            from seqtag.calibration import fit_temperature

            fit = fit_temperature(self.model_, [s.tokens for s in dev], [s.labels for s in dev])
            self.model_.set_temperature(fit["temperature"], fit)
            self.progress("calibrated", fit)
            if cfg.refit and not self.stopped_by_budget_:
                self._refit(cfg, *given, epoch_seconds=budget.epochs)
        return self

    def _refit(self, cfg, train, dev, vocab, corpus, init, init_source, started,
               epoch_seconds=()) -> None:
        """Train again, from scratch with the same seed, on train + dev for the chosen epoch
        count, and keep that model with the dev run's history and temperature (dev can no
        longer score a model trained on it). Few sentences make a small dev, whose choice of
        epoch is noisy but whose sentences are worth training on (bench_protein's CV: 0.6
        points of Q3). A refit stopped by an interruption or the time budget is dropped: the
        early-stopped model stays, and so it does when the budget has no room left for the
        refit's epochs (as long as the dev run's, with dev's share of sentences added)."""
        epochs, n = max(1, self.best_epoch_), len(train) + len(dev)
        if cfg.time_budget is not None and epoch_seconds:
            need = epochs * float(np.mean(epoch_seconds)) * n / max(1, len(train))
            if time.monotonic() - started + need > cfg.time_budget:
                self.progress("refit_dropped", {"interrupted": False})
                return
        self.progress("refit", {"epochs": epochs, "sentences": n})
        again = Trainer(replace(cfg, refit=False, epochs=epochs, patience=0),
                        self.progress, None, started).fit(
            list(train) + list(dev), None, vocab=vocab, corpus=corpus, init=init,
            init_source=init_source)
        if again.model_ is None or again.interrupted_ or again.stopped_by_budget_:
            self.progress("refit_dropped", {"interrupted": again.interrupted_})
            return
        model, early = again.model_, self.model_
        model.meta.update(
            hyperparameters=hyperparameters(cfg), dev_corpus=early.meta["dev_corpus"],
            history=early.meta["history"], best_epoch=early.meta["best_epoch"],
            refit={"epochs": epochs, "sentences": n})
        model.set_temperature(early.temperature, early.meta.get("temperature_fit"))
        self.model_, self.early_model_ = model, early

    def _fit_ensemble(self, cfg, train, dev, vocab, corpus, dev_corpus, resume, init,
                      started) -> "Trainer":
        """cfg.ensemble runs of one model (seeds cfg.seed, cfg.seed + 1, ...), merged into one
        model that scores with their mean (seqtag.ensemble). Each member is chosen on dev and
        writes the checkpoint as a run of its own. An interrupted run, or one stopped by the
        time budget, keeps the members that have a model."""
        from seqtag.ensemble import merge

        if resume or init is not None:
            raise SeqtagError(f"--ensemble {cfg.ensemble} trains {cfg.ensemble} models from "
                              f"scratch: {'--resume' if resume else '--init'} continues one",
                              hint="give --ensemble 1")
        if cfg.char_filters:
            raise SeqtagError(f"--ensemble {cfg.ensemble} cannot merge models with a character "
                              f"CNN yet (--char-filters {cfg.char_filters})",
                              hint="give --char-filters 0, or --ensemble 1")
        members = []
        for k in range(cfg.ensemble):
            self.progress("member", {"member": k + 1, "members": cfg.ensemble})
            member = Trainer(replace(cfg, seed=(cfg.seed + k) % (_MAX_SEED + 1), ensemble=1),
                             self.progress, self.checkpoint, started).fit(
                train, dev, vocab=vocab, corpus=corpus, dev_corpus=dev_corpus)
            if member.model_ is not None:
                members.append(member)
            if member.interrupted_ or member.stopped_by_budget_:
                break
        self.interrupted_ = any(m.interrupted_ for m in members)
        self.stopped_by_budget_ = any(m.stopped_by_budget_ for m in members)
        self.pretrained_ = members[0].pretrained_ if members else 0
        self.init_ = None
        self.history_ = members[0].history_ if members else []
        self.best_epoch_ = members[0].best_epoch_ if members else 0
        self.model_ = merge([m.model_ for m in members]) if members else None
        if self.model_ is None:
            return self
        self.model_.meta.pop("refit", None)     # the first member's: each member's is below
        self.model_.meta.update(
            hyperparameters=hyperparameters(cfg), seed=cfg.seed,
            interrupted=self.interrupted_,
            ensemble=[{"seed": m.config_.seed, "best_epoch": m.best_epoch_,
                       "history": m.history_,
                       **({"refit": m.model_.meta["refit"]} if "refit" in m.model_.meta
                          else {})} for m in members])
        if dev and not self.interrupted_:
            from seqtag.calibration import fit_temperature

            # Refit members have trained on dev: the temperature is the one of their
            # early-stopped models, merged alike, which have not.
            early = [getattr(m, "early_model_", None) for m in members]
            scored = merge(early) if all(e is not None for e in early) else self.model_
            fit = fit_temperature(scored, [s.tokens for s in dev], [s.labels for s in dev])
            self.model_.set_temperature(fit["temperature"], fit)
            self.progress("calibrated", fit)
        return self

    def _extend(self, init, init_source, train, dev, vocab, rng):
        from seqtag.build import check_labels
        from seqtag.finetune import architecture_of, extend, to_scheme

        if vocab is not None:
            raise SeqtagError("a vocabulary file builds a new model's inventories; with --init "
                              "they are the model's, extended by the data",
                              hint="drop --vocab, or train from scratch without --init")
        cfg = self.config_
        mine = {k: plain(getattr(cfg, k)) for k in architecture_of(init)}
        if mine != {k: plain(v) for k, v in architecture_of(init).items()}:
            raise ValueError("the configuration's architecture is not the init model's: make "
                             "it with seqtag.finetune.init_config")
        converted = []
        for part, sents in (("training", train), ("dev", dev)):
            if sents is None:
                converted.append(None)
                continue
            sents, found = to_scheme(sents, init.scheme)
            if found is not None:
                self.progress("converted", {"part": part, "from": found, "to": init.scheme})
            converted.append(sents)
        self._converted = converted
        model, extension = extend(init, converted[0], cfg, rng)
        check_labels(model.vocab, converted[0], converted[1])
        self.init_ = {**(init_source or {}), "created": init.meta.get("created"),
                      "corpus": [c.get("name") for c in init.meta.get("corpus") or []
                                 if isinstance(c, dict)],
                      "added": extension.as_dict()}
        return model, 0

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self, model, optimizer, selection, rng, epoch, corpus,
                         dev_corpus) -> None:
        from seqtag.modelfile import State, save_model

        arrays, opt = optimizer.state()
        for prefix, weights in (("best", selection.best_params), ("average", selection.averaged)):
            for k, v in (weights or {}).items():
                arrays[f"{prefix}/{k}"] = v
        info = {"epoch": epoch, "optimizer": opt,
                "rng": rng.bit_generator.state, "best_epoch": selection.best_epoch,
                "best_score": None if selection.best_params is None else selection.best_score,
                "history": selection.history, "has_average": selection.averaged is not None,
                "hyperparameters": hyperparameters(self.config_),
                "corpus": [c.sha256 for c in corpus],
                "dev_corpus": dev_corpus.sha256 if dev_corpus else None,
                "init": (self.init_ or {}).get("sha256")}
        current = RNNTagger(model.vocab, model.params,
                            self._meta(model, selection, corpus, dev_corpus),
                            features=model.features, chars=model.chars)
        save_model(current, self.checkpoint, state=State(arrays, info))

    def _resume(self, model, optimizer, selection, rng, corpus, dev_corpus) -> int:
        """Take back a checkpoint's weights and training state; returns the next epoch."""
        from seqtag.modelfile import load_model

        path = str(self.checkpoint)
        if self.checkpoint is None or not os.path.exists(path):
            raise SeqtagError("no checkpoint to resume from", path=path,
                              hint="train without --resume to start afresh")
        saved, state = load_model(path, with_state=True)
        info = state.meta if state is not None else {}
        # Options that only decide when to stop may change: a run can be resumed to go longer.
        free = ("epochs", "patience")
        expected = {"hyperparameters": _without(hyperparameters(self.config_), free),
                    "corpus": [c.sha256 for c in corpus],
                    "dev_corpus": dev_corpus.sha256 if dev_corpus else None,
                    "init": (self.init_ or {}).get("sha256")}
        # An option added since the checkpoint was written is absent from it: the checkpoint's
        # run had the option's default (what seqtag did before the option existed).
        recorded = info.get("hyperparameters") or {}
        if recorded:
            recorded = {**hyperparameters(TrainConfig()), **recorded}
        got = {**info, "hyperparameters": _without(recorded, free)}
        for key, value in expected.items():
            if got.get(key) != value:
                what = {"hyperparameters": "options", "init": "init model"}.get(key, "data")
                raise SeqtagError(f"the checkpoint was written by a run with other {what} "
                                  f"({key} differ)", path=path,
                                  hint="resume with the same files and options, or train "
                                       "without --resume to start afresh")
        if saved.vocab.words != model.vocab.words or set(saved.params) != set(model.params):
            raise SeqtagError("the checkpoint does not match the model this run builds",
                              path=path, hint="train without --resume to start afresh")
        try:
            for k, v in model.params.items():
                v[...] = saved.params[k]          # in place: the optimizer holds views of them
            optimizer.restore(state.arrays, info["optimizer"])
            best = {k: state.arrays[f"best/{k}"] for k in model.params} \
                if info["best_score"] is not None else None
            averaged = {k: state.arrays[f"average/{k}"].copy(order="K") for k in model.params} \
                if info["has_average"] else None
            rng.bit_generator.state = info["rng"]
            selection.restore(info["history"], info["best_epoch"], info["best_score"], best,
                              averaged)
            epoch = int(info["epoch"])
        except (KeyError, TypeError, ValueError) as e:
            raise SeqtagError(f"is not a complete checkpoint ({e})", path=path,
                              hint="train without --resume to start afresh") from None
        return epoch + 1

    def _meta(self, model: RNNTagger, selection: "Selection", corpus, dev_corpus) -> dict:
        cfg = self.config_
        return {
            **({"requires": model.meta["requires"]} if "requires" in model.meta else {}),
            "seqtag_version": __version__,
            "created": created_now(),
            "level": model.meta["level"],
            "architecture": model.meta["architecture"],
            "hyperparameters": hyperparameters(cfg),
            "seed": cfg.seed,
            "pretrained_words": self.pretrained_,
            "label_scheme": model.scheme,
            "corpus": [asdict(c) for c in corpus],
            "dev_corpus": asdict(dev_corpus) if dev_corpus else None,
            "history": selection.history,
            "best_epoch": selection.best_epoch,
            "interrupted": self.interrupted_,
            **({"init": self.init_} if self.init_ is not None else {}),
            # what the bytes depend on beyond the data and options (seqtag.portable)
            **({"kernels": portable.TARGET} if portable.active() else {}),
        }


class Budget:
    """When to stop a run with a time budget: before an epoch that would end after it. The next
    epoch is expected to take as long as the slowest of the last three (dev scoring and checkpoint
    included; the slowest, not their mean: on a shared machine one epoch in several runs 10-20%
    slower than the others, and a run judged by the mean ended 0.9 s past an 88.5 s budget),
    leaving out the run's first, which holds the kernels' compilation or cache load,
    once there are others; the final save is expected to take as long as the last checkpoint's,
    and the temperature's fit on dev (seqtag.calibration: a network pass and the grid's marginals)
    as long as CALIBRATION dev scorings, and the process's exit EXIT seconds.
    """

    # fit_temperature took 1.7-1.9 times as long as tagging the same dev set (BTC, UNER EWT,
    # CoNLL-2003 dev; 0.1-0.4 s); without it in the budget a run ended 1.1-1.2 s past it.
    CALIBRATION = 2.0
    # The interpreter's teardown after the last line of a `seqtag train` process (Numba and
    # LLVM loaded): 0.27-0.33 s from atexit to the process's end on 2026-12-06's host, where
    # runs without it ended 0.2-0.3 s past budgets of 18 and 57 s. A library caller's own exit
    # is counted the same, to err on the safe side.
    EXIT = 0.5

    def __init__(self, seconds: float | None, started: float):
        self.seconds, self.started = seconds, started
        self.epochs: list[float] = []
        self.save = 0.0
        self.calibration = 0.0

    def saved(self, seconds: float) -> None:
        self.save = seconds

    def scored(self, seconds: float) -> None:
        """The last epoch's dev scoring took ``seconds``: the fit on dev will take about
        CALIBRATION times as long."""
        self.calibration = self.CALIBRATION * seconds

    def end_epoch(self, seconds: float) -> None:
        self.epochs.append(seconds)

    def next_epoch(self) -> float:
        later = self.epochs[1:] or self.epochs
        return max(later[-3:])

    def exceeded_by_next(self, now: float | None = None) -> bool:
        """Whether another epoch (and the final save) would end after the budget; ``now``: a
        time.monotonic() value."""
        if self.seconds is None or not self.epochs:
            return False
        now = time.monotonic() if now is None else now
        return now - self.started + self.next_epoch() + self.save + self.calibration \
            + self.EXIT > self.seconds

    def report(self) -> dict:
        return {"budget": self.seconds, "elapsed": time.monotonic() - self.started,
                "next_epoch": self.next_epoch(),
                "finish": self.save + self.calibration + self.EXIT}


def train_step(network: Network, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray,
               rng: np.random.Generator, exact: bool = False, distinct=None) -> float:
    """The summed loss of a packed batch; adds its gradients into the network's grads
    (in chunks, on the network's threads: Network.train_step; ``distinct`` from prepare)."""
    return network.train_step(ids, offsets, labels, rng, exact, distinct)


def prepare(network: Network, optimizer: Optimizer, batches: "Batches", ids: np.ndarray):
    """(its distinct rows, the columns the optimizer steps) of a batch: work that depends on
    the batch alone, done for the next batch while the optimizer steps."""
    return network.distinct(ids), optimizer.columns(ids[:, :batches.n_real])


class Batches:
    """The training corpus as flat arrays (sentence s is ids[offsets[s]:offsets[s+1]], one row
    of input columns per token), and each epoch's shuffled batches of it."""

    def __init__(self, model: RNNTagger, train: Sequence[Sentence], cfg: TrainConfig):
        self.cfg = cfg
        vocab, features = model.vocab, model.features
        self.ids, self.offsets = pack([model.encode(s.tokens) for s in train])
        self.labels, _ = pack([vocab.label_ids(s.labels) for s in train])
        self.lengths = np.diff(self.offsets)
        self.n_sents, self.n_tokens = len(self.lengths), len(self.ids)
        self.n_batches = (self.n_sents + cfg.batch_size - 1) // cfg.batch_size
        # Batches are drawn in shuffled order, so a batch can hold the longest sentences.
        self.max_tokens = int(np.sort(self.lengths)[-cfg.batch_size:].sum())
        window = model.architecture.window
        # columns that are inputs (the word, its features, its neighbours)
        document = model.architecture.document
        self.n_real = 1 + (len(features.names) if features else 0) + 2 * window + document
        # Per-token probability of the word being replaced by <unk>, so that <unk>'s column is
        # learned from contexts like those where unseen words will appear (features stay).
        counts = vocab.word_counts.astype(np.float64)
        words = self.ids[:, 0]
        self.drop_p = np.where(words > UNK_ID,
                               cfg.word_dropout / (cfg.word_dropout + counts[words]), 0.0)
        # What feature dropout turns each feature column into: the feature's <unk>, a
        # neighbour of the window its position's <unk>, the document code 0 (no other
        # occurrence), and for the character CNN word type 0, the empty spelling.
        base = vocab.n_words + (sum(features.sizes) if features else 0)
        self.feature_unk = np.array(
            list(vocab.n_words + np.cumsum([0] + features.sizes[:-1]) if features else []) +
            [base + j * vocab.n_words + UNK_ID for j in range(2 * window)] +
            [base + 2 * window * vocab.n_words] * document +
            ([0] if model.chars else []), np.int32)

    def epoch(self, rng: np.random.Generator):
        """(ids, offsets, labels) of each batch of one epoch: a shuffled order gathered once,
        with word and feature dropout drawn for the whole epoch, so that each batch is two
        slices."""
        cfg, lengths, n_tokens = self.cfg, self.lengths, self.n_tokens
        order = rng.permutation(self.n_sents)
        # Each batch's sentences in the order the network cuts into chunks (chunk_order).
        for first in range(0, self.n_sents, cfg.batch_size):
            batch = order[first:first + cfg.batch_size]
            batch[:] = batch[chunk_order(lengths[batch])]
        ends = np.cumsum(lengths[order])
        # Token positions of the shuffled sentences, in order.
        gather = np.repeat(self.offsets[order] - (ends - lengths[order]),
                           lengths[order]) + np.arange(n_tokens)
        ids = self.ids[gather]
        labels = self.labels[gather]
        if cfg.word_dropout > 0:
            ids[rng.random(n_tokens) < self.drop_p[gather], 0] = UNK_ID
        if cfg.feature_dropout > 0 and len(self.feature_unk):
            # so that no single cue (the word, its suffix, ...) carries a label alone
            drop = rng.random((n_tokens, len(self.feature_unk))) < cfg.feature_dropout
            ids[:, 1:] = np.where(drop, self.feature_unk, ids[:, 1:])
        offsets = np.concatenate(([0], ends))
        for b in range(self.n_batches):
            first, last = b * cfg.batch_size, min((b + 1) * cfg.batch_size, self.n_sents)
            lo, hi = offsets[first], offsets[last]
            yield ids[lo:hi], offsets[first:last + 1] - lo, labels[lo:hi]


# Dev sentences per batch when dev is tagged on several threads (as `seqtag tag` batches).
DEV_BATCH = 256


@dataclass
class Selection:
    """Epoch-end bookkeeping: the history, the weights kept (the best epoch's, or with
    ``average`` the best running average of epoch ends), and early stopping."""

    cfg: TrainConfig
    history: list[dict] = field(default_factory=list)
    best_score: float = -np.inf
    best_epoch: int = 0
    best_params: dict | None = None
    averaged: dict | None = None

    def end_epoch(self, epoch: int, train_loss: float, model: RNNTagger,
                  dev: Sequence[Sentence] | None) -> dict:
        """Record the epoch (scored on dev, or by the training loss without one); returns its
        history row."""
        cfg, params = self.cfg, model.params
        row = {"epoch": epoch, "train_loss": round(train_loss, 6)}
        # What is evaluated and kept: the weights, or their average over epoch ends
        # (exponential, factor cfg.average per epoch).
        if cfg.average > 0 and self.averaged is not None:
            for k, v in self.averaged.items():
                v *= cfg.average
                v += (1 - cfg.average) * params[k]
        elif cfg.average > 0:
            self.averaged = {k: v.copy(order="K") for k, v in params.items()}
        weights = self.averaged if cfg.average > 0 else params
        if dev:
            scores = evaluate([s.labels for s in dev], self._predict_dev(model, weights, dev))
            row["dev_accuracy"] = round(scores.accuracy, 6)
            if scores.chunked:
                row["dev_f1"] = round(scores.f1, 6)
            score = scores.f1 if scores.chunked else scores.accuracy
        else:
            score = epoch      # no dev set: the run keeps its last epoch (a fixed schedule)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_params = {k: v.copy(order="K") for k, v in weights.items()}
        self.history.append(row)
        return row

    def _predict_dev(self, model: RNNTagger, weights: dict, dev: Sequence[Sentence]) -> list:
        """The labels ``weights`` give the dev sentences, in batches on cfg.threads threads
        (as `seqtag tag` runs them: seqtag.tagging.analysed).

        The tagger is kept from epoch to epoch, since the weights change in place: its encoder
        then knows every dev word (ids, features, spelling) after the first epoch, which
        encoded them all again at each epoch before. A sentence's labels do not depend on the
        batch it is in, nor on the thread that runs it."""
        from seqtag.tagging import analysed

        tagger = self.__dict__.get("_dev_tagger")
        if tagger is None or tagger.params is not weights:
            tagger = self._dev_tagger = RNNTagger(model.vocab, weights, model.meta,
                                                  features=model.features, chars=model.chars)
        sentences = [s.tokens for s in dev]
        jobs = ((sentences[i:i + DEV_BATCH],) for i in range(0, len(sentences), DEV_BATCH))
        return [labels for _, results in analysed(tagger, jobs, False, 0, self.cfg.threads)
                for labels, _, _ in results]

    def restore(self, history, best_epoch, best_score, best_params, averaged) -> None:
        self.history[:] = [dict(row) for row in history]
        self.best_epoch = int(best_epoch)
        self.best_score = -np.inf if best_score is None else float(best_score)
        self.best_params = None if best_params is None else \
            {k: np.array(v, order="K") for k, v in best_params.items()}
        self.averaged = averaged

    def should_stop(self, epoch: int) -> bool:
        return bool(self.cfg.patience) and epoch - self.best_epoch >= self.cfg.patience


def _without(d: dict, keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def split_dev(sentences: Sequence[Sentence], fraction: float, seed: int
              ) -> tuple[list[Sentence], list[Sentence]]:
    """(train, dev): a seeded ``fraction`` of the sentences held out for choosing the epoch, in
    their corpus order. Its own generator, so the training run draws what it would draw with a
    dev file."""
    n = len(sentences)
    n_dev = int(round(n * fraction))
    if n_dev < 1 or n_dev >= n:
        return list(sentences), []
    held = np.zeros(n, bool)
    held[np.random.default_rng([seed, 1]).permutation(n)[:n_dev]] = True
    return ([s for s, h in zip(sentences, held) if not h],
            [s for s, h in zip(sentences, held) if h])
