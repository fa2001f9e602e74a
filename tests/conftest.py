"""Fixtures shared by the test modules. (Helpers that are not fixtures are plain modules:
gradcheck.py, central differences; kernel_refs.py, NumPy references of the kernels.)"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def samples() -> Path:
    """The freely licensed data shipped in samples/."""
    return REPO / "samples"


@pytest.fixture(scope="session")
def tiny(samples):
    """samples/tiny.tsv's 13 labelled sentences."""
    from seqtag.corpus import read_corpus

    return read_corpus(str(samples / "tiny.tsv"))[0]


@pytest.fixture(scope="session")
def bundled_model():
    """The model shipped in the package, loaded once."""
    from seqtag.cli._app import default_model_path
    from seqtag.model import RNNTagger

    return RNNTagger.load(default_model_path())
