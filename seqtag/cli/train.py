"""seqtag train: fit an RNN tagger to column files and save it."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import signal
from enum import Enum
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, err, fail, user_errors
from seqtag.config import TEXTBOOK, TrainConfig, flag_of, kind_of
from seqtag.errors import SeqtagError


def default_output(corpus: list[str]) -> Path:
    """``corpus.tsv`` → ``corpus.npz`` in the current directory (``model.npz`` for stdin)."""
    first = corpus[0]
    return Path("model.npz" if first == "-" else Path(first).stem + ".npz")


HOLDOUT = 0.1     # of the training sentences, to choose the epoch when no --dev is given


def checkpoint_path(output: Path) -> Path:
    """model.npz → model.ckpt.npz, next to it (itself a model file: tag can read it)."""
    stem = output.name[:-4] if output.name.endswith(".npz") else output.name
    return output.with_name(stem + ".ckpt.npz")


@contextlib.contextmanager
def _sigterm_as_interrupt(flag: list):
    """SIGTERM (timeout, job schedulers) stops training as Ctrl-C does: the best epoch so far
    is saved. ``flag`` records that it came."""
    def handler(signum, frame):
        flag.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread (an embedding application): leave it
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_start() -> float:
    """The time.monotonic() at which this process started (Linux: from /proc, to the clock
    tick), so that --time-budget counts the interpreter's start and the imports too; elsewhere
    now."""
    import os
    import time

    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])   # field 22: starttime
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    # CLOCK_MONOTONIC and /proc/uptime both count from boot; an age outside [0, 1 day] means
    # they do not agree here (a container's namespaced uptime): count from now.
    return now - age if 0 <= age < 86_400 else now


def check_writable(path: Path) -> None:
    """Fail before training, not after it, when the model could not be written."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".seqtag-check."):
            pass
    except OSError as e:
        fail(f"{path}: cannot write the model here ({e.strerror}) (choose another path with -o)", 1)
    from seqtag.atomic import check_target

    # A directory, symlink, device, FIFO or over-long name: refused now, not after training.
    check_target(path)
    check_target(checkpoint_path(path))


def resumed_portable(checkpoint: Path, portable: bool) -> bool:
    """Whether the run being resumed compiles its kernels for seqtag.portable's target: as its
    checkpoint's run did, so that it ends as that run would have (``portable``: --portable was
    given). Without a readable checkpoint, as given (resuming then says what is wrong)."""
    from seqtag.modelfile import load_model
    from seqtag.portable import TARGET

    if not checkpoint.exists():
        return portable
    try:
        kernels = load_model(checkpoint).meta.get("kernels")
    except SeqtagError:
        return portable
    if kernels == TARGET:
        if not portable:
            err.print(f"the run being resumed compiled its kernels for {TARGET} (--portable): "
                      f"so does this one", markup=False)
        return True
    if portable:
        raise SeqtagError("the run being resumed compiled its kernels for its machine's CPU, so "
                          "--portable would not end as it would have", path=str(checkpoint),
                          hint="resume without --portable, or train without --resume to start "
                               "afresh")
    return False


def resumed_init(checkpoint: Path) -> str | None:
    """The init model of the fine-tuning run whose checkpoint this is (None for a run from
    scratch, or when there is no readable checkpoint: resuming then says what is wrong)."""
    from seqtag.modelfile import load_model

    if not checkpoint.exists():
        return None
    try:
        saved = load_model(checkpoint)
    except SeqtagError:
        return None
    source = saved.meta.get("init")
    if not isinstance(source, dict):
        return None
    from seqtag.finetune import BUNDLED, file_sha256, resolve_init

    name = str(source.get("name", ""))
    path = BUNDLED if name.startswith(BUNDLED + " (") else name
    if not Path(resolve_init(path)).is_file() or \
            file_sha256(resolve_init(path)) != source.get("sha256"):
        raise SeqtagError(f"the checkpoint is of a run fine-tuned from {name}, which is no longer "
                          f"there or has changed", path=str(checkpoint),
                          hint="put the model back, or train without --resume to start afresh")
    return path


def convert_schemes(scheme: str, files, n_train: int, notes: list[str]):
    """(training sentences, dev sentences or None) from ``files`` ((name, sentences): the
    ``n_train`` training files, then the dev file if any) with their labels in the init model's
    tag scheme, each file detected on its own; one note per scheme converted from."""
    from seqtag.finetune import to_scheme

    converted, names = [], {}
    for name, sents in files:
        sents, found = to_scheme(sents, scheme)
        if found is not None:
            names.setdefault(found, []).append(name)
        converted.append(sents)
    for found, which in names.items():
        notes.append(f"converted the labels of {', '.join(which)} from {found} to {scheme} "
                     f"(the model's scheme)")
    train = [s for sents in converted[:n_train] for s in sents]
    return train, (converted[n_train] if len(converted) > n_train else None)


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
        # Said when training starts, after every input was read and checked: a run that fails
        # before then prints its ERROR line alone.
        self.notes: list[str] = []

    def __call__(self, event: str, info: dict) -> None:
        if event == "member":
            # The next model of an --ensemble run: its own start, epochs and calibration follow.
            self.close()
            self.bar = None
            err.print(f"ensemble member {info['member']} of {info['members']}", markup=False)
        elif event in ("refit", "refit_dropped"):
            self.close()
            self.bar = None
            err.print(f"--refit: training again on the training and dev sentences together "
                      f"({info['sentences']:,}) for the {info['epochs']} epochs dev chose"
                      if event == "refit" else
                      "--refit " + ("interrupted" if info["interrupted"] else
                                    "stopped by the time budget")
                      + ": keeping the model chosen on dev", markup=False)
        elif event == "start":
            for note in self.notes:
                err.print(note, markup=False)
            self.notes = []
            if info.get("init"):
                added = info["init"]["added"]
                err.print(f"starting from {info['init'].get('name', 'the init model')}: "
                          f"{added['words']:,} new words, {added['feature_values']:,} new "
                          f"feature values, {added['chars']:,} new characters, "
                          + (f"new labels {', '.join(added['labels'])}" if added['labels']
                             else "no new labels"), markup=False)
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
                                    TimeRemainingColumn(), console=err.console, transient=True)
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
        elif event == "budget":
            line = (f"stopping after epoch {info['epoch']}: {info['elapsed']:.1f}s of the "
                    f"--time-budget {info['budget']:g}s used, and the next epoch would take about "
                    f"{info['next_epoch']:.1f}s (then {info['finish']:.1f}s to calibrate, save "
                    f"and exit)")
            (self.bar.console if self.bar is not None else err).print(line, markup=False)
        elif event == "calibrated":
            line = (f"calibrated --scores on the dev set: temperature {info['temperature']:.3g} "
                    f"(dev log-loss per token {info['nll_before']:.4f} -> {info['nll_after']:.4f})")
            (self.bar.console if self.bar is not None else err).print(line, markup=False)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _config_options() -> list[inspect.Parameter]:
    """One Typer option per TrainConfig field, from its declaration (seqtag.config): the
    default, the help with the bounds, the flag. Bounds and choices are checked by
    TrainConfig.check, the one validator, so that a bad value is one ERROR line here as in the
    library (choices therefore reach Typer as plain strings)."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        kind, default, meta = kind_of(f), f.default, f.metadata
        extra = {}
        if issubclass(kind, Enum):
            extra["metavar"] = "|".join(c.value for c in kind)
            kind, default = str, default.value
        lo, hi = meta.get("min"), meta.get("max")
        bounds = "" if lo is None else \
            f" [{'>' if meta.get('min_open') else '≥'}{lo}" + (f", ≤{hi}]" if hi else "]")
        option = typer.Option(default, *flag_of(f).split(" "), help=meta["help"] + bounds,
                              show_default=default is not None, **extra)
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                     annotation=Optional[kind] if default is None else kind))
    return out


def train(
    ctx: typer.Context,
    corpus: List[str] = typer.Argument(..., help="Training column files ('-' for stdin)."),
    dev: Optional[str] = typer.Option(None, "--dev", help="Development file: picks the best epoch."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Model file to write.",
                                          show_default="<corpus>.npz"),
    vocab_path: Optional[Path] = typer.Option(None, "--vocab",
                                              help="Vocabulary from 'seqtag build-vocab'."),
    textbook: bool = typer.Option(
        False, "--textbook",
        help="The plain textbook RNN: one left-to-right Elman RNN over word ids with a softmax "
             "(sets --cell rnn --no-bidirectional --no-crf --features none --char-filters 0 "
             "--embed-dim 0 --dropout 0 --feature-dropout 0 --input-dropout 0)."),
    input_format: str = typer.Option(
        "auto", "--input-format",
        help="Column file format: auto, conll, conllu or indexed; or sequences: fasta (with "
             "--labels) or seqlabels (one sequence<TAB>labels line per record)."),
    labels: Optional[List[str]] = typer.Option(
        None, "--labels", metavar="FILE",
        help="With --input-format fasta: the FASTA of label strings of each training file (the "
             "same ids, one label per residue); one --labels per file, in order."),
    dev_labels: Optional[str] = typer.Option(
        None, "--dev-labels", metavar="FILE",
        help="With --input-format fasta: the FASTA of label strings of the --dev file."),
    max_length: int = typer.Option(
        1000, "--max-length", min=1,
        help="Sequences: a record longer than this is trained as chunks of at most this many "
             "residues, each from a zero state (truncated BPTT at the chunk boundaries)."),
    no_dev: bool = typer.Option(
        False, "--no-dev",
        help="Without --dev, train on every sentence for --epochs epochs and keep the last "
             "(by default 10% of the training sentences are held out to choose the epoch)."),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue the run whose checkpoint (<output>.ckpt.npz, written at every epoch's "
             "end) is next to the output; it ends as the uninterrupted run would."),
    init: Optional[str] = typer.Option(
        None, "--init", metavar="MODEL",
        help="Start a new run from this model's weights (a model file, or 'default' for the "
             "bundled model) with a fresh optimizer: its architecture, its inventories grown by "
             "the data's new words, feature values, characters and labels, labels converted to "
             "its tag scheme; training options apply. (--resume continues an interrupted run.)"),
    portable: bool = typer.Option(
        False, "--portable",
        help="Compile the kernels for x86-64-v3 (AVX2, FMA) rather than for this CPU, so that "
             "a seed gives the same model, byte for byte, on every x86-64 machine with AVX2 "
             "(make model does); the first such run compiles them (about 20 s)."),
    **options,
) -> None:
    """Train a tagger (by default a bidirectional LSTM over words, word forms and a character
    CNN, with a CRF output layer; --textbook for the plain Elman RNN; forward pass and BPTT in
    Numba) and save its best epoch."""
    started = process_start()
    with user_errors():
        out = output or default_output(corpus)
        checkpoint = checkpoint_path(out)
        if resume:
            portable = resumed_portable(checkpoint, portable)
        if portable:
            from seqtag.portable import pin

            pin()
        from seqtag.corpus import read_corpus
        from seqtag.training import Trainer, split_dev
        from seqtag.vocab import Vocabulary

        if options.get("embeddings") is not None:
            options["embeddings"] = str(options["embeddings"])
        if init is not None:
            if resume:
                fail("--init starts a new run from a model's weights and --resume continues an "
                     "interrupted run: give one (a fine-tuning run is resumed with --resume "
                     "alone)", 2)
            if textbook:
                fail("--textbook sets the architecture, which --init takes from the model "
                     "(drop --textbook)", 2)
            if vocab_path is not None:
                fail("--vocab builds a new model's inventories; with --init they are the "
                     "model's, extended by the data (drop --vocab)", 2)
        elif resume:
            init = resumed_init(checkpoint)
        base = init_model = None
        # Only the options given on the command line: the others keep their defaults, which
        # for character-level data are the character-level configuration's (seqtag.config),
        # and with --init the init model's.
        given = {k: v for k, v in options.items() if _given(ctx, k)}
        if init is not None:
            from seqtag.finetune import init_config, load_init

            base, init_model = load_init(init)
            try:
                cfg = init_config(base, given)
            except SeqtagError as e:
                fail(str(e), 2)
        else:
            cfg = TrainConfig(**given)
        if textbook:
            cfg = dataclasses.replace(cfg, **TEXTBOOK)
        try:
            cfg.check()
        except SeqtagError as e:
            fail(str(e), 2)              # a bad option value is a usage error, as Click's are
        if dev and no_dev:
            fail("--dev and --no-dev contradict each other (give one)", 2)
        check_writable(out)
        train_sents, infos, files = [], [], []
        if input_format in ("fasta", "seqlabels"):
            from seqtag.cli._sequences import read_training

            if dev_labels and not dev:
                fail("--dev-labels gives the labels of the --dev file; give --dev too")
            train_sents, infos, files = read_training(corpus, labels, input_format, max_length)
            dev_sents, dev_info = (None, None)
            if dev:
                dev_sents, (dev_info,), _ = read_training(
                    [dev], [dev_labels] if dev_labels else None, input_format, max_length,
                    "--dev-labels")
        else:
            if labels or dev_labels:
                fail("--labels and --dev-labels go with --input-format fasta")
            for path in corpus:
                sents, info = read_corpus(path, fmt=input_format, labels="required")
                train_sents += sents
                infos.append(info)
                files.append((info.name, sents))
            dev_sents, dev_info = (read_corpus(dev, fmt=input_format, labels="required")
                                   if dev else (None, None))
        if dev:
            files.append((dev_info.name, dev_sents))
        render = Renderer()
        if base is not None:
            train_sents, dev_sents = convert_schemes(base.scheme, files, len(corpus),
                                                     render.notes)
        vocab = Vocabulary.load(vocab_path) if vocab_path else None
        if vocab is not None:
            check_labels(vocab, vocab_path, files)
        if not dev and not no_dev:
            train_sents, dev_sents = split_dev(train_sents, HOLDOUT, cfg.seed)
            if dev_sents:
                render.notes.append(
                    f"no --dev: holding out {len(dev_sents):,} of the training sentences "
                    f"({HOLDOUT:.0%}, seed {cfg.seed}) to choose the epoch (--no-dev trains on "
                    f"all of them)")
            else:
                dev_sents = None
                render.notes.append("no --dev, and too few sentences to hold some out: "
                                    f"training on all of them for {cfg.epochs} epochs")
        if resume:
            render.notes.append(f"resuming from {checkpoint}")
        elif checkpoint.exists():
            render.notes.append(f"note: starting afresh; the checkpoint {checkpoint} of an "
                                f"earlier run will be replaced (--resume continues it)")
        terminated = []
        with _sigterm_as_interrupt(terminated):
            try:
                trainer = Trainer(cfg, progress=render, checkpoint=checkpoint,
                                  started=started).fit(
                    train_sents, dev_sents, vocab=vocab, corpus=infos, dev_corpus=dev_info,
                    resume=resume, init=base, init_source=init_model)
            finally:
                render.close()
        code = 143 if terminated else 130   # 128 + the signal's number, as shells report it
        if trainer.model_ is None:
            fail("interrupted before the first epoch ended; no model written", code)
        trainer.model_.save(out)
        members = trainer.model_.meta.get("ensemble")
        what = (f"the {len(members)} ensemble members merged" if members else
                f"the model of epoch {trainer.best_epoch_}")
        if trainer.interrupted_:
            if members:     # the last member's: nothing an ensemble run resumes from
                checkpoint.unlink(missing_ok=True)
            err.print(f"saved {what} to {out} (interrupted; " +
                      ("an --ensemble run is not resumed)" if members else
                       f"'--resume' continues from {checkpoint})"), markup=False)
            raise typer.Exit(code)
        checkpoint.unlink(missing_ok=True)   # the run is complete: nothing left to resume
        err.print(f"saved {what} to {out}", markup=False)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was given (command line or environment), not left at its default.
    (By the source's name: Typer vendors its own Click.)"""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _command_signature(fn, extra: list[inspect.Parameter]):
    """``fn`` with its ``**options`` replaced by ``extra`` in the signature Typer reads."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params] + extra
    fn.__signature__ = inspect.Signature(params, return_annotation=None)
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


app.command("train")(_command_signature(train, _config_options()))
