"""seqtag: a fast command-line sequence labeler on the CPU.

The Python API (seqtag.api): ``seqtag.train(train, dev=None, **options) -> Tagger`` and
``seqtag.Tagger`` (``load``, ``fit``, ``tag``, ``predict``, ``score``, ``save``). They are
imported on first use, so that ``seqtag --help`` does not pay for NumPy.
"""

__version__ = "0.2.0"
__all__ = ["Tagger", "train", "__version__"]


def __getattr__(name):
    if name in ("Tagger", "train"):
        from seqtag import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqtag' has no attribute {name!r}")
