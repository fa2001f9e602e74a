"""Benchmark: fine-tuning the bundled model against training from scratch on little data.

The bundled model (BTC + UNER EWT dev, IOB2, no MISC) is fine-tuned on the first N sentences
(default 1,000) of CoNLL-2003's eng.train (IOB1: its labels are converted to the model's IOB2,
and MISC comes in as new labels) with `seqtag train --init default`; a model is trained from
scratch on the same sentences with the same options (`seqtag train`, defaults, the same seed).
Both choose their epoch on eng.testa (all of it, or its first --dev-sentences) and are scored
on eng.testb (`seqtag eval --json`: conlleval's entity F1). The bundled model as it is (it
knows no MISC) is scored on eng.testb too, for reference. Every run is a whole `seqtag`
process with --threads 1.

    .venv/bin/python bench/bench_finetune.py --data ../shared/data [--sentences 1000]
        [--seeds 1] [--dev-sentences 0]

CoNLL-2003 is research-only: it is read from --data and written only into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seqtag(*args: str) -> subprocess.CompletedProcess:
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "SEQTAG_WARMUP": "0"}
    proc = subprocess.run([sys.executable, "-m", "seqtag", *args], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"seqtag {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def first_sentences(path: Path, n: int, out: Path) -> int:
    """The first ``n`` sentences of a CoNLL-2003 file (the -DOCSTART- lines left out) as
    written there, into ``out``; returns their tokens."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("-DOCSTART-"):
                continue
            if line.strip():
                current.append(line)
            elif current:
                sentences.append(current)
                current = []
                if n and len(sentences) == n:
                    break
    if current and (not n or len(sentences) < n):
        sentences.append(current)
    out.write_text("".join("\n".join(s) + "\n\n" for s in sentences), encoding="utf-8")
    return sum(len(s) for s in sentences)


def score(model: str | None, test: Path) -> dict:
    args = ["eval", str(test), "--json"] + (["-m", model] if model else [])
    return json.loads(seqtag(*args).stdout)


def train(train_file: Path, dev: Path, out: Path, seed: int, init: str | None) -> dict:
    args = ["train", str(train_file), "--dev", str(dev), "-o", str(out), "--seed", str(seed),
            "--threads", "1"] + (["--init", init] if init else [])
    t0 = time.perf_counter()
    proc = seqtag(*args)
    seconds = time.perf_counter() - t0
    notes = [line for line in proc.stderr.splitlines()
             if line.startswith(("converted", "starting from"))]
    info = json.loads(seqtag("inspect", str(out), "--json").stdout)
    return {"seconds": seconds, "notes": notes, "best_epoch": info["best_epoch"],
            "epochs": len(info["history"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--sentences", type=int, default=1000,
                    help="training sentences: the first N of eng.train")
    ap.add_argument("--seeds", default="1", help="comma-separated seeds")
    ap.add_argument("--dev-sentences", type=int, default=0,
                    help="the first N sentences of eng.testa as dev (0: all)")
    args = ap.parse_args()
    folder = Path(args.data) / "conll2003"
    if not (folder / "eng.train").exists():
        print(f"{folder}/eng.train not found: nothing to benchmark (give --data DIR)")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="seqtag-bench-finetune.") as tmp:
        tmp = Path(tmp)
        train_file, dev = tmp / "train.txt", tmp / "dev.txt"
        tokens = first_sentences(folder / "eng.train", args.sentences, train_file)
        dev_tokens = first_sentences(folder / "eng.testa", args.dev_sentences, dev)
        test = folder / "eng.testb"
        print(f"CoNLL-2003: training on the first {args.sentences:,} sentences of eng.train "
              f"({tokens:,} tokens, IOB1); dev: "
              + (f"the first {args.dev_sentences:,} sentences of eng.testa"
                 if args.dev_sentences else "eng.testa")
              + f" ({dev_tokens:,} tokens); test: eng.testb")
        print("options: seqtag's defaults, --threads 1; seeds " + ", ".join(map(str, seeds)))
        bundled = score(None, test)
        rows = [("bundled model as it is (no MISC)", None, bundled, None)]
        for seed in seeds:
            for name, init in (("fine-tuned from the bundled model", "default"),
                               ("from scratch", None)):
                log(f"training {name}, seed {seed} ...")
                out = tmp / f"{'ft' if init else 'scratch'}-{seed}.npz"
                run = train(train_file, dev, out, seed, init)
                for note in run["notes"]:
                    print(f"  [{name}, seed {seed}] {note}")
                rows.append((name, seed, score(str(out), test), run))
        print()
        print(f"{'model':<36} {'seed':>4} {'test F1':>8} {'P':>6} {'R':>6} {'MISC':>6} "
              f"{'epochs':>7} {'train s':>8}")
        for name, seed, s, run in rows:
            misc = s.get("per_type", {}).get("MISC", {}).get("f1")
            print(f"{name:<36} {seed if seed is not None else '-':>4} {100 * s['f1']:8.2f} "
                  f"{100 * s['precision']:6.2f} {100 * s['recall']:6.2f} "
                  f"{100 * misc if misc is not None else 0:6.2f} "
                  + (f"{run['best_epoch']:>3}/{run['epochs']:<3} {run['seconds']:8.1f}"
                     if run else f"{'-':>7} {'-':>8}"))
        ft = [s["f1"] for name, _, s, run in rows if run and name.startswith("fine")]
        sc = [s["f1"] for name, _, s, run in rows if run and name == "from scratch"]
        print()
        print(f"mean test F1: fine-tuned {100 * sum(ft) / len(ft):.2f}, from scratch "
              f"{100 * sum(sc) / len(sc):.2f} ({100 * (sum(ft) - sum(sc)) / len(ft):+.2f} "
              f"points); epochs: best/run; train s: the whole `seqtag train` process")


if __name__ == "__main__":
    main()
