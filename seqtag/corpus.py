"""Reading labeled (or unlabeled) token-per-line corpora: CoNLL, CoNLL-U and indexed (UNER .iob2).

Everything streams: ``read_sentences`` is a generator that yields each sentence as soon as its
ending blank line has been read, so ``seqtag tag`` can sit on an endless pipe. Every problem a user
can fix becomes a ``SeqtagError`` naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import chain
from typing import Iterator

from seqtag.errors import SeqtagError
from seqtag.schemes import split_label
from seqtag.textfile import open_input, read_lines

FORMATS = ("auto", "conll", "conllu", "indexed")
LABEL_MODES = ("auto", "required", "none")

# ASCII whitespace only: str.split() would also split on NBSP and other Unicode spaces, which
# occur inside real tokens (tweets, web text) and would silently shift the columns.
_BLANK = " \t\r\f\v"
_SPACES = re.compile(r"[ \f\v\r]+")
# "# key = value", "# newdoc", "# newpar" without a TAB: the CoNLL-U comment shapes. "#word<TAB>O"
# is not one: BTC-style files start lines with hashtag tokens.
_CONLLU_COMMENT = re.compile(r"# (?:newdoc|newpar)\b[^\t]*$|# [^\t=]+=[^\t]*$")
_NEWDOC = re.compile(r"# newdoc\b[^\t]*$")


@dataclass
class Sentence:
    tokens: list[str]
    labels: list[str] | None
    lines: list[str]
    line_no: int
    predicted: list[str] | None = None   # with pred_col: a column of predicted labels
    # One token per residue of a biological sequence (seqtag.sequences): its labels are
    # per-residue classes, never chunk tags, even when they are letters such as B, I, E or S.
    residues: bool = False
    # The document it belongs to (counted from 0 in its file: CoNLL's -DOCSTART- lines, CoNLL-U's
    # "# newdoc"), or None before any boundary: seqtag.documents gives it its document context.
    document: int | None = None
    # The lines read since the previous sentence that are neither tokens nor blank (CoNLL's
    # -DOCSTART- lines, CoNLL-U's comments), in order, or None: `tag` writes them back.
    before: list[str] | None = None


@dataclass
class CorpusInfo:
    name: str
    sentences: int
    tokens: int
    sha256: str
    bytes: int


class _Digest:
    def __init__(self) -> None:
        import hashlib      # 4 ms, for training's corpus records only

        self.sha = hashlib.sha256()
        self.bytes = 0

    def update(self, raw: bytes) -> None:
        self.sha.update(raw)
        self.bytes += len(raw)


def _display_name(source, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else str(source)
    given = getattr(source, "name", None)
    return given if isinstance(given, str) else "<stream>"


def check_label(label: str, what: str, name: str, no: int) -> str:
    """``label`` if the tag schemes can read it; an empty one or a chunk prefix without a type
    ("B-") is an error, since it would silently train (or score) as a label of its own."""
    if not label:
        raise SeqtagError(f"empty {what}", path=name, line=no,
                          hint=f"give every token line a {what}, e.g. O or B-PER")
    prefix, type_ = split_label(label)
    if prefix in ("B", "I", "E", "S") and not type_ and label.endswith("-"):
        raise SeqtagError(f"{what} {label!r} has a chunk prefix but no type after the '-'",
                          path=name, line=no, hint=f"write e.g. {label}PER, or {label[:-1]} "
                                                   "for chunks without types")
    return label


def split_columns(text: str) -> list[str]:
    """A token line's columns: TAB-separated when it has a TAB, else runs of spaces."""
    return text.split("\t") if "\t" in text else _SPACES.split(text.strip(_BLANK))


def _sniff(lines: Iterator[tuple[int, str]], extra: int = 0) -> tuple[str, list[tuple[int, str]]]:
    """Guess the format from the first lines; returns it with the lines consumed for the guess."""
    seen: list[tuple[int, str]] = []
    after_comment = False
    for item in lines:
        seen.append(item)
        text = item[1]
        if not text.strip(_BLANK):
            continue
        if after_comment and text.startswith("#"):
            continue
        if not after_comment and _CONLLU_COMMENT.match(text):
            after_comment = True
            continue
        cols = text.split("\t")
        if after_comment or (cols[0] == "1" and len(cols) >= 3):
            return ("conllu" if len(cols) - extra == 10 else "indexed"), seen
        return "conll", seen
    return ("conllu" if after_comment else "conll"), seen


def _column(cols: list[str], index: int, what: str, name: str, no: int) -> str:
    if -len(cols) <= index < len(cols):
        return cols[index]
    raise SeqtagError(f"has no column {index} for the {what} (the line has {len(cols)} columns)",
                      path=name, line=no,
                      hint=f"columns count from 0 (-1 is the last); check the {what} column setting")


def _check_settings(fmt: str, labels: str) -> None:
    if fmt not in FORMATS:
        raise SeqtagError(f"unknown corpus format {fmt!r}", hint="use one of " + ", ".join(FORMATS))
    if labels not in LABEL_MODES:
        raise SeqtagError(f"unknown labels mode {labels!r}",
                          hint="use one of " + ", ".join(LABEL_MODES))


def read_sentences(source, *, name: str | None = None, fmt: str = "auto",
                   token_col: int | None = None, label_col: int | None = None,
                   labels: str = "auto", pred_col: int | None = None,
                   check_labels: bool = True) -> Iterator[Sentence]:
    """Yield the sentences of ``source`` (a path, ``"-"`` for stdin, or a binary file object).

    ``pred_col``: for files that already hold predictions (``tag --input-format conll`` output,
    conlleval's input), that column is read into ``Sentence.predicted`` and set aside before the
    token and label columns are chosen, so they keep their usual places.

    ``labels``: "required" (every token line needs a label column), "none" (labels are not read,
    ``Sentence.labels`` is None) or "auto" (the file's first token line decides: labels are read if
    it has 2 or more columns, and then every line must have them).

    ``check_labels``: labels that break the tag scheme's grammar (empty, or a bare ``B-``) are
    errors; tagging, which only echoes the columns after the token, turns this off.
    """
    # Checked here, not in the generator, so a bad setting fails at the call, before any reading.
    _check_settings(fmt, labels)
    return _sentences(source, _display_name(source, name), fmt, token_col, label_col, labels, None,
                      pred_col, check_labels)


def _sentences(source, name: str, fmt: str, token_col: int | None, label_col: int | None,
               labels: str, digest: _Digest | None, pred_col: int | None = None,
               check_labels: bool = True) -> Iterator[Sentence]:
    with open_input(source, name) as stream:
        lines = read_lines(stream, name, digest)
        if fmt == "auto":
            if _display_name(source, None).endswith(".conllu"):
                fmt = "conllu"
            else:
                fmt, head = _sniff(lines, 0 if pred_col is None else 1)
                lines = chain(head, lines)
        conll = fmt == "conll"
        tcol = token_col if token_col is not None else (0 if conll else 1)
        lcol = label_col if label_col is not None else {"conll": -1, "conllu": 3, "indexed": 2}[fmt]
        want = {"required": True, "none": False}.get(labels)  # None: the first token line decides

        tokens: list[str] = []
        labs: list[str] = []
        preds: list[str] = []
        texts: list[str] = []
        start = ncols = count = 0
        any_text = False
        document: int | None = None
        before: list[str] = []
        for no, text in lines:
            ends = not text.strip(_BLANK)
            newdoc = False
            if not ends:
                any_text = True
                if not conll and text.startswith("#"):
                    newdoc = bool(_NEWDOC.match(text))
                    if not newdoc:
                        # (CoNLL-U puts comments before a sentence; one inside it is kept
                        # with those, so the sentence is not cut)
                        before.append(text)
                        continue
                    cols = []
                else:
                    cols = split_columns(text)
                # A document boundary is also a sentence boundary, even without a blank line.
                newdoc = newdoc or (conll and cols[0] == "-DOCSTART-")
                ends = newdoc
            if ends:
                if tokens:
                    yield Sentence(tokens, labs if want else None, texts, start,
                                   preds if pred_col is not None else None, document=document,
                                   before=before or None)
                    count += 1
                    tokens, labs, preds, texts, before = [], [], [], [], []
                if newdoc:
                    document = 0 if document is None else document + 1
                    before.append(text)
                continue
            if not conll and ("-" in cols[0] or "." in cols[0]):
                continue  # a multiword range or an empty node: not one of the sentence's words
            if not tokens:
                start, ncols = no, len(cols)
            elif len(cols) != ncols:
                raise SeqtagError(f"has {len(cols)} columns but its sentence has {ncols}",
                                  path=name, line=no,
                                  hint="every line of a sentence needs the same columns")
            if pred_col is not None:
                cols = list(cols)
                preds.append(check_label(
                    _column(cols, pred_col, "predicted label", name, no).strip(_BLANK),
                    "predicted label", name, no))
                del cols[pred_col]
            if want is None:
                want = len(cols) >= 2
            tokens.append(_column(cols, tcol, "token", name, no))
            texts.append(text)
            if want:
                if len(cols) < 2:
                    if labels == "required":
                        raise SeqtagError("line has only a token column; training data needs a "
                                          "label column (token<TAB>label)", path=name, line=no,
                                          hint="add the gold label after a TAB on every token line")
                    raise SeqtagError("line has only a token column, but the file's first "
                                      "sentence has labels", path=name, line=no,
                                      hint="give every line a label column, or none")
                # Stray spaces around a label would make it a different label.
                label = _column(cols, lcol, "label", name, no).strip(_BLANK)
                labs.append(check_label(label, "label", name, no) if check_labels else label)
        if tokens:
            yield Sentence(tokens, labs if want else None, texts, start,
                           preds if pred_col is not None else None, document=document,
                           before=before or None)
            count += 1
        if not any_text:
            raise SeqtagError("is empty", path=name,
                              hint="give a file with one token per line and a blank line "
                                   "between sentences")
        if count == 0:
            raise SeqtagError("holds no sentence", path=name,
                              hint="only -DOCSTART- or comment lines were found; sentences are "
                                   "token lines separated by blank lines")


def read_corpus(source, *, name: str | None = None, fmt: str = "auto",
                token_col: int | None = None, label_col: int | None = None,
                labels: str = "auto", pred_col: int | None = None
                ) -> tuple[list[Sentence], CorpusInfo]:
    """Read a whole corpus into memory, with counts and the sha256 of the bytes read."""
    _check_settings(fmt, labels)
    name = _display_name(source, name)
    digest = _Digest()
    sentences = list(_sentences(source, name, fmt, token_col, label_col, labels, digest,
                                pred_col))
    info = CorpusInfo(name=name, sentences=len(sentences),
                      tokens=sum(len(s.tokens) for s in sentences),
                      sha256=digest.sha.hexdigest(), bytes=digest.bytes)
    return sentences, info
