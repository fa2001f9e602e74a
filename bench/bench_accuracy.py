"""Benchmark: seqtag's accuracy and speed against a CRFsuite baseline on five standard test sets.

For each corpus, in one run: trains seqtag (its default model, the same for every corpus; or the
flags given by --seqtag-flags; in-process through seqtag.training.Trainer, dev picks the best epoch) and a CRFsuite linear-chain CRF (pycrfsuite, the
ordinary token-only feature template, L-BFGS, c1 = c2 = 0.1, 100 iterations) on the same training
sentences; scores both on the test split with seqtag.metrics (entity F1 for NER and chunking,
token accuracy for UPOS); and times training and tagging. Neither system sees the gold POS or
chunk columns: only the token column, as seqtag's reader reads it.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_accuracy.py --data ../shared/data
    .venv/bin/python bench/bench_accuracy.py --quick --corpora conll2003,btc

Equal time (CoNLL-2003, CoNLL-2000, BTC; --budget-only for it alone): after CRFsuite's training, a
whole `seqtag train TRAIN --dev DEV --seed 1 --time-budget T` process, T = CRFsuite's training
wall time; both test scores and times are printed, and whether seqtag's is the higher.

Timing: seqtag's tagging speed is that of a whole `seqtag tag --input-format conll -m model.npz
< test > /dev/null` process (start-up included; best of two runs). CRFsuite's is measured
in-process: tagger.open + feature extraction + tag over the whole test file. Training times are
wall times of the whole fit (seqtag: including its per-epoch dev evaluation; CRFsuite: including
feature extraction). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from seqtag.corpus import read_corpus
from seqtag.metrics import evaluate
from seqtag.config import TrainConfig
from seqtag.training import Trainer

try:
    import pycrfsuite
except ImportError:
    pycrfsuite = None

DEFAULT_FLAGS = ""   # seqtag's default model: `seqtag train train.tsv --dev dev.tsv`, no flags
TAG_BATCH = 256
CRF_PARAMS = {"c1": 0.1, "c2": 0.1, "max_iterations": 100, "feature.possible_transitions": True}

# name: (title, train, dev, test, metric, bar kind, bar value). Paths are relative to --data.
# A dev of ("last", n) holds out the last n training sentences. "uner" reuses the models trained
# for "btc" (its train is None), so choosing it trains BTC too.
CORPORA = {
    "conll2003": ("CoNLL-2003 English NER", "conll2003/eng.train", "conll2003/eng.testa",
                  "conll2003/eng.testb", "f1", "abs", 85.0),
    "conll2000": ("CoNLL-2000 chunking", "conll2000/train.txt", ("last", 1000),
                  "conll2000/test.txt", "f1", "crf+", 0.5),
    "ud_ewt": ("UD English-EWT UPOS", "ud_english_ewt/en_ewt-ud-train.conllu",
               "ud_english_ewt/en_ewt-ud-dev.conllu", "ud_english_ewt/en_ewt-ud-test.conllu",
               "acc", "abs", 95.0),
    "btc": ("Broad Twitter Corpus NER", "btc/btc.train", "btc/btc.dev", "btc/btc.test",
            "f1", "crf+", 2.0),
    "uner": ("UNER EWT test (BTC-trained)", None, None,
             "uner_english_ewt/en_ewt-ud-test.iob2", "f1", "crf+", 0.0),
}


# The accuracy bars of seqtag 0.4 (issue 10): the default configuration's mean over the seeds
# (1-3), tokens only, no pretrained vectors, test sets never used to choose.
BARS_04 = {"conll2003": 86.5, "conll2000": 94.0, "ud_ewt": 95.8, "btc": 70.0, "uner": 52.0}


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# -- seqtag flags -> TrainConfig --------------------------------------------------------------------

def config_parser() -> argparse.ArgumentParser:
    """The `seqtag train` options that map to TrainConfig fields, with TrainConfig's defaults."""
    p = argparse.ArgumentParser(prog="--seqtag-flags", add_help=False)
    for f in dataclasses.fields(TrainConfig):
        opt = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            p.add_argument(opt, dest=f.name, action="store_true", default=default)
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false")
        elif default is None:  # optional: the type from the annotation ("int | None", ...)
            kind = str(f.type)
            typ = int if "int" in kind else float if "float" in kind else str
            p.add_argument(opt, dest=f.name, type=typ, default=None)
        else:
            p.add_argument(opt, dest=f.name, type=type(default), default=default)
    return p


def parse_config(flags: str) -> TrainConfig:
    ns, rest = config_parser().parse_known_args(shlex.split(flags))
    if rest:
        sys.exit(f"--seqtag-flags: not a training option: {' '.join(rest)}")
    cfg = TrainConfig(**vars(ns))
    cfg.check()
    return cfg


# -- CRFsuite ----------------------------------------------------------------------------------------

def shape(token: str) -> str:
    """X / x / d / the character itself, runs collapsed: "Sam" → "Xx", "U.S." → "X.X.", "2024" → "d"."""
    out = []
    for ch in token:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out[:12])


def token_features(token: str) -> list[str]:
    low = token.lower()
    return ["w=" + low, "p1=" + low[:1], "p2=" + low[:2], "p3=" + low[:3],
            "s1=" + low[-1:], "s2=" + low[-2:], "s3=" + low[-3:], "sh=" + shape(token),
            "title=%d" % token.istitle(), "upper=%d" % token.isupper(),
            "digit=%d" % token.isdigit()]


def sentence_features(tokens: list[str]) -> list[list[str]]:
    """The token's own features, the same for neighbours at -2..+2 (prefixed by offset), BOS/EOS."""
    own = [token_features(t) for t in tokens]
    n = len(tokens)
    out = []
    for i in range(n):
        feats = ["bias"] + own[i]
        for off in (-2, -1, 1, 2):
            j = i + off
            if 0 <= j < n:
                pre = "%+d:" % off
                feats.extend(pre + f for f in own[j])
        if i == 0:
            feats.append("BOS")
        if i == n - 1:
            feats.append("EOS")
        out.append(feats)
    return out


def train_crfsuite(train, path: str, max_iterations: int) -> float:
    t0 = time.perf_counter()
    trainer = pycrfsuite.Trainer(algorithm="lbfgs", verbose=False)
    trainer.set_params({**CRF_PARAMS, "max_iterations": max_iterations})
    for s in train:
        trainer.append(sentence_features(s.tokens), s.labels)
    trainer.train(path)
    return time.perf_counter() - t0


def tag_crfsuite(path: str, test) -> tuple[list[list[str]], float]:
    """(predictions, seconds for tagger.open + feature extraction + tagging of the whole file)."""
    t0 = time.perf_counter()
    tagger = pycrfsuite.Tagger()
    tagger.open(path)
    pred = [tagger.tag(sentence_features(s.tokens)) for s in test]
    secs = time.perf_counter() - t0
    tagger.close()
    return pred, secs


# -- seqtag -------------------------------------------------------------------------------------------

def train_seqtag(cfg: TrainConfig, train, dev, path: str) -> tuple[object, float, dict]:
    def progress(event, info):
        if event == "start":
            log(f"  seqtag: {info['sentences']:,} sentences, {info['tokens']:,} tokens, "
                f"{info['words']:,} words, {info['labels']} labels")
        elif event == "epoch":
            dev_s = info.get("dev_f1", info.get("dev_accuracy"))
            dev_txt = f"dev {100 * dev_s:6.2f}" if dev_s is not None else ""
            log(f"  seqtag epoch {info['epoch']:>2}  loss {info['train_loss']:.4f}  {dev_txt}"
                f"  {info['seconds']:6.1f}s{' *' if info['best'] else ''}")
    t0 = time.perf_counter()
    trainer = Trainer(dataclasses.replace(cfg), progress=progress).fit(train, dev)
    secs = time.perf_counter() - t0
    model = trainer.model_
    if model is None:
        raise RuntimeError("seqtag training produced no model")
    model.save(path)
    return model, secs, {"best_epoch": trainer.best_epoch_, "epochs_run": len(trainer.history_)}


def predict_seqtag(model, test) -> list[list[str]]:
    tokens = [s.tokens for s in test]
    return [p for i in range(0, len(tokens), TAG_BATCH) for p in model.predict(tokens[i:i + TAG_BATCH])]


def seqtag_exe() -> list[str]:
    exe = Path(sys.executable).with_name("seqtag")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seqtag"]


def time_seqtag_tag(model_path: str, test_path: str, repeats: int = 2) -> float:
    """Fastest wall time of whole `seqtag tag --input-format conll` processes over the test file."""
    best = float("inf")
    for _ in range(repeats):
        with open(test_path, "rb") as inp, open(os.devnull, "wb") as out:
            t0 = time.perf_counter()
            r = subprocess.run(seqtag_exe() + ["tag", "--input-format", "conll", "-m", model_path],
                               stdin=inp, stdout=out, stderr=subprocess.PIPE)
            secs = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(f"seqtag tag failed ({r.returncode}): "
                               f"{r.stderr.decode(errors='replace')[-500:]}")
        best = min(best, secs)
    return best


# -- seqtag within CRFsuite's training time ----------------------------------------------------------

# The corpora of the equal-time comparison: seqtag trains with --time-budget = CRFsuite's time.
BUDGET_KEYS = ("conll2003", "conll2000", "btc")


def train_seqtag_budget(key, data, train, dev, workdir, budget: float, quick: bool) -> dict:
    """A whole `seqtag train TRAIN --dev DEV --seed 1 --time-budget B` process (default
    options and threads); its wall time (start-up and compilation included), epochs and model."""
    train_path, dev_path = str(data / CORPORA[key][1]), CORPORA[key][2]
    if quick or not isinstance(dev_path, str):
        train_path = os.path.join(workdir, key + ".budget.train")
        dev_path = os.path.join(workdir, key + ".budget.dev")
        write_subset(train, train_path)
        write_subset(dev, dev_path)
    else:
        dev_path = str(data / dev_path)
    out = os.path.join(workdir, key + ".budget.npz")
    cmd = seqtag_exe() + ["train", train_path, "--dev", dev_path, "-o", out, "--seed", "1",
                          "--time-budget", f"{budget:.2f}"]
    log(f"  seqtag train --time-budget {budget:.2f} (CRFsuite's training time)")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    secs = time.perf_counter() - t0
    err = r.stderr.decode(errors="replace")
    if r.returncode:
        raise RuntimeError(f"seqtag train failed ({r.returncode}): {err[-800:]}")
    from seqtag.model import RNNTagger

    model = RNNTagger.load(out)
    epochs = len(model.meta.get("history", []))
    log(f"  seqtag (budget) ran {epochs} epoch(s) in {secs:.1f}s, best epoch "
        f"{model.meta.get('best_epoch')}")
    return {"model": model, "seconds": secs, "epochs": epochs,
            "best_epoch": model.meta.get("best_epoch"), "budget": budget}


def print_budget_table(rows: dict) -> None:
    if not rows:
        return
    head = (f"{'corpus':<28} {'metric':<6} {'seqtag':>7} {'crfsuite':>8}  {'verdict':<7} "
            f"{'seqtag s':>8} {'crf s':>7} {'epochs':>7}")
    print("\nseqtag within CRFsuite's training time: `seqtag train --seed 1 --time-budget <CRFsuite's"
          " training wall time>`,\nthe whole process timed (start-up and compilation included); "
          "verdict: seqtag's test score above CRFsuite's")
    print(head)
    print("-" * len(head))
    wins = 0
    for key, r in rows.items():
        ok = r["seqtag"] > r["crf"]
        wins += ok
        metric = "F1" if CORPORA[key][4] == "f1" else "acc%"
        print(f"{CORPORA[key][0]:<28} {metric:<6} {r['seqtag']:7.2f} {r['crf']:8.2f}  "
              f"{'PASS' if ok else 'FAIL':<7} {r['seconds']:8.1f} {r['budget']:7.1f} "
              f"{r['best_epoch']:>3}/{r['epochs']:<3}")
    print(f"{wins}/{len(rows)} above CRFsuite at equal training time (epochs: best/run)")
    over = [f"{CORPORA[k][0]} ({r['seconds']:.1f} s for {r['budget']:.1f})"
            for k, r in rows.items() if r["seconds"] > r["budget"]]
    print(f"{len(rows) - len(over)}/{len(rows)} whole seqtag processes ended inside their "
          f"budget" + (": past it: " + ", ".join(over) if over else ""))


# -- the run ------------------------------------------------------------------------------------------

def score(metric: str, gold, pred) -> float:
    s = evaluate([x.labels for x in gold], pred)
    return 100 * (s.f1 if metric == "f1" else s.accuracy)


def load(data: Path, key: str, quick: bool):
    _, train_p, dev_p, test_p, *_ = CORPORA[key]
    train, _ = read_corpus(data / train_p, labels="required")
    if isinstance(dev_p, tuple):
        n = dev_p[1]
        train, dev = train[:-n], train[-n:]
    else:
        dev, _ = read_corpus(data / dev_p, labels="required")
    test, _ = read_corpus(data / test_p, labels="required")
    if quick:
        train, dev, test = train[:500], dev[:200], test[:300]
    return train, dev, test


def write_subset(sents, path: str) -> None:
    """A test subset (for --quick) as a file `seqtag tag` can read, the original lines kept."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sents:
            f.write("\n".join(s.lines) + "\n\n")


def evaluate_test(key, data, test, workdir, models, quick, results):
    metric = CORPORA[key][4]
    ntok = sum(len(s.tokens) for s in test)
    test_path = str(data / CORPORA[key][3])
    if quick:
        test_path = os.path.join(workdir, key + ".test")
        write_subset(test, test_path)
    log(f"{key}: test {len(test):,} sentences, {ntok:,} tokens")
    row = {"key": key, "train_s": models["train_s"], "crf_train_s": models["crf_train_s"],
           "test_tokens": ntok}
    runs = models.get("runs") or [models]
    row["seeds"] = [r.get("seed", 1) for r in runs]
    row["per_seed"] = [score(metric, test, predict_seqtag(r["model"], test)) for r in runs]
    row["seqtag"] = sum(row["per_seed"]) / len(runs)
    row["std"] = (sum((x - row["seqtag"]) ** 2 for x in row["per_seed"]) / (len(runs) - 1)) ** 0.5 \
        if len(runs) > 1 else 0.0
    if len(runs) > 1:
        log(f"  seqtag test per seed: " + ", ".join(
            f"{s}: {x:.2f}" for s, x in zip(row["seeds"], row["per_seed"])))
    secs = time_seqtag_tag(models["model_path"], test_path)
    row["tag_tps"] = ntok / secs
    log(f"  seqtag test {row['seqtag']:.2f}; `seqtag tag` {secs:.2f}s = {row['tag_tps']:,.0f} tok/s")
    pred, csecs = tag_crfsuite(models["crf_path"], test)
    row["crf"] = score(metric, test, pred)
    row["crf_tps"] = ntok / csecs
    log(f"  crfsuite test {row['crf']:.2f}; tagging {csecs:.2f}s = {row['crf_tps']:,.0f} tok/s")
    results[key] = row
    log("  row: " + format_row(row).strip())


def train_both(key, data, cfg, workdir, quick, table=True, budget=False, seeds=(1,)):
    """CRFsuite, then seqtag with CRFsuite's time as its budget (``budget``), then seqtag's
    default runs for the accuracy table (``table``), one per seed of ``seeds``."""
    train, dev, test = load(data, key, quick)
    ntok = sum(len(s.tokens) for s in train)
    log(f"{key}: train {len(train):,} sentences ({ntok:,} tokens), dev {len(dev):,}")
    crf_path = os.path.join(workdir, key + ".crfsuite")
    log(f"  crfsuite training ({CRF_PARAMS['max_iterations'] if not quick else 10} iterations)")
    csecs = train_crfsuite(train, crf_path, 10 if quick else CRF_PARAMS["max_iterations"])
    log(f"  crfsuite trained in {csecs:.1f}s")
    models = {"crf_path": crf_path, "crf_train_s": csecs}
    if budget:
        models["budget"] = train_seqtag_budget(key, data, train, dev, workdir, csecs, quick)
    if table:
        runs = []
        for seed in seeds:
            model_path = os.path.join(workdir, f"{key}.seed{seed}.npz")
            log(f"  seqtag seed {seed}")
            model, secs, info = train_seqtag(dataclasses.replace(cfg, seed=seed), train, dev,
                                             model_path)
            log(f"  seqtag trained in {secs:.1f}s (best epoch {info['best_epoch']} of "
                f"{info['epochs_run']})")
            runs.append({"seed": seed, "model": model, "model_path": model_path,
                         "train_s": secs, **info})
        # the first seed's model is the one whose tagging speed is timed
        models.update({**runs[0], "runs": runs,
                       "train_s": sum(r["train_s"] for r in runs) / len(runs)})
    return test, models


def evaluate_budget(key, test, models, rows) -> None:
    metric = CORPORA[key][4]
    b = models["budget"]
    pred, _ = tag_crfsuite(models["crf_path"], test)
    rows[key] = {**b, "seqtag": score(metric, test, predict_seqtag(b["model"], test)),
                 "crf": score(metric, test, pred)}
    log(f"  equal time: seqtag test {rows[key]['seqtag']:.2f} ({b['seconds']:.1f}s), "
        f"crfsuite {rows[key]['crf']:.2f} ({b['budget']:.1f}s)")


def bar_of(key: str, row: dict) -> tuple[str, bool]:
    kind, value = CORPORA[key][5], CORPORA[key][6]
    if kind == "abs":
        return f">= {value:.1f}", row["seqtag"] >= value
    target = row["crf"] + value
    label = f">= crf+{value:.1f}" if value else ">= crf"
    return f"{label} ({target:.2f})", row["seqtag"] >= target


HEADER = (f"{'corpus':<28} {'metric':<6} {'seqtag':>7} {'crfsuite':>8}  {'bar':<22} {'verdict':<7} "
          f"{'train s':>8} {'crf train s':>11} {'tag tok/s':>10} {'crf tok/s':>10}")


def format_row(row: dict) -> str:
    key = row["key"]
    bar, ok = bar_of(key, row)
    metric = "F1" if CORPORA[key][4] == "f1" else "acc%"
    shared = key == "uner"  # the BTC models: their training times are BTC's
    tr = f"{row['train_s']:.0f}" + ("*" if shared else "")
    ctr = f"{row['crf_train_s']:.0f}" + ("*" if shared else "")
    return (f"{CORPORA[key][0]:<28} {metric:<6} {row['seqtag']:7.2f} {row['crf']:8.2f}  {bar:<22} "
            f"{'PASS' if ok else 'FAIL':<7} {tr:>8} {ctr:>11} {row['tag_tps']:10,.0f} "
            f"{row['crf_tps']:10,.0f}")


def print_table(keys, results, args, cfg_flags, interrupted: bool) -> None:
    print(HEADER)
    print("-" * len(HEADER))
    for key in keys:
        if key in results:
            print(format_row(results[key]))
        else:
            print(f"{CORPORA[key][0]:<28} (not finished{': interrupted' if interrupted else ''})")
    if "uner" in results:
        print("* the UNER row scores the BTC-trained models: its training times are BTC's.")
    print("seqtag tag tok/s: whole `seqtag tag --input-format conll` process, start-up included, "
          "best of 2; crf tok/s: in-process (open + features + tag).")
    passed = sum(bar_of(k, results[k])[1] for k in keys if k in results)
    print(f"{passed}/{len(keys)} bars passed" + ("" if len(results) == len(keys) else
                                                 f" ({len(keys) - len(results)} not finished)"))
    rows = [results[k] for k in keys if k in results]
    if rows:
        seeds = ",".join(str(s) for s in rows[0]["seeds"])
        print(f"\nseqtag 0.4 bars (issue 10), seqtag's mean over seeds {seeds} "
              f"(sample standard deviation; the table's seqtag column is this mean):")
        met = 0
        for row in rows:
            bar = BARS_04[row["key"]]
            ok = row["seqtag"] >= bar
            met += ok
            print(f"  {CORPORA[row['key']][0]:<28} {row['seqtag']:6.2f} ± {row['std']:4.2f}  "
                  f"(" + " / ".join(f"{x:.2f}" for x in row["per_seed"]) + f")  bar >= {bar:.1f}: "
                  + ("met" if ok else "NOT MET"))
        print(f"  {met}/{len(rows)} met")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="folder of the corpora")
    ap.add_argument("--corpora", default=",".join(CORPORA),
                    help="comma-separated subset of: " + ", ".join(CORPORA))
    ap.add_argument("--seqtag-flags", default=DEFAULT_FLAGS,
                    help="`seqtag train` options for the seqtag model (default: none, the "
                         "default model)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 500/200/300 train/dev/test sentences, 2 seqtag epochs, "
                         "10 CRFsuite iterations")
    ap.add_argument("--budget-only", action="store_true",
                    help="only the equal-time comparison (CoNLL-2003, CoNLL-2000, BTC), not the "
                         "accuracy table's full seqtag runs")
    ap.add_argument("--no-budget", action="store_true",
                    help="only the accuracy table, not the equal-time comparison")
    ap.add_argument("--seeds", default="1,2,3",
                    help="seqtag's seeds for the accuracy table (default 1,2,3: the 0.4 bars "
                         "are their mean; each seed is a full training per corpus)")
    args = ap.parse_args(argv)

    keys = [k.strip() for k in args.corpora.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CORPORA]
    if unknown:
        ap.error(f"unknown corpora {', '.join(unknown)} (choose from {', '.join(CORPORA)})")
    data = Path(args.data)
    if not data.is_dir():
        print(f"no data folder at {data}: nothing to benchmark (give --data)")
        return 0
    missing = sorted({str(data / p) for k in keys + (["btc"] if "uner" in keys else [])
                      for p in CORPORA[k][1:4] if isinstance(p, str) and not (data / p).exists()})
    if missing:
        print("missing corpus files, nothing benchmarked: " + ", ".join(missing))
        return 0
    if pycrfsuite is None:
        sys.exit("python-crfsuite is not installed (make bench-accuracy installs it)")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    cfg = parse_config(args.seqtag_flags)
    if args.quick:
        cfg = dataclasses.replace(cfg, epochs=2)

    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))
    print(f"seqtag flags: {args.seqtag_flags or '(none: the default model)'}"
          + ("  (--quick: epochs 2)" if args.quick else ""))
    print("seqtag config: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()))
    print(f"crfsuite: L-BFGS c1={CRF_PARAMS['c1']} c2={CRF_PARAMS['c2']} max_iterations="
          f"{10 if args.quick else CRF_PARAMS['max_iterations']}; token-only template "
          "(lower, prefixes/suffixes 1-3, shape, title/upper/digit at -2..+2, BOS/EOS)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(times are wall clock, indicative on a shared machine); "
          f"{datetime.now():%Y-%m-%d %H:%M}")
    print(flush=True)

    results: dict[str, dict] = {}
    budget_rows: dict[str, dict] = {}
    interrupted = False
    t_all = time.perf_counter()
    table = not args.budget_only
    if args.budget_only:
        keys = [k for k in keys if k in BUDGET_KEYS]
    with tempfile.TemporaryDirectory(prefix="seqtag-bench-") as workdir:
        try:
            for key in keys:
                if key == "uner":
                    continue  # after BTC, below
                budget = key in BUDGET_KEYS and not args.no_budget
                test, models = train_both(key, data, cfg, workdir, args.quick, table, budget,
                                          seeds)
                if budget:
                    evaluate_budget(key, test, models, budget_rows)
                if table:
                    evaluate_test(key, data, test, workdir, models, args.quick, results)
                if key == "btc" and "uner" in keys:
                    btc_models = models
            if "uner" in keys:
                if "btc" not in keys:
                    log("uner: training the BTC models it needs")
                    _, btc_models = train_both("btc", data, cfg, workdir, args.quick,
                                               seeds=seeds)
                test, _ = read_corpus(data / CORPORA["uner"][3], labels="required")
                if args.quick:
                    test = test[:300]
                evaluate_test("uner", data, test, workdir, btc_models, args.quick, results)
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: printing the rows that finished")
    log(f"done in {time.perf_counter() - t_all:.0f}s")
    if table:
        print_table(keys, results, args, args.seqtag_flags, interrupted)
    print_budget_table(budget_rows)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
