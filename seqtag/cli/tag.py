"""seqtag tag: label raw text or column files with a trained model; results on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from seqtag.cli._app import app, default_model_path, fail, user_errors
from seqtag.errors import SeqtagError

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")


def stdin_texts() -> Iterator[str]:
    """One text per line of stdin (CR, LF or CRLF), decoded strictly so a bad byte is reported."""
    from seqtag.textfile import read_lines

    for _, text in read_lines(sys.stdin.buffer, "<stdin>"):
        yield text


def render_pretty(tagged, console) -> None:
    """Entities highlighted in the text, their type after them; other labels as token/label."""
    from rich.text import Text

    ents = tagged.entities()
    if tagged.text is None or not ents and any(lab != "O" for lab in tagged.labels):
        console.print(" ".join(f"{t}[dim]/{lab}[/]" for t, lab in zip(tagged.tokens, tagged.labels)))
        return
    out, pos = Text(), 0
    types = sorted({e["label"] for e in ents})
    for e in ents:
        colour = _COLOURS[types.index(e["label"]) % len(_COLOURS)]
        out.append(tagged.text[pos:e["start"]])
        out.append(e["text"], style=f"bold {colour}")
        out.append(f" {e['label']}", style=f"dim {colour}")
        pos = e["end"]
    out.append(tagged.text[pos:])
    console.print(out)


@app.command("tag")
def tag(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Texts to tag (or, with --input-format conll, column files); "
                   "none or '-' reads stdin."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model",
                                              help="Model file.",
                                              show_default="the bundled model"),
    fmt: Optional[str] = typer.Option(
        None, "-f", "--format",
        help="Output: conll, inline, jsonl or pretty.",
        show_default="pretty on a terminal, else conll"),
    input_format: str = typer.Option(
        "text", "--input-format",
        help="text (one text per line) or conll (column files; the label is appended)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per batch."),
    scores: bool = typer.Option(
        False, "--scores", help="Add each label's probability and each entity's (crf_test -v1)."),
    nbest: int = typer.Option(1, "--nbest", "-n", min=1,
                              help="Print the N most probable label sequences (crf_test -n)."),
) -> None:
    """Tag texts or column files; labels go to stdout, one stable format into a pipe."""
    with user_errors():
        from seqtag.model import RNNTagger
        from seqtag.tagging import FORMATTERS, tag_sentences, tag_texts

        if input_format not in ("text", "conll"):
            fail(f"unknown --input-format {input_format!r} (use text or conll)")
        if fmt is None:
            fmt = "pretty" if sys.stdout.isatty() and input_format == "text" else "conll"
        if fmt not in (*FORMATTERS, "pretty"):
            fail(f"unknown --format {fmt!r} (use conll, inline, jsonl or pretty)")
        model = RNNTagger.load(model_path or default_model_path())
        # Plain conll and inline output print labels only: no label probabilities needed.
        probs = scores or fmt in ("jsonl", "pretty")
        inputs = inputs or ["-"]
        if input_format == "conll":
            from seqtag.corpus import read_sentences

            def sentences():
                for path in inputs:
                    yield from read_sentences(path, labels="auto")
            stream = tag_sentences(model, sentences(), batch_size, scores=scores, nbest=nbest,
                                   probs=probs)
        else:
            def texts():
                for item in inputs:
                    if item == "-":
                        yield from stdin_texts()
                    else:
                        yield item
            stream = tag_texts(model, texts(), batch_size, scores=scores, nbest=nbest,
                               probs=probs)
        if fmt == "pretty":
            from rich.console import Console
            console = Console(highlight=False)
            for tagged in stream:
                render_pretty(tagged, console)
        else:
            write, formatter = sys.stdout.write, FORMATTERS[fmt]
            for tagged in stream:
                write(formatter(tagged, scores))
            sys.stdout.flush()
