"""Benchmark: calibration of seqtag's probabilities, before and after the temperature training fits
on its dev set (seqtag.calibration), on CoNLL-2003 test, BTC test and UNER EWT test.

    .venv/bin/python bench/bench_calibration.py --data ../shared/data [--conll-model M.npz]

BTC and UNER: the bundled model (trained on BTC; UNER is scored with the BTC model's temperature,
out of domain on purpose). If the model file carries no temperature (made before seqtag fitted
one), it is fitted here on BTC dev exactly as training does. CoNLL-2003: --conll-model, or a
default model trained here on eng.train with eng.testa as dev (seed 1; minutes).

Per test set: token ECE, non-O token ECE, entity ECE (15 equal-width bins, percent) and the recall
of entities predicted above 0.5, at temperature 1 ("before") and at the fitted one ("after"),
against the bars of issue 10 (token <= 1.0, non-O token <= 3.0, entity <= 3.0).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seqtag.calibration import calibration_of, fit_temperature
from seqtag.corpus import read_corpus
from seqtag.model import RNNTagger
from seqtag.tagging import tag_sentences

BARS = {"token_ece": 1.0, "nono_token_ece": 3.0, "entity_ece": 3.0}
BUNDLED = Path(__file__).resolve().parents[1] / "seqtag" / "data" / "default.npz"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def calibration_at(model: RNNTagger, sents, temperature: float):
    """Calibration of ``model`` on labelled ``sents`` at ``temperature`` (the model's own is
    put back after)."""
    kept = model.meta.get("temperature")
    model.set_temperature(temperature)
    try:
        tagged = list(tag_sentences(model, sents, scores="within_limit", threads=None))
    finally:
        if kept is None:
            model.meta.pop("temperature", None)
            model.network.output.temperature = 1.0
        else:
            model.set_temperature(kept)
    return calibration_of([s.labels for s in sents], [t.labels for t in tagged],
                          [t.probs for t in tagged], [t.span_probs for t in tagged],
                          temperature=temperature)


def ensure_temperature(model: RNNTagger, dev) -> str:
    if "temperature" in model.meta:
        return "the model's own"
    fit = fit_temperature(model, [s.tokens for s in dev], [s.labels for s in dev])
    model.set_temperature(fit["temperature"], fit)
    return "fitted here on the dev set"


def rows_for(name: str, model: RNNTagger, test) -> list[tuple]:
    out = []
    for when, tau in (("before", 1.0), ("after", model.temperature)):
        t0 = time.perf_counter()
        c = calibration_at(model, test, tau)
        log(f"  {name} {when} (T={tau:.3g}): {time.perf_counter() - t0:.1f}s")
        out.append((name, when, tau, c))
    return out


def print_table(rows: list[tuple]) -> int:
    head = (f"{'test set':<26} {'':<6} {'T':>5} {'token ECE':>9} {'non-O ECE':>9} "
            f"{'entity ECE':>10} {'recall>0.5':>10} {'entities':>8}  bars (<=1.0/3.0/3.0)")
    print(head)
    print("-" * len(head))
    met = 0
    for name, when, tau, c in rows:
        vals = {"token_ece": 100 * c.token_ece, "nono_token_ece": 100 * c.nono_token_ece,
                "entity_ece": 100 * c.entity_ece}
        ok = all(vals[k] <= v for k, v in BARS.items())
        met += ok and when == "after"
        rec = f"{100 * c.entity_recall_above_half:9.2f}%" if c.entity_recall_above_half \
            is not None else f"{'-':>10}"
        print(f"{name:<26} {when:<6} {tau:5.3g} {vals['token_ece']:8.2f}% "
              f"{vals['nono_token_ece']:8.2f}% {vals['entity_ece']:9.2f}% {rec} "
              f"{c.entities:8,}  " + ("MET" if ok else "not met"))
    return met


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--model", default=str(BUNDLED), help="the BTC-trained model")
    ap.add_argument("--conll-model", help="a CoNLL-2003 model (default: train one here)")
    ap.add_argument("--no-conll", action="store_true", help="skip CoNLL-2003")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "btc" / "btc.test").exists():
        print(f"no BTC corpus under {data}: nothing to benchmark (give --data)")
        return 0
    rows = []
    model = RNNTagger.load(args.model)
    btc_dev, _ = read_corpus(data / "btc" / "btc.dev", labels="required")
    how = ensure_temperature(model, btc_dev)
    log(f"BTC model {args.model}: temperature {model.temperature:.3g} ({how})")
    for name, path in (("BTC test", "btc/btc.test"),
                       ("UNER EWT test (BTC model)", "uner_english_ewt/en_ewt-ud-test.iob2")):
        if (data / path).exists():
            test, _ = read_corpus(data / path, labels="required")
            rows += rows_for(name, model, test)
    conll = data / "conll2003"
    if not args.no_conll and (conll / "eng.train").exists():
        if args.conll_model:
            cmodel = RNNTagger.load(args.conll_model)
        else:
            from seqtag.config import TrainConfig
            from seqtag.training import Trainer

            train, _ = read_corpus(conll / "eng.train", labels="required")
            dev, _ = read_corpus(conll / "eng.testa", labels="required")
            log("training the default model on CoNLL-2003 (seed 1)")
            t0 = time.perf_counter()
            cmodel = Trainer(TrainConfig(seed=1)).fit(train, dev).model_
            log(f"  trained in {time.perf_counter() - t0:.0f}s")
        dev, _ = read_corpus(conll / "eng.testa", labels="required")
        log(f"CoNLL-2003 model: temperature {cmodel.temperature:.3g} "
            f"({ensure_temperature(cmodel, dev)})")
        test, _ = read_corpus(conll / "eng.testb", labels="required")
        rows = rows_for("CoNLL-2003 test", cmodel, test) + rows
    met = print_table(rows)
    print(f"ECE: 15 equal-width bins; token = marginal of the predicted label; non-O = tokens "
          f"whose gold or predicted label is not O; entity = exact probability of the predicted "
          f"span and type. {met}/{len(rows) // 2} test sets meet every bar after calibration.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
