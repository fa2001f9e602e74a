"""seqtag's command line: one module per command under one Typer app."""

from seqtag.cli._app import app
from seqtag.cli import build_vocab, evaluate, inspect, tag, train  # noqa: F401  (registers)


def main() -> None:
    app()
