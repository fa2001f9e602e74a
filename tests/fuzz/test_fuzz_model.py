"""Property-based fuzzing of the model loader through ``seqtag tag`` and ``seqtag inspect``.

Property: a model file with one edited metadata field or array (tests/fuzz/model_edits.py) either
loads, and then ``tag`` gives every token one label of the file's label inventory and ``inspect``
(text and JSON) succeeds, or every command refuses it with one ERROR line naming the file. Edits
that leave nothing to trust (format versions other than 1 and 2, duplicate or empty labels,
counts that are not non-negative integers, a wrong magic) must be refused.

Edits that fail today because of known bugs being fixed on other branches, or new ones found by
this suite, are listed in PENDING: the fuzz test leaves them out, and the regression test runs
each of them as a strict xfail (remove an entry once its fix is merged).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import fuzz_harness as H
import model_edits as E

TEXTS = ["Sam Li and Tom date on Tuesday.", "", "[/] [bold]x", "\u00e9t\u00e9 \U0001f600 http://a.b"]

_M = "fixed on branch modelfile: "
# target -> (the test model it fails on, the edits of it that fail today). Found by running every
# edit of model_edits.targets() on the three test models; all are model.py or cli/inspect.py.
_PENDING_BY_TARGET = {
    'format_version': ('ner',
        ['"2"', '0', '2.5', 'empty', 'inf', 'matrix', 'minus1', 'vector']),
    'label_counts': ('ner',
        ['float', 'huge-float', 'nan', 'negative', 'uint64-max']),
    'labels': ('ner',
        ['dup-entry', 'empty-entry']),
    'meta': ('textbook',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'empty-list', 'empty-str',
         'false', 'gru', 'inf', 'json-list', 'json-null', 'json-number', 'lower-list', 'lstm',
         'minus1', 'nan', 'none', 'null', 'rnn', 'row-nan', 'rows', 'str', 'str-list', 'true',
         'unknown-list', 'vector', 'zero']),
    'meta.architecture': ('ner',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'empty-list', 'empty-str',
         'false', 'gru', 'inf', 'lower-list', 'lstm', 'minus1', 'nan', 'none', 'null', 'rnn',
         'row-nan', 'rows', 'str', 'str-list', 'true', 'unknown-list', 'vector', 'zero']),
    'meta.bidirectional': ('ner',
        ['[/]']),
    'meta.cell': ('ner',
        ['bad-rows', 'dict', 'empty-list', 'lower-list', 'row-nan', 'rows', 'str-list',
         'unknown-list', 'vector']),
    'meta.char_filters': ('ner',
        ['[/]']),
    'meta.corpus': ('ner',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'dict', 'gru', 'inf',
         'lower-list', 'lstm', 'minus1', 'nan', 'none', 'rnn', 'row-nan', 'rows', 'str',
         'str-list', 'true', 'unknown-list', 'vector']),
    'meta.created': ('ner',
        ['[/]']),
    'meta.crf': ('ner',
        ['[/]']),
    'meta.dev_corpus': ('ner',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'dict', 'gru', 'inf',
         'lower-list', 'lstm', 'minus1', 'nan', 'none', 'rnn', 'row-nan', 'rows', 'str',
         'str-list', 'true', 'unknown-list', 'vector']),
    'meta.embed_dim': ('ner',
        ['[/]']),
    'meta.features': ('ner',
        ['1e308', '2.5', '2^70', 'inf', 'minus1', 'nan', 'true']),
    'meta.history': ('ner',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'dict', 'false', 'gru',
         'inf', 'lower-list', 'lstm', 'minus1', 'nan', 'none', 'null', 'rnn', 'row-nan', 'rows',
         'str', 'str-list', 'true', 'unknown-list', 'vector', 'zero']),
    'meta.hyperparameters': ('ner',
        ['1e308', '2.5', '2^70', 'IOB1', 'IOBES', '[/]', 'bad-rows', 'gru', 'inf', 'lower-list',
         'lstm', 'minus1', 'nan', 'none', 'rnn', 'row-nan', 'rows', 'str', 'str-list', 'true',
         'unknown-list', 'vector']),
    'meta.label_scheme': ('ner',
        ['1e308', '2.5', '2^70', '[/]', 'bad-rows', 'dict', 'empty-list', 'empty-str', 'false',
         'gru', 'inf', 'lower-list', 'lstm', 'minus1', 'nan', 'null', 'rnn', 'row-nan', 'rows',
         'str', 'str-list', 'true', 'unknown-list', 'vector', 'zero']),
    'meta.seqtag_version': ('ner',
        ['[/]']),
    'word_counts': ('ner',
        ['float', 'huge-float', 'nan', 'negative', 'uint64-max']),
}

_WHY = {
    "format_version": _M + "format_version 0, -1, 2.5, \"2\", a vector, a matrix, infinity or an "
                           "empty array loads without complaint or crashes",
    "label_counts": _M + "counts stored as floats (or negative, NaN, 2^64-1) load without complaint",
    "word_counts": _M + "counts stored as floats (or negative, NaN, 2^64-1) load without complaint",
    "labels": _M + "duplicate labels (and an empty label) load without complaint",
}
PENDING: dict[tuple[str, str], tuple[str, str]] = {
    (target, how): (_WHY.get(target, _M + f"edited metadata ({target} of another type, or "
                                            f"holding rich markup such as [/]) crashes tag or "
                                            f"inspect"), model)
    for target, (model, hows) in _PENDING_BY_TARGET.items() for how in hows}


def _labels_of(path: Path) -> list[str] | None:
    try:
        arrays = E.read_arrays(path)
        return arrays["labels"].tobytes().decode("utf-8").split("\n")
    except Exception:
        return None


def check_edited_model(model: Path, target: str, how: str, work: Path) -> str:
    """Edit ``model``, run tag and inspect on it; "correct" or "error", else raises."""
    path = work / f"edited-{model.stem}.npz"
    E.apply_edit(model, path, target, how)
    outcomes = []
    tag = H.cli("tag", "-m", path, "-f", "jsonl", *TEXTS)
    if tag.ok_or_error(str(path)):
        records = [json.loads(line) for line in H.lines(tag.stdout)]
        assert len(records) == len(TEXTS), tag
        inventory = _labels_of(path)
        for rec in records:
            assert len(rec["labels"]) == len(rec["tokens"]), tag
            assert set(rec["labels"]) <= set(inventory), tag
        outcomes.append("correct")
    else:
        outcomes.append("error")
    for args in (("inspect", path), ("inspect", "--json", path)):
        run = H.cli(*args)
        if run.ok_or_error(str(path)):
            if "--json" in args:
                json.loads(run.stdout)
            outcomes.append("correct")
        else:
            outcomes.append("error")
    # Loading is the same for every command: one refusing and another accepting is a bug.
    if len(set(outcomes)) != 1:
        raise H.Traceback(f"tag and inspect disagree on {target}={how}: {outcomes}")
    if E.must_refuse(target, how) and outcomes[0] != "error":
        raise H.Traceback(f"{target}={how} loads without complaint")
    return outcomes[0]


@pytest.fixture(scope="module")
def models(ner_model, textbook_model, pos_model) -> dict[str, Path]:
    return {"ner": ner_model, "textbook": textbook_model, "pos": pos_model}


@pytest.fixture(scope="module")
def edits(models) -> dict[str, list[tuple[str, str]]]:
    return {name: E.targets(E.read_arrays(path)) for name, path in models.items()}


@settings(max_examples=H.budget(1500, 60), deadline=None)
@given(st.data())
def test_edited_model_loads_and_tags_or_is_refused(models, edits, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(models)), label="model")
    target, how = data.draw(st.sampled_from(
        [e for e in edits[name] if e not in PENDING]), label="edit")
    work = tmp_path_factory.getbasetemp()
    cls = "model: edited " + ("metadata" if target.startswith("meta") else
                              "format_version" if target == "format_version" else "arrays")
    with H.observe(cls) as box:
        box["outcome"] = check_edited_model(models[name], target, how, work)


def _regressions() -> list[tuple[str, str]]:
    """All pending edits under `make fuzz`; in the ordinary run the first of each target and
    every one the issue names (format versions, float counts, duplicate labels)."""
    if H.PROFILE == "fuzz":
        return sorted(PENDING)
    firsts = {t: hows[0] for t, (_, hows) in _PENDING_BY_TARGET.items()}
    return sorted((t, h) for t, h in PENDING if firsts[t] == h or t == "format_version"
                  or h in ("float", "dup-entry"))


@pytest.mark.parametrize("target,how", [
    pytest.param(t, h, marks=pytest.mark.xfail(strict=True, reason=PENDING[t, h][0]),
                 id=f"{t}={h}") for t, h in _regressions()])
def test_pending_model_edits(models, tmp_path, target, how):
    """Each edit that fails today, on the test model it fails on."""
    model = models[PENDING[target, how][1]]
    cls = "model: edited " + ("metadata" if target.startswith("meta") else
                              "format_version" if target == "format_version" else "arrays")
    with H.observe(cls) as box:
        box["outcome"] = check_edited_model(model, target, how, tmp_path)
