"""Hypothesis profiles, the models the fuzz tests tag with, and the outcome table.

Profiles: "ci" (the default under pytest) is derandomized and small, so the ordinary suite stays
fast and repeatable; "fuzz" (``make fuzz``, HYPOTHESIS_PROFILE=fuzz) draws over 10,000 random
inputs. Either way one input may take at most 10 s (Hypothesis' deadline; subprocesses are
killed at 10 s).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import fuzz_harness as H

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, max_examples=10, deadline=10_000,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK)
settings.register_profile("fuzz", derandomize=False, max_examples=200, deadline=10_000,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK)
settings.load_profile(H.PROFILE)

_STARTED = time.monotonic()


@pytest.fixture(autouse=True)
def _known_bug(request):
    """Inputs of a test marked xfail count as "known bug" in the table, not as tracebacks."""
    H.STATE["xfail"] = request.node.get_closest_marker("xfail") is not None
    yield
    H.STATE["xfail"] = False


def _train(path: Path, sentences, **changes) -> Path:
    from seqtag.config import TrainConfig
    from seqtag.training import Trainer

    cfg = TrainConfig(**{"hidden": 8, "epochs": 2, "patience": 0, "seed": 5, "embed_dim": 8,
                         "char_filters": 4, "char_dim": 4, **changes})
    Trainer(cfg).fit(sentences).model_.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_sentences():
    from seqtag.corpus import read_corpus

    return read_corpus(H.TINY)[0]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-models")


@pytest.fixture(scope="session")
def ner_model(models_dir, tiny_sentences) -> Path:
    """The default architecture in miniature: BiLSTM, features, character CNN, CRF (IOB2)."""
    return _train(models_dir / "ner.npz", tiny_sentences)


@pytest.fixture(scope="session")
def textbook_model(models_dir, tiny_sentences) -> Path:
    """The textbook Elman RNN with a softmax: the other decoding path."""
    from seqtag.config import TEXTBOOK

    return _train(models_dir / "textbook.npz", tiny_sentences, **TEXTBOOK)


@pytest.fixture(scope="session")
def pos_model(models_dir, tiny_sentences) -> Path:
    """Labels that are not chunk tags (POS-like), so `tag -f pretty` prints token/label."""
    from seqtag.corpus import Sentence

    names = ("NN", "VB", "DT", "JJ")
    pos = [Sentence(s.tokens, [names[len(t) % 4] for t in s.tokens], s.lines, s.line_no)
           for s in tiny_sentences]
    return _train(models_dir / "pos.npz", pos, cell="gru", crf=False)


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    from seqtag.cli._app import default_model_path

    return default_model_path()


def _table() -> str:
    rows = [("input class", "inputs", *H.OUTCOMES)]
    total = [0] * (1 + len(H.OUTCOMES))
    for cls in sorted(H.RECORDS):
        counts = H.RECORDS[cls]
        vals = [sum(counts.values()), *(counts[o] for o in H.OUTCOMES)]
        total = [a + b for a, b in zip(total, vals)]
        rows.append((cls, *map(str, vals)))
    rows.append(("TOTAL", *map(str, total)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(rows[0]), sep, *map(fmt, rows[1:])])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not H.RECORDS:
        return
    took = time.monotonic() - _STARTED
    table = _table()
    head = (f"fuzz outcomes (profile {H.PROFILE}, {took / 60:.1f} min; 'known bug' = inputs of "
            f"strict-xfail tests: known bugs, still open)")
    terminalreporter.write_sep("=", "fuzz outcomes")
    terminalreporter.write_line(head)
    terminalreporter.write_line(table)
    report = os.environ.get("FUZZ_REPORT")
    if report:
        Path(report).write_text(f"# seqtag fuzz report\n\n{head}\n\n{table}\n", encoding="utf-8")
        terminalreporter.write_line(f"written to {report}")
