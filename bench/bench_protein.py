"""Protein bar: Q3 on the Qian & Sejnowski (1988) secondary-structure split.

Reads ../shared/data/protein_qian_sejnowski as distributed (`LETTER LABEL` lines; `<>` and `<end>`
lines are sequence boundaries, never residues), holds out the last 11 training proteins as dev
(the epoch, and every choice of the character-level configuration, was made on dev only),
trains seeds 1, 2, 3 with the default configuration (level auto: every token is one letter, so
the character-level one) and prints test Q3 per seed and their mean, against the bar of 64.3%
(Qian & Sejnowski's network over a 13-residue window). With --columns it also converts the
files to plain column files, one residue per line, and trains from those with `seqtag train`
(a subprocess): the same model if the level is detected from the columns too.

Research data: never ship a model trained on it (see the data's README).

    python bench/bench_protein.py --data ../shared/data [--columns] [--seeds 1,2,3]
        [--set hidden=64 --set window=4 ...]  (options for experiments, on dev)
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
    args = ap.parse_args()
    folder = Path(args.data) / "protein_qian_sejnowski"
    if not (folder / "protein-secondary-structure.train").exists():
        print(f"{folder} not found: nothing to benchmark (give --data DIR)")
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import seqtag

    train_all = read_proteins(folder / "protein-secondary-structure.train")
    test = read_proteins(folder / "protein-secondary-structure.test")
    train, dev = train_all[:-N_DEV], train_all[-N_DEV:]
    print(f"protein secondary structure (Qian & Sejnowski 1988): train {len(train)} proteins "
          f"({sum(len(t) for t, _ in train):,} residues), dev {len(dev)} (the last of train, "
          f"{sum(len(t) for t, _ in dev):,}), test {len(test)} ({sum(len(t) for t, _ in test):,})")
    extra = options(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        tagger = seqtag.Tagger(seed=seed, threads=args.threads, **extra).fit(train, dev)
        seconds = time.perf_counter() - t0
        hyper = tagger.model_.meta["hyperparameters"]
        dev_q3 = q3([l for _, l in dev], tagger.predict([t for t, _ in dev]))
        test_q3 = None if args.dev_only else \
            q3([l for _, l in test], tagger.predict([t for t, _ in test]))
        rows.append((seed, dev_q3, test_q3))
        print(f"seed {seed}: level {hyper['level']}, best epoch {tagger.best_epoch_}, dev Q3 "
              f"{dev_q3:.2f}%" + ("" if test_q3 is None else f", test Q3 {test_q3:.2f}%") +
              f"  ({seconds:.0f} s)", flush=True)
    if len(seeds) > 1 or extra:
        print("configuration: " + ", ".join(f"{k}={hyper[k]}" for k in
                                            ("level", "hidden", "embed_dim", "window",
                                             "features", "char_filters", "dropout",
                                             "input_dropout", "feature_dropout", "cell")))
    mean_dev = sum(r[1] for r in rows) / len(rows)
    print(f"mean dev Q3 {mean_dev:.2f}%")
    if args.dev_only:
        return
    mean = sum(r[2] for r in rows) / len(rows)
    verdict = "meets" if mean >= BAR else "misses"
    print(f"mean test Q3 over seeds {args.seeds}: {mean:.2f}% ({verdict} the bar of {BAR}%; "
          f"always coil: 54.6%)")
    if args.columns:
        columns(args, train, dev, test, seeds, extra)


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
