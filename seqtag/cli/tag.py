"""seqtag tag: label raw text or column files with a trained model; results on stdout."""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import closing
from itertools import chain
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, default_model_path, err, fail, user_errors

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")


def render_pretty(tagged, console) -> None:
    """Entities highlighted in the text, their type after them; other labels as token/label.
    User text goes in as Text, never as markup: a token such as "[/]" is printed as it is."""
    from rich.text import Text

    ents = tagged.entities()
    if tagged.text is None or not ents and any(lab != "O" for lab in tagged.labels):
        out = Text()
        for n, (tok, lab) in enumerate(zip(tagged.tokens, tagged.labels)):
            out.append(" " if n else "")
            out.append(tok)
            out.append(f"/{lab}", style="dim")
        console.print(out)
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


def _is_file(arg: str) -> bool:
    try:
        return Path(arg).is_file()
    except (OSError, ValueError):  # a text too long for a path, or with a NUL byte
        return False


@app.command("tag")
def tag(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Texts to tag (or, with --input-format conll, column files); "
                   "'-' reads stdin, as does giving no text and no -i."),
    files: Optional[List[str]] = typer.Option(
        None, "-i", "--input", metavar="FILE",
        help="Tag the contents of FILE ('-' for stdin): one text per line, or a column file "
             "with --input-format conll. Repeatable; read after the texts given as arguments."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model",
                                              help="Model file.",
                                              show_default="the bundled model"),
    fmt: Optional[str] = typer.Option(
        None, "-f", "--format",
        help="Output: conll, inline, jsonl or pretty; for sequences fasta (label strings), "
             "conll or bed (runs of labels other than --background).",
        show_default="pretty on a terminal, else conll; fasta for sequences"),
    input_format: str = typer.Option(
        "text", "--input-format",
        help="text (one text per line), conll (column files; the label is appended), jsonl "
             "(one document a line: {\"text\": \"...\"} or {\"text\": [sentences]}), fasta "
             "(sequences: one token per residue) or seqlabels (one sequence<TAB>labels line "
             "per record)."),
    labels_path: Optional[str] = typer.Option(
        None, "--labels", metavar="FILE",
        help="With --input-format fasta: a FASTA of gold label strings (the same ids), shown "
             "beside the predictions in -f conll."),
    window: int = typer.Option(
        4096, "--chunk", min=1,
        help="Sequences: residues tagged together; a longer record is cut into overlapping "
             "windows."),
    overlap: int = typer.Option(
        256, "--overlap", min=0,
        help="Sequences: residues shared by consecutive windows (half of them labelled from "
             "each side)."),
    background: Optional[str] = typer.Option(
        None, "--background", metavar="LABEL",
        help="-f bed: the label that is left out.",
        show_default="the model's most frequent training label"),
    documents: bool = typer.Option(
        False, "--documents",
        help="Text input: blank lines separate documents (paragraphs), whose sentences a model "
             "with document context tags knowing each other (one text per line still). Column "
             "files have theirs already (-DOCSTART-, # newdoc); each jsonl record is one."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per batch."),
    scores: bool = typer.Option(
        False, "--scores", help="Add each label's probability and each entity's (crf_test -v1; "
                                "a sentence's entities × tokens at most 10,000,000)."),
    nbest: int = typer.Option(1, "--nbest", "-n", min=1,
                              help="Print the N most probable label sequences (crf_test -n; "
                                   "-f conll or jsonl; N × a sentence's tokens at most "
                                   "1,000,000)."),
    engine: str = typer.Option(
        "auto", "--engine",
        help="Inference engine: numpy (no compilation: short inputs), numba (compiled kernels: "
             "long ones) or auto (NumPy for short inputs and until Numba's kernels are "
             "compiled, which a background process then does once)."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, max=1024,
        help="Batches tagged at once; the output is the same for any count.",
        show_default="the cores this process may use"),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, max=4096,
        help="Tag on Dask: a local cluster of N worker processes; with --scheduler, wait for "
             "N workers of that cluster. The output is the same as one process's. Needs the "
             "extra seqtag\\[dask]."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", metavar="tcp://HOST:PORT",
        help="Tag on the workers of a running Dask scheduler (see README: Tagging on a "
             "cluster)."),
) -> None:
    """Tag texts or column files; labels go to stdout, one stable format into a pipe."""
    with user_errors():
        from seqtag.tagging import FORMATTERS, read_texts, tag_sentences, tag_texts

        if input_format not in ("text", "conll", "jsonl", "fasta", "seqlabels"):
            fail(f"unknown --input-format {input_format!r} (use text, conll, jsonl, fasta or "
                 "seqlabels)")
        if input_format in ("fasta", "seqlabels") or labels_path is not None:
            from seqtag.cli._sequences import tag_sequences

            if workers is not None or scheduler is not None:
                fail("--workers and --scheduler tag texts and column files; sequences are "
                     "tagged in one process (--threads)")

            return tag_sequences(inputs or [], files or [], model_path, fmt, input_format,
                                 labels_path, window, overlap, background, batch_size, scores,
                                 nbest, engine, threads)
        if fmt in ("fasta", "bed"):
            fail(f"-f {fmt} is for sequences (--input-format fasta or seqlabels)")
        if fmt is None:
            fmt = "pretty" if sys.stdout.isatty() and input_format == "text" else "conll"
        if fmt not in (*FORMATTERS, "pretty"):
            fail(f"unknown --format {fmt!r} (use conll, inline, jsonl or pretty)")
        # Refused before the model loads: a format that would silently drop what was asked for.
        if nbest > 1 and fmt in ("inline", "pretty"):
            fail(f"-f {fmt} shows one label sequence per text, not --nbest {nbest} "
                 "(use -f conll or -f jsonl, or drop --nbest)")
        if nbest > 1 and scores and fmt == "conll":
            fail("-f conll cannot show --scores with --nbest: its n-best blocks have no "
                 "probability column (use -f jsonl for both, or drop one)")
        from seqtag.engines import check_engine

        check_engine(engine)
        on_dask = workers is not None or scheduler is not None
        if on_dask:
            if threads is not None:
                fail("--threads is for one process; with --workers or --scheduler each Dask "
                     "worker thread tags one batch at a time (drop --threads)")
            if documents or input_format == "jsonl":
                fail("documents (--documents, --input-format jsonl) are tagged in one "
                     "process: Dask workers tag batches of texts apart (drop --workers and "
                     "--scheduler)")
            from seqtag.distributed import require

            require()
        inputs, files = inputs or [], files or []
        if not inputs and not files:
            inputs = ["-"]
        if input_format == "text":
            named = next((a for a in inputs if a != "-" and _is_file(a)), None)
            if named is not None:
                err.print(f"note: {named!r} is a file; to tag its contents use: "
                          f"seqtag tag -i {shlex.quote(named)}", markup=False)

        # Plain conll and inline output print labels only: no label probabilities needed.
        options = dict(batch_size=batch_size, scores=scores, nbest=nbest,
                       probs=scores or fmt in ("jsonl", "pretty"))

        def streams():
            """(kind, items, name) of each input, in order."""
            if input_format == "conll":
                from seqtag.corpus import read_sentences

                for path in [*inputs, *files]:
                    name = "<stdin>" if path == "-" else path
                    # the columns after the token are echoed: no label grammar to check
                    yield "conll", read_sentences(path, labels="auto", check_labels=False), name
                return
            if input_format == "jsonl":
                from seqtag.tagging import read_records

                for path in [*inputs, *files]:
                    yield "jsonl", read_records(path), "<stdin>" if path == "-" else path
                return
            # Texts given as arguments are batched together, up to a '-' among them.
            texts: list[str] = []
            for item in inputs:
                if item != "-":
                    texts.append(item)
                    continue
                if texts:
                    yield "text", texts, None
                    texts = []
                yield "text", read_texts("-"), "<stdin>"
            if texts:
                yield "text", texts, None
            for path in files:
                yield "text", read_texts(path), "<stdin>" if path == "-" else path

        if on_dask:
            from seqtag.distributed import ShippedModel, batches, connect, tag_batches

            shipped = ShippedModel.read(model_path or default_model_path())
            # closing: the stream stops (error, reader gone) while its client is still open
            with connect(workers, scheduler) as client, \
                    closing(tag_batches(client, shipped, batches(streams(), batch_size),
                                        engine=engine, options=options,
                                        fmt=None if fmt == "pretty" else fmt)) as results:
                _write(results, fmt, scores, batched=True)
            return

        from seqtag.model import RNNTagger

        # (the model only tags here: its embedded inputs can be kept from batch to batch)
        model = RNNTagger.load(model_path or default_model_path(), engine=engine).keep_inputs()
        if engine == "auto":
            # (texts given as arguments are not paths)
            paths = [*(i for i in inputs if i == "-" or input_format != "text"), *files]
            model.engine.expect(_expected_tokens(paths, input_format))

        def tagged_streams():
            for kind, items, name in streams():
                if kind == "conll":
                    yield tag_sentences(model, items, name=name, threads=threads, **options)
                else:
                    # conll and inline output show no character offsets: not computed
                    yield tag_texts(model, items, name=name, threads=threads,
                                    documents="records" if kind == "jsonl" else documents,
                                    **options, offsets=fmt in ("jsonl", "pretty"))

        _write(chain.from_iterable(tagged_streams()), fmt, scores)


# Bytes per token of each input format, at the low end (big.txt's text has 5.3, CoNLL-2003's
# column files 13; a FASTA file of 60-residue lines 1.017 per residue, a seqlabels line 2 and its
# id): _expected_tokens then errs towards fewer tokens.
_BYTES_PER_TOKEN = {"text": 6, "jsonl": 8, "conll": 14, "fasta": 1.05, "seqlabels": 2.1}


def _expected_tokens(paths: list[str], input_format: str) -> int:
    """About how many tokens the inputs that are regular files hold ('-' when stdin is one:
    ``seqtag tag < big.txt``); pipes, terminals and texts given as arguments count 0."""
    import stat

    size = 0
    for path in paths:
        try:
            if path == "-":
                fd = sys.stdin.fileno()
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    size += max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
            else:
                st = os.stat(path)
                if stat.S_ISREG(st.st_mode):
                    size += st.st_size
        except (OSError, ValueError, AttributeError):   # gone, unreadable, stdin closed
            continue
    return int(size / _BYTES_PER_TOKEN.get(input_format, 14))


def _write(results, fmt: str, scores: bool, batched: bool = False) -> None:
    """Tagged sentences (or, ``batched``, each batch's formatted text; its Tagged list for
    pretty) onto stdout."""
    from seqtag.tagging import FORMATTERS

    if fmt == "pretty":
        from rich.console import Console
        console = Console(highlight=False)
        for tagged in chain.from_iterable(results) if batched else results:
            render_pretty(tagged, console)
    elif batched:
        write = sys.stdout.write
        for text in results:
            write(text)
            # each batch as it comes: a pipe downstream sees the stream move
            sys.stdout.flush()
    else:
        write, formatter = sys.stdout.write, FORMATTERS[fmt]
        for tagged in results:
            write(formatter(tagged, scores))
    sys.stdout.flush()
