"""Reading biological sequences as they are distributed: FASTA, and labelled records.

Two input formats, always named by the caller (``--input-format``), never guessed: letters such
as H, E and C are both residues and labels, so content cannot tell a sequence from its labels.

- ``fasta``: ``>header`` lines, each followed by sequence lines (wrapped or not; blank lines
  are skipped). A record's id is the header's first word, as in every FASTA tool. Labels come
  from a second FASTA file (``labels=``, FLIP style): the same ids in the same order, each label
  string exactly as long as its sequence.
- ``seqlabels``: one record per line, ``sequence<TAB>labels`` or ``id<TAB>sequence<TAB>labels``
  (a line of one column, ``sequence``, is a record without labels, for tagging). Without an id
  column, the record's id is its line number.

Each residue is one token with one label (a single character: H/E/C, ``_``/``h``/``e``, ...).
Residues are ASCII letters (IUPAC codes, ``N``, lowercase for soft-masked bases) and ``*``,
``-``, ``.``; they are kept as they are, case included, so that a model can see soft-masking
(a model trained on uppercase only sees lowercase letters as unknown: uppercase the input if
that is not wanted). Digits, spaces and anything else inside a sequence are errors naming the
file, line and column.

Streaming: ``fasta_records(..., lazy=True)`` gives each record's sequence as its lines arrive
(``Record.pieces``), so tagging a genome never holds more than one line of it here; the window
cutting of long sequences is seqtag.windows. Training and scoring read whole records
(``read_labelled``), cut into training chunks of at most ``max_length`` residues by
``training_sentences``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from seqtag.corpus import CorpusInfo, Sentence, _Digest, _display_name
from seqtag.errors import SeqtagError
from seqtag.textfile import open_input, read_lines

INPUT_FORMATS = ("fasta", "seqlabels")

_RESIDUES = re.compile(r"[A-Za-z*.\-]+")
_LABELS = re.compile(r"[^\s]+")
_TRAILING = " \t"
_RESIDUE_HINT = ("a sequence holds letters (IUPAC codes, N, lowercase for soft-masking), "
                 "'*' and '-' only")


@dataclass
class Record:
    """One sequence: its id, its header (FASTA, without '>'; else the id), where it starts, and
    its residues as a string (``seq``) or, streamed, as pieces (``pieces``)."""

    id: str
    header: str
    line_no: int
    name: str
    seq: str | None = None
    labels: str | None = None
    pieces: Iterator[str] | None = None

    def residues(self) -> Iterator[str]:
        """The sequence in pieces (one piece when it was read whole)."""
        if self.seq is not None:
            yield self.seq
        elif self.pieces is not None:
            yield from self.pieces


def check_format(fmt: str) -> None:
    if fmt not in INPUT_FORMATS:
        raise SeqtagError(f"unknown sequence input format {fmt!r}",
                          hint="use " + " or ".join(INPUT_FORMATS))


def _check_residues(text: str, name: str, no: int, column: int = 0) -> str:
    if not _RESIDUES.fullmatch(text):
        at = next((i for i, c in enumerate(text)
                   if not _RESIDUES.fullmatch(c)), 0) if text else 0
        what = f"character {text[at]!r}" if text else "an empty sequence"
        raise SeqtagError(f"{what} at column {column + at + 1} is not a residue",
                          path=name, line=no, hint=_RESIDUE_HINT)
    return text


def _check_labels(text: str, name: str, no: int, column: int = 0) -> str:
    if not _LABELS.fullmatch(text):
        at = next((i for i, c in enumerate(text) if c.isspace()), 0) if text else 0
        what = f"whitespace ({text[at]!r})" if text else "an empty label string"
        raise SeqtagError(f"{what} at column {column + at + 1} in a label string", path=name,
                          line=no, hint="a label string has one non-space character per "
                                        "residue, e.g. CCHHHHEEC")
    return text


# -- FASTA ---------------------------------------------------------------------------------

def fasta_records(source, *, name: str | None = None, lazy: bool = False,
                  what: str = "sequence") -> Iterator[Record]:
    """The records of a FASTA file (a path, ``"-"`` for stdin, or a binary file object; ``.gz``
    read transparently). With ``lazy``, each record's sequence comes as ``pieces`` (its lines,
    read as they are taken; a record's pieces must be taken before the next record); else as one
    string in ``seq``. ``what``: "sequence", or "label" for a FASTA of label strings (any
    non-space characters)."""
    name = _display_name(source, name)
    return _fasta(source, name, lazy, what)


def _fasta(source, name: str, lazy: bool, what: str) -> Iterator[Record]:
    check = _check_residues if what == "sequence" else _check_labels
    with open_input(source, name) as stream:
        lines = read_lines(stream, name)
        pending: list[tuple[int, str]] = []      # the next header, found by a record's pieces
        any_record = False

        def body(header_no: int, header: str) -> Iterator[str]:
            empty = True
            for no, text in lines:
                if text.startswith(">"):
                    pending.append((no, text))
                    break
                text = text.rstrip(_TRAILING)
                if not text:
                    continue
                empty = False
                yield check(text, name, no)
            if empty:
                rid = header.split(None, 1)[0] if header.strip() else ""
                raise SeqtagError(f"record {rid!r} has no {what}", path=name, line=header_no,
                                  hint=f"give each '>' header its {what} lines, or remove it")

        for no, text in lines:
            if text.startswith(">"):
                pending.append((no, text))
                break
            if text.strip(_TRAILING):
                raise SeqtagError("a sequence line comes before any '>' header", path=name,
                                  line=no, hint="FASTA records start with a '>id' line; for "
                                                "one record per line use --input-format "
                                                "seqlabels")
        while pending:
            no, text = pending.pop()
            header = text[1:].strip()
            if not header:
                raise SeqtagError("a '>' header without an id", path=name, line=no,
                                  hint="write an id after the '>', e.g. >seq1")
            any_record = True
            record = Record(header.split(None, 1)[0], header, no, name)
            pieces = body(no, header)
            if lazy:
                record.pieces = pieces
                yield record
                for _ in pieces:         # what the caller left of this record
                    pass
            else:
                record.seq = "".join(pieces)
                yield record
        if not any_record:
            raise SeqtagError("holds no FASTA record", path=name,
                              hint="FASTA records start with a '>id' line")


# -- seqlabels -----------------------------------------------------------------------------

def seqlabels_records(source, *, name: str | None = None,
                      labels: str = "required") -> Iterator[Record]:
    """The records of a one-record-per-line file: ``sequence<TAB>labels``,
    ``id<TAB>sequence<TAB>labels``, or (with ``labels="optional"``) ``sequence`` alone. Blank
    lines are skipped."""
    name = _display_name(source, name)
    return _seqlabels(source, name, labels)


def _seqlabels(source, name: str, labels: str) -> Iterator[Record]:
    count = 0
    with open_input(source, name) as stream:
        for no, text in read_lines(stream, name):
            if not text.strip(" \t"):
                continue
            cols = text.rstrip(" ").split("\t")
            if len(cols) > 3:
                raise SeqtagError(f"has {len(cols)} TAB-separated columns", path=name, line=no,
                                  hint="a seqlabels line is sequence<TAB>labels or "
                                       "id<TAB>sequence<TAB>labels")
            if len(cols) == 1 and labels == "required":
                raise SeqtagError("has a sequence but no labels (no TAB)", path=name, line=no,
                                  hint="write sequence<TAB>labels, each label string as long "
                                       "as its sequence")
            rid = cols[0] if len(cols) == 3 else str(no)
            if len(cols) == 3 and not rid.strip():
                raise SeqtagError("has an empty id column", path=name, line=no,
                                  hint="write id<TAB>sequence<TAB>labels, or drop the id")
            seq_col = 1 if len(cols) == 3 else 0
            column = sum(len(c) + 1 for c in cols[:seq_col])
            seq = _check_residues(cols[seq_col], name, no, column)
            labs = None
            if len(cols) >= 2:
                labs = _check_labels(cols[seq_col + 1], name, no, column + len(seq) + 1)
                _check_lengths(rid, len(seq), len(labs), name, no)
            count += 1
            yield Record(rid, rid, no, name, seq=seq, labels=labs)
    if count == 0:
        raise SeqtagError("holds no record", path=name,
                          hint="write one sequence<TAB>labels line per record")


def _check_lengths(rid: str, n_seq: int, n_labels: int, name: str, no: int) -> None:
    if n_seq != n_labels:
        raise SeqtagError(f"record {rid!r} has {n_seq:,} residues but {n_labels:,} labels",
                          path=name, line=no,
                          hint="each label string must be exactly as long as its sequence, one "
                               "label character per residue")


# -- labelled records ----------------------------------------------------------------------

def read_records(source, fmt: str, *, labels_source=None, name: str | None = None,
                 labels_name: str | None = None, need_labels: bool = True,
                 lazy: bool = False) -> Iterator[Record]:
    """The records of ``source`` in format ``fmt`` ("fasta" or "seqlabels"), with their labels
    when given: for FASTA from ``labels_source`` (a FASTA of label strings, the same ids in the
    same order). ``need_labels``: a record without labels is an error (training, scoring).
    ``lazy`` (FASTA without labels only): sequences are streamed as pieces."""
    check_format(fmt)
    if fmt == "seqlabels":
        if labels_source is not None:
            raise SeqtagError("--labels goes with --input-format fasta; a seqlabels line holds "
                              "its labels after a TAB", hint="drop --labels")
        return seqlabels_records(source, name=name,
                                 labels="required" if need_labels else "optional")
    if labels_source is None:
        if need_labels:
            raise SeqtagError("FASTA sequences need their labels for this command",
                              path=_display_name(source, name),
                              hint="give --labels LABELS.fasta (the same ids, one label per "
                                   "residue), or use --input-format seqlabels")
        return fasta_records(source, name=name, lazy=lazy)
    return _paired(fasta_records(source, name=name),
                   fasta_records(labels_source, name=labels_name, what="label"))


def _paired(seqs: Iterator[Record], labs: Iterator[Record]) -> Iterator[Record]:
    done = object()
    while True:
        s, lab = next(seqs, done), next(labs, done)
        if s is done and lab is done:
            return
        if s is done:
            raise SeqtagError(f"has a label record {lab.id!r} beyond the last sequence",
                              path=lab.name, line=lab.line_no,
                              hint="give one label record per sequence, in the same order")
        if lab is done:
            raise SeqtagError(f"sequence record {s.id!r} has no label record (the labels file "
                              f"ends before it)", path=s.name, line=s.line_no,
                              hint="give one label record per sequence, in the same order")
        if s.id != lab.id:
            raise SeqtagError(f"label record {lab.id!r} where the labels of sequence {s.id!r} "
                              f"({s.name} line {s.line_no}) were expected", path=lab.name,
                              line=lab.line_no,
                              hint="the labels file needs the same ids in the same order as "
                                   "the sequences")
        _check_lengths(s.id, len(s.seq), len(lab.seq), lab.name, lab.line_no)
        s.labels = lab.seq
        yield s


def chunks(record: Record, max_length: int) -> Iterator[Sentence]:
    """The record as training sentences of at most ``max_length`` residues: a long record is
    cut into consecutive chunks, each trained from a zero state (truncated BPTT at the chunk
    boundaries), so that a batch holds at most batch size × max_length residues."""
    seq, labs = record.seq, record.labels
    for start in range(0, len(seq), max_length):
        tokens = list(seq[start:start + max_length])
        yield Sentence(tokens, list(labs[start:start + max_length]) if labs else None, tokens,
                       record.line_no, residues=True)


def read_labelled(source, fmt: str, *, labels_source=None, max_length: int | None = None,
                  need_labels: bool = True) -> tuple[list[Sentence], CorpusInfo]:
    """Training (or scoring) sentences of a sequence file: each record one sentence, or with
    ``max_length`` cut into chunks (``chunks``); with counts and the sha256 of the bytes of both
    files read (the sequences', then the labels')."""
    name = _display_name(source, None)
    digest = _Digest()
    records = list(read_records(_Digested(source, name, digest), fmt,
                                labels_source=None if labels_source is None else
                                _Digested(labels_source, _display_name(labels_source, None),
                                          digest), name=name,
                                labels_name=None if labels_source is None else
                                _display_name(labels_source, None),
                                need_labels=need_labels))
    limit = max_length or max((len(r.seq) for r in records), default=1) or 1
    sentences = [s for r in records for s in chunks(r, limit)]
    info = CorpusInfo(name=name, sentences=len(records), tokens=sum(len(r.seq) for r in records),
                      sha256=digest.sha.hexdigest(), bytes=digest.bytes)
    return sentences, info


class _Digested:
    """A source whose bytes, when opened, also go to ``digest``: a binary stream that the
    readers take as a file object (open_input then leaves it to us to close)."""

    def __init__(self, source, name: str, digest: _Digest):
        self.source, self.name, self.digest = source, name, digest

    def read1(self, n: int = -1) -> bytes:
        if not hasattr(self, "_stream"):
            self._context = open_input(self.source, self.name)
            self._stream = self._context.__enter__()
            self._read = getattr(self._stream, "read1", None) or self._stream.read
        chunk = self._read(n)
        if chunk:
            self.digest.update(chunk)
        else:
            self._context.__exit__(None, None, None)
        return chunk


def records_as_sentences(records: Iterable[Record]) -> Iterator[Sentence]:
    """Whole records as sentences (one token per residue), for scoring."""
    for r in records:
        tokens = list(r.seq)
        yield Sentence(tokens, list(r.labels) if r.labels is not None else None, tokens,
                       r.line_no, residues=True)
