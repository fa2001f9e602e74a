"""Benchmark: active learning on CoNLL-2003, `seqtag rank`'s selection against random selection.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_active.py --data ../shared/data
    .venv/bin/python bench/bench_active.py --quick            # a smoke run, minutes

For each seed: start from 1,000 random training sentences (the same for both arms), train the
default model (dev = eng.testa), then for 4 rounds add whole sentences of about 15,000 tokens
from the rest of eng.train, either the most uncertain under the current model (seqtag.ranking,
--by, default mnlp) or random ones (the same number of tokens: random sentences are drawn until
the ranked round's token count is reached), retrain from scratch on the larger set, and score
test F1 on eng.testb. Prints the curve per seed and its mean, and whether ranked beats random at
every round and by >= 1.5 points after round 2 (issue 10's bar).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from seqtag.config import TrainConfig
from seqtag.corpus import read_corpus
from seqtag.metrics import evaluate
from seqtag.ranking import rank
from seqtag.training import Trainer


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def f1_of(model, test) -> float:
    pred = [p for i in range(0, len(test), 256)
            for p in model.predict([s.tokens for s in test[i:i + 256]])]
    return 100 * evaluate([s.labels for s in test], pred).f1


def train(cfg, labelled, dev):
    return Trainer(dataclasses.replace(cfg)).fit(labelled, dev).model_


def ranked_pick(model, pool, remaining: list[int], tokens: int, by: str) -> list[int]:
    picked = rank(model, ((pool[i].tokens, i) for i in remaining), tokens=tokens, strategy=by)
    return [r.item for r in picked]


def random_pick(rng, pool, remaining: list[int], tokens: int) -> list[int]:
    out, used = [], 0
    for i in rng.permutation(remaining):
        if used >= tokens:
            break
        out.append(int(i))
        used += len(pool[i].tokens)
    return out


def run_seed(seed, train_all, dev, test, cfg, args) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_all))
    start = [int(i) for i in order[:args.start]]
    rest = [int(i) for i in order[args.start:]]
    cfg = dataclasses.replace(cfg, seed=seed)
    t0 = time.perf_counter()
    model0 = train(cfg, [train_all[i] for i in start], dev)
    base = f1_of(model0, test)
    log(f"seed {seed} round 0: {sum(len(train_all[i].tokens) for i in start):,} tokens, "
        f"test F1 {base:.2f} ({time.perf_counter() - t0:.0f}s)")
    curves = {"ranked": [base], "random": [base]}
    tokens_seen = {"ranked": [sum(len(train_all[i].tokens) for i in start)]}
    tokens_seen["random"] = list(tokens_seen["ranked"])
    for arm in ("ranked", "random"):
        labelled, remaining, model = list(start), list(rest), model0
        arm_rng = np.random.default_rng([seed, 1])
        for rnd in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            if arm == "ranked":
                new = ranked_pick(model, train_all, remaining, args.tokens, args.by)
            else:
                new = random_pick(arm_rng, train_all, remaining, args.tokens)
            chosen = set(new)
            remaining = [i for i in remaining if i not in chosen]
            labelled += new
            model = train(cfg, [train_all[i] for i in labelled], dev)
            f1 = f1_of(model, test)
            curves[arm].append(f1)
            tokens_seen[arm].append(sum(len(train_all[i].tokens) for i in labelled))
            log(f"seed {seed} {arm} round {rnd}: +{len(new):,} sentences, "
                f"{tokens_seen[arm][-1]:,} tokens, test F1 {f1:.2f} "
                f"({time.perf_counter() - t0:.0f}s)")
    return {"curves": curves, "tokens": tokens_seen}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--start", type=int, default=1000, help="random sentences to start from")
    ap.add_argument("--tokens", type=int, default=15000, help="tokens added per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--by", default="mnlp", help="ranking strategy (seqtag rank --by)")
    ap.add_argument("--epochs", type=int, help="training epochs (default: the default model's)")
    ap.add_argument("--threads", type=int, help="training threads (default: the default "
                    "model's, all cores; the curve is the same for any count)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 200 + 2 rounds of 2,000 tokens, 3 epochs, one seed, "
                         "test cut to 500 sentences")
    args = ap.parse_args(argv)
    folder = Path(args.data) / "conll2003"
    if not (folder / "eng.train").exists():
        print(f"no CoNLL-2003 under {args.data}: nothing to benchmark (give --data)")
        return 0
    train_all, _ = read_corpus(folder / "eng.train", labels="required")
    dev, _ = read_corpus(folder / "eng.testa", labels="required")
    test, _ = read_corpus(folder / "eng.testb", labels="required")
    cfg = TrainConfig()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        args.start, args.tokens, args.rounds, seeds = 200, 2000, 2, seeds[:1]
        args.epochs = args.epochs or 3
        dev, test = dev[:500], test[:500]
    if args.epochs:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.threads:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    print(f"active learning on CoNLL-2003: start {args.start} random sentences, "
          f"+{args.tokens:,} tokens x {args.rounds} rounds, ranked by {args.by} vs random; "
          f"seeds {seeds}; epochs {cfg.epochs}" + (" (--quick)" if args.quick else ""))
    results = [run_seed(s, train_all, dev, test, cfg, args) for s in seeds]
    head = f"{'round':>5} " + " ".join(f"{'ranked s' + str(s):>10} {'random s' + str(s):>10}"
                                       for s in seeds) + f" {'ranked':>8} {'random':>8} {'gain':>6}"
    print(head)
    print("-" * len(head))
    gains = []
    for rnd in range(args.rounds + 1):
        cells = " ".join(f"{r['curves']['ranked'][rnd]:10.2f} {r['curves']['random'][rnd]:10.2f}"
                         for r in results)
        ranked = np.mean([r["curves"]["ranked"][rnd] for r in results])
        random = np.mean([r["curves"]["random"][rnd] for r in results])
        gains.append(ranked - random)
        print(f"{rnd:>5} {cells} {ranked:8.2f} {random:8.2f} {ranked - random:+6.2f}")
    tok = [(np.mean([r["tokens"]["ranked"][k] for r in results]),
            np.mean([r["tokens"]["random"][k] for r in results])) for k in range(args.rounds + 1)]
    print("mean labelled tokens per round (ranked / random): " +
          ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in tok))
    every = all(g > 0 for g in gains[1:])
    after2 = all(g >= 1.5 for g in gains[2:]) if args.rounds >= 2 else False
    print(f"ranked above random at every round: {'yes' if every else 'no'}; "
          f">= 1.5 points from round 2 on: {'yes' if after2 else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
