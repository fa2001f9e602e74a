"""seqtag: a fast command-line sequence labeler on the CPU."""

__version__ = "0.2.0"
