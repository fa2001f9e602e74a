"""The sequence inputs of tag, train and eval (--input-format fasta|seqlabels): their checks,
reading and output, kept apart so the commands only branch here."""

from __future__ import annotations

import sys
from pathlib import Path

from seqtag.cli._app import default_model_path, err, fail

SEQUENCE_FORMATS = ("fasta", "seqlabels")


def check_labels_option(input_format: str, labels, option: str = "--labels") -> None:
    if labels and input_format != "fasta":
        fail(f"{option} goes with --input-format fasta (a FASTA of label strings beside the "
             f"FASTA of sequences); seqlabels lines hold their labels after a TAB")


def tag_sequences(inputs: list[str], files: list[str], model_path: Path | None,
                  fmt: str | None, input_format: str, labels_path: str | None, window: int,
                  overlap: int, background: str | None, batch_size: int, scores: bool,
                  nbest: int, engine: str, threads: int | None) -> None:
    from seqtag.windows import (OUTPUT_FORMATS, background_label, check_windows, tag_records,
                                write_bed, write_conll, write_fasta)
    from seqtag.sequences import read_records

    if input_format not in SEQUENCE_FORMATS:
        fail(f"--labels goes with --input-format fasta, not {input_format}")
    check_labels_option(input_format, labels_path)
    fmt = fmt or "fasta"
    if fmt not in OUTPUT_FORMATS:
        fail(f"-f {fmt} is not an output for sequences (use fasta, conll or bed)")
    if scores or nbest > 1:
        fail(f"{'--scores' if scores else '--nbest'} is for text and column input; sequences "
             "get their best labels (drop it)")
    if background is not None and fmt != "bed":
        fail("--background goes with -f bed")
    check_windows(window, overlap)
    paths = [*inputs, *files] or ["-"]
    if labels_path is not None and len(paths) != 1:
        fail("--labels gives the labels of one FASTA file; give one input with it")
    from seqtag.engines import check_engine

    check_engine(engine)
    from seqtag.model import RNNTagger

    model = RNNTagger.load(model_path or default_model_path(), engine=engine)
    if engine == "auto":
        from seqtag.cli.tag import _expected_tokens

        # a long record takes Numba from its first window, not after SWITCH_TOKENS residues
        model.engine.expect(_expected_tokens(paths, input_format))
    if background is not None and background not in model.labels:
        fail(f"--background {background!r} is not a label of the model (its labels: "
             f"{', '.join(model.labels)})")
    background = background if background is not None else background_label(model)

    def records():
        for path in paths:
            yield from read_records(path, input_format, labels_source=labels_path,
                                    need_labels=False, lazy=labels_path is None)

    pieces = tag_records(model, records(), window=window, overlap=overlap,
                         batch_size=batch_size, threads=threads)
    write = sys.stdout.write
    if fmt == "bed":
        write_bed(pieces, write, background)
    elif fmt == "conll":
        write_conll(pieces, write)
    else:
        write_fasta(pieces, write)
    sys.stdout.flush()


def read_training(paths: list[str], labels: list[str] | None, input_format: str,
                  max_length: int, option: str = "--labels"):
    """(sentences, infos, files) of training (or dev) sequence files, as the train command
    gathers them from column files."""
    from seqtag.sequences import read_labelled

    check_labels_option(input_format, labels, option)
    labels = labels or []
    if input_format == "fasta" and len(labels) != len(paths):
        fail(f"--input-format fasta needs one {option} FILE per sequence file, in the same order "
             f"({len(paths)} sequence file{'s' if len(paths) != 1 else ''}, {len(labels)} "
             f"{option})")
    sentences, infos, files = [], [], []
    for i, path in enumerate(paths):
        sents, info = read_labelled(path, input_format,
                                    labels_source=labels[i] if labels else None,
                                    max_length=max_length)
        sentences += sents
        infos.append(info)
        files.append((info.name, sents))
    return sentences, infos, files


def residue_report(gold: list, predicted: list) -> dict:
    """Per-residue accuracy (Q3 for three labels) and each label's recall and precision."""
    from collections import Counter

    n = correct = 0
    gold_n, pred_n, hit = Counter(), Counter(), Counter()
    for g, p in zip(gold, predicted):
        for a, b in zip(g, p):
            n += 1
            gold_n[a] += 1
            pred_n[b] += 1
            if a == b:
                correct += 1
                hit[a] += 1
    per_label = {}
    for lab in sorted(gold_n.keys() | pred_n.keys()):
        per_label[lab] = {"gold": gold_n[lab], "predicted": pred_n[lab], "correct": hit[lab],
                          "recall": hit[lab] / gold_n[lab] if gold_n[lab] else 0.0,
                          "precision": hit[lab] / pred_n[lab] if pred_n[lab] else 0.0}
    return {"records": len(gold), "residues": n, "correct": correct,
            "accuracy": correct / n if n else 0.0, "labels": len(gold_n), "per_label": per_label}


def format_residue_report(r: dict) -> str:
    q = f"Q{r['labels']}" if r["labels"] else "Q"
    lines = [f"residues: {r['residues']:,} in {r['records']:,} records; per-residue accuracy "
             f"({q}): {100 * r['accuracy']:6.2f}%"]
    for lab, s in r["per_label"].items():
        lines.append(f"{lab:>17}: recall: {100 * s['recall']:6.2f}%; precision: "
                     f"{100 * s['precision']:6.2f}%  gold {s['gold']:,}, predicted "
                     f"{s['predicted']:,}")
    return "\n".join(lines)


def evaluate_sequences(gold: str, labels_path: str | None, input_format: str,
                       model_path: Path | None, tagged: bool, as_json: bool, batch_size: int,
                       engine: str, window: int, overlap: int) -> None:
    import json

    from seqtag.metrics import evaluate, format_report, scores_to_dict
    from seqtag.sequences import read_records
    from seqtag.windows import check_windows, tag_records

    check_labels_option(input_format, labels_path)
    if tagged:
        fail("--tagged reads column files; to score sequences give the gold file and -m MODEL "
             "(or score tag -f conll output: seqtag eval --tagged on its columns)")
    check_windows(window, overlap)
    from seqtag.engines import check_engine

    check_engine(engine)
    from seqtag.model import RNNTagger

    model = RNNTagger.load(model_path or default_model_path(), engine=engine)
    # Label strings, one character a residue (a list only for a model with longer labels):
    # a residue costs a byte here, not a list entry.
    gold_labels: list[str] = []
    predicted: list = []
    parts: list = []

    def records():
        for r in read_records(gold, input_format, labels_source=labels_path):
            gold_labels.append(r.labels)
            yield r

    for piece in tag_records(model, records(), window=window, overlap=overlap,
                             batch_size=batch_size):
        parts.append(piece.labels)
        if piece.last:
            predicted.append("".join(parts) if isinstance(parts[0], str) else
                             [lab for part in parts for lab in part])
            parts = []
    seen = {lab for labels in gold_labels for lab in labels}
    if seen and not seen & set(model.labels):
        err.print(f"note: no gold label of {gold} is a label of the model (gold: "
                  f"{', '.join(sorted(seen)[:5])}; model: {', '.join(model.labels[:5])})",
                  markup=False)
    scores = evaluate(gold_labels, predicted)
    residues = residue_report(gold_labels, predicted)
    if as_json:
        sys.stdout.write(json.dumps({**scores_to_dict(scores), "residues": residues},
                                    indent=2) + "\n")
    else:
        sys.stdout.write(format_report(scores) + "\n" + format_residue_report(residues) + "\n")
