"""Benchmark: faithfulness of `seqtag explain`'s attributions on CoNLL-2003 test.

    .venv/bin/python bench/bench_explain.py --data ../shared/data [--model conll.npz]

For every entity the model finds in eng.testb whose sentence has at least 6 tokens outside it:
take away (seqtag.explain.Explainer.unk_row: unknown word, unknown features, no spelling) the 3
outside tokens with the highest attribution, and, separately, 3 random other outside tokens
(seeded); the attribution is faithful for that entity when its probability drops more with the
top 3. Bar (issue 10): faithful in >= 80% of cases. Without --model, a default model is trained
here on eng.train with eng.testa as dev (seed 1; minutes). --test and --model score another set
(the bundled model on BTC test, say) the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from seqtag.corpus import read_corpus
from seqtag.explain import STEPS, Explainer
from seqtag.model import RNNTagger

BAR = 0.80


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def faithfulness(model: RNNTagger, sentences, seed: int = 1, k: int = 3,
                 limit: int | None = None, steps: int = STEPS) -> dict:
    ex = Explainer(model, steps=steps)
    rng = np.random.default_rng(seed)
    wins = cases = skipped = 0
    drops_top, drops_rand = [], []
    t0 = time.perf_counter()
    for n, s in enumerate(sentences):
        if limit is not None and cases >= limit:
            break
        for e in ex.explain(s.tokens):
            i, j = e.target["start"], e.target["end"]
            outside = [t for t in range(len(s.tokens)) if not i <= t < j]
            if len(outside) < 2 * k:
                skipped += 1
                continue
            top = sorted(outside, key=lambda t: (-e.total[t], t))[:k]
            rest = [t for t in outside if t not in top]
            rand = [int(t) for t in rng.choice(rest, size=k, replace=False)]
            p_top = ex.probability_without(e, top)
            p_rand = ex.probability_without(e, rand)
            drops_top.append(e.prob - p_top)
            drops_rand.append(e.prob - p_rand)
            wins += p_top < p_rand
            cases += 1
        if n % 500 == 499:
            log(f"  {n + 1:,} sentences, {cases:,} entities, faithful {wins / max(cases, 1):.1%} "
                f"({time.perf_counter() - t0:.0f}s)")
    return {"cases": cases, "faithful": wins, "rate": wins / max(cases, 1), "skipped": skipped,
            "mean_drop_top": float(np.mean(drops_top)) if drops_top else 0.0,
            "mean_drop_random": float(np.mean(drops_rand)) if drops_rand else 0.0,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", help="the model (default: a CoNLL-2003 model trained here)")
    ap.add_argument("--test", help="the test file (default: CoNLL-2003 eng.testb)")
    ap.add_argument("--limit", type=int, help="stop after this many entities")
    ap.add_argument("--steps", default=f"{STEPS},1",
                    help="integrated-gradients steps to compare (1: one gradient)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    test_path = Path(args.test) if args.test else data / "conll2003" / "eng.testb"
    if not test_path.exists():
        print(f"no {test_path}: nothing to benchmark (give --data or --test)")
        return 0
    if args.model:
        model = RNNTagger.load(args.model)
    else:
        from seqtag.config import TrainConfig
        from seqtag.training import Trainer

        train, _ = read_corpus(data / "conll2003" / "eng.train", labels="required")
        dev, _ = read_corpus(data / "conll2003" / "eng.testa", labels="required")
        log("training the default model on CoNLL-2003 (seed 1)")
        model = Trainer(TrainConfig(seed=1)).fit(train, dev).model_
    test, _ = read_corpus(test_path, labels="auto")
    for steps in [int(x) for x in args.steps.split(",")]:
        report(test_path, args, faithfulness(model, test, limit=args.limit, steps=steps), steps)
    return 0


def report(test_path, args, r, steps) -> None:
    method = f"integrated gradients, {steps} steps" if steps > 1 else \
        "gradient x (input - baseline)"
    print(f"{method}: faithfulness on {test_path.name} ({args.model or 'default model trained here'}): "
          f"over {r['cases']:,} entities with >= 6 tokens outside them ({r['skipped']:,} "
          f"skipped), taking away the 3 outside tokens with the highest attribution lowered the "
          f"entity's probability more than 3 random ones in {r['faithful']:,} = "
          f"{100 * r['rate']:.1f}% (bar {100 * BAR:.0f}%: {'MET' if r['rate'] >= BAR else 'not met'}"
          f"); mean drop {r['mean_drop_top']:.3f} (top 3) vs {r['mean_drop_random']:.3f} "
          f"(random 3); {r['seconds']:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
