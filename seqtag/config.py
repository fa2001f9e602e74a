"""Training settings: one dataclass whose defaults are the CLI's defaults.

Kept apart from the training loop so that the CLI can show the defaults without importing Numba.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqtag.errors import SeqtagError
from seqtag.features import parse_features
from seqtag.model import GATES


# The plain recurrent tagger of the textbook: one left-to-right Elman RNN over word ids, softmax
# output; what `seqtag train --textbook` trains (the other settings stay as given).
TEXTBOOK = dict(cell="rnn", bidirectional=False, crf=False, features="", char_filters=0,
                embed_dim=0, dropout=0.0, feature_dropout=0.0, input_dropout=0.0)


@dataclass
class TrainConfig:
    """The defaults are the most accurate set-up of the accuracy benchmark (bench/
    bench_accuracy.py), the same for every corpus: a bidirectional LSTM over word, word-form and
    character-CNN inputs, with a CRF output layer and dropout of states, words and features."""

    hidden: int = 128
    epochs: int = 40
    lr: float = 1e-3
    optimizer: str = "adam"          # "adam" or "sgd"
    batch_size: int = 32
    clip: float = 5.0                # max global gradient norm; 0 turns clipping off
    seed: int = 1
    patience: int = 8                # epochs without dev improvement before stopping; 0 = never
    min_count: int = 1               # rarer words map to <unk>
    max_size: int | None = None      # vocabulary size cap, reserved entries included
    word_dropout: float = 2.0        # α: a known word w becomes <unk> with p = α / (α + count(w))
    bidirectional: bool = True       # add a right-to-left RNN; states joined before the output
    features: str = "casing,shape,prefix3,suffix3,lower"   # word-form features (seqtag.features)
    feature_min_count: int = 2       # rarer feature values map to the feature's <unk>
    dropout: float = 0.6             # of the hidden states on their way to the output layer
    crf: bool = True                 # a linear-chain CRF output layer instead of the softmax
    embeddings: str | None = None    # word2vec/GloVe text file to start Wax's word columns from
    cell: str = "lstm"               # "rnn" (Elman), "gru" or "lstm"
    feature_dropout: float = 0.3     # each feature value of a token becomes its <unk> with p
    input_dropout: float = 0.25      # of the entries of the embedded input x<t>
    lr_decay: float = 0.0            # epoch e steps with lr / (1 + lr_decay · (e - 1))
    average: float = 0.0             # evaluate and keep w̄ ← average·w̄ + (1-average)·w per epoch
    embed_dim: int = 100             # x<t> = sum of embedding columns (+ chars); 0: multi-hot
    char_filters: int = 50           # filters of the character CNN; 0: no character CNN
    char_dim: int = 25               # size of a character's embedding

    @classmethod
    def textbook(cls, **changes) -> "TrainConfig":
        """The textbook RNN's configuration (TEXTBOOK), with ``changes`` on top."""
        return cls(**{**TEXTBOOK, **changes})

    def check(self) -> None:
        if self.cell not in GATES:
            raise SeqtagError(f"unknown cell {self.cell!r}", hint="use rnn, gru or lstm")
        if self.optimizer not in ("adam", "sgd"):
            raise SeqtagError(f"unknown optimizer {self.optimizer!r}", hint="use adam or sgd")
        if self.char_filters < 0 or self.char_dim < 1 or self.embed_dim < 0:
            raise SeqtagError("--char-filters and --embed-dim must be ≥ 0, --char-dim ≥ 1")
        if self.char_filters and not self.embed_dim:
            raise SeqtagError("the character CNN (--char-filters) needs embeddings",
                              hint="set --embed-dim above 0, or --char-filters 0")
        for name in ("hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SeqtagError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:  # also rejects NaN
            raise SeqtagError("--lr must be positive")
        if self.max_size is not None and self.max_size < 3:
            raise SeqtagError("--max-size must be at least 3 (<pad>, <unk> and one word)")
        parse_features(self.features)
        if not 0 <= self.dropout < 1:
            raise SeqtagError("--dropout must be in [0, 1)")
        if not (0 <= self.feature_dropout < 1 and 0 <= self.input_dropout < 1):
            raise SeqtagError("--feature-dropout and --input-dropout must be in [0, 1)")
        if not self.lr_decay >= 0:
            raise SeqtagError("--lr-decay must be ≥ 0")
        if not 0 <= self.average < 1:
            raise SeqtagError("--average must be in [0, 1)")
        if not (self.clip >= 0 and self.word_dropout >= 0) or self.patience < 0 \
                or self.min_count < 1 or self.feature_min_count < 1:
            raise SeqtagError("--clip, --word-dropout and --patience must be ≥ 0, "
                              "--min-count and --feature-min-count ≥ 1")
