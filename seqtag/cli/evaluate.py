"""seqtag eval: conlleval-style scores of a model on a gold file, or of a file already tagged."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from seqtag.cli._app import app, default_model_path, fail, user_errors


@app.command("eval")
def evaluate_cmd(
    gold: str = typer.Argument(..., help="Gold column file ('-' for stdin)."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model",
                                              help="Model file.",
                                              show_default="the bundled model"),
    tagged: bool = typer.Option(
        False, "--tagged",
        help="The file already holds predictions as its last column (the output of "
             "'seqtag tag --input-format conll', or conlleval's input): score it, tag nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per batch."),
) -> None:
    """Token accuracy and entity precision/recall/F1 by conlleval's rules (IOB1, IOB2, IOBES)."""
    with user_errors():
        from seqtag.corpus import read_sentences
        from seqtag.metrics import evaluate, format_report, scores_to_dict

        if tagged:
            if model_path is not None:
                fail("--tagged scores the file's own predictions; drop -m or --tagged")
            sents = list(read_sentences(gold, labels="required", pred_col=-1))
            gold_labels = [s.labels for s in sents]
            predicted = [s.predicted for s in sents]
        else:
            from seqtag.model import RNNTagger
            from seqtag.tagging import tag_sentences

            model = RNNTagger.load(model_path or default_model_path())
            gold_labels: list = []
            sents = _keep(read_sentences(gold, labels="required"), gold_labels)
            predicted = [t.labels for t in tag_sentences(model, sents, batch_size)]
        scores = evaluate(gold_labels, predicted)
        if as_json:
            sys.stdout.write(json.dumps(scores_to_dict(scores), indent=2) + "\n")
        else:
            sys.stdout.write(format_report(scores) + "\n")


def _keep(sentences, gold_labels):
    """Pass sentences through, keeping their gold labels (and nothing else) on the side."""
    for s in sentences:
        gold_labels.append(s.labels)
        yield s
