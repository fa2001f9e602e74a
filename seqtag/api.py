"""The Python API, in scikit-learn's manner: ``fit`` returns self, learned state ends in ``_``.

    import seqtag
    tagger = seqtag.train("train.conll", dev="dev.conll", epochs=10)   # options as the CLI's
    tagger.tag(["Sam Li and Tom date on Tuesday."])    # [[("Sam", "B-PER"), ("Li", "I-PER"), ...]]
    tagger.score("test.conll")["f1"]                   # eval's numbers
    tagger.save("ner.npz"); seqtag.Tagger.load("ner.npz")

Sentences are given as a column file's path, or as (tokens, labels) pairs (or seqtag.corpus
Sentence objects); texts are strings, tokenized as `seqtag tag` tokenizes them.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from seqtag.config import TrainConfig
from seqtag.corpus import Sentence

PathLike = str | os.PathLike
HOLDOUT = 0.1   # of the training sentences held out to choose the epoch when no dev is given


class Tagger:
    """A sequence labeler. ``Tagger(**options)`` (TrainConfig's fields: hidden, epochs, cell,
    ...) is unfitted; ``fit`` trains it; ``Tagger.load(path)`` (or no path: the bundled model)
    reads a fitted one. ``engine``: the inference engine tagging uses, "auto" (NumPy for short
    inputs and until Numba's kernels are compiled), "numpy" or "numba" (seqtag.engines)."""

    def __init__(self, engine: str = "auto", **options):
        self.config = TrainConfig(**options)
        self._options = dict(options)     # those given: a fit with init= keeps them, not the rest
        self._engine = _checked_engine(engine)
        self.model_ = None
        self.history_: list[dict] = []
        self.best_epoch_ = 0

    @classmethod
    def load(cls, path: PathLike | None = None, *, engine: str = "auto") -> "Tagger":
        from importlib import resources

        from seqtag.model import RNNTagger

        tagger = cls(engine=engine)
        path = path if path is not None else resources.files("seqtag") / "data" / "default.npz"
        tagger.model_ = RNNTagger.load(path, engine=engine)
        tagger.history_ = list(tagger.model_.meta.get("history", []))
        tagger.best_epoch_ = tagger.model_.meta.get("best_epoch", 0)
        return tagger

    def fit(self, sentences, dev=None, *, holdout: float = HOLDOUT, progress=None,
            init=None) -> "Tagger":
        """Train on ``sentences``, choosing the epoch on ``dev``; without one, on a seeded
        ``holdout`` fraction of the sentences (0: train on all, keep the last epoch).

        ``init``: fine-tune, as `seqtag train --init`: start from this model's weights (a model
        file's path, "default" for the bundled model, or a fitted Tagger) with a fresh
        optimizer. The architecture is the model's (an option given to ``Tagger()`` that would
        change it raises SeqtagError), the options given apply and the others are the model's
        own; new words, feature values, characters and labels are added; labels in another tag
        scheme are converted to the model's (a "converted" progress event says so)."""
        from seqtag.training import Trainer, split_dev

        train = _sentences(sentences)
        dev_sents = _sentences(dev) if dev is not None else None
        base = source = None
        config = self.config
        if init is not None:
            from seqtag.finetune import init_config, load_init

            base, source = load_init(init._model() if isinstance(init, Tagger) else init)
            config = init_config(base, self._options)
        if dev_sents is None and holdout > 0:
            train, dev_sents = split_dev(train, holdout, config.seed)
        trainer = Trainer(config, progress=progress).fit(train, dev_sents or None, init=base,
                                                         init_source=source)
        self.config = config
        self.model_ = trainer.model_.use_engine(self._engine)
        self.history_, self.best_epoch_ = trainer.history_, trainer.best_epoch_
        return self

    @property
    def engine(self) -> str:
        return self._engine

    @engine.setter
    def engine(self, engine: str) -> None:
        self._engine = _checked_engine(engine)
        if self.model_ is not None:
            self.model_.use_engine(self._engine)

    @property
    def labels_(self) -> list[str]:
        return self._model().labels

    def tag(self, texts: Iterable[str]) -> list[list[tuple[str, str]]]:
        """Tokenize and label each text: its (token, label) pairs (on ``threads`` threads, as
        `seqtag tag --threads`)."""
        from seqtag.tagging import tag_texts

        return [list(zip(t.tokens, t.labels))
                for t in tag_texts(self._model(), list(texts), probs=False,
                                   threads=self.config.threads)]

    def predict(self, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        """The labels of already tokenized sentences."""
        model = self._model()
        return [label for i in range(0, len(token_lists), 256)
                for label in model.predict([list(t) for t in token_lists[i:i + 256]])]

    def predict_proba(self, token_lists: Sequence[Sequence[str]]):
        """Each token's probability of every label (columns in ``labels_`` order)."""
        return self._model().predict_proba([list(t) for t in token_lists])

    def score(self, sentences) -> dict:
        """`seqtag eval --json`'s numbers on labelled sentences: accuracy, precision, recall,
        F1, each entity type's, and the calibration of the probabilities ("calibration")."""
        from seqtag.metrics import scores_to_dict
        from seqtag.tagging import evaluate_model

        scores, calibration, _, _ = evaluate_model(self._model(), _sentences(sentences))
        return {**scores_to_dict(scores), "calibration": calibration.as_json()}

    def save(self, path: PathLike) -> None:
        self._model().save(path)

    def _model(self):
        if self.model_ is None:
            raise ValueError("this Tagger is not fitted yet: call fit() or Tagger.load()")
        return self.model_


def train(train, dev=None, *, init=None, **options) -> Tagger:
    """``Tagger(**options).fit(train, dev, init=init)``: `seqtag train` as a function."""
    return Tagger(**options).fit(train, dev, init=init)


def _checked_engine(engine: str) -> str:
    from seqtag.engines import check_engine

    return check_engine(engine)


def _sentences(data) -> list[Sentence]:
    from seqtag.corpus import read_corpus
    from seqtag.errors import SeqtagError

    if isinstance(data, (str, os.PathLike)):
        return read_corpus(os.fspath(data), labels="required")[0]
    out = []
    for i, item in enumerate(data):
        if isinstance(item, Sentence):
            out.append(item)
            continue
        try:
            tokens, labels = item
        except (TypeError, ValueError):
            raise SeqtagError(f"sentence {i + 1} is not a (tokens, labels) pair") from None
        tokens, labels = list(tokens), list(labels)
        if len(tokens) != len(labels):
            raise SeqtagError(f"sentence {i + 1} has {len(tokens)} tokens but {len(labels)} "
                              f"labels")
        out.append(Sentence(tokens, labels, [], i + 1))
    return out
