"""Applying a model to a stream: raw text lines or column-file sentences in, tagged sentences out.

Input is consumed in batches of sentences, so memory stays flat however long the stream is.
The output formats here are plain text (stable, for pipes); the CLI adds the coloured view.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from seqtag.errors import SeqtagError
from seqtag.model import RNNTagger
from seqtag.schemes import spans
from seqtag.tokenizer import tokens_and_offsets, tokens_of

if TYPE_CHECKING:       # the corpus reader is imported by those who read column files
    from seqtag.corpus import Sentence

# The n-best output alone is N copies of the sentence and the k-best search keeps N scores and
# back-pointers per label and token, so N × tokens bounds both its time and its memory (about
# 16·L bytes per unit: 112 MB for the bundled model's 7 labels at the limit). A larger --nbest
# would fail inside the search with an allocation error (N = 10⁹ on any sentence), or need
# gigabytes, long after the output began.
NBEST_LIMIT = 1_000_000

# --scores computes one partition function over the whole sentence per entity: entities × tokens
# steps of the forward algorithm (about a microsecond each with the bundled model), quadratic in
# the length of a sentence whose entities grow with it. 10,000,000 is about ten seconds.
SCORES_LIMIT = 10_000_000


# Batches between two returns of the heap's free pages to the system: the batches' arrays and
# strings, freed in another order than made, leave ever more free memory resident (40 MB of
# bench_whole's 0.97M tokens), which a return every 16 batches (2 ms) keeps from the peak.
TRIM_EVERY = 16


@dataclass
class Tagged:
    tokens: list[str]
    labels: list[str]
    probs: np.ndarray | None                   # probability of each chosen label, if computed
    text: str | None = None                    # the raw text, for text input
    offsets: list[tuple[int, int]] | None = None   # character span of each token in text
    lines: list[str] | None = None             # the input lines, for column-file input
    before: list[str] | None = None            # -DOCSTART- and comment lines before them
    span_probs: list[float] | None = None      # with scores: P of each entity, in spans order
    nbest: list[tuple[list[str], float]] | None = None   # the n best sequences and their P

    def entities(self) -> list[dict]:
        """Labelled spans with token and character offsets (into ``text``, or into the tokens
        joined by single spaces for column input)."""
        offsets = self.offsets
        if offsets is None and self.text is not None:     # tag_texts(offsets=False)
            offsets = tokens_and_offsets(self.text)[1]
        elif offsets is None:
            offsets, pos = [], 0
            for tok in self.tokens:
                offsets.append((pos, pos + len(tok)))
                pos += len(tok) + 1
        text = self.text if self.text is not None else " ".join(self.tokens)
        out = []
        for n, (label, i, j) in enumerate(spans(self.labels)):
            start, end = offsets[i][0], offsets[j - 1][1]
            # Without --scores, the least sure token stands for the entity.
            prob = self.span_probs[n] if self.span_probs is not None else \
                float(np.min(self.probs[i:j]))
            out.append({"label": label, "start": start, "end": end, "text": text[start:end],
                        "token_start": i, "token_end": j, "prob": round(prob, 4)})
        return out


def _batches(items: Iterable, size: int) -> Iterator[list]:
    # islice refuses sizes beyond sys.maxsize (--batch-size 1e30 is a user's to give): such a
    # batch is the whole stream anyway.
    size = min(size, sys.maxsize)
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def read_texts(source: str) -> Iterator[str]:
    """One text per line of a file, or of stdin for ``"-"``; decoded strictly, so that a bad byte
    is reported with its file and line, not guessed."""
    name = "<stdin>" if source == "-" else source
    from seqtag.textfile import open_input, read_lines

    with open_input(source, name) as stream:
        for _, text in read_lines(stream, name):
            yield text


def _too_long_for_nbest(token_lists: list[list[str]], nbest: int) -> int | None:
    """The index of the first sentence whose n-best search would pass NBEST_LIMIT, if any."""
    if nbest > 1:
        for i, tokens in enumerate(token_lists):
            if nbest * len(tokens) > NBEST_LIMIT:
                return i
    return None


def _nbest_error(n_tokens: int, nbest: int, name: str | None, line: int | None) -> SeqtagError:
    return SeqtagError(
        f"a sentence of {n_tokens:,} tokens is too long for --nbest {nbest} "
        f"(N × tokens may be at most {NBEST_LIMIT:,})", path=name,
        line=line if name is not None else None,
        hint="split the text into sentences, or lower --nbest")


def analysed(model: RNNTagger, jobs: Iterable[tuple], proba: bool, nbest: int,
              threads: int | None) -> Iterator[tuple]:
    """(job, [(labels, their probabilities, the analysis) of each sentence]) for each job
    (token lists first) in order, each batch from one pass of the network (RNNTagger.analyse:
    n-best lists and the emissions the entity scores are computed from). On several threads,
    batches are encoded here (RNNTagger.prepare) and analysed on the others: each batch gives
    the same bits whichever thread runs it."""
    from seqtag.threads import available_cores, ordered

    threads = available_cores() if threads is None else threads
    labels, k = model.labels, nbest if nbest > 1 else 0
    if threads > 1:
        model.masks    # noqa: B018  (computed once, here, not by every thread)
        jobs = ((job, model.prepare(job[0])) for job in jobs)

    def analyse(item):
        job, prepared = item if threads > 1 else (item, None)
        name = labels.__getitem__
        return [(list(map(name, r["labels"].tolist())), r["probs"], r) for r in
                model.analyse(job[0], proba, nbest=k, prepared=prepared)]

    from seqtag.residency import trim_heap

    for n, (item, results) in enumerate(ordered(analyse, jobs, threads), 1):
        if n % TRIM_EVERY == 0:
            trim_heap()
        yield (item[0] if threads > 1 else item), results


def _with_scores(model: RNNTagger, tagged: Tagged, analysis: dict, scores: bool | str,
                 name: str | None, line: int) -> Tagged:
    if scores:
        n_spans, n_tokens = len(spans(tagged.labels)), len(tagged.tokens)
        if n_spans * n_tokens > SCORES_LIMIT and scores == "within_limit":
            tagged.nbest = analysis.get("nbest")
            return tagged        # span_probs stays None: the caller leaves the sentence out
        if n_spans * n_tokens > SCORES_LIMIT:
            raise SeqtagError(
                f"a sentence of {n_tokens:,} tokens with {n_spans:,} entities is too long for "
                f"--scores (entities × tokens may be at most {SCORES_LIMIT:,})", path=name,
                line=line if name is not None else None,
                hint="split the text into sentences, or drop --scores")
        tagged.span_probs = model.span_probabilities(tagged.tokens, tagged.labels,
                                                     analysis["emissions"])
    tagged.nbest = analysis.get("nbest")
    return tagged


def read_records(source: str) -> Iterator[list[str]]:
    """The documents of a jsonl file (``"-"``: stdin): one JSON object a line, whose "text" is
    a string (one text) or a list of strings (the document's texts, one sentence each)."""
    name = "<stdin>" if source == "-" else source
    from seqtag.textfile import open_input, read_lines

    with open_input(source, name) as stream:
        for no, line in read_lines(stream, name):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise SeqtagError(f"is not JSON ({e})", path=name, line=no,
                                  hint='write one object a line, e.g. {"text": "..."}') from None
            text = record.get("text") if isinstance(record, dict) else None
            if isinstance(text, str):
                text = [text]
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise SeqtagError('has no "text" string or list of strings', path=name,
                                  line=no, hint='write {"text": "one text"} or '
                                                '{"text": ["a sentence", "another"]}')
            yield text


def _tokenized(texts: Iterable, documents: bool | str, context: bool, offsets: bool = True
               ) -> Iterator[tuple[str, tuple[list[str], list | None], list[str]]]:
    """(text, (its tokens, their offsets or None without ``offsets``), its token list) of each
    text. With ``documents`` (and a model with document context), the texts up to a blank one
    are a document, read whole before its first text is given: its token lists are InDocuments
    (seqtag.documents). ``documents="records"``: ``texts`` are documents already, each a list
    of texts."""
    from seqtag.documents import token_documents

    cut = tokens_and_offsets if offsets else (lambda text: (tokens_of(text), None))

    def flush(paragraph):
        cuts = [cut(t) for t in paragraph]
        words = [w for w, _ in cuts]
        yield from zip(paragraph, cuts, token_documents([words]) if context else words)

    if documents == "records":
        for document in texts:
            yield from flush(document)
        return
    if not (documents and context):
        for text in texts:
            c = cut(text)
            yield text, c, c[0]
        return

    paragraph: list[str] = []
    for text in texts:
        if text.strip():
            paragraph.append(text)
            continue
        yield from flush(paragraph)
        paragraph = []
        yield text, ([], [] if offsets else None), []
    yield from flush(paragraph)


def tag_texts(model: RNNTagger, texts: Iterable[str], batch_size: int = 256, *,
              scores: bool = False, nbest: int = 1, probs: bool = True,
              name: str | None = None, threads: int | None = 1, start: int = 0,
              offsets: bool = True, documents: bool = False) -> Iterator[Tagged]:
    """Tokenize and tag each text (one sequence per text); with ``scores`` each entity gets its
    exact probability, with ``nbest`` > 1 the n best sequences are kept too; without ``probs``
    (and ``scores``) the labels' probabilities are not computed (Tagged.probs is None).
    ``threads`` (None: the cores this process may use) tag that many batches at once; the
    results, in input order, are the same for any number.

    A text too long for its n-best search (NBEST_LIMIT) or its entities' scores (SCORES_LIMIT)
    raises SeqtagError after the texts before it are yielded; ``name`` names the input there, its
    texts counted as lines from ``start`` + 1 (a part of a longer stream starts past line 1).
    Without ``offsets`` Tagged.offsets is None (not computed: what conll and inline output do
    not show; entities() still finds them). ``documents``: blank texts separate documents
    (paragraphs), which a model with document context reads whole (memory bounded by the
    largest); without, each text is alone."""
    def jobs():
        done = start
        for items in _batches(_tokenized(texts, documents, model.architecture.document,
                                         offsets), batch_size):
            batch = [text for text, _, _ in items]
            cut = [c for _, c, _ in items]
            token_lists = [words for _, _, words in items]
            bad = _too_long_for_nbest(token_lists, nbest)
            error = None
            if bad is not None:
                error = _nbest_error(len(token_lists[bad]), nbest, name, done + bad + 1)
                batch, cut, token_lists = batch[:bad], cut[:bad], token_lists[:bad]
            yield token_lists, batch, cut, done, error
            if error is not None:
                return
            done += len(batch)

    for (_, batch, cut, done, error), results in analysed(
            model, jobs(), probs or scores, nbest, threads):
        for i, (text, (words, spans), (labels, p, r)) in enumerate(zip(batch, cut, results)):
            yield _with_scores(model, Tagged(words, labels, p, text=text, offsets=spans), r,
                               scores, name, done + i + 1)
        if error is not None:
            raise error


def tag_sentences(model: RNNTagger, sentences: Iterable[Sentence], batch_size: int = 256, *,
                  scores: bool | str = False, nbest: int = 1, probs: bool = True,
                  name: str | None = None, threads: int | None = 1) -> Iterator[Tagged]:
    """Tag sentences read from a column file, keeping their lines for crf_test-style output
    (``probs``, ``nbest``, ``threads`` and ``name``, the file's name for errors, as for
    tag_texts). ``scores="within_limit"``: entity probabilities for the sentences within
    SCORES_LIMIT, none (span_probs None) for the others, instead of an error. A model with
    document context reads each document (Sentence.document) whole before tagging its
    sentences: memory is bounded by the largest document."""
    if model.architecture.document:
        from seqtag.documents import with_context

        sentences = with_context(sentences)

    def jobs():
        for batch in _batches(sentences, batch_size):
            token_lists = [s.tokens for s in batch]
            bad = _too_long_for_nbest(token_lists, nbest)
            error = None
            if bad is not None:
                error = _nbest_error(len(token_lists[bad]), nbest, name, batch[bad].line_no)
                batch, token_lists = batch[:bad], token_lists[:bad]
            yield token_lists, batch, error
            if error is not None:
                return

    for (_, batch, error), results in analysed(model, jobs(), probs or scores, nbest,
                                                threads):
        for s, (labels, p, r) in zip(batch, results):
            yield _with_scores(model, Tagged(s.tokens, labels, p, lines=s.lines,
                                                    before=s.before), r, scores,
                               name, s.line_no)
        if error is not None:
            raise error


def format_conll(t: Tagged, scores: bool = False) -> str:
    """token TAB label per line, a blank line after the sentence; column-file input gets every
    input line back with the label appended as a new last column (crf_test's convention).
    With ``scores`` a further column holds the label's probability; with n-best lists, each
    sequence follows a ``# rank probability`` line (crf_test -n). The lines read before the
    sentence that are not tokens come back first: comments as they were, a -DOCSTART- line with
    an O (and a probability of 1) as its predicted columns, so that every line of the output
    has the same columns (as conlleval expects) and the documents stay marked."""
    if t.lines is not None:
        sep = "\t" if any("\t" in line for line in t.lines) else " "
        firsts = t.lines
    else:
        sep, firsts = "\t", t.tokens
    head = ""
    if t.before:
        rest = f"{sep}O{sep}1.0000\n\n" if scores else f"{sep}O\n\n"
        head = "".join(line + "\n" if line.startswith("#") else line + rest
                       for line in t.before)
    if t.nbest:
        blocks = [head]
        for rank, (labels, prob) in enumerate(t.nbest):
            rows = [f"{a}{sep}{lab}" for a, lab in zip(firsts, labels)]
            blocks.append(f"# {rank} {prob:.6f}\n" + "".join(r + "\n" for r in rows))
        return "".join(blocks) + "\n"
    if scores:
        rows = [f"{a}{sep}{lab}{sep}{p:.4f}" for a, lab, p in zip(firsts, t.labels, t.probs)]
    else:
        rows = map(sep.join, zip(firsts, t.labels))   # no Python step per token
    return head + "\n".join(rows) + "\n\n"


def format_inline(t: Tagged, scores: bool = False) -> str:
    """One line per sequence: token/label (token/label/probability with scores)."""
    if scores:
        return " ".join(f"{tok}/{lab}/{p:.4f}"
                        for tok, lab, p in zip(t.tokens, t.labels, t.probs)) + "\n"
    return " ".join(f"{tok}/{lab}" for tok, lab in zip(t.tokens, t.labels)) + "\n"


def record(t: Tagged, scores: bool = False) -> dict:
    """A tagged sentence as a JSON-ready dict: what -f jsonl prints on one line."""
    out = {"tokens": t.tokens, "labels": t.labels, "entities": t.entities()}
    if t.text is not None:
        out = {"text": t.text, **out}
    if scores:
        out["probs"] = [round(float(p), 4) for p in t.probs]
    if t.nbest:
        out["nbest"] = [{"labels": labels, "prob": round(prob, 6)} for labels, prob in t.nbest]
    return out


def format_jsonl(t: Tagged, scores: bool = False) -> str:
    return json.dumps(record(t, scores), ensure_ascii=False) + "\n"


FORMATTERS = {"conll": format_conll, "inline": format_inline, "jsonl": format_jsonl}


def evaluate_model(model: RNNTagger, sentences: Iterable[Sentence], batch_size: int = 256, *,
                   name: str | None = None, threads: int | None = 1):
    """`seqtag eval` of a model on labelled sentences: (conlleval-style Scores, Calibration of
    its probabilities (seqtag.calibration), gold label lists, predicted label lists)."""
    from seqtag.calibration import calibration_of
    from seqtag.metrics import evaluate

    gold: list = []

    def keep(items):
        for s in items:
            gold.append(s.labels)
            yield s

    predicted, token_probs, entity_probs = [], [], []
    for t in tag_sentences(model, keep(sentences), batch_size, name=name, threads=threads,
                           scores="within_limit"):
        predicted.append(t.labels)
        token_probs.append(t.probs)
        entity_probs.append(t.span_probs)
    scores = evaluate(gold, predicted)
    calibration = calibration_of(gold, predicted, token_probs,
                                 entity_probs if scores.chunked else None,
                                 temperature=model.temperature)
    return scores, calibration, gold, predicted
