"""The shared Typer app, the stderr console and the one place where errors become ERROR lines."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

import seqtag
from seqtag.cli._coerce import SeqtagCommand, SeqtagGroup
from seqtag.errors import SeqtagError

class _App(typer.Typer):
    def command(self, *args, cls=None, **kwargs):
        # Every command converts its values without Pydantic where it can (seqtag.cli._coerce).
        return super().command(*args, cls=cls or SeqtagCommand, **kwargs)


app = _App(
    name="seqtag",
    cls=SeqtagGroup,
    help="Fast recurrent sequence labeling on the CPU: train on CoNLL column files, tag text "
         "and column files in pipelines, score with conlleval's rules.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from seqtag import __version__

        typer.echo(f"seqtag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="Print seqtag's version and exit.")
          ) -> None:
    pass


class _LazyConsole:
    """The stderr console, made when something is first printed: importing rich.console takes
    15 ms that a quiet `seqtag tag` into a pipe would pay for nothing. Attributes
    are the console's; ``console`` is the console itself (for rich objects that take one)."""

    _console = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            # soft_wrap: a long line stays one line in logs and pipes (grep), not cut at 80
            # columns. emoji=False: markup=False alone still turns ":thumbs_up:" in a file name
            # into a picture.
            type(self)._console = Console(stderr=True, highlight=False, soft_wrap=True,
                                          emoji=False)
        return self._console

    def __getattr__(self, name):
        return getattr(self.console, name)


# Progress and messages go to stderr; stdout carries only results.
err = _LazyConsole()


def default_model_path() -> Path:
    # Next to the package's own file, not through importlib.resources (12 ms of imports): the
    # loader reads a real file anyway, which a zipped install would not give it.
    return Path(seqtag.__file__).parent / "data" / "default.npz"


def fail(message: str, code: int = 2) -> None:
    err.print(f"ERROR: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors():
    """Turn library errors into one ERROR line and a non-zero exit; never a traceback."""
    try:
        yield
    except SeqtagError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly like other UNIX filters.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0)
