"""Benchmark: seqtag's Numba Elman RNN against a PyTorch tagger of identical shape and math.

Trains both on CoNLL-2003 English NER (eng.train; dev eng.testa picks the best epoch; test eng.testb)
in one run, from the same initial weights, on the same shuffled batches with the same word dropout;
compares training and tagging speed and entity F1; then times whole `seqtag tag` and `seqtag train`
processes (start-up, Numba cache cold and warm, peak memory).

    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_rnn.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from _common import best_time, conll2003, cpu_name

from seqtag.kernels import elman
from seqtag.corpus import read_corpus
from seqtag.metrics import evaluate
from seqtag.build import init_params
from seqtag.model import RNNTagger, pack
from seqtag.config import TrainConfig
from seqtag.training import Trainer
from seqtag.vocab import UNK_ID, Vocabulary

try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError:
    torch = None

H, BATCH, LR, CLIP, TAG_BATCH = 128, 32, 1e-3, 5.0, 256
SENTENCE = "Sam Li and Tom date on Tuesday."


# -- seqtag -----------------------------------------------------------------------------------------

def run_seqtag(cfg: TrainConfig, train, dev, test, repeats: int) -> dict:
    epochs = []
    trainer = Trainer(cfg, progress=lambda ev, info: epochs.append(info) if ev == "epoch" else None)
    model = trainer.fit(train, dev).model_
    tokens = [s.tokens for s in test]
    secs, pred = best_time(lambda: [p for i in range(0, len(tokens), TAG_BATCH)
                                    for p in model.predict(tokens[i:i + TAG_BATCH])], repeats)
    # Like for like with PyTorch's argmax: the same model read token by token, without the
    # scheme-constrained decoding that model.predict adds.
    argmax = [[model.labels[k] for k in y.argmax(1)] for y in model.predict_proba(tokens)]
    stats = elman.rnn_forward.stats
    return {"model": model, "seconds": [e["seconds"] for e in epochs],
            "dev_f1s": [e["dev_f1"] for e in epochs], "best_epoch": trainer.best_epoch_,
            "dev_f1": epochs[trainer.best_epoch_ - 1]["dev_f1"],
            "test_f1": evaluate([s.labels for s in test], argmax).f1,
            "test_f1_constrained": evaluate([s.labels for s in test], pred).f1,
            "tag_tps": sum(map(len, tokens)) / secs,
            "cached": sum(stats.cache_hits.values()) > 0 and not sum(stats.cache_misses.values())}


# -- PyTorch ----------------------------------------------------------------------------------------

class TorchTagger(nn.Module if torch else object):
    """Embedding = Wax's columns; RNN with W_ih = I and b_ih = 0 frozen, so that
    a<t> = tanh(Waa·a<t-1> + Wax[:, x<t>] + ba) with b_hh = ba; Linear = Wya, by."""

    def __init__(self, params: dict, sparse: bool):
        super().__init__()
        (hidden, n_words), n_labels = params["Wax"].shape, params["Wya"].shape[0]
        self.emb = nn.Embedding(n_words, hidden, sparse=sparse)
        self.rnn = nn.RNN(hidden, hidden, nonlinearity="tanh", batch_first=True)
        self.out = nn.Linear(hidden, n_labels)
        with torch.no_grad():
            for dst, src in ((self.emb.weight, params["Wax"].T), (self.rnn.weight_hh_l0, params["Waa"]),
                             (self.rnn.bias_hh_l0, params["ba"]), (self.out.weight, params["Wya"]),
                             (self.out.bias, params["by"])):
                dst.copy_(torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32)))
            self.rnn.weight_ih_l0.copy_(torch.eye(hidden))
            self.rnn.bias_ih_l0.zero_()
        self.rnn.weight_ih_l0.requires_grad_(False)
        self.rnn.bias_ih_l0.requires_grad_(False)

    def forward(self, x, lengths, packed: bool):
        """(tokens, L) logits in packed order and the PackedSequence, or (B, T, L) logits and None."""
        e = self.emb(x)
        if packed:
            h, _ = self.rnn(pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False))
            return self.out(h.data), h
        return self.out(self.rnn(e)[0]), None


def padded(flat: np.ndarray, offsets: np.ndarray, fill: int):
    """Sentences flat[offsets[s]:offsets[s+1]] as a (B, T) int64 tensor padded with fill, lengths."""
    lens = np.diff(offsets)
    out = np.full((len(lens), lens.max()), fill, np.int64)
    starts = np.repeat(offsets[:-1] - offsets[0], lens)
    out[np.repeat(np.arange(len(lens)), lens), np.arange(len(starts)) - starts] = \
        flat[offsets[0]:offsets[-1]]
    return torch.from_numpy(out), torch.from_numpy(lens)


class TorchRun:
    """One PyTorch set-up: dense Adam on everything, or SparseAdam (sparse embedding) + Adam."""

    def __init__(self, params: dict, sparse: bool):
        self.sparse, self.model = sparse, TorchTagger(params, sparse)
        emb = self.model.emb.weight
        self.dense = [p for p in self.model.parameters() if p.requires_grad and not (sparse and p is emb)]
        self.opts = [torch.optim.Adam(self.dense, lr=LR)]
        if sparse:
            self.opts.append(torch.optim.SparseAdam([emb], lr=LR))

    def step(self, ids, labels, offsets, packed: bool) -> None:
        x, lens = padded(ids, offsets, 0)
        y, _ = padded(labels, offsets, -100)
        logits, _ = self.model(x, lens, packed)
        if packed:   # the labels packed the same way line up with the logits' rows
            y = pack_padded_sequence(y, lens, batch_first=True, enforce_sorted=False).data
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                           ignore_index=-100)   # mean over the batch's tokens
        for o in self.opts:
            o.zero_grad()
        loss.backward()
        if not self.sparse:
            nn.utils.clip_grad_norm_(self.dense, CLIP)
        else:   # clip_grad_norm_ refuses sparse gradients: the same global norm by hand
            emb = self.model.emb.weight
            emb.grad = emb.grad.coalesce()
            sq = sum(p.grad.pow(2).sum() for p in self.dense) + emb.grad._values().pow(2).sum()
            if (norm := float(sq) ** 0.5) > CLIP:
                for p in self.dense + [emb]:
                    p.grad.mul_(CLIP / (norm + 1e-6))
        for o in self.opts:
            o.step()

    def predict(self, vocab, sentences, packed: bool) -> list[list[str]]:
        out = []
        with torch.no_grad():
            for i in range(0, len(sentences), TAG_BATCH):
                ids, offs = pack([vocab.word_ids(s) for s in sentences[i:i + TAG_BATCH]])
                x, lens = padded(ids, offs, 0)
                logits, h = self.model(x, lens, packed)
                best = logits.argmax(-1)
                if packed:
                    best = pad_packed_sequence(h._replace(data=best), batch_first=True)[0]
                best = best.numpy()
                out += [[vocab.labels[k] for k in best[j, :n]] for j, n in enumerate(lens.tolist())]
        return out


def epoch_batches(rng, ids_all, labels_all, offsets_all, drop_p):
    """Exactly Trainer.fit's epoch: permutation, gather, word dropout, batches of BATCH sentences."""
    lengths, n_tokens = np.diff(offsets_all), len(ids_all)
    order = rng.permutation(len(lengths))
    ends = np.cumsum(lengths[order])
    gather = np.repeat(offsets_all[order] - (ends - lengths[order]), lengths[order]) + np.arange(n_tokens)
    ep_ids, ep_labels = ids_all[gather], labels_all[gather]
    ep_ids[rng.random(n_tokens) < drop_p[gather]] = UNK_ID
    ep_offsets = np.concatenate(([0], ends))
    for first in range(0, len(lengths), BATCH):
        yield ep_ids, ep_labels, ep_offsets[first:min(first + BATCH, len(lengths)) + 1]


def run_torch(sparse, threads, batching, cfg, vocab, data, dev, test, repeats) -> dict:
    torch.set_num_threads(threads)
    n_tokens = len(data[0])
    rng = np.random.default_rng(cfg.seed)   # Trainer's stream: the initial weights, then each epoch
    run = TorchRun(init_params(vocab.n_words, vocab.n_labels, H, rng), sparse)
    if batching == "auto":   # time both on a throwaway model and 60 batches; keep the faster
        trial = TorchRun(init_params(vocab.n_words, vocab.n_labels, H, np.random.default_rng(0)), sparse)
        batches = list(epoch_batches(np.random.default_rng(0), *data))[:60]
        timing = {m: best_time(lambda: [trial.step(*b, m == "packed") for b in batches], 2)[0]
                  for m in ("packed", "padded")}
        batching = min(timing, key=timing.get)
        print("    calibration (60 batches, best of 2): "
              + ", ".join(f"{m} {t:.2f}s" for m, t in timing.items()) + f" -> {batching}")
    packed = batching == "packed"
    seconds, best = [], (-1.0, 0, None)
    for epoch in range(1, cfg.epochs + 1):
        run.model.train()
        t0 = time.perf_counter()
        for batch in epoch_batches(rng, *data):
            run.step(*batch, packed)
        seconds.append(time.perf_counter() - t0)
        run.model.eval()
        f1 = evaluate([s.labels for s in dev], run.predict(vocab, [s.tokens for s in dev], packed)).f1
        print(f"    epoch {epoch}: {seconds[-1]:6.2f}s {n_tokens / seconds[-1]:9,.0f} tok/s  "
              f"dev F1 {100 * f1:.2f}")
        if f1 > best[0]:   # the same rule as Trainer: the first epoch with the best dev F1
            best = (f1, epoch, {k: v.clone() for k, v in run.model.state_dict().items()})
    run.model.load_state_dict(best[2])
    tokens = [s.tokens for s in test]
    tag = {m: best_time(lambda: run.predict(vocab, tokens, m == "packed"), repeats)
           for m in ("packed", "padded")}
    mode = min(tag, key=lambda m: tag[m][0])
    print("    tagging eng.testb: " + ", ".join(f"{m} {t:.2f}s" for m, (t, _) in tag.items())
          + f" -> {mode}")
    return {"name": f"PyTorch {'SparseAdam+Adam' if sparse else 'dense Adam'}, {threads} thr, {batching}",
            "threads": threads, "seconds": seconds, "best_epoch": best[1], "dev_f1": best[0],
            "test_f1": evaluate([s.labels for s in test], tag[mode][1]).f1,
            "tag_tps": sum(map(len, tokens)) / tag[mode][0]}


def same_math(params, vocab, sentences) -> float:
    """max |ŷ seqtag - ŷ torch| at the shared initial weights."""
    ids, offs = pack([vocab.word_ids(s.tokens) for s in sentences])
    ours = np.concatenate(RNNTagger(vocab, params).predict_proba([s.tokens for s in sentences]))
    with torch.no_grad():
        x, lens = padded(ids, offs, 0)
        theirs = torch.softmax(TorchTagger(params, False)(x, lens, False)[0], -1).numpy()
    rows = np.repeat(np.arange(len(lens)), lens)
    return float(np.abs(ours - theirs[rows, np.arange(len(ids)) - offs[rows]]).max())


# -- whole processes --------------------------------------------------------------------------------

# A child forked from this big process would inherit its peak RSS (Linux keeps the high-water mark
# across fork and exec), so a small Python wrapper runs the command and reports that child's.
_WRAP = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "p = subprocess.run(sys.argv[1:]); t = time.perf_counter() - t; "
         "r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
         "sys.stderr.write(f'\\n@@ {t} {r} {p.returncode}\\n')")


def timed(cmd, env, stdin=None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    p = subprocess.run([sys.executable, "-c", _WRAP, *cmd], env=env, stdin=stdin, text=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail = p.stderr.rstrip().rsplit("\n", 1)[-1].split()
    if p.returncode or len(tail) != 4 or tail[0] != "@@" or tail[3] != "0":
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{p.stderr}")
    return float(tail[1]), int(tail[2]) / 1024


def run_cli(model, folder: Path, repeats: int, tmp: Path) -> dict:
    exe = Path(sys.executable).parent / "seqtag"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "seqtag"]
    path = tmp / "model.npz"
    model.save(path)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-cache")}   # fresh and empty
    r = {"cold": timed(cli + ["tag", SENTENCE, "-m", str(path)], env),
         "warm": timed(cli + ["tag", SENTENCE, "-m", str(path)], env)}
    runs = []
    for _ in range(repeats):
        with open(folder / "eng.testb", "rb") as f:
            runs.append(timed(cli + ["tag", "--input-format", "conll", "-m", str(path)], env, f))
    r["file"] = min(runs)
    n = sum(len(s.tokens) for s in read_corpus(folder / "eng.testb")[0])
    r["note"] = (f"  {n / r['file'][0]:,.0f} tok/s; {n / max(r['file'][0] - r['warm'][0], 1e-9):,.0f} "
                 f"beyond start-up (warm, best of {repeats})")
    # Training uses the package's own Numba cache, which the in-process run has filled.
    r["train"] = timed(cli + ["train", str(folder / "eng.train"), "--dev", str(folder / "eng.testa"),
                              "-o", str(tmp / "cli.npz"), "--epochs", "1", "--patience", "0",
                              "--textbook", "--word-dropout", "0.25"],
                       dict(os.environ))
    return r


# -- report -----------------------------------------------------------------------------------------

def summary(args, head, ours, runs, ref, cli) -> list[str]:
    """The fixed-width block for the README."""
    def row(name, r):
        return (f"{name:<44}{r['train_tps']:>11,.0f}{r['peak_tps']:>11,.0f}{r['tag_tps']:>11,.0f}"
                f"{100 * r['dev_f1']:>8.2f}{100 * r['test_f1']:>8.2f}{r['best_epoch']:>8}")

    def ratios(r):
        return (f"train {ours['train_tps'] / r['train_tps']:.2f}x "
                f"(fastest epochs {ours['peak_tps'] / r['peak_tps']:.2f}x), "
                f"tag {ours['tag_tps'] / r['tag_tps']:.2f}x, "
                f"test F1 {100 * (ours['test_f1'] - r['test_f1']):+.2f} points")

    ep = f"epochs 2-{args.epochs}" if args.epochs > 1 else "epoch 1"
    train_ratio = ours["train_tps"] / ref["train_tps"]
    f1_diff = abs(100 * (ours["test_f1"] - ref["test_f1"]))
    out = head + ["", f"{'':<44}{'train tok/s':>11}{'(fastest)':>11}{'tag tok/s':>11}{'dev F1':>8}"
                      f"{'test F1':>8}{'best ep':>8}", row("seqtag (Numba, 1 thread)", ours)]
    out += [row(r["name"] + (" *" if r is ref else ""), r) for r in runs]
    out += [f"train tok/s: total tokens / total time over {ep} (epoch 1 excluded on both sides);",
            f"(fastest): the fastest of those epochs. tag tok/s: eng.testb in batches of {TAG_BATCH}, "
            f"best of {args.repeats}.",
            f"Model: the best dev-F1 epoch. * = reference: PyTorch's fastest set-up at "
            f"{args.torch_threads[0]} thread(s).",
            "test F1: argmax per token on both sides (like for like); seqtag's own decoding, "
            f"which never emits an invalid IOB1 sequence: {100 * ours['test_f1_constrained']:.2f}.",
            "",
            f"seqtag / PyTorch*: {ratios(ref)}"]
    out += [f"  vs {r['name']}: {ratios(r)}" for r in runs if r is not ref]
    out += [f"target train speed ratio >= 3.0:     {'PASS' if train_ratio >= 3.0 else 'FAIL'} "
            f"({train_ratio:.2f})",
            f"target |test F1 difference| <= 1.0:  {'PASS' if f1_diff <= 1.0 else 'FAIL'} ({f1_diff:.2f})",
            "", "seqtag CLI, whole processes (wall time including start-up, peak RSS; "
                "cold = empty NUMBA_CACHE_DIR):"]
    rows = [("tag --input-format conll < eng.testb", cli["file"], cli["note"]),
            (f'tag "{SENTENCE}" (1st, cold)', cli["cold"], ""),
            ("the same, 2nd (warm Numba cache)", cli["warm"], ""),
            ("train --textbook eng.train, 1 epoch", cli["train"], "  (warm Numba cache)")]
    return out + [f"  {name:<50}{t:6.2f}s {mib:5.0f} MiB{note}" for name, (t, mib), note in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding conll2003/")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--torch-threads", type=int, nargs="+", default=[1],
                    help="torch.set_num_threads values to run, e.g. 1 2 (the first is the reference)")
    ap.add_argument("--torch-optim", choices=("dense", "sparse", "both"), default="both",
                    help="dense Adam, sparse embedding + SparseAdam, or both (the faster is the reference)")
    ap.add_argument("--torch-batching", choices=("auto", "packed", "padded"), default="auto",
                    help="pack_padded_sequence or padding + masking; auto times both, keeps the faster")
    ap.add_argument("--repeats", type=int, default=3, help="tagging timings: best of this many")
    ap.add_argument("--quick", action="store_true", help="2 epochs on a subset: a smoke test")
    args = ap.parse_args()
    data = conll2003(args, torch is not None, (2000, 500, 500))
    if data is None:
        return
    train, dev, test = data
    folder = Path(args.data) / "conll2003"
    import numba

    cpu = cpu_name()
    omp = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    cfg = TrainConfig.textbook(hidden=H, epochs=args.epochs, lr=LR, optimizer="adam",
                               batch_size=BATCH, clip=CLIP, seed=args.seed, patience=0,
                               word_dropout=0.25)
    head = [f"CoNLL-2003 English NER; Elman RNN H={H}, Adam lr {LR}, batch {BATCH}, clip {CLIP}, "
            f"{args.epochs} epochs, seed {args.seed}{', QUICK SUBSET' if args.quick else ''}",
            f"{cpu}, {os.cpu_count()} CPUs; seqtag 1 thread; OMP_WAIT_POLICY={omp}; numba "
            f"{numba.__version__}, torch {torch.__version__}, numpy {np.__version__}",
            "$ OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_rnn.py " + " ".join(sys.argv[1:])]
    print(f"seqtag RNN benchmark, {datetime.now().isoformat(timespec='seconds')}\n  " + "\n  ".join(head))
    print(f"  seqtag threads: 1 (single-threaded kernels); torch threads: "
          f"{' and '.join(map(str, args.torch_threads))}; word dropout α={cfg.word_dropout}")
    print(f"  data: train {len(train):,} sentences / {sum(len(s.tokens) for s in train):,} tokens, "
          f"dev {len(dev):,}, test {len(test):,} sentences")

    vocab, _ = Vocabulary.build(train)   # as Trainer builds it (min_count 1, no size cap)
    ids_all, offsets_all = pack([vocab.word_ids(s.tokens) for s in train])
    labels_all, _ = pack([vocab.label_ids(s.labels) for s in train])
    counts = vocab.word_counts.astype(np.float64)
    drop_p = np.where(ids_all > UNK_ID, cfg.word_dropout / (cfg.word_dropout + counts[ids_all]), 0.0)
    data, n_tokens = (ids_all, labels_all, offsets_all, drop_p), len(ids_all)
    init = init_params(vocab.n_words, vocab.n_labels, H, np.random.default_rng(args.seed))
    print(f"  same math: max |ŷ seqtag - ŷ torch| at the initial weights = "
          f"{same_math(init, vocab, train[:64]):.2e}")

    print("\nseqtag (Numba) training:")
    ours = run_seqtag(cfg, train, dev, test, args.repeats)
    assert ours["model"].vocab.words == vocab.words, "the vocabulary differs from Trainer's"
    for i, (s, f1) in enumerate(zip(ours["seconds"], ours["dev_f1s"]), 1):
        print(f"    epoch {i}: {s:6.2f}s {n_tokens / s:9,.0f} tok/s  dev F1 {100 * f1:.2f}")
    print(f"    epoch 1 includes getting the kernels ("
          f"{'loaded from Numba cache' if ours['cached'] else 'compiled by Numba'} in this run)")

    runs = []
    for threads in args.torch_threads:
        for sparse in {"dense": [False], "sparse": [True], "both": [False, True]}[args.torch_optim]:
            print(f"\nPyTorch training: {'sparse embedding + SparseAdam' if sparse else 'dense Adam'}, "
                  f"{threads} thread(s)")
            runs.append(run_torch(sparse, threads, args.torch_batching, cfg, vocab, data, dev, test,
                                  args.repeats))
    for r in [ours] + runs:
        later = r["seconds"][1:] or r["seconds"]
        r["train_tps"], r["peak_tps"] = n_tokens * len(later) / sum(later), n_tokens / min(later)
    ref = max((r for r in runs if r["threads"] == args.torch_threads[0]), key=lambda r: r["train_tps"])

    print("\nseqtag CLI (whole processes) ...")
    with tempfile.TemporaryDirectory(prefix="bench-rnn-") as tmp:
        cli = run_cli(ours["model"], folder, args.repeats, Path(tmp))
    print("\n" + "=" * 104 + "\n" + "\n".join(summary(args, head, ours, runs, ref, cli)) + "\n" + "=" * 104)


if __name__ == "__main__":
    main()
