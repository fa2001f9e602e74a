"""seqtag's command line: one module per command under one Typer app."""

import sys

from seqtag.cli._app import app
from seqtag.cli import build_vocab, evaluate, inspect, tag, train  # noqa: F401  (registers)


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
    app()
