"""Benchmark: seqtag's default model against an equivalent PyTorch tagger (speed and entity F1).

Trains, in one run, on CoNLL-2003 English NER (eng.train; dev eng.testa picks the best epoch;
test eng.testb):
  (a) seqtag's default model: seqtag.training.Trainer(TrainConfig()) with only epochs, seed and
      patience 0 changed (the same number of epochs on both sides);
  (b) a PyTorch model built from the same TrainConfig, read at run time (so the benchmark follows
      the defaults): the summed embeddings of each token's columns (its word and one column per
      word-form feature value, the inventories built by seqtag's own Vocabulary and FeatureSet)
      in embed_dim dimensions (100 when seqtag has none) [+ a character CNN if char_filters > 0]
      -> nn.RNN/GRU/LSTM (bidirectional if so configured; pack_padded_sequence) -> dropout ->
      nn.Linear -> a linear-chain CRF (forward-algorithm NLL and batched Viterbi, a few lines
      of torch) or a softmax; the same word dropout, batch size, clipping and Adam learning
      rate. PyTorch's optimizer set-up (dense Adam, or SparseAdam on a sparse embedding + Adam)
      is by default the faster of the two on a few timed batches (--torch-optim).
Prints training tokens/s (training epochs only, dev evaluation excluded), the ratio
seqtag / PyTorch (target >= 8 at the most threads; --threads 1,2 by default: each pair runs
with the same thread count), seqtag's own training speed on the most threads against 1 thread
(target >= 1.7; judged on --scaling-rounds runs of seqtag alone, 1 and N threads alternated, since
the pairs' runs are minutes apart on a host whose speed drifts), test entity F1 of the best dev
epoch, in-process tagging tokens/s and the thread counts. Progress goes to stderr, the summary to
stdout.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_default.py --data ../shared/data
    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_default.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from _common import best_time, conll2003, cpu_name

import seqtag
import seqtag.model as seqtag_model
from seqtag.config import TrainConfig
from seqtag.decoding import transition_mask
from seqtag.features import FeatureSet, parse_features
from seqtag.metrics import evaluate
from seqtag.model import pack
from seqtag.schemes import detect_scheme
from seqtag.training import Trainer
from seqtag.vocab import UNK_ID, Vocabulary

try:
    from seqtag.chars import CharVocab
except ImportError:   # before seqtag had a character CNN
    CharVocab = None
try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError:
    torch = None

D_IN = 100          # word-input width when seqtag's model has no embeddings (embed_dim 0)
TAG_BATCH = 256     # sentences per tagging call, both sides
CALIBRATE = 40      # batches timed per optimizer set-up when --torch-optim auto
# The TrainConfig fields that the PyTorch model mirrors; any other field is listed in the output.
MIRRORED = {"hidden", "epochs", "lr", "optimizer", "batch_size", "clip", "seed", "patience",
            "min_count", "max_size", "word_dropout", "bidirectional", "features",
            "feature_min_count", "dropout", "crf", "cell", "feature_dropout", "lr_decay",
            "char_filters", "char_dim", "char_width", "embed_dim", "input_dropout",
            "time_budget", "threads"}   # (the last two: how a run goes, not the model)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def d_in(cfg) -> int:
    """The embedding width: seqtag's embed_dim, or D_IN for a multi-hot seqtag model."""
    return int(getattr(cfg, "embed_dim", 0) or 0) or D_IN


def char_settings(cfg) -> tuple[int, int, int]:
    """(filters, char embedding dim, window width); filters 0 = no character CNN."""
    width = getattr(cfg, "char_width", getattr(seqtag_model, "CHAR_WIDTH", 3))
    return int(getattr(cfg, "char_filters", 0) or 0), int(getattr(cfg, "char_dim", 25)), int(width)


# -- seqtag -----------------------------------------------------------------------------------------

def run_seqtag(cfg, train, dev, test, repeats: int) -> dict:
    events = {"start": [], "epoch": []}

    def progress(ev, info):
        if ev in events:
            events[ev].append(info)
        if ev == "epoch":
            log(f"    epoch {info['epoch']}: {info['seconds']:6.2f}s "
                f"{info['tokens_per_second']:9,.0f} tok/s  dev F1 {100 * info.get('dev_f1', 0):.2f}")

    trainer = Trainer(cfg, progress=progress).fit(train, dev)
    model = trainer.model_
    tokens = [s.tokens for s in test]
    secs, pred = best_time(lambda: [p for i in range(0, len(tokens), TAG_BATCH)
                                    for p in model.predict(tokens[i:i + TAG_BATCH])], repeats)
    ep = events["epoch"]
    return {"model": model, "n_tokens": events["start"][0]["tokens"],
            "seconds": [e["seconds"] for e in ep], "tps": [e["tokens_per_second"] for e in ep],
            "best_epoch": trainer.best_epoch_, "dev_f1": ep[trainer.best_epoch_ - 1]["dev_f1"],
            "test_f1": evaluate([s.labels for s in test], pred).f1,
            "tag_tps": sum(map(len, tokens)) / secs}


# -- PyTorch: inputs --------------------------------------------------------------------------------

class Inputs:
    """The PyTorch side's view of tokens: column ids (the word, then each feature value, laid out
    as seqtag's Wax columns), a word-type id and the type's spelling in characters. The
    inventories are built by seqtag's own classes from the training tokens, as Trainer builds
    them, so that both models see the same inputs."""

    def __init__(self, cfg, train):
        self.vocab, _ = Vocabulary.build(train, min_count=cfg.min_count, max_size=cfg.max_size)
        names = parse_features(cfg.features)
        self.features = FeatureSet.build((t for s in train for t in s.tokens), names,
                                         cfg.feature_min_count) if names else None
        sizes = self.features.sizes if self.features else []
        # column of each feature's <unk> value (value 0): what feature dropout substitutes
        self.feature_unk = (self.vocab.n_words + np.cumsum([0] + sizes[:-1])).astype(np.int64) \
            if sizes else np.zeros(0, np.int64)
        self.n_cols = self.vocab.n_words + sum(sizes)
        self.n_feat = len(sizes)
        F, _, self.width = char_settings(cfg)
        self.chars = None
        if F:
            if CharVocab is None:
                sys.exit("char_filters > 0 but seqtag.chars.CharVocab is missing")
            self.chars = CharVocab.build(t for s in train for t in s.tokens)
        self.n_chars = len(self.chars) if self.chars else 0
        self._rows: dict[str, tuple] = {}       # token -> (columns, type id)
        # type id -> spelling (<bow> chars <eow>, padded to >= width); type 0 is the empty
        # spelling, what feature dropout turns a word into (as in seqtag)
        self.spellings: list[np.ndarray] = []
        if self.chars:
            self.spellings.append(np.array(self.chars.spell("", self.width), np.int64))

    def _row(self, tok: str) -> tuple:
        cols = [int(self.vocab.word_ids([tok])[0])]
        if self.features:
            cols += [int(b) + v for b, v in zip(self.feature_unk, self.features.ids(tok))]
        if not self.chars:
            return tuple(cols), 0
        self.spellings.append(np.array(self.chars.spell(tok, self.width), np.int64))
        return tuple(cols), len(self.spellings) - 1

    def encode(self, tokens) -> tuple[np.ndarray, np.ndarray]:
        """(T, 1 + features) column ids and (T,) type ids."""
        rows = [self._rows.get(t) or self._rows.setdefault(t, self._row(t)) for t in tokens]
        return (np.array([r[0] for r in rows], np.int64).reshape(len(tokens), 1 + self.n_feat),
                np.array([r[1] for r in rows], np.int64))

    def spell(self, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, W) character ids of the given types, padded; their lengths."""
        lens = np.array([len(self.spellings[u]) for u in types], np.int64)
        out = np.zeros((len(types), lens.max()), np.int64)
        for i, u in enumerate(types):
            out[i, :lens[i]] = self.spellings[u]
        return out, lens


def to_tensors(inp: Inputs, cols, types, labels, offsets, use_chars: bool) -> dict:
    """A packed batch (rows offsets[0]:offsets[-1]) as padded (B, T, ...) tensors; characters of
    the batch's distinct word types only (each type's CNN output computed once per batch)."""
    lens = np.diff(offsets)
    n = int(offsets[-1] - offsets[0])
    rows = np.repeat(np.arange(len(lens)), lens)
    pos = np.arange(n) - np.repeat(offsets[:-1] - offsets[0], lens)
    shape = (len(lens), int(lens.max()))
    X = np.zeros(shape + (cols.shape[1],), np.int64)
    X[rows, pos] = cols[offsets[0]:offsets[-1]]
    b = {"X": torch.from_numpy(X), "lens": torch.from_numpy(lens), "n": n}
    mask = np.zeros(shape, bool)
    mask[rows, pos] = True
    b["mask"] = torch.from_numpy(mask)
    if labels is not None:
        Y = np.zeros(shape, np.int64)
        Y[rows, pos] = labels[offsets[0]:offsets[-1]]
        b["Y"] = torch.from_numpy(Y)
    if use_chars:
        uniq, inv = np.unique(types[offsets[0]:offsets[-1]], return_inverse=True)
        TI = np.zeros(shape, np.int64)
        TI[rows, pos] = inv
        C, clens = inp.spell(uniq)
        b.update(TI=torch.from_numpy(TI), C=torch.from_numpy(C), clens=torch.from_numpy(clens))
    return b


# -- PyTorch: model ---------------------------------------------------------------------------------

class TorchTagger(nn.Module if torch else object):
    """Σ Embedding(columns) [; char CNN] -> (bi)RNN/GRU/LSTM -> dropout -> Linear [-> CRF]."""

    def __init__(self, cfg, inp: Inputs, n_labels: int, sparse: bool):
        super().__init__()
        H, (F, dc, width) = cfg.hidden, char_settings(cfg)
        self.width, self.use_chars, self.crf = width, F > 0, cfg.crf
        self.emb = nn.Embedding(inp.n_cols, d_in(cfg), sparse=sparse)
        if F:
            self.char_emb = nn.Embedding(inp.n_chars, dc)
            self.conv = nn.Conv1d(dc, F, width)
        rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cfg.cell]
        self.rnn = rnn(d_in(cfg) + F, H, batch_first=True, bidirectional=cfg.bidirectional)
        if cfg.cell == "lstm":   # forget gate (gates [i; f; g; o]) starts at 1, as seqtag's
            with torch.no_grad():
                for name, p in self.rnn.named_parameters():
                    if name.startswith("bias"):
                        p[H:2 * H] = 1.0 if name.startswith("bias_ih") else 0.0
        self.drop = nn.Dropout(cfg.dropout)
        self.in_drop = nn.Dropout(getattr(cfg, "input_dropout", 0.0))
        self.out = nn.Linear(H * (2 if cfg.bidirectional else 1), n_labels)
        if cfg.crf:   # scores: trans[i, j] for label j right after label i
            self.trans = nn.Parameter(torch.zeros(n_labels, n_labels))
            self.start = nn.Parameter(torch.zeros(n_labels))
            self.end = nn.Parameter(torch.zeros(n_labels))

    def forward(self, b: dict) -> torch.Tensor:
        """(B, T, L) emission scores (garbage at padding)."""
        e = self.emb(b["X"]).sum(2)
        if self.use_chars:
            h = self.conv(self.char_emb(b["C"]).transpose(1, 2))      # (U, F, W - width + 1)
            valid = torch.arange(h.shape[2]) < (b["clens"] - self.width + 1)[:, None]
            c = h.masked_fill(~valid[:, None, :], float("-inf")).amax(2).tanh()
            e = torch.cat([e, c[b["TI"]]], 2)
        e = self.in_drop(e)
        h, _ = self.rnn(pack_padded_sequence(e, b["lens"], batch_first=True, enforce_sorted=False))
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=e.shape[1])
        return self.out(self.drop(h))


def crf_nll(E, Y, mask, lens, trans, start, end):
    """Σ over sentences of log Z - score(gold path): the forward algorithm over padded (B, T, L)."""
    m = mask.to(E.dtype)
    gold = start[Y[:, 0]] + (E.gather(2, Y[..., None])[..., 0] * m).sum(1) \
        + (trans[Y[:, :-1], Y[:, 1:]] * m[:, 1:]).sum(1) + end[Y.gather(1, (lens - 1)[:, None])[:, 0]]
    alpha = start + E[:, 0]
    for t in range(1, E.shape[1]):
        nxt = torch.logsumexp(alpha[:, :, None] + trans + E[:, t, None, :], 1)
        alpha = torch.where(mask[:, t, None], nxt, alpha)
    return (torch.logsumexp(alpha + end, 1) - gold).sum()


def viterbi(E, mask, lens, trans, start, end) -> torch.Tensor:
    """(B, T) best label paths (garbage at padding)."""
    score, back = start + E[:, 0], []
    for t in range(1, E.shape[1]):
        best, arg = (score[:, :, None] + trans).max(1)
        score = torch.where(mask[:, t, None], best + E[:, t], score)
        back.append(arg)
    cur = (score + end).argmax(1)
    path = torch.empty(E.shape[:2], dtype=torch.long)
    last = lens - 1
    for t in range(E.shape[1] - 1, -1, -1):
        path[:, t] = cur
        if t:
            cur = torch.where(t <= last, back[t - 1].gather(1, cur[:, None])[:, 0], cur)
    return path


class TorchRun:
    def __init__(self, cfg, inp: Inputs, labels: list[str], scheme: str, sparse: bool, seed: int):
        torch.manual_seed(seed)
        self.cfg, self.inp, self.labels, self.sparse = cfg, inp, labels, sparse
        self.model = TorchTagger(cfg, inp, len(labels), sparse)
        emb = self.model.emb.weight
        self.dense = [p for p in self.model.parameters() if not (sparse and p is emb)]
        opt = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        self.opts = [opt(self.dense, lr=cfg.lr)]
        if sparse:
            self.opts.append(torch.optim.SparseAdam([emb], lr=cfg.lr))
        self.masks = [torch.from_numpy(a) for a in transition_mask(labels, scheme)]  # start, trans, end

    def set_lr(self, lr: float) -> None:
        for o in self.opts:
            for g in o.param_groups:
                g["lr"] = lr

    def step(self, cols, types, labels, offsets) -> None:
        b = to_tensors(self.inp, cols, types, labels, offsets, self.model.use_chars)
        E = self.model(b)
        if self.cfg.crf:
            m = self.model
            loss = crf_nll(E, b["Y"], b["mask"], b["lens"], m.trans, m.start, m.end)
        else:
            loss = nn.functional.cross_entropy(E[b["mask"]], b["Y"][b["mask"]], reduction="sum")
        loss = loss / b["n"]   # as seqtag: the mean over the batch's tokens
        for o in self.opts:
            o.zero_grad()
        loss.backward()
        clip = self.cfg.clip
        if clip > 0 and not self.sparse:
            nn.utils.clip_grad_norm_(self.dense, clip)
        elif clip > 0:   # clip_grad_norm_ refuses sparse gradients: the same global norm by hand
            emb = self.model.emb.weight
            emb.grad = emb.grad.coalesce()
            sq = sum(p.grad.pow(2).sum() for p in self.dense if p.grad is not None) \
                + emb.grad._values().pow(2).sum()
            if (norm := float(sq) ** 0.5) > clip:
                for p in self.dense + [emb]:
                    if p.grad is not None:
                        p.grad.mul_(clip / (norm + 1e-6))
        for o in self.opts:
            o.step()

    def predict(self, sentences, constrained: bool = True) -> list[list[str]]:
        """Viterbi paths (CRF scores, or log-softmax with zero transitions); constrained adds
        seqtag's tag-scheme mask (no I-X after O etc.), as seqtag's own decoding does."""
        m, out = self.model, []
        L = len(self.labels)
        with torch.no_grad():
            for i in range(0, len(sentences), TAG_BATCH):
                enc = [self.inp.encode(s) for s in sentences[i:i + TAG_BATCH]]
                cols, offs = pack([c for c, _ in enc])
                types, _ = pack([t for _, t in enc])
                b = to_tensors(self.inp, cols.astype(np.int64).reshape(len(cols), -1), types,
                               None, offs, m.use_chars)
                E = m(b)
                if m.crf:
                    trans, start, end = m.trans, m.start, m.end
                else:
                    E = E.log_softmax(-1)
                    trans, start, end = torch.zeros(L, L), torch.zeros(L), torch.zeros(L)
                if constrained:
                    start, trans, end = (start + self.masks[0], trans + self.masks[1],
                                         end + self.masks[2])
                best = viterbi(E, b["mask"], b["lens"], trans, start, end).numpy()
                out += [[self.labels[k] for k in best[j, :n]] for j, n in enumerate(b["lens"].tolist())]
        return out


def epoch_batches(rng, cfg, inp: Inputs, data):
    """Trainer.fit's epoch: permutation, gather, word (and feature) dropout, batches of
    batch_size sentences in the shuffled order (no sorting by length)."""
    cols_all, types_all, labels_all, offsets_all, drop_p = data
    lengths, n_tokens = np.diff(offsets_all), len(cols_all)
    order = rng.permutation(len(lengths))
    ends = np.cumsum(lengths[order])
    gather = np.repeat(offsets_all[order] - (ends - lengths[order]), lengths[order]) \
        + np.arange(n_tokens)
    cols, types, labels = cols_all[gather], types_all[gather], labels_all[gather]
    if cfg.word_dropout > 0:
        cols[rng.random(n_tokens) < drop_p[gather], 0] = UNK_ID
    if cfg.feature_dropout > 0 and (inp.n_feat or inp.chars):
        # each feature value becomes its feature's <unk>, the spelling the empty one (type 0)
        drop = rng.random((n_tokens, inp.n_feat + bool(inp.chars))) < cfg.feature_dropout
        cols[:, 1:] = np.where(drop[:, :inp.n_feat], inp.feature_unk, cols[:, 1:])
        if inp.chars:
            types[drop[:, -1]] = 0
    offsets = np.concatenate(([0], ends))
    for first in range(0, len(lengths), cfg.batch_size):
        yield cols, types, labels, offsets[first:min(first + cfg.batch_size, len(lengths)) + 1]


def run_torch(cfg, args, train, dev, test, repeats: int) -> dict:
    torch.set_num_threads(args.torch_threads)
    inp = Inputs(cfg, train)
    vocab = inp.vocab
    scheme = detect_scheme([s.labels for s in train])
    enc = [inp.encode(s.tokens) for s in train]
    cols_all, offsets_all = pack([c for c, _ in enc])
    cols_all = cols_all.astype(np.int64).reshape(len(cols_all), -1)
    types_all = pack([t for _, t in enc])[0].astype(np.int64)
    labels_all = pack([vocab.label_ids(s.labels) for s in train])[0].astype(np.int64)
    counts = vocab.word_counts.astype(np.float64)
    words = cols_all[:, 0]
    drop_p = np.where(words > UNK_ID, cfg.word_dropout / (cfg.word_dropout + counts[words]), 0.0)
    data = (cols_all, types_all, labels_all, offsets_all, drop_p)
    n_tokens = len(cols_all)

    sparse, calibration = args.torch_optim == "sparse", f"--torch-optim {args.torch_optim}"
    if args.torch_optim == "auto":   # time both on throwaway models; keep the faster
        timing = {}
        for name in ("dense", "sparse"):
            trial = TorchRun(cfg, inp, vocab.labels, scheme, name == "sparse", 0)
            batches = list(epoch_batches(np.random.default_rng(0), cfg, inp, data))[:CALIBRATE]
            trial.step(*batches[0])   # warm-up
            timing[name] = best_time(lambda: [trial.step(*b) for b in batches[1:]], 1)[0]
        sparse = timing["sparse"] < timing["dense"]
        calibration = (f"calibration ({CALIBRATE - 1} batches): "
                       + ", ".join(f"{m} Adam {t:.2f}s" for m, t in timing.items())
                       + f" -> {'sparse' if sparse else 'dense'}")
        log("    " + calibration)
    run = TorchRun(cfg, inp, vocab.labels, scheme, sparse, args.seed)
    rng = np.random.default_rng(args.seed)
    seconds, best = [], (-1.0, 0, None)
    for epoch in range(1, cfg.epochs + 1):
        run.set_lr(cfg.lr / (1 + cfg.lr_decay * (epoch - 1)))
        run.model.train()
        t0 = time.perf_counter()
        for batch in epoch_batches(rng, cfg, inp, data):
            run.step(*batch)
        seconds.append(time.perf_counter() - t0)
        run.model.eval()
        f1 = evaluate([s.labels for s in dev], run.predict([s.tokens for s in dev])).f1
        log(f"    epoch {epoch}: {seconds[-1]:6.2f}s {n_tokens / seconds[-1]:9,.0f} tok/s  "
            f"dev F1 {100 * f1:.2f}")
        if f1 > best[0]:   # the same rule as Trainer: the first epoch with the best dev F1
            best = (f1, epoch, {k: v.clone() for k, v in run.model.state_dict().items()})
    run.model.load_state_dict(best[2])
    tokens = [s.tokens for s in test]
    secs, pred = best_time(lambda: run.predict(tokens), repeats)
    gold = [s.labels for s in test]
    n_params = sum(p.numel() for p in run.model.parameters())
    return {"inputs": inp, "n_tokens": n_tokens, "seconds": seconds,
            "tps": [n_tokens / s for s in seconds], "best_epoch": best[1], "dev_f1": best[0],
            "test_f1": evaluate(gold, pred).f1,
            "test_f1_plain": evaluate(gold, run.predict(tokens, constrained=False)).f1,
            "tag_tps": sum(map(len, tokens)) / secs, "sparse": sparse, "n_params": n_params,
            "calibration": calibration,
            "describe": describe(cfg, inp, len(vocab.labels), sparse)}


def describe(cfg, inp: Inputs, n_labels: int, sparse: bool) -> str:
    F, dc, width = char_settings(cfg)
    cell = {"rnn": "RNN(tanh)", "gru": "GRU", "lstm": "LSTM"}[cfg.cell]
    parts = [f"Embedding({inp.n_cols:,}, {d_in(cfg)}{', sparse' if sparse else ''}) summed over "
             f"1 word + {inp.n_feat} feature column(s)"]
    if F:
        parts.append(f"char CNN (Embedding({inp.n_chars}, {dc}), Conv1d({dc}, {F}, {width}), "
                     f"max over positions, tanh; word begin/end markers)")
    if getattr(cfg, "input_dropout", 0):
        parts.append(f"Dropout({cfg.input_dropout})")
    parts.append(f"{cell}({d_in(cfg)}{f' + {F}' if F else ''}, {cfg.hidden}"
                 f"{', bidirectional' if cfg.bidirectional else ''}; packed)")
    parts.append(f"Dropout({cfg.dropout})")
    parts.append(f"Linear({cfg.hidden * (2 if cfg.bidirectional else 1)}, {n_labels})")
    parts.append("CRF (torch forward algorithm / Viterbi)" if cfg.crf else "softmax")
    return " -> ".join(parts) + (f"; {'SparseAdam on the embedding + ' if sparse else ''}"
                                 f"{'Adam' if cfg.optimizer == 'adam' else 'SGD'} lr {cfg.lr}, "
                                 f"batch {cfg.batch_size}, clip {cfg.clip}")


# -- report -----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding conll2003/")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs, both sides")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated thread counts: for each, seqtag (its threads option, "
                         "when it has one) and torch.set_num_threads run with that many")
    ap.add_argument("--torch-optim", choices=("auto", "dense", "sparse"), default="auto",
                    help="dense Adam on everything, or SparseAdam on a sparse embedding + Adam on "
                         "the rest; auto times both on a few batches and keeps the faster")
    ap.add_argument("--repeats", type=int, default=3, help="tagging timings: best of this many")
    ap.add_argument("--quick", action="store_true", help="2 epochs on a subset: a smoke test")
    ap.add_argument("--scaling-rounds", type=int, default=3,
                    help="rounds of seqtag alone on 1 and on the most threads, alternated, for "
                         "its own speed-up (0: none)")
    args = ap.parse_args()
    data = conll2003(args, torch is not None, (1500, 300, 300))
    if data is None:
        return
    train, dev, test = data
    import numba

    defaults = dataclasses.asdict(TrainConfig())
    cfg = dataclasses.replace(TrainConfig(), epochs=args.epochs, patience=0, seed=args.seed)
    unmirrored = {k: v for k, v in defaults.items() if k not in MIRRORED | {"embeddings"}}
    if cfg.embeddings:
        unmirrored["embeddings"] = cfg.embeddings

    cpu = cpu_name()
    omp = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    n_train = sum(len(s.tokens) for s in train)
    head = [f"CoNLL-2003 English NER (train eng.train, dev eng.testa, test eng.testb), "
            f"{args.epochs} epochs, seed {args.seed}{', QUICK SUBSET' if args.quick else ''}; "
            f"train {len(train):,} sentences / {n_train:,} tokens, dev {len(dev):,}, "
            f"test {len(test):,} sentences",
            f"{cpu}, {os.cpu_count()} CPUs; numba {numba.__version__}, torch {torch.__version__}, "
            f"numpy {np.__version__}, seqtag {seqtag.__version__}; OMP_WAIT_POLICY={omp}",
            *textwrap.wrap("seqtag default TrainConfig(): " + ", ".join(
                f"{k}={v!r}" for k, v in defaults.items()) + f"; used with epochs={args.epochs}, "
                f"patience=0, seed={args.seed}", 104, subsequent_indent="  ")]
    log(f"seqtag default-model benchmark, {datetime.now().isoformat(timespec='seconds')}\n  "
        + "\n  ".join(head))

    summary = []
    for n in [int(t) for t in args.threads.split(",") if t.strip()]:
        args.torch_threads = n
        summary.append(one_pair(args, cfg, train, dev, test, head, unmirrored, n))
    print("\n".join(f"{n} thread(s): seqtag / PyTorch train {r:.2f}x, tag {t:.2f}x"
                    f"{'' if own else ' (seqtag ran 1 thread: it has no threads option)'}"
                    for n, r, t, own, _ in summary))
    at = {n: r for n, r, *_ in summary}
    top = max(at)
    print(f"target train speed ratio >= {TARGET_RATIO:.1f} at {top} thread(s): "
          f"{'PASS' if at[top] >= TARGET_RATIO else 'NOT MET'} ({at[top]:.2f})", flush=True)
    # seqtag against itself: the same epochs on N threads and on 1, in this run
    own_tps = {n: tps for n, _, _, own, tps in summary if own or n == 1}
    if 1 in own_tps and top in own_tps and top > 1:
        scaling = own_tps[top] / own_tps[1]
        print(f"seqtag training on {top} threads / 1 thread, from the pairs above: "
              f"{own_tps[top]:,.0f} / {own_tps[1]:,.0f} tokens/s = {scaling:.2f}x "
              f"(runs minutes apart, a PyTorch run between them)", flush=True)
        if args.scaling_rounds > 0:
            own_scaling(cfg, train, dev, top, args.scaling_rounds)


def own_scaling(cfg, train, dev, top: int, rounds: int) -> None:
    """seqtag's training on ``top`` threads against 1, alternated (1, top, 1, top, ...) in this
    process: the host's speed drifts by tens of percent within minutes on these machines, and
    the pairs' runs are minutes apart, so the verdict is taken from the alternated runs (the
    median of the rounds' ratios, each round's two runs back to back)."""
    cfg1, own = seqtag_threads(cfg, 1)
    if not own:
        return
    cfgN, _ = seqtag_threads(cfg, top)
    log(f"\nseqtag alone, 1 and {top} threads alternated, {rounds} round(s):")
    n_tokens = sum(len(s.tokens) for s in train)
    tps = {1: [], top: []}
    for r in range(rounds):
        for n, c in ((1, cfg1), (top, cfgN)):
            seconds = []

            def progress(ev, info):
                if ev == "epoch":
                    seconds.append(info["seconds"])

            Trainer(c, progress=progress).fit(train, dev)
            tps[n].append(training_tps(n_tokens, seconds))
            log(f"  round {r + 1}, {n} thread(s): {tps[n][-1]:,.0f} tok/s "
                f"(epochs {', '.join(f'{x:.2f}' for x in seconds)} s)")
    ratios = [b / a for a, b in zip(tps[1], tps[top])]
    scaling = float(np.median(ratios))
    print(f"seqtag training on {top} threads / 1 thread, alternated in {rounds} round(s): "
          + ", ".join(f"{b:,.0f} / {a:,.0f} = {x:.2f}x" for a, b, x in zip(tps[1], tps[top], ratios))
          + f"; median {scaling:.2f}x; target >= {SCALING_TARGET:.1f}x: "
          f"{'PASS' if scaling >= SCALING_TARGET else 'NOT MET'}", flush=True)


def training_tps(n_tokens: int, seconds: list[float]) -> float:
    """Training tokens/s over the epochs after the first (which holds seqtag's kernel
    compilation or cache load), or over the first when it is the only one."""
    later = seconds[1:] or seconds
    return n_tokens * len(later) / sum(later)


TARGET_RATIO = 8.0   # seqtag / PyTorch training speed at the same thread count
SCALING_TARGET = 1.7  # seqtag's training speed on 2 threads / on 1


def seqtag_threads(cfg, n: int):
    """cfg with n threads where seqtag has a threads option; (cfg, whether it had one)."""
    if "threads" in {f.name for f in dataclasses.fields(cfg)}:
        return dataclasses.replace(cfg, threads=n), True
    return cfg, False


def one_pair(args, cfg, train, dev, test, head, unmirrored, n_threads):
    """seqtag and PyTorch trained and timed with n_threads each; prints the block, returns
    (threads, train ratio, tag ratio, whether seqtag had a threads option, seqtag's training
    tokens/s)."""
    import numba

    cfg, own = seqtag_threads(cfg, n_threads)
    torch.set_num_threads(n_threads)
    pkg = Path(seqtag.__file__).parent
    threaded = any("prange" in p.read_text(encoding="utf-8") for p in pkg.glob("kernels/*.py"))
    head = head + [f"threads: seqtag {n_threads if own else 1} ("
                   + ("TrainConfig.threads" if own else "no threads option: single-threaded")
                   + (f"; Numba {numba.get_num_threads()}, kernels use prange" if threaded else "")
                   + f"); torch set_num_threads({n_threads}) -> {torch.get_num_threads()} "
                   f"intra-op, {torch.get_num_interop_threads()} inter-op"]
    log(f"\n== {n_threads} thread(s) ==\nseqtag (Numba) training, default TrainConfig:")
    ours = run_seqtag(cfg, train, dev, test, args.repeats)
    log(f"\nPyTorch training, {args.torch_threads} thread(s):")
    theirs = run_torch(cfg, args, train, dev, test, args.repeats)
    inp = theirs["inputs"]
    same_inputs = ours["model"].vocab.words == inp.vocab.words and (
        (ours["model"].features is None and inp.features is None)
        or (ours["model"].features is not None and inp.features is not None
            and ours["model"].features.values == inp.features.values)) \
        and (getattr(ours["model"], "chars", None) is None) == (inp.chars is None) \
        and (inp.chars is None or ours["model"].chars.alphabet == inp.chars.alphabet)
    if ours["n_tokens"] != theirs["n_tokens"]:
        log(f"WARNING: seqtag counts {ours['n_tokens']} training tokens, the torch side "
            f"{theirs['n_tokens']}")

    for r in (ours, theirs):
        later = r["seconds"][1:] or r["seconds"]
        r["train_tps"] = training_tps(r["n_tokens"], r["seconds"])
        r["all_tps"] = r["n_tokens"] * len(r["seconds"]) / sum(r["seconds"])
        r["peak_tps"] = r["n_tokens"] / min(later)
    ratio = ours["train_tps"] / theirs["train_tps"]
    ep = {1: "epoch 1", 2: "epoch 2"}.get(args.epochs, f"epochs 2-{args.epochs}")

    def row(name, r):
        return (f"{name:<36}{r['train_tps']:>12,.0f}{r['peak_tps']:>11,.0f}{r['all_tps']:>11,.0f}"
                f"{r['tag_tps']:>11,.0f}{100 * r['dev_f1']:>8.2f}{100 * r['test_f1']:>8.2f}"
                f"{r['best_epoch']:>5}/{len(r['seconds'])}")

    optim = "SparseAdam+Adam" if theirs["sparse"] else "dense Adam"
    out = head + textwrap.wrap(
        f"PyTorch model: {theirs['describe']}; {theirs['n_params']:,} parameters", 104,
        subsequent_indent="  ") + [
        f"  embedding width {d_in(cfg)}: "
        + ("seqtag's embed_dim (the same input layer)" if getattr(cfg, "embed_dim", 0) else
           "what a PyTorch user would pick (seqtag sums columns of its G-row Wax straight into "
           "the gates instead)"),
        f"  optimizer set-up: {theirs['calibration']}",
        "  same vocabulary, feature and character inventories as seqtag's: "
        + ("yes" if same_inputs else "NO (check Inputs against Trainer)"),
    ]
    if unmirrored:
        out += textwrap.wrap("  TrainConfig fields NOT mirrored by the PyTorch model: "
                             + ", ".join(f"{k}={v!r}" for k, v in unmirrored.items()), 104,
                             subsequent_indent="    ")
    out += ["",
            f"{'':<36}{'train tok/s':>12}{'(fastest)':>11}{'(all ep)':>11}{'tag tok/s':>11}"
            f"{'dev F1':>8}{'test F1':>8}{'best':>7}",
            row("seqtag default (Numba)", ours),
            row(f"PyTorch, {args.torch_threads} thr, {optim}", theirs),
            f"train tok/s: training tokens / time of the training passes over {ep} (epoch 1, "
            f"which holds",
            "  seqtag's kernel compilation or cache load, is left out on both sides when there are "
            "more);",
            "  dev evaluation not timed. (fastest): the fastest of those epochs; (all ep): over "
            "every epoch.",
            "  per-epoch: seqtag " + " ".join(f"{t:,.0f}" for t in ours["tps"])
            + "; PyTorch " + " ".join(f"{t:,.0f}" for t in theirs["tps"]),
            f"tag tok/s: eng.testb in-process, batches of {TAG_BATCH} sentences, best of "
            f"{args.repeats} (encoding, network and Viterbi).",
            "F1: entity F1 (seqtag.metrics) of the best dev-F1 epoch (best = that epoch / epochs "
            "run); both decode by",
            "  Viterbi under the tag scheme's transition mask; PyTorch's plain Viterbi: test F1 "
            f"{100 * theirs['test_f1_plain']:.2f}.",
            "",
            f"seqtag / PyTorch: train {ratio:.2f}x (fastest epochs "
            f"{ours['peak_tps'] / theirs['peak_tps']:.2f}x, all epochs "
            f"{ours['all_tps'] / theirs['all_tps']:.2f}x), "
            f"tag {ours['tag_tps'] / theirs['tag_tps']:.2f}x, "
            f"test F1 {100 * (ours['test_f1'] - theirs['test_f1']):+.2f} points",
            f"target train speed ratio >= {TARGET_RATIO:.1f}:  "
            f"{'PASS' if ratio >= TARGET_RATIO else 'NOT MET'} ({ratio:.2f})"]
    print("=" * 104 + "\n" + "\n".join(out) + "\n" + "=" * 104, flush=True)
    return n_threads, ratio, ours["tag_tps"] / theirs["tag_tps"], own, ours["train_tps"]


if __name__ == "__main__":
    main()
