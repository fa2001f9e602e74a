"""seqtag's command line: one module per command under one Typer app."""

import sys

from seqtag.cli._app import app
from seqtag.cli import build_vocab, evaluate, inspect, tag, train  # noqa: F401  (registers)


def main() -> None:
    from seqtag.cli._environment import check_environment, setup_streams
    from seqtag.errors import SeqtagError

    # Before any command runs (and imports Numba): see seqtag.cli._environment.
    setup_streams()
    try:
        warnings = check_environment()
    except SeqtagError as e:
        sys.stderr.write(f"ERROR: {e}\n")
        sys.exit(2)
    for warning in warnings:
        sys.stderr.write(warning + "\n")
    app()
