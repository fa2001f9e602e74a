"""seqtag build-vocab: count words and labels of training files, write the vocabulary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, err, user_errors


@app.command("build-vocab")
def build_vocab(
    corpus: List[str] = typer.Argument(..., help="Training column files ('-' for stdin)."),
    output: str = typer.Option("-", "-o", "--output",
                               help="Where to write the vocabulary ('-' for stdout)."),
    min_count: int = typer.Option(1, "--min-count", min=1,
                                  help="Words seen fewer times map to <unk>."),
    max_size: Optional[int] = typer.Option(None, "--max-size", min=3,
                                           help="Keep at most this many entries (with <pad>, <unk>)."),
    input_format: str = typer.Option("auto", "--input-format",
                                     help="Column file format: auto, conll, conllu or indexed."),
) -> None:
    """Write the word vocabulary (word TAB count, most frequent first) and the label inventory."""
    with user_errors():
        from seqtag.corpus import read_sentences
        from seqtag.vocab import Vocabulary

        def sentences():
            for path in corpus:
                yield from read_sentences(path, fmt=input_format, labels="required")

        vocab, stats = Vocabulary.build(sentences(), min_count=min_count, max_size=max_size)
        if output == "-":
            sys.stdout.write(vocab.to_text())
        else:
            vocab.save(output)
        err.print(f"{stats.sentences:,} sentences, {stats.tokens:,} tokens, "
                  f"{stats.types:,} word types; kept {stats.kept:,} (+ <pad>, <unk>) covering "
                  f"{100 * stats.coverage:.2f}% of tokens", markup=False)
        err.print("labels: " + ", ".join(f"{lab} {c:,}" for lab, c in
                                         zip(vocab.labels, vocab.label_counts)), markup=False)
        if output != "-":
            err.print(f"wrote {Path(output)}", markup=False)
