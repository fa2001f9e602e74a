"""seqtag inspect: what a model file holds, for people or (--json) for machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from seqtag.cli._app import app, default_model_path, user_errors


def describe(model, path: Path, top: int = 20, state=None,
             sections: dict[str, list[str]] | None = None) -> dict:
    """Everything inspect shows, as plain data (``state`` and ``sections`` as load_model and
    list_sections give them)."""
    import numpy as np

    from seqtag.modelfile import STATE, SECTION_JSON

    meta = dict(model.meta)
    vocab = model.vocab
    found = {}
    for name, entries in (sections or {}).items():
        arrays = [e for e in entries if e != SECTION_JSON]
        if name == STATE and state is not None:
            found[name] = {"known": True, "meta": state.meta,
                           "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                      for k, v in state.arrays.items()}}
        else:   # a section this seqtag does not read: ignored
            found[name] = {"known": False, "arrays": sorted(arrays)}
    return {
        "path": str(path),
        "format_version": model.format_version,
        "requires": meta.get("requires", []),
        "sections": found,
        "seqtag_version": meta.get("seqtag_version"),
        "created": meta.get("created"),
        "kernels": meta.get("kernels"),
        "level": meta.get("level", "word"),
        "architecture": meta.get("architecture"),
        "hyperparameters": meta.get("hyperparameters"),
        "seed": meta.get("seed"),
        "label_scheme": meta.get("label_scheme"),
        "temperature": model.temperature,
        "temperature_fit": meta.get("temperature_fit"),
        "corpus": meta.get("corpus"),
        "dev_corpus": meta.get("dev_corpus"),
        "init": meta.get("init"),
        "ensemble": [{k: m.get(k) for k in ("seed", "best_epoch", "refit")}
                     for m in meta.get("ensemble") or [] if isinstance(m, dict)],
        "refit": meta.get("refit"),
        "vocabulary": {
            "size": vocab.n_words,
            "most_frequent": [[w, int(c)] for w, c in
                              zip(vocab.words[2:2 + top], vocab.word_counts[2:2 + top])],
        },
        "labels": {lab: int(c) for lab, c in zip(vocab.labels, vocab.label_counts)},
        "parameters": {k: {"shape": list(v.shape), "norm": round(float(np.linalg.norm(v)), 4)}
                       for k, v in model.params.items()},
        "history": meta.get("history", []),
        "best_epoch": meta.get("best_epoch"),
        "interrupted": meta.get("interrupted", False),
    }


def _corpus_line(c: dict) -> str:
    # Every field but the name may be absent (files not written by seqtag train).
    parts = [f"{c[k]:,} {k}" for k in ("sentences", "tokens", "bytes") if k in c]
    if "sha256" in c:
        parts.append(f"sha256 {c['sha256']}")
    return f"{c['name']}: " + ", ".join(parts)


def _init_line(init: dict) -> str:
    # Written by seqtag train --init (seqtag.training.Trainer._extend); any field may be absent.
    parts = []
    if init.get("sha256"):
        parts.append(f"sha256 {init['sha256']}")
    if init.get("corpus"):
        parts.append("trained on " + ", ".join(map(str, init["corpus"])))
    added = init.get("added")
    if isinstance(added, dict):
        labels = added.get("labels") or []
        parts.append(f"added {added.get('words', 0):,} words, {added.get('feature_values', 0):,} "
                     f"feature values, {added.get('chars', 0):,} characters, "
                     f"{len(labels)} labels" + (f" ({', '.join(map(str, labels))})" if labels
                                                else ""))
    return f"{init.get('name', '?')}: " + "; ".join(parts)


@app.command("inspect")
def inspect_cmd(
    model_path: Optional[Path] = typer.Argument(
        None, help="Model file.", show_default="the bundled model"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Show a model's versions, training set-up, corpus, vocabulary, labels, weights and history."""
    with user_errors():
        from seqtag.modelfile import list_sections, load_model

        path = model_path or default_model_path()
        model, state = load_model(path, with_state=True)
        info = describe(model, path, state=state, sections=list_sections(path))
        if as_json:
            sys.stdout.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # Everything from the file is printed as plain text: a path, token or label may hold
        # "[/]" or other rich markup.
        out = Console(highlight=False, soft_wrap=True)
        say = lambda text: out.print(text, markup=False)   # noqa: E731
        out.print(Text.assemble((info["path"], "bold"), f"  model format {info['format_version']}, "
                                f"seqtag {info['seqtag_version']}, created {info['created']}"))
        if info["kernels"]:
            say(f"trained with kernels compiled for {info['kernels']} (--portable): the same "
                f"bytes on any such CPU")
        if info["requires"]:
            say("requires: " + ", ".join(info["requires"]))
        for name, sec in info["sections"].items():
            if not sec["known"]:
                say(f"section {name}: {len(sec['arrays'])} entries, not read by this seqtag "
                    f"(ignored)")
            else:
                arrays = sec["arrays"]
                say(f"section {name}: " + ", ".join(
                    f"{k} {'×'.join(map(str, v['shape'])) or 'scalar'} {v['dtype']}"
                    for k, v in arrays.items()) + (f"; {json.dumps(sec['meta'])}"
                                                   if sec["meta"] else ""))
        arch = info["architecture"] or {}
        say(f"level: {info['level']}" + (" (one residue per token; the character-level "
                                         "configuration)" if info["level"] == "char" else ""))
        say("architecture: " + ", ".join(f"{k}={v}" for k, v in arch.items()))
        if info["ensemble"]:
            say(f"ensemble: {len(info['ensemble'])} members merged (block-diagonal, mean of "
                f"their scores): " + ", ".join(
                    f"seed {m['seed']} best epoch {m['best_epoch']}"
                    + (f" (refit for {m['refit']['epochs']} epochs on train + dev)"
                       if isinstance(m.get("refit"), dict) else "")
                    for m in info["ensemble"]))
        if isinstance(info["refit"], dict):
            say(f"refit: trained again on the training and dev sentences together "
                f"({info['refit']['sentences']:,}) for the {info['refit']['epochs']} epochs "
                f"dev chose")
        say("hyperparameters: " + ", ".join(
            f"{k}={v}" for k, v in (info["hyperparameters"] or {}).items()))
        for c in info["corpus"] or []:
            say("trained on " + _corpus_line(c))
        if info["dev_corpus"]:
            say("dev set " + _corpus_line(info["dev_corpus"]))
        fit = info["temperature_fit"]
        say(f"temperature {info['temperature']:.3g}" + (
            f" (fitted on the dev set: log-loss per token {fit['nll_before']:.4f} -> "
            f"{fit['nll_after']:.4f})" if fit and "nll_before" in fit else
            " (probabilities as trained)" if info["temperature"] == 1.0 else ""))
        if isinstance(info["init"], dict):
            say("fine-tuned from " + _init_line(info["init"]))
        voc = info["vocabulary"]
        say(f"vocabulary: {voc['size']:,} entries; most frequent: " +
            " ".join(f"{w}({c})" for w, c in voc["most_frequent"]))
        say(f"labels ({info['label_scheme'] or 'none'}): " +
            ", ".join(f"{k} {v:,}" for k, v in info["labels"].items()))
        params = Table(title="parameters", title_justify="left")
        for col in ("name", "shape", "norm"):
            params.add_column(col, justify="right" if col == "norm" else "left")
        for k, v in info["parameters"].items():
            params.add_row(Text(k), "×".join(map(str, v["shape"])), f"{v['norm']:.4f}")
        out.print(params)
        hist = Table(title="training history", title_justify="left")
        for col in ("epoch", "train loss", "dev acc", "dev F1", ""):
            hist.add_column(col, justify="right")
        for row in info["history"]:
            hist.add_row(str(row["epoch"]),
                         f"{row['train_loss']:.4f}" if "train_loss" in row else "-",
                         f"{100 * row['dev_accuracy']:.2f}%" if "dev_accuracy" in row else "-",
                         f"{100 * row['dev_f1']:.2f}" if "dev_f1" in row else "-",
                         "best" if row["epoch"] == info["best_epoch"] else "")
        out.print(hist)
        if info["interrupted"]:
            say("training was interrupted (Ctrl-C); the best epoch so far was kept")
