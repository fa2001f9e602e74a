"""seqtag inspect: what a model file holds, for people or (--json) for machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from seqtag.cli._app import app, default_model_path, user_errors


def describe(model, path: Path, top: int = 20) -> dict:
    """Everything inspect shows, as plain data."""
    import numpy as np

    meta = dict(model.meta)
    vocab = model.vocab
    return {
        "path": str(path),
        "format_version": model.format_version,
        "seqtag_version": meta.get("seqtag_version"),
        "created": meta.get("created"),
        "architecture": meta.get("architecture"),
        "hyperparameters": meta.get("hyperparameters"),
        "seed": meta.get("seed"),
        "label_scheme": meta.get("label_scheme"),
        "corpus": meta.get("corpus"),
        "dev_corpus": meta.get("dev_corpus"),
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


@app.command("inspect")
def inspect_cmd(
    model_path: Optional[Path] = typer.Argument(
        None, help="Model file.", show_default="the bundled model"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Show a model's versions, training set-up, corpus, vocabulary, labels, weights and history."""
    with user_errors():
        from seqtag.model import RNNTagger

        path = model_path or default_model_path()
        info = describe(RNNTagger.load(path), path)
        if as_json:
            sys.stdout.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        out = Console(highlight=False, soft_wrap=True)
        out.print(f"[bold]{info['path']}[/]  model format {info['format_version']}, "
                  f"seqtag {info['seqtag_version']}, created {info['created']}")
        arch = info["architecture"] or {}
        out.print("architecture: " + ", ".join(f"{k}={v}" for k, v in arch.items()))
        out.print("hyperparameters: " + ", ".join(
            f"{k}={v}" for k, v in (info["hyperparameters"] or {}).items()))
        for c in info["corpus"] or []:
            out.print(f"trained on {c['name']}: {c['sentences']:,} sentences, {c['tokens']:,} "
                      f"tokens, {c['bytes']:,} bytes, sha256 {c['sha256']}", markup=False)
        if info["dev_corpus"]:
            c = info["dev_corpus"]
            out.print(f"dev set {c['name']}: {c['sentences']:,} sentences, {c['tokens']:,} tokens, "
                      f"sha256 {c['sha256']}", markup=False)
        voc = info["vocabulary"]
        out.print(f"vocabulary: {voc['size']:,} entries; most frequent: " +
                  " ".join(f"{w}({c})" for w, c in voc["most_frequent"]), markup=False)
        out.print(f"labels ({info['label_scheme']}): " +
                  ", ".join(f"{k} {v:,}" for k, v in info["labels"].items()), markup=False)
        params = Table(title="parameters", title_justify="left")
        for col in ("name", "shape", "norm"):
            params.add_column(col, justify="right" if col == "norm" else "left")
        for k, v in info["parameters"].items():
            params.add_row(k, "×".join(map(str, v["shape"])), f"{v['norm']:.4f}")
        out.print(params)
        hist = Table(title="training history", title_justify="left")
        for col in ("epoch", "train loss", "dev acc", "dev F1", ""):
            hist.add_column(col, justify="right")
        for row in info["history"]:
            hist.add_row(str(row["epoch"]), f"{row['train_loss']:.4f}",
                         f"{100 * row['dev_accuracy']:.2f}%" if "dev_accuracy" in row else "-",
                         f"{100 * row['dev_f1']:.2f}" if "dev_f1" in row else "-",
                         "best" if row["epoch"] == info["best_epoch"] else "")
        out.print(hist)
        if info["interrupted"]:
            out.print("training was interrupted (Ctrl-C); the best epoch so far was kept")
