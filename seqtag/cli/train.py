"""seqtag train: fit an RNN tagger to column files and save it."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, err, fail, user_errors
from seqtag.errors import SeqtagError
from seqtag.config import TEXTBOOK, TrainConfig

D = TrainConfig()   # the defaults live in one place: the library's config


def default_output(corpus: list[str]) -> Path:
    """``corpus.tsv`` → ``corpus.npz`` in the current directory (``model.npz`` for stdin)."""
    first = corpus[0]
    return Path("model.npz" if first == "-" else Path(first).stem + ".npz")


def check_writable(path: Path) -> None:
    """Fail before training, not after it, when the model could not be written."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".seqtag-check."):
            pass
    except OSError as e:
        fail(f"{path}: cannot write the model here ({e.strerror}) (choose another path with -o)", 1)
    if path.is_dir():
        fail(f"{path}: is a directory (give a file name with -o)", 1)


def check_labels(vocab, vocab_path: Path, files) -> None:
    """Name the file and sentence of a label the --vocab file lacks (before training starts)."""
    for name, sents in files:
        for s in sents:
            for lab in s.labels:
                if not vocab.has_label(lab):
                    raise SeqtagError(
                        f"the sentence starting here has label {lab!r}, which is not in the label "
                        f"inventory of {vocab_path} ({', '.join(vocab.labels)})", path=name,
                        line=s.line_no, hint="the vocabulary does not match this data; rebuild it "
                                             "with 'seqtag build-vocab' on the training files")


class Renderer:
    """Progress on stderr: a live bar on a terminal, plain lines in logs and pipes."""

    def __init__(self):
        self.live = err.is_terminal
        self.bar = None
        self.task = None

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            err.print(f"training on {info['sentences']:,} sentences, {info['tokens']:,} tokens; "
                      f"{info['words']:,} words, {info['labels']} labels"
                      + (f"; {info['pretrained']:,} words start from pretrained vectors"
                         if info.get("pretrained") else ""), markup=False)
            err.print(f"{'epoch':>5} {'loss':>9} {'dev acc':>8} {'dev F1':>7} "
                      f"{'tokens/s':>10} {'elapsed':>8}", markup=False)
            if self.live:
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                           TimeRemainingColumn)
                self.bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                                    MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                                    TimeRemainingColumn(), console=err, transient=True)
                self.bar.start()
                self.task = self.bar.add_task("", total=info["batches"], epoch=1, loss=0.0)
        elif event == "batch" and self.bar is not None:
            if info["batch"] % 20 == 0 or info["batch"] == info["batches"]:
                self.bar.update(self.task, completed=info["batch"], epoch=info["epoch"],
                                loss=info["loss"])
        elif event == "epoch":
            acc = f"{100 * info['dev_accuracy']:7.2f}%" if "dev_accuracy" in info else f"{'-':>8}"
            f1 = f"{100 * info['dev_f1']:7.2f}" if "dev_f1" in info else f"{'-':>7}"
            mark = " *" if info["best"] else ""
            line = (f"{info['epoch']:>5} {info['train_loss']:9.4f} {acc} {f1} "
                    f"{info['tokens_per_second']:10,.0f} {info['elapsed']:7.1f}s{mark}")
            if self.bar is not None:
                self.bar.console.print(line, markup=False)
                # reset() replaces all the fields: give every one the columns format.
                self.bar.reset(self.task, epoch=info["epoch"] + 1, loss=0.0)
            else:
                err.print(line, markup=False)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


@app.command("train")
def train(
    corpus: List[str] = typer.Argument(..., help="Training column files ('-' for stdin)."),
    dev: Optional[str] = typer.Option(None, "--dev", help="Development file: picks the best epoch."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Model file to write.",
                                          show_default="<corpus>.npz"),
    vocab_path: Optional[Path] = typer.Option(None, "--vocab",
                                              help="Vocabulary from 'seqtag build-vocab'."),
    hidden: int = typer.Option(D.hidden, "--hidden", min=1, help="Hidden units of the RNN."),
    epochs: int = typer.Option(D.epochs, "--epochs", min=1, help="Most passes over the training data."),
    lr: float = typer.Option(D.lr, "--lr", help="Learning rate."),
    optimizer: str = typer.Option(D.optimizer, "--optimizer", help="adam or sgd."),
    batch_size: int = typer.Option(D.batch_size, "--batch-size", min=1, help="Sentences per update."),
    clip: float = typer.Option(D.clip, "--clip", min=0.0,
                               help="Clip the gradient's global norm to this (0: off)."),
    seed: int = typer.Option(D.seed, "--seed", help="Random seed: the same seed repeats the run."),
    patience: int = typer.Option(D.patience, "--patience", min=0,
                                 help="Stop after this many epochs without dev gain (0: never)."),
    min_count: int = typer.Option(D.min_count, "--min-count", min=1,
                                  help="Words seen fewer times map to <unk>."),
    max_size: Optional[int] = typer.Option(None, "--max-size", min=3,
                                           help="Vocabulary size cap."),
    word_dropout: float = typer.Option(D.word_dropout, "--word-dropout", min=0.0,
                                       help="α: word w becomes <unk> with p = α/(α+count(w))."),
    cell: str = typer.Option(D.cell, "--cell",
                             help="Recurrent cell: rnn (the textbook Elman cell), gru or lstm."),
    bidirectional: bool = typer.Option(
        D.bidirectional, "--bidirectional/--no-bidirectional",
        help="Add a right-to-left RNN whose states join the left-to-right ones."),
    features: str = typer.Option(
        D.features, "--features",
        help="Word-form features as extra Wax columns, comma-separated: lower, shape, casing, "
             "prefix2, prefix3, suffix2, suffix3 ('none' for the textbook model)."),
    feature_min_count: int = typer.Option(D.feature_min_count, "--feature-min-count", min=1,
                                          help="Rarer feature values map to <unk>."),
    embeddings: Optional[Path] = typer.Option(
        None, "--embeddings", help="word2vec/GloVe text file: start the word columns of Wax "
                                   "from these vectors (through a fixed random projection)."),
    crf: bool = typer.Option(D.crf, "--crf/--no-crf",
                             help="A linear-chain CRF output layer instead of the softmax."),
    dropout: float = typer.Option(D.dropout, "--dropout", min=0.0, max=0.99,
                                  help="Dropout of the hidden states before the output layer."),
    feature_dropout: float = typer.Option(
        D.feature_dropout, "--feature-dropout", min=0.0, max=0.99,
        help="Each feature value of a token is replaced by its <unk> with this probability."),
    input_dropout: float = typer.Option(
        D.input_dropout, "--input-dropout", min=0.0, max=0.99,
        help="Dropout of the embedded input x<t> (with --embed-dim)."),
    average: float = typer.Option(
        D.average, "--average", min=0.0, max=0.999,
        help="Evaluate and keep the weights' running average over epoch ends, w̄ ← a·w̄ + "
             "(1-a)·w (0: the weights themselves)."),
    lr_decay: float = typer.Option(D.lr_decay, "--lr-decay", min=0.0,
                                   help="Epoch e trains with lr / (1 + lr_decay·(e-1))."),
    embed_dim: int = typer.Option(
        D.embed_dim, "--embed-dim", min=0,
        help="Size of the word embeddings whose sum (with the character CNN's vector) is x<t>; "
             "0: x<t> is multi-hot and Wax reads its columns directly (the textbook input)."),
    char_filters: int = typer.Option(
        D.char_filters, "--char-filters", min=0,
        help="Filters of a character CNN that reads each word's spelling (0: none)."),
    char_dim: int = typer.Option(D.char_dim, "--char-dim", min=1,
                                 help="Size of each character's embedding in the CNN."),
    textbook: bool = typer.Option(
        False, "--textbook",
        help="The plain textbook RNN: one left-to-right Elman RNN over word ids with a softmax "
             "(sets --cell rnn --no-bidirectional --no-crf --features none --char-filters 0 "
             "--embed-dim 0 --dropout 0 --feature-dropout 0 --input-dropout 0)."),
    input_format: str = typer.Option("auto", "--input-format",
                                     help="Column file format: auto, conll, conllu or indexed."),
) -> None:
    """Train a tagger (by default a bidirectional LSTM over words, word forms and a character
    CNN, with a CRF output layer; --textbook for the plain Elman RNN; forward pass and BPTT in
    Numba) and save its best epoch."""
    with user_errors():
        from seqtag.corpus import read_corpus
        from seqtag.train import Trainer
        from seqtag.vocab import Vocabulary

        cfg = TrainConfig(hidden=hidden, epochs=epochs, lr=lr, optimizer=optimizer,
                          batch_size=batch_size, clip=clip, seed=seed, patience=patience,
                          min_count=min_count, max_size=max_size, word_dropout=word_dropout,
                          bidirectional=bidirectional, features=features,
                          feature_min_count=feature_min_count, dropout=dropout, crf=crf,
                          embeddings=str(embeddings) if embeddings else None, cell=cell,
                          feature_dropout=feature_dropout, lr_decay=lr_decay,
                          char_filters=char_filters, char_dim=char_dim, embed_dim=embed_dim,
                          input_dropout=input_dropout, average=average)
        if textbook:
            cfg = dataclasses.replace(cfg, **TEXTBOOK)
        cfg.check()
        out = output or default_output(corpus)
        check_writable(out)
        train_sents, infos, files = [], [], []
        for path in corpus:
            sents, info = read_corpus(path, fmt=input_format, labels="required")
            train_sents += sents
            infos.append(info)
            files.append((info.name, sents))
        dev_sents, dev_info = (read_corpus(dev, fmt=input_format, labels="required")
                               if dev else (None, None))
        if dev:
            files.append((dev_info.name, dev_sents))
        vocab = Vocabulary.load(vocab_path) if vocab_path else None
        if vocab is not None:
            check_labels(vocab, vocab_path, files)
        render = Renderer()
        try:
            trainer = Trainer(cfg, progress=render).fit(
                train_sents, dev_sents, vocab=vocab, corpus=infos, dev_corpus=dev_info)
        finally:
            render.close()
        if trainer.model_ is None:
            fail("interrupted before the first epoch ended; no model written", 130)
        trainer.model_.save(out)
        note = " (interrupted)" if trainer.interrupted_ else ""
        err.print(f"saved the model of epoch {trainer.best_epoch_} to {out}{note}", markup=False)
        if trainer.interrupted_:
            raise typer.Exit(130)
