"""seqtag eval: conlleval-style scores of a model on a gold file, or of a file already tagged."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from seqtag.cli._app import app, default_model_path, err, fail, user_errors
from seqtag.textfile import open_input
from seqtag.errors import SeqtagError


@app.command("eval")
def evaluate_cmd(
    gold: str = typer.Argument(..., help="Gold column file, or sequences with "
                                         "--input-format ('-' for stdin)."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model",
                                              help="Model file.",
                                              show_default="the bundled model"),
    tagged: bool = typer.Option(
        False, "--tagged",
        help="The file already holds predictions as its last column (the output of "
             "'seqtag tag --input-format conll', or conlleval's input): score it, tag nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", metavar="FILE.png",
        help="Write reliability diagrams (token, non-O token, entity) to this image "
             "(needs matplotlib: pip install 'seqtag[plot]')."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per batch."),
    engine: str = typer.Option(
        "auto", "--engine",
        help="Inference engine: numpy (no compilation: short inputs), numba (compiled kernels: "
             "long ones) or auto (NumPy for short inputs and until Numba's kernels are "
             "compiled, which a background process then does once)."),
    input_format: str = typer.Option(
        "auto", "--input-format",
        help="auto (a column file), fasta (sequences, with --labels) or seqlabels (one "
             "sequence<TAB>labels line per record); sequences also get per-residue accuracy."),
    labels_path: Optional[str] = typer.Option(
        None, "--labels", metavar="FILE",
        help="With --input-format fasta: the FASTA of gold label strings (the same ids)."),
    window: int = typer.Option(4096, "--chunk", min=1,
                               help="Sequences: residues tagged together (as for tag)."),
    overlap: int = typer.Option(256, "--overlap", min=0,
                                help="Sequences: residues shared by consecutive windows."),
) -> None:
    """Token accuracy and entity precision/recall/F1 by conlleval's rules (IOB1, IOB2, IOBES);
    for sequences also per-residue accuracy (Q3) and each label's recall and precision."""
    with user_errors():
        if input_format in ("fasta", "seqlabels") or labels_path is not None:
            from seqtag.cli._sequences import evaluate_sequences

            if input_format not in ("fasta", "seqlabels"):
                fail("--labels goes with --input-format fasta")
            if plot is not None:
                fail("--plot is for column files; sequences get per-residue accuracy (drop it)")
            return evaluate_sequences(gold, labels_path, input_format, model_path, tagged,
                                      as_json, batch_size, engine, window, overlap)
        if input_format != "auto":
            fail(f"unknown --input-format {input_format!r} (use auto, fasta or seqlabels)")
        from seqtag.corpus import read_sentences
        from seqtag.metrics import evaluate, format_report, scores_to_dict

        if tagged and model_path is not None:
            fail("--tagged scores the file's own predictions; drop -m or --tagged")
        if tagged and plot is not None:
            fail("--plot needs the model's probabilities; --tagged has none (drop one)")
        if plot is not None:
            _check_plot(plot)
        from seqtag.engines import check_engine

        check_engine(engine)
        name = "<stdin>" if gold == "-" else gold
        with open_input(gold, name) as stream:
            head = _Head(stream, name)
            sents = _first_checked(
                read_sentences(head, labels="auto", pred_col=-1 if tagged else None),
                head, tagged)
            model = calibration = None
            if tagged:
                sents = list(sents)
                gold_labels = [s.labels for s in sents]
                predicted = [s.predicted for s in sents]
                scores = evaluate(gold_labels, predicted)
            else:
                from seqtag.model import RNNTagger
                from seqtag.tagging import evaluate_model

                model = RNNTagger.load(model_path or default_model_path(), engine=engine)
                scores, calibration, gold_labels, predicted = evaluate_model(
                    model, sents, batch_size, name=name)
        if model is not None:
            seen = {lab for labels in gold_labels for lab in labels}
            if seen and not seen & set(model.labels):
                # Not an error: a model may be scored on another tag set (accuracy 0), but
                # usually the file's last column is not its gold label.
                err.print(f"note: no gold label of {name} is a label of the model (gold: "
                          f"{_some(seen)}; model: {_some(model.labels)}); the gold label is the "
                          "last column", markup=False)
        if as_json:
            out = scores_to_dict(scores)
            if calibration is not None:
                out["calibration"] = calibration.as_json()
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
        else:
            sys.stdout.write(format_report(scores) + "\n")
            if calibration is not None:
                sys.stdout.write("\n".join(_calibration_lines(calibration,
                                                              sys.stdout.isatty())) + "\n")
        if plot is not None:
            _write_plot(calibration, plot)


def _calibration_lines(c, diagram: bool) -> list[str]:
    from seqtag.calibration import text_diagram

    lines = [f"calibration (ECE, 15 bins; temperature {c.temperature:.3g}): "
             f"token {100 * c.token_ece:.2f}% of {c.tokens:,}; "
             f"non-O token {100 * c.nono_token_ece:.2f}% of {c.nono_tokens:,}"]
    if c.entity_recall_above_half is not None:
        lines[0] += (f"; entity {100 * c.entity_ece:.2f}% of {c.entities:,} "
                     f"(recall of entities above 0.5: {100 * c.entity_recall_above_half:.2f}%)")
    if diagram:
        for key, title in (("token", "tokens"), ("nono_token", "non-O tokens"),
                           ("entity", "entities")):
            rows = text_diagram(c.tables[key])
            if rows:
                lines += [f"reliability, {title} (# accuracy, | confidence):", *rows]
    return lines


def _check_plot(path: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SeqtagError("--plot needs matplotlib, which is not installed",
                          hint="pip install 'seqtag[plot]'") from None
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise SeqtagError(f"--plot writes .png, .svg or .pdf, not {path.name!r}",
                          hint="name the file FILE.png")
    from seqtag.atomic import check_target

    check_target(path)      # refused now, not after scoring


def _write_plot(c, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqtag.atomic import write_bytes_atomic

    panels = [("token", "tokens", c.token_ece), ("nono_token", "non-O tokens", c.nono_token_ece)]
    if c.entities:
        panels.append(("entity", "entities", c.entity_ece))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (key, title, value) in zip(axes[0], panels):
        table = [b for b in c.tables[key] if b["count"]]
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        ax.bar([b["lo"] for b in table], [b["accuracy"] for b in table], width=1 / 15,
               align="edge", edgecolor="black", label="accuracy")
        ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], "o",
                color="red", ms=3, label="(confidence, accuracy)")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
               title=f"{title}: ECE {100 * value:.2f}%")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"temperature {c.temperature:.3g}")
    fig.tight_layout()
    write_bytes_atomic(path, writer=lambda f: fig.savefig(f, format=path.suffix.lower()[1:]))
    plt.close(fig)


def _some(labels, n: int = 5) -> str:
    labels = sorted(labels)
    return ", ".join(labels[:n]) + (", ..." if len(labels) > n else "")


class _Head:
    """A binary stream that keeps its first bytes, to tell what went wrong with the input. It
    is read in bounded chunks (read1), as the corpus reader reads files: a device or a file
    without line ends never becomes one unbounded line."""

    KEEP = 1 << 16

    def __init__(self, stream, name: str):
        self.stream, self.name, self.head = stream, name, bytearray()
        self._read = getattr(stream, "read1", None) or stream.read

    def read1(self, n: int = -1) -> bytes:
        chunk = self._read(n)
        if len(self.head) < self.KEEP:
            self.head += chunk[:self.KEEP - len(self.head)]
        return chunk

    def lines(self, more: bool = False) -> list[bytes]:
        """The first lines kept (with ``more``, after reading up to KEEP bytes further)."""
        if more:
            while len(self.head) < self.KEEP and self.read1(self.KEEP):
                pass
        return bytes(self.head).splitlines(keepends=True)[:120]


def _first_checked(sentences, head: _Head, tagged: bool):
    """The sentences; a first sentence that shows the input is not what eval scores becomes an
    error that says what the input is and what to do."""
    from seqtag.corpus import split_columns

    first = True
    try:
        for s in sentences:
            if first:
                first = False
                ncols = len(split_columns(s.lines[0]))
                if tagged and (s.labels is None or ncols < 3):
                    raise _tagged_error(head.name, s.line_no, ncols)
                if s.labels is None:
                    raise SeqtagError(
                        "has no gold label column (one token per line and nothing else)",
                        path=head.name, line=s.line_no,
                        hint="eval needs token<TAB>gold label lines; to only tag it use "
                             f"seqtag tag --input-format conll {_quote(head.name)}")
            yield s
    except SeqtagError as e:
        if not first or e.line is None or e.path != head.name:
            raise
        # Failing anyway: a few more lines make the diagnosis surer.
        try:
            raws = head.lines(more=True)
        except OSError:
            raise e from None    # the file cannot be read further: the reader's message says so
        try:
            lines = [raw.decode("utf-8").rstrip("\r\n") for raw in raws]
        except UnicodeDecodeError:
            lines = None
        if lines is None or any("\0" in line for line in lines):
            raise  # not text at all (a bad byte, a binary file): the reader's message says so
        text = _plain_text(lines)
        if text is not None:
            raise SeqtagError(
                f"looks like plain text, not a column file (line {text[0]} has {text[1]} words, "
                f"line {text[2]} has {text[3]})", path=head.name, line=e.line,
                hint="eval scores one token per line with its gold label"
                     + (" and the prediction" if tagged else "") + " as the last column"
                     + ("s" if tagged else "")
                     + f"; to tag text use seqtag tag -i {_quote(head.name)}") from None
        token_lines = [t for t in lines if t.strip()]
        if tagged and token_lines and len(split_columns(token_lines[0])) < 3:
            raise _tagged_error(head.name, e.line, len(split_columns(token_lines[0]))) from None
        raise


def _plain_text(lines: list[str]):
    """(line a, its words, line b, its words) if these lines read as running text, else None:
    no TAB, and the lines' numbers of words vary (in a column file with one ragged line, most
    lines still agree)."""
    counts = [(no, len(text.split())) for no, text in enumerate(lines, 1) if text.strip()]
    if not counts or any("\t" in text for text in lines):
        return None
    most = max(sum(n == m for _, m in counts) for _, n in counts)
    differ = next(((a, b) for a, b in zip(counts, counts[1:]) if a[1] != b[1]), None)
    if differ is None or most >= 0.8 * len(counts):
        return None
    return (*differ[0], *differ[1])


def _tagged_error(name: str, line: int, ncols: int) -> SeqtagError:
    return SeqtagError(
        f"--tagged needs a gold label and a predicted label after the token (3 columns or "
        f"more), but the line has {ncols}", path=name, line=line,
        hint="to tag a gold file and score it: seqtag eval FILE -m MODEL; or append "
             "predictions: seqtag tag --input-format conll FILE | seqtag eval --tagged -")


def _quote(name: str) -> str:
    import shlex

    return "-" if name == "<stdin>" else shlex.quote(name)
