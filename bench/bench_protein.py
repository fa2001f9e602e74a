"""Protein bar: Q3 on the Qian & Sejnowski (1988) secondary-structure split.

Reads ../shared/data/protein_qian_sejnowski as distributed (`LETTER LABEL` lines; `<>` and `<end>`
lines are sequence boundaries, never residues), holds out the last 11 training proteins as dev
(each run's epochs are chosen on it), trains seeds 1, 2, 3 with the default configuration (level auto: every token is one letter, so
the character-level one) and prints test Q3 per seed and their mean, against the bar of 64.3%
(Qian & Sejnowski's network over a 13-residue window). With --columns it also converts the
files to plain column files, one residue per line, and trains from those with `seqtag train`
(a subprocess): the same model if the level is detected from the columns too.

The configuration was chosen without the test file: with --cv K (K-fold cross-validation over
the training proteins, homologs kept in one fold, see homology_folds) and, in a first round, on
the last 11 training proteins (--dev-only; --folds: disjoint blocks of 11 per seed).

Research data: never ship a model trained on it (see the data's README).

    python bench/bench_protein.py --data ../shared/data [--columns] [--seeds 1,2,3]
        [--set hidden=64 --set window=4 ...]  (options for experiments, on dev)
    python bench/bench_protein.py --data ../shared/data --cv 5 [--set cell=gru ...]  (choosing)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR = 64.3          # Qian & Sejnowski's test Q3 (%)
N_DEV = 11          # the last training proteins, held out


def read_proteins(path: Path) -> list[tuple[list[str], list[str]]]:
    """The file's proteins as (residues, labels); `<>` and `<end>` both end a protein."""
    proteins, tokens, labels = [], [], []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if line in ("<>", "<end>", "end"):
                if tokens:
                    proteins.append((tokens, labels))
                tokens, labels = [], []
                continue
            if not line:
                continue
            residue, label = line.split()
            tokens.append(residue)
            labels.append(label)
    if tokens:
        proteins.append((tokens, labels))
    return proteins


def write_columns(proteins, path: Path) -> None:
    with open(path, "w", encoding="ascii") as f:
        for tokens, labels in proteins:
            f.writelines(f"{t}\t{lab}\n" for t, lab in zip(tokens, labels))
            f.write("\n")


def q3(gold, predicted) -> float:
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    return 100.0 * sum(g == p for g, p in pairs) / len(pairs)


def options(pairs: list[str]) -> dict:
    from dataclasses import fields

    from seqtag.config import TrainConfig, kind_of

    kinds = {f.name: kind_of(f) for f in fields(TrainConfig)}
    out = {}
    for pair in pairs:
        k, v = pair.split("=", 1)
        kind = kinds[k]
        out[k] = (v.lower() in ("1", "true", "yes")) if kind is bool else \
            v if kind not in (int, float) else kind(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--columns", action="store_true",
                    help="also train from plain column files with `seqtag train`")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="a training option other than the default (experiments, on dev)")
    ap.add_argument("--dev-only", action="store_true", help="print dev Q3 only (choosing)")
    ap.add_argument("--folds", action="store_true",
                    help="choosing: the k-th seed holds out the k-th block of 11 training "
                         "proteins from the end (disjoint dev sets, 3x the dev residues)")
    ap.add_argument("--cv", type=int, default=0, metavar="K",
                    help="choosing: Q3 pooled over K folds of the training proteins, homologs "
                         "in one fold (no test)")
    ap.add_argument("--cv-dev", choices=("last", "fold"), default="last",
                    help="with --cv, what chooses the epoch: the last 11 proteins of the "
                         "fold's training part, as in the bench (default), or the held-out "
                         "fold itself (the first round's protocol; optimistic)")
    args = ap.parse_args()
    args.dev_only = args.dev_only or args.folds     # folds choose; the bar is the fixed split's
    folder = Path(args.data) / "protein_qian_sejnowski"
    if not (folder / "protein-secondary-structure.train").exists():
        print(f"{folder} not found: nothing to benchmark (give --data DIR)")
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import seqtag

    train_all = read_proteins(folder / "protein-secondary-structure.train")
    if args.cv:
        cross_validate(train_all, args.cv, options(args.set), args.threads, args.cv_dev)
        return
    test = read_proteins(folder / "protein-secondary-structure.test")
    train, dev = train_all[:-N_DEV], train_all[-N_DEV:]
    print(f"protein secondary structure (Qian & Sejnowski 1988): train {len(train)} proteins "
          f"({sum(len(t) for t, _ in train):,} residues), dev {len(dev)} (the last of train, "
          f"{sum(len(t) for t, _ in dev):,}), test {len(test)} ({sum(len(t) for t, _ in test):,})")
    extra = options(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    pooled = [0, 0]
    for k, seed in enumerate(seeds):
        if args.folds:
            # seed k's dev: the k-th block of N_DEV proteins from the end of train (test unseen)
            end = len(train_all) - k * N_DEV
            train, dev = train_all[:end - N_DEV] + train_all[end:], train_all[end - N_DEV:end]
        t0 = time.perf_counter()
        tagger = seqtag.Tagger(seed=seed, threads=args.threads, **extra).fit(train, dev)
        seconds = time.perf_counter() - t0
        hyper = tagger.model_.meta["hyperparameters"]
        dev_q3 = chosen_dev_q3(tagger.model_.meta)
        if dev_q3 is None:
            dev_q3 = q3([l for _, l in dev], tagger.predict([t for t, _ in dev]))
        test_q3 = None if args.dev_only else \
            q3([l for _, l in test], tagger.predict([t for t, _ in test]))
        rows.append((seed, dev_q3, test_q3))
        n = sum(len(t) for t, _ in dev)
        pooled[0] += dev_q3 * n / 100
        pooled[1] += n
        print(f"seed {seed}: level {hyper['level']}, best epoch {tagger.best_epoch_}, dev Q3 "
              + ("before the refit " if hyper.get("refit") else "") +
              f"{dev_q3:.2f}%" + ("" if test_q3 is None else f", test Q3 {test_q3:.2f}%") +
              f"  ({seconds:.0f} s)", flush=True)
    if len(seeds) > 1 or extra:
        print("configuration: " + ", ".join(f"{k}={hyper[k]}" for k in
                                            ("level", "hidden", "embed_dim", "window",
                                             "features", "char_filters", "dropout",
                                             "input_dropout", "feature_dropout", "cell",
                                             "ensemble", "embeddings", "refit")))
    mean_dev = sum(r[1] for r in rows) / len(rows)
    print(f"mean dev Q3 {mean_dev:.2f}%" + (f" (folds; pooled over {pooled[1]:,} residues: "
                                             f"{100 * pooled[0] / pooled[1]:.2f}%)"
                                             if args.folds else ""))
    if args.dev_only:
        return
    mean = sum(r[2] for r in rows) / len(rows)
    verdict = "meets" if mean >= BAR else "misses"
    print(f"mean test Q3 over seeds {args.seeds}: {mean:.2f}% ({verdict} the bar of {BAR}%; "
          f"always coil: 54.6%)")
    if args.columns:
        columns(args, train, dev, test, seeds, extra)


def chosen_dev_q3(meta: dict) -> float | None:
    """With --refit the saved model has trained on dev: the dev Q3 that means something is the
    one of the epoch dev chose (each member's, averaged), from the history; None without."""
    if not meta["hyperparameters"].get("refit"):
        return None
    runs = meta.get("ensemble") or [{"best_epoch": meta["best_epoch"],
                                     "history": meta["history"]}]
    scores = [100 * next(h["dev_accuracy"] for h in r["history"] if h["epoch"] == r["best_epoch"])
              for r in runs]
    return sum(scores) / len(scores)


def homology_folds(proteins, k: int, share: float = 0.2) -> list[int]:
    """Each protein's fold (0..k-1): contiguous blocks of the file, except that proteins sharing
    at least ``share`` of their 5-mers (of the shorter one's) are one group (union-find), in the
    block of the group's root (the root of the last group a protein joined). The test proteins
    share at most 3% with any training protein, while a few training proteins are near copies of
    others (5 pairs share all, two families of 4 chains): a fold that kept one copy in its
    training part would score them as the test never is."""
    grams = [{"".join(t[i:i + 5]) for i in range(len(t) - 4)} for t, _ in proteins]
    root = list(range(len(proteins)))

    def find(i):
        while root[i] != i:
            i = root[i]
        return i

    for i in range(len(proteins)):
        for j in range(i):
            if len(grams[i] & grams[j]) >= share * min(len(grams[i]), len(grams[j])):
                root[find(i)] = find(j)
    return [find(i) * k // len(proteins) for i in range(len(proteins))]


def cross_validate(proteins, k: int, extra: dict, threads: int, dev_of: str = "last") -> None:
    """Q3 pooled over the K held-out folds of the training proteins (homologs kept in one
    fold: homology_folds): 18,105 residues scored instead of 2,646, to choose a configuration
    on; fold f trains with seed f. The test file is not read.

    ``dev_of``: "last" (the default) runs each fold as the bench runs the fixed split: the last
    N_DEV proteins of the fold's training part choose the epoch (and, with --refit, are trained
    on afterwards), the held-out fold is only scored. "fold" lets the held-out fold choose the
    epoch as well: the first round's protocol, optimistic (and wrong for --refit, which would
    then train on the fold it is scored on)."""
    import seqtag

    fold_of = homology_folds(proteins, k)
    right = total = 0
    for fold in range(k):
        dev = [p for p, f in zip(proteins, fold_of) if f == fold]
        train = [p for p, f in zip(proteins, fold_of) if f != fold]
        chooser = dev if dev_of == "fold" else train[-N_DEV:]
        train = train if dev_of == "fold" else train[:-N_DEV]
        t0 = time.perf_counter()
        tagger = seqtag.Tagger(seed=fold + 1, threads=threads, **extra).fit(train, chooser)
        predicted = tagger.predict([t for t, _ in dev])
        n = sum(len(t) for t, _ in dev)
        fold_q3 = q3([l for _, l in dev], predicted)
        right += fold_q3 * n / 100
        total += n
        print(f"fold {fold + 1}/{k}: {len(train)} proteins -> {len(dev)} ({n:,} residues), "
              f"best epoch {tagger.best_epoch_}, Q3 {fold_q3:.2f}%  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{k}-fold cross-validated Q3 {100 * right / total:.2f}%"
          + (f"  ({', '.join(f'{a}={b}' for a, b in extra.items())})" if extra else ""))


def columns(args, train, dev, test, seeds, extra) -> None:
    """The same runs from plain column files, through the CLI."""
    exe = Path(sys.executable).with_name("seqtag")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, proteins in (("train", train), ("dev", dev), ("test", test)):
            write_columns(proteins, tmp / f"protein.{name}")
        for seed in seeds:
            model = tmp / f"seed{seed}.npz"
            subprocess.run([str(exe), "train", str(tmp / "protein.train"), "--dev",
                            str(tmp / "protein.dev"), "--seed", str(seed), "--threads",
                            str(args.threads), "-o", str(model), *flags],
                           check=True, stderr=subprocess.DEVNULL)
            out = subprocess.run([str(exe), "tag", "-m", str(model), "--input-format", "conll",
                                  "--format", "conll", str(tmp / "protein.test")],
                                 check=True, capture_output=True, text=True).stdout
            predicted = [[line.split("\t")[-1] for line in block.splitlines()]
                         for block in out.strip("\n").split("\n\n")]
            results.append(q3([l for _, l in test], predicted))
            print(f"columns, seed {seed}: test Q3 {results[-1]:.2f}%", flush=True)
    mean = sum(results) / len(results)
    print(f"columns: mean test Q3 {mean:.2f}% ({'meets' if mean >= BAR else 'misses'} the bar "
          f"of {BAR}%)")


if __name__ == "__main__":
    main()
