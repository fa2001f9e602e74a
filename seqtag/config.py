"""Training settings, each declared once: name, type, default, bounds and help.

TrainConfig is the declaration. Each field's metadata holds its bounds and help; the CLI builds
the options of `seqtag train` from these fields (seqtag.cli.train), and ``check`` validates a
configuration against the same bounds (library callers have no Typer in front of them), plus the
rules that tie fields together. Kept apart from the training loop so that the CLI can show the
defaults without importing Numba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum

from seqtag.errors import SeqtagError
from seqtag.features import parse_features


class Cell(str, Enum):
    """The recurrent cell: the textbook Elman cell, a GRU or an LSTM."""

    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


class Level(str, Enum):
    """What a token is: auto (char when every training and dev token is one character), word
    or char (residues: the character-level configuration, CHAR)."""

    auto = "auto"
    word = "word"
    char = "char"


class OptimizerName(str, Enum):
    adam = "adam"
    sgd = "sgd"


def option(default, help: str, *, min: float | None = None, max: float | None = None,
           min_open: bool = False, flag: str | None = None):
    """A training option: its default, its help, and its bounds (``min_open``: min excluded;
    ``flag``: the CLI spelling when it is not --name, e.g. a --x/--no-x switch)."""
    return field(default=default, metadata={"help": help, "min": min, "max": max,
                                             "min_open": min_open, "flag": flag})


# The largest seed numpy's generators take reproducibly in the model's JSON metadata.
_MAX_SEED = 2 ** 63 - 1


@dataclass
class TrainConfig:
    """The defaults are the most accurate set-up of the accuracy benchmark (bench/
    bench_accuracy.py), the same for every corpus: a bidirectional LSTM over word, word-form and
    character-CNN inputs, with a CRF output layer and dropout of states, words and features.

    The field order is the order of the model file's "hyperparameters" and of `train --help`."""

    hidden: int = option(128, "Hidden units of the RNN (per direction).", min=1, max=8192)
    epochs: int = option(40, "Most passes over the training data.", min=1, max=100_000)
    # The bound keeps lr·scale a float32 (the kernels' type): 1e308 stepped the weights to inf.
    lr: float = option(1e-3, "Learning rate.", min=0.0, min_open=True, max=100.0)
    optimizer: OptimizerName = option(OptimizerName.adam, "Optimizer: adam or sgd.")
    batch_size: int = option(32, "Sentences per update.", min=1, max=1_000_000)
    clip: float = option(5.0, "Clip the gradient's global norm to this (0: off).", min=0.0)
    seed: int = option(1, "Random seed: the same seed repeats the run.", min=0, max=_MAX_SEED)
    patience: int = option(8, "Stop after this many epochs without dev gain (0: never).",
                           min=0)
    min_count: int = option(1, "Words seen fewer times map to <unk>.", min=1)
    max_size: int | None = option(None, "Vocabulary size cap (<pad> and <unk> included).",
                                  min=3)
    word_dropout: float = option(2.0, "α: word w becomes <unk> with p = α/(α+count(w)).",
                                 min=0.0)
    bidirectional: bool = option(
        True, "Add a right-to-left RNN whose states join the left-to-right ones.",
        flag="--bidirectional/--no-bidirectional")
    features: str = option(
        "casing,shape,prefix3,suffix3,lower",
        "Word-form features, comma-separated: lower, shape, casing, prefix2, prefix3, "
        "suffix2, suffix3 ('none' for the textbook model).")
    feature_min_count: int = option(2, "Rarer feature values map to <unk>.", min=1)
    dropout: float = option(0.6, "Dropout of the hidden states before the output layer.",
                            min=0.0, max=0.99)
    crf: bool = option(True, "A linear-chain CRF output layer instead of the softmax.",
                       flag="--crf/--no-crf")
    embeddings: str | None = option(
        None, "word2vec/GloVe text file, or a built-in set (blosum62: amino acids): start "
              "the word embeddings (or Wax's word columns) from these vectors, through a fixed "
              "random projection.")
    cell: Cell = option(Cell.lstm, "Recurrent cell: rnn (the textbook Elman cell), gru or lstm.")
    feature_dropout: float = option(
        0.3, "Each feature value of a token is replaced by its <unk> with this probability.",
        min=0.0, max=0.99)
    input_dropout: float = option(0.25, "Dropout of the embedded input x<t> (with --embed-dim).",
                                  min=0.0, max=0.99)
    lr_decay: float = option(0.0, "Epoch e trains with lr / (1 + lr_decay·(e-1)).", min=0.0)
    average: float = option(
        0.0, "Evaluate and keep the weights' running average over epoch ends, "
             "w̄ ← a·w̄ + (1-a)·w (0: the weights themselves).", min=0.0, max=0.999)
    embed_dim: int = option(
        100, "Size of the word embeddings whose sum (with the character CNN's vector) is x<t>; "
             "0: x<t> is multi-hot and Wax reads its columns directly (the textbook input).",
        min=0, max=8192)
    char_filters: int = option(
        50, "Filters of a character CNN that reads each word's spelling (0: none).",
        min=0, max=8192)
    char_dim: int = option(25, "Size of each character's embedding in the CNN.", min=1,
                           max=8192)
    level: Level = option(
        Level.auto, "Token level: word, char (one residue per token: DNA, proteins; the "
                    "defaults become CHAR's, see README) or auto (char when every training "
                    "and dev token is a single character).")
    window: int = option(
        0, "Neighbours on each side whose embeddings (one per position) are summed into "
           "x<t> with the token's own (needs --embed-dim).", min=0, max=32)
    ensemble: int = option(
        1, "Train this many models (seeds --seed, --seed+1, ...), each stopped on dev, and "
           "save them merged into one model that tags with the mean of their scores; the run "
           "takes as many times as long, tagging about its square.", min=1, max=64)
    refit: bool = option(
        False, "Once dev has chosen the epoch count, train again from scratch (the same seed) "
               "on the training and dev sentences together for that many epochs, and keep "
               "that model (scikit-learn's refit; each ensemble member its own count; the "
               "temperature stays the one fitted on dev).", flag="--refit/--no-refit")
    document_context: bool = option(
        True, "Give each token features of its word's other occurrences in its document "
              "(CoNLL -DOCSTART-, CoNLL-U # newdoc; inert for input without documents).",
        flag="--document-context/--no-document-context")
    threads: int | None = option(
        None, "Threads to train with (default: the cores this process may use); the model is "
              "the same, bit for bit, for any count.", min=1, max=1024)
    time_budget: float | None = option(
        None, "Seconds the whole run may take (`seqtag train`: from the process start): no "
              "epoch is begun that would end after it, judged by the last epochs' times with "
              "their dev scoring; the best dev epoch so far is kept. The first epoch always "
              "runs.", min=0.0, min_open=True)

    def __post_init__(self):
        # Choices given as strings become their Enum members; an unknown one is left for
        # check() to report.
        for f in fields(self):
            kind = kind_of(f)
            if issubclass(kind, Enum) and not isinstance(getattr(self, f.name), kind):
                try:
                    setattr(self, f.name, kind(getattr(self, f.name)))
                except ValueError:
                    pass

    @classmethod
    def textbook(cls, **changes) -> "TrainConfig":
        """The textbook RNN's configuration (TEXTBOOK), with ``changes`` on top."""
        return cls(**{**TEXTBOOK, **changes})

    def check(self) -> "TrainConfig":
        """Raise a SeqtagError naming the first option out of its bounds; return self."""
        for f in fields(self):
            _check_field(f, getattr(self, f.name))
        parse_features(self.features)
        if self.char_filters and not self.embed_dim:
            raise SeqtagError("the character CNN (--char-filters) needs embeddings",
                              hint="set --embed-dim above 0, or --char-filters 0")
        if self.window and not self.embed_dim:
            raise SeqtagError("the window of neighbours (--window) needs embeddings",
                              hint="set --embed-dim above 0, or --window 0")
        return self

    def for_data(self, sentences) -> "TrainConfig":
        """The configuration for a corpus whose sentences (training then dev: token lists) are
        ``sentences``: with level auto, char when every token is a single character (else
        word); at level char, the values of char_defaults replace the defaults of the options
        not given (``given``)."""
        sentences = [list(s) for s in sentences]
        level = plain(self.level)
        if level == "auto":
            level = "char" if is_char_level(t for s in sentences for t in s) else "word"
        changes = {"level": Level(level)}
        if level == "char":
            changes.update({k: v for k, v in char_defaults(sentences).items()
                            if k not in self.given})
        return replace(self, **changes)

    @property
    def given(self) -> frozenset[str]:
        """The options given when this configuration was made (not left at their defaults);
        a copy made by dataclasses.replace counts every option as given."""
        return getattr(self, "_given", frozenset(f.name for f in fields(self)))


def _recording_init(init):
    """TrainConfig's __init__, noting which options the caller gave (``given``): a default is
    the level's (for_data), a value given is the caller's, even when it equals the default."""
    def __init__(self, _given: frozenset | None = None, **options):
        # ``_given``: a copy's, from its __dict__ (TrainConfig(**cfg.__dict__))
        init(self, **options)
        self._given = frozenset(options) if _given is None else frozenset(_given)
    __init__.__doc__ = init.__doc__
    return __init__


TrainConfig.__init__ = _recording_init(TrainConfig.__init__)


# Options that decide how a run goes, not what it computes: not recorded among the model's
# hyperparameters, and free to change on --resume (the model is the same, bit for bit, for any
# thread count).
RUN_ONLY = frozenset({"threads", "time_budget"})


# The plain recurrent tagger of the textbook: one left-to-right Elman RNN over word ids, softmax
# output; what `seqtag train --textbook` trains (the other settings stay as given).
TEXTBOOK = dict(cell=Cell.rnn, bidirectional=False, crf=False, features="", char_filters=0,
                embed_dim=0, dropout=0.0, feature_dropout=0.0, input_dropout=0.0,
                document_context=False)


# The character-level configuration (DNA, proteins: one residue per token), chosen on the dev
# sets of the protein secondary-structure split (bench/bench_protein.py) and of the CpG-island HMM
# (bench/dna_hmm.py): no word-form features or spelling CNN, which mean nothing for one letter;
# no word dropout (every residue is frequent). A small alphabet (DNA, RNA) gets a small model
# over the residue alone (the BiLSTM carries the context; few distinct inputs, so the input
# projection is nearly free); a larger one (proteins) sums the embeddings of the residue and of
# its 6 neighbours each side (Qian & Sejnowski's 13-residue window) and reads them with a GRU
# (1.9 points of Q3 above the LSTM in 5-fold cross-validation over the training proteins with
# homologs kept in one fold, which is what unseen protein families look like). Few sequences
# (under SMALL_DATA) get small batches (about 25 updates an epoch) at a higher rate, more
# epochs, and more patience with their noisy dev scores; with a large alphabet also an ensemble
# of SMALL_DATA_ENSEMBLE members (seqtag.ensemble: few sequences make short runs and high
# variance; 3 members gained 1.8 points of that CV, 4 and 5 no more than 0.1 beyond).
#
# Proteins (every residue an amino-acid letter) also start each embedding table of the window
# from BLOSUM62 (--embeddings blosum62, seqtag.embeddings.BUILTIN), and with few sequences each
# member is refit on train + dev for the epochs dev chose (--refit). In a cross-validation that
# reproduces the bench's set-up (in each of the 5 homology-grouped folds, the last 11 proteins of
# the training part as dev, scored on the held-out fold), Q3: 64.63 as chosen before; 65.25 with
# --refit; 65.57 with BLOSUM62; 65.77 with both.
CHAR = dict(features="", char_filters=0, word_dropout=0.0, document_context=False)
CHAR_SMALL_ALPHABET = dict(hidden=16, embed_dim=16, window=0)
CHAR_LARGE_ALPHABET = dict(hidden=64, embed_dim=64, window=6, cell=Cell.gru)
SMALL_ALPHABET = 12          # distinct residues at most (ACGTN, soft-masked acgtn)
SMALL_DATA = 1000            # training sequences
SMALL_DATA_ENSEMBLE = 3     # members of a large alphabet's small-data model
# The one-letter amino-acid codes (IUPAC: the 20, B, Z, J, X, selenocysteine U, pyrrolysine O, and
# the stop *), in either case (lowercase: masked).
AMINO_ACIDS = frozenset("ACDEFGHIKLMNPQRSTVWYBZJXUO*")


def char_defaults(sentences: list[list[str]]) -> dict:
    """The character-level configuration's values for these sentences (training then dev)."""
    letters = {t for s in sentences for t in s}
    alphabet = len(letters)
    out = {**CHAR, **(CHAR_SMALL_ALPHABET if alphabet <= SMALL_ALPHABET else
                      CHAR_LARGE_ALPHABET)}
    if alphabet > SMALL_ALPHABET and {t.upper() for t in letters} <= AMINO_ACIDS:
        out.update(embeddings="blosum62")
    if len(sentences) < SMALL_DATA:
        out.update(batch_size=max(1, len(sentences) // 25), lr=3e-3, patience=20, epochs=80)
        if alphabet > SMALL_ALPHABET:
            out.update(ensemble=SMALL_DATA_ENSEMBLE, refit=True)
    return out


def is_char_level(tokens) -> bool:
    """Whether every token is one character (and there is one)."""
    seen = False
    for t in tokens:
        if len(t) != 1:
            return False
        seen = True
    return seen


def plain(value):
    """An option's plain value: a choice's string (an Enum member or already a string),
    anything else as it is."""
    return value.value if isinstance(value, Enum) else value


def flag_of(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def kind_of(f) -> type:
    """The field's value type: Cell, OptimizerName, Level, bool, int, float or str (None allowed where the
    default is None)."""
    name = str(f.type).split("|")[0].strip()
    return {"Cell": Cell, "OptimizerName": OptimizerName, "Level": Level, "bool": bool, "int": int, "float": float,
            "str": str}[name]


def _check_field(f, value) -> None:
    name = flag_of(f).split("/")[0]
    kind = kind_of(f)
    if value is None and f.default is None:
        return
    if issubclass(kind, Enum):
        try:
            kind(value)
        except ValueError:
            names = [c.value for c in kind]
            raise SeqtagError(f"{name} is {value!r}, not one of {', '.join(names)}",
                              hint=f"use {name} {' or '.join(names)}") from None
        return
    if kind is bool or kind is str:
        if not isinstance(value, kind):
            raise SeqtagError(f"{name} must be a {kind.__name__}, not {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (kind is int and not float(value).is_integer()):
        raise SeqtagError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                          f"not {value!r}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if not math.isfinite(value) or (lo is not None and (
            value < lo or (f.metadata.get("min_open") and value == lo))) or \
            (hi is not None and value > hi):
        raise SeqtagError(f"{name} is {value}, out of its range {_range(f)}",
                          hint=f"choose {name} in {_range(f)}")


def _range(f) -> str:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    left = "(" if f.metadata.get("min_open") else "["
    return f"{left}{lo if lo is not None else '-∞'}, {hi if hi is not None else '∞'}]"
