"""seqtag's command line: one module per command under one Typer app.

A command's module registers it on the app when imported. ``seqtag.cli.app`` is the app with
every command; ``main`` imports only the module of the command it runs when the command comes
first (`seqtag tag ...`), so that one command does not pay for the others' imports and options
(the whole app for anything else: --help, a mistyped command, shell completion).
"""

import importlib
import os
import sys

# Before NumPy is first imported (by any command): one BLAS thread, unless the user chose a
# number. The NumPy engine's products are small (a batch's states by Waa, step after step), and
# OpenBLAS's other threads spin between them, which on a busy machine costs more than they bring.
# (The names are seqtag.engines.BLAS_VARIABLES, spelled out: importing it would import NumPy.)
if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

# Command name -> its module, in the order --help lists them.
COMMANDS = {"build-vocab": "build_vocab", "eval": "evaluate", "explain": "explain",
            "inspect": "inspect", "rank": "rank", "tag": "tag", "train": "train"}


def _register(names=COMMANDS) -> None:
    for name in names:
        importlib.import_module(f"seqtag.cli.{COMMANDS[name]}")


def __getattr__(name):
    if name == "app":
        from seqtag.cli._app import app

        _register()
        return app
    raise AttributeError(f"module 'seqtag.cli' has no attribute {name!r}")


def main() -> None:
    from seqtag.cli._environment import check_environment, setup_streams
    from seqtag.errors import SeqtagError

    # Before any command runs (and imports Numba): see seqtag.cli._environment.
    setup_streams()
    say = sys.stderr.write if sys.stderr is not None else (lambda text: None)
    try:
        warnings = check_environment()
    except SeqtagError as e:
        say(f"ERROR: {e}\n")
        sys.exit(2)
    for warning in warnings:
        say(warning + "\n")
    from seqtag.cli._app import app

    first = sys.argv[1] if len(sys.argv) > 1 else None
    _register([first] if first in COMMANDS else COMMANDS)
    try:
        code = app(standalone_mode=False)
    except Exception as e:
        # Typer's own usage errors (an option's value that is not a number, an unknown
        # command) would be drawn as a box over several lines: one ERROR line, as for the rest.
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.exit(e.exit_code)   # the help has been shown
        if type(e).__name__ == "Abort":
            say("ERROR: aborted\n")
            sys.exit(1)
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        ctx = getattr(e, "ctx", None)
        see = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(part.strip() for part in e.format_message().splitlines())
        say(f"ERROR: {message.strip()}{see}\n")
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
