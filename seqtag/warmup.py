"""The background warm-up: compile (or load from Numba's cache) every inference kernel of every
architecture with the Numba engine, then leave the marker that tells seqtag.engines' auto that
Numba is ready (seqtag.engines.warm starts this, detached, and checks the marker)."""

from __future__ import annotations

import os

from seqtag.engines import warm


def compile_all() -> None:
    """Run every inference kernel of every architecture with the Numba engine, through the
    same path as tagging (a model built, saved, loaded, then analysed with labels,
    probabilities, entity scores and n-best lists), so that each signature tagging uses is
    compiled and cached."""
    import tempfile

    import numpy as np

    from seqtag.build import build_model
    from seqtag.config import TrainConfig
    from seqtag.corpus import Sentence
    from seqtag.model import RNNTagger

    words = [["Sam", "Li", "went", "to", "Paris", "."], ["Tom", "met", "Ann"]]
    labels = [["B-PER", "I-PER", "O", "O", "B-LOC", "O"], ["B-PER", "O", "B-PER"]]
    train = [Sentence(w, y, [], i + 1) for i, (w, y) in enumerate(zip(words, labels))]
    inputs = (dict(embed_dim=0, char_filters=0, features="none"),
              dict(embed_dim=8, char_filters=4, char_dim=3))
    with tempfile.TemporaryDirectory(prefix="seqtag-warmup-") as tmp:
        for cell in ("lstm", "gru", "rnn"):
            for crf, extra in zip((True, False), inputs[::-1]):
                cfg = TrainConfig(cell=cell, crf=crf, hidden=4, **extra)
                model, _ = build_model(cfg, train, np.random.default_rng(1))
                path = os.path.join(tmp, "model.npz")
                model.save(path)
                model = RNNTagger.load(path, engine="numba")
                for r in model.analyse(words + [["Unknown", "words"]], scores=True, nbest=2):
                    model.span_probabilities(["x"], ["B-PER"], r["emissions"][:1])
                model.predict_proba(words)
                if extra["embed_dim"] and cell == "lstm":
                    # `seqtag tag`'s path with the bundled model (no document context): the
                    # embedded inputs and projections kept from batch to batch
                    # (seqtag.inputcache), twice, so that the second reads kept ones
                    cfg = TrainConfig(cell=cell, crf=crf, hidden=4, document_context=False,
                                      **extra)
                    model, _ = build_model(cfg, train, np.random.default_rng(1))
                    model.save(path)
                    model = RNNTagger.load(path, engine="numba").keep_inputs()
                    for _ in range(2):
                        model.analyse(words, proba=False)


def main() -> None:
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass
    if not warm.take_lock():
        return
    m = warm.marker()
    if m is None:
        return
    # On failure the lock stays (until it is stale): no warm-up again at every run.
    compile_all()
    m.parent.mkdir(parents=True, exist_ok=True)
    for stale in m.parent.glob("seqtag-warm-*"):    # of kernel sources or a Numba now gone
        stale.unlink(missing_ok=True)
    m.touch()
    warm.lock().unlink()
