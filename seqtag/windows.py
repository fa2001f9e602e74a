"""Tagging sequences of any length in bounded memory: overlapping windows, and the outputs.

A record is cut into windows of at most ``window`` residues; consecutive windows share
``overlap`` residues. Each window is tagged as a sentence of its own, and of the shared
residues the first half takes its labels from the window on the left, the second half from the
window on the right, so every residue is labelled with at least overlap/2 residues of context on
each side that the whole sequence would also have given it (except at the record's own ends).
A record of at most ``window`` residues is one window: tagged exactly as a whole. The cost is
overlap / (window - overlap) more residues to run (6.7% at the defaults, 4096 and 256).

Memory: the cutter holds one window (plus one input line) of a record at a time, and a batch
holds at most ``batch_size`` windows and ``BATCH_RESIDUES`` residues (of several short records
or of one long one), so a genome tags in the memory of a few windows, not of its length.

Output, streamed as the windows come back (a record's labels are never held whole):
``fasta`` (a ``>header`` line and the label string), ``conll`` (residue, [gold label,] label per
line; a blank line after each record) and ``bed`` (``id<TAB>start<TAB>end<TAB>label`` for each
run of a label other than the background, 0-based, end exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from seqtag.errors import SeqtagError
from seqtag.sequences import Record

WINDOW = 4096
OVERLAP = 256
# A batch's residues: with the default 256 windows a batch could hold a million residues, whose
# states and emissions would take hundreds of megabytes.
BATCH_RESIDUES = 1 << 17

OUTPUT_FORMATS = ("fasta", "conll", "bed")


def check_windows(window: int, overlap: int) -> None:
    if window < 1:
        raise SeqtagError(f"--chunk is {window}; a window holds at least one residue",
                          hint="choose --chunk 1 or more (default 4096)")
    if not 0 <= overlap < window:
        raise SeqtagError(f"--overlap is {overlap}, but it must be at least 0 and less than "
                          f"--chunk ({window})", hint="e.g. --chunk 4096 --overlap 256")


@dataclass
class Window:
    """Residues of a record to tag together; the labels of ``text[keep:stop]`` are the ones
    kept, and they start at residue ``start`` of the record."""

    record: Record
    text: str
    gold: str | None        # the gold labels of the kept residues, when the record has labels
    keep: int
    stop: int
    start: int
    first: bool
    last: bool


def cut(record: Record, window: int = WINDOW, overlap: int = OVERLAP) -> Iterator[Window]:
    """The record's windows, in order (see the module's docstring). Reads the record's pieces as
    it goes: at most ``window`` residues plus one piece are held."""
    check_windows(window, overlap)
    half = overlap // 2
    step = window - overlap
    buf, base, first = "", 0, True      # buf holds residues base, base + 1, ...
    gold = record.labels

    def make(tokens: str, keep: int, stop: int, last: bool) -> Window:
        start = base + keep
        return Window(record, tokens, None if gold is None else
                      gold[start:base + stop], keep, stop, start, first, last)

    for piece in record.residues():
        buf += piece
        while len(buf) > window:
            yield make(buf[:window], 0 if first else half, window - (overlap - half), False)
            first = False
            buf, base = buf[step:], base + step
    if buf or first:
        yield make(buf, 0 if first else half, len(buf), True)


def _batches(windows: Iterable[Window], batch_size: int, residues: int) -> Iterator[list]:
    batch, size = [], 0
    for w in windows:
        if batch and (len(batch) >= batch_size or size + len(w.text) > residues):
            yield batch
            batch, size = [], 0
        batch.append(w)
        size += len(w.text)
    if batch:
        yield batch


@dataclass
class Piece:
    """The labels of a window's kept residues, in the record's order: ``ids`` index the model's
    labels, ``labels`` is their string when every label is one character (else a list)."""

    record: Record
    start: int
    residues: str
    ids: np.ndarray
    labels: str | list[str]
    gold: str | None
    first: bool
    last: bool


def _label_strings(names: list[str]) -> Callable[[np.ndarray], str | list[str]]:
    """Label ids to labels: one bytes lookup per piece when the labels are single ASCII
    characters (per-residue labels), else a list."""
    if all(len(n) == 1 and n.isascii() for n in names):
        table = np.frombuffer("".join(names).encode("ascii"), np.uint8)
        return lambda ids: table[ids].tobytes().decode("ascii")
    return lambda ids: [names[j] for j in ids]


def tag_records(model, records: Iterable[Record], *, window: int = WINDOW,
                overlap: int = OVERLAP, batch_size: int = 256,
                batch_residues: int = BATCH_RESIDUES, threads: int | None = 1
                ) -> Iterator[Piece]:
    """Label each record's residues in windows (``cut``); yields the pieces of each record in
    order, its first piece ``first`` and its last ``last``. Windows of several records share
    batches; ``threads`` tag that many batches at once (the output is the same for any
    number: each batch is one pass, whichever thread runs it)."""
    from seqtag.threads import available_cores, ordered

    check_windows(window, overlap)
    threads = available_cores() if threads is None else threads
    windows = (w for r in records for w in cut(r, window, overlap))
    jobs = (([list(w.text) for w in batch], batch)
            for batch in _batches(windows, batch_size, batch_residues))
    if threads > 1:
        model.masks    # noqa: B018  (computed once, here, not by every thread)
        jobs = ((job, model.prepare(job[0])) for job in jobs)

    def analyse(item):
        (tokens, _), prepared = item if threads > 1 else (item, None)
        return [r["labels"] for r in model.analyse(tokens, False, prepared=prepared)]

    strings = _label_strings(list(model.labels))
    for item, results in ordered(analyse, jobs, threads):
        batch = (item[0] if threads > 1 else item)[1]
        for w, ids in zip(batch, results):
            kept = np.asarray(ids[w.keep:w.stop])
            yield Piece(w.record, w.start, w.text[w.keep:w.stop], kept, strings(kept), w.gold,
                        w.first, w.last)


def tag_strings(model, sequences: Iterable[str], **options) -> Iterator[str | list[str]]:
    """The labels of each sequence (a string of residues) in order: a string of one-character
    labels (a list for a model with longer labels); ``options`` as for tag_records."""
    records = (Record(str(i), str(i), 0, "<sequences>", seq=s) for i, s in enumerate(sequences))
    parts: list = []
    for p in tag_records(model, records, **options):
        parts.append(p.labels)
        if p.last:
            yield "".join(parts) if isinstance(parts[0], str) else \
                [lab for part in parts for lab in part]
            parts = []


def background_label(model) -> str:
    """The label BED leaves out by default: the most frequent label of the training data."""
    counts = model.vocab.label_counts
    return model.labels[int(counts.argmax())] if len(counts) else model.labels[0]


def write_fasta(pieces: Iterable[Piece], write: Callable[[str], object]) -> None:
    """``>header`` then the record's label string on one line."""
    for p in pieces:
        if p.first:
            write(f">{p.record.header}\n")
        write("".join(p.labels) + ("\n" if p.last else ""))


def write_conll(pieces: Iterable[Piece], write: Callable[[str], object]) -> None:
    """residue TAB label per line (residue TAB gold TAB label when the input has labels, as
    `seqtag eval --tagged` reads), a blank line after each record."""
    for p in pieces:
        if p.gold is not None:
            write("".join(f"{r}\t{g}\t{lab}\n"
                          for r, g, lab in zip(p.residues, p.gold, p.labels)))
        else:
            write("".join(f"{r}\t{lab}\n" for r, lab in zip(p.residues, p.labels)))
        if p.last:
            write("\n")


def write_bed(pieces: Iterable[Piece], write: Callable[[str], object],
              background: str) -> None:
    """One ``id start end label`` line per run of a label other than ``background`` (0-based,
    end exclusive: BED's convention); a run that crosses a window boundary is one line."""
    run_label, run_start, pos = None, 0, 0
    for p in pieces:
        if p.first:
            run_label, run_start, pos = None, 0, 0
        ids = p.ids
        # where a new run begins in this piece (its first residue, if it differs from the run
        # carried over from the piece before)
        starts = np.flatnonzero(np.diff(ids)) + 1
        labels = p.labels
        if len(ids) and labels[0] != run_label:
            starts = np.concatenate(([0], starts))
        lines = []
        for i in starts.tolist():
            if run_label is not None and run_label != background:
                lines.append(f"{p.record.id}\t{run_start}\t{pos + i}\t{run_label}\n")
            run_label, run_start = labels[i], pos + i
        pos += len(ids)
        if p.last and run_label is not None and run_label != background:
            lines.append(f"{p.record.id}\t{run_start}\t{pos}\t{run_label}\n")
        if lines:
            write("".join(lines))
