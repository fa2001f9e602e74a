"""seqtag rank: which unlabelled sentences to annotate next, written as columns to correct."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, default_model_path, fail, user_errors


@app.command("rank")
def rank_cmd(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Files of unlabelled sentences: one text per line, or column files with "
                   "--input-format conll ('-' or nothing: stdin)."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model", help="Model file.",
                                              show_default="the bundled model"),
    input_format: str = typer.Option("text", "--input-format",
                                     help="text (one sentence per line) or conll (columns)."),
    top: Optional[int] = typer.Option(None, "--top", "-n", min=1,
                                      help="Write the N most uncertain sentences.",
                                      show_default="100 (or as --tokens allows)"),
    tokens: Optional[int] = typer.Option(
        None, "--tokens", min=1,
        help="Write whole sentences, most uncertain first, up to this many tokens in all."),
    strategy: str = typer.Option("mnlp", "--by",
                                 help="mnlp (mean -log P of the best sequence per token), "
                                      "entropy (mean token entropy) or least (1 - P(best))."),
    fmt: str = typer.Option("conll", "--format", "-f",
                            help="conll (token TAB the model's label: correct the labels) or "
                                 "jsonl (with the score and rank)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per batch."),
    engine: str = typer.Option("auto", "--engine", help="Inference engine: auto, numpy, numba."),
) -> None:
    """Order unlabelled sentences by how much annotating them would teach the model; the top
    ones go to stdout in CoNLL columns with the model's labels pre-filled."""
    with user_errors():
        from seqtag.engines import check_engine
        from seqtag.ranking import STRATEGIES, rank
        from seqtag.tagging import read_texts
        from seqtag.tokenizer import tokenize

        if input_format not in ("text", "conll"):
            fail(f"unknown --input-format {input_format!r} (use text or conll)")
        if strategy not in STRATEGIES:
            fail(f"unknown --by {strategy!r} (use {', '.join(STRATEGIES)})")
        if fmt not in ("conll", "jsonl"):
            fail(f"unknown --format {fmt!r} (use conll or jsonl)")
        check_engine(engine)
        if top is None and tokens is None:
            top = 100
        paths = inputs or ["-"]

        from seqtag.model import RNNTagger

        model = RNNTagger.load(model_path or default_model_path(), engine=engine)

        def items():
            for path in paths:
                if input_format == "conll":
                    from seqtag.corpus import read_sentences

                    for s in read_sentences(path, labels="auto", check_labels=False):
                        yield s.tokens, s
                else:
                    for text in read_texts(path):
                        words = [w for w, _, _ in tokenize(text)]
                        if words:
                            yield words, text

        ranked = rank(model, items(), top=top, tokens=tokens, strategy=strategy,
                      batch_size=batch_size)
        write = sys.stdout.write
        for n, r in enumerate(ranked, 1):
            if fmt == "jsonl":
                write(json.dumps({"rank": n, "score": round(r.score, 6), "index": r.index,
                                  "tokens": r.tokens, "labels": r.labels},
                                 ensure_ascii=False) + "\n")
            else:
                write("".join(f"{t}\t{lab}\n" for t, lab in zip(r.tokens, r.labels)) + "\n")
        sys.stdout.flush()
