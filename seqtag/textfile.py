"""Reading text files safely: opening with clear errors, and lines as they stream.

Every reader of user files (corpora, vocabularies, word vectors, texts on stdin) goes through
here, so each of them ends lines at CR, LF or CRLF, refuses binary data, invalid UTF-8 and stray
byte order marks with the file, line and byte offset, and never reads a whole device or an
endless line into memory.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from seqtag.errors import SeqtagError

_BOM = b"\xef\xbb\xbf"


@contextmanager
def open_input(source, name: str, what: str = "file") -> Iterator[BinaryIO]:
    """A binary stream of ``source``: a path, ``"-"`` for stdin, or an open binary file (which
    the caller owns and which is not closed here). ``what`` names the kind of file in errors."""
    if not isinstance(source, (str, os.PathLike)):
        yield source  # the caller owns the file object, so it is not closed here
        return
    if str(source) == "-":
        yield _gunzipped(sys.stdin.buffer, name)
        return
    try:
        f = open(source, "rb")
    except FileNotFoundError:
        raise SeqtagError(f"no such {what}", path=name, hint="check the path") from None
    except IsADirectoryError:
        raise SeqtagError(f"is a directory, not a {what}", path=name,
                          hint="give the path of a file inside it") from None
    except PermissionError:
        raise SeqtagError("cannot be read (permission denied)", path=name,
                          hint="check the file's permissions") from None
    except OSError as e:
        raise SeqtagError(f"cannot be opened ({e.strerror})", path=name) from None
    with f:
        yield _gunzipped(f, name)


# gzip's magic number. Its second byte can never follow the first in UTF-8 text (0x8b is a
# continuation byte), so a file that starts with it is read as gzip whatever its name: what
# reads as text now reads the same, and `zcat | seqtag` is not needed.
_GZIP = b"\x1f\x8b"


def _gunzipped(stream: BinaryIO, name: str) -> BinaryIO:
    """``stream``, or its decompressed bytes when it starts with gzip's magic number."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return stream
    try:
        head = peek(2)[:2]
    except OSError:
        return stream           # the reader reports what is wrong with it
    if head != _GZIP:
        return stream
    import gzip                 # 2 ms, for compressed files only

    return _Gunzip(gzip.GzipFile(fileobj=stream, mode="rb"), name)


class _Gunzip:
    """A gzip stream whose decompression errors are SeqtagErrors naming the file."""

    def __init__(self, stream, name: str):
        self.stream, self.name = stream, name

    def read1(self, n: int = -1) -> bytes:
        import zlib

        try:
            return self.stream.read1(n)
        except (EOFError, zlib.error, OSError) as e:
            raise SeqtagError(f"is not a valid gzip file ({e})", path=self.name,
                              hint="check the file, e.g. gzip -t FILE") from None


# Big enough to read a file in few calls, small enough that NUL-filled input (a device, a
# binary file without newlines) is refused before it fills the memory.
_CHUNK = 1 << 16
_NUL_HINT = ("seqtag reads UTF-8 text; UTF-16 files also hold NUL bytes, convert them with "
             "iconv -f utf-16 -t utf-8")


def read_lines(stream: BinaryIO, name: str, digest=None, *, max_line: int | None = None,
               hint: str = "") -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of a binary stream, as it streams.

    Lines end at CR, LF or CRLF (files from old Mac tools and from Windows read like UNIX ones).
    The bytes are checked as they come: a NUL byte (a binary file), invalid UTF-8 and a byte
    order mark anywhere but at the very start are errors naming the line and the byte offset
    in the whole stream; so is a line longer than ``max_line`` bytes (``hint`` says what such a
    file's lines should look like). ``digest.update`` (when given) sees every byte read.
    """
    # read1 returns what a pipe holds without waiting for a full chunk, so each line is yielded
    # as soon as it has arrived (``seqtag tag`` on an endless pipe).
    read1 = getattr(stream, "read1", None)
    read = (lambda: read1(_CHUNK)) if read1 is not None else stream.readline
    no, offset, line_start, pending = 1, 0, 0, 0
    parts: list[bytes] = []
    # A CR ends its line at once (no waiting for the next chunk); an LF right after it, at the
    # start of the next chunk, is then the second half of a CRLF, not an empty line.
    after_cr = False
    while True:
        try:
            chunk = read()
        except OSError as e:   # EIO from a failing disk, a /proc file that cannot be read, ...
            raise SeqtagError(f"cannot be read ({e.strerror})", path=name, line=no) from None
        if not chunk:
            break
        if not isinstance(chunk, bytes):
            raise TypeError("reading needs a binary file object (open(path, 'rb'))")
        if digest is not None:
            digest.update(chunk)
        pos = 0
        if after_cr and chunk[:1] == b"\n":
            pos, line_start = 1, line_start + 1
        after_cr = False
        nul = chunk.find(b"\0", pos)
        # bytes.splitlines breaks at exactly LF, CR and CRLF (str.splitlines would also break
        # at form feeds and U+2028, which are text inside a token).
        for piece in chunk[pos:].splitlines(True):
            end = pos + len(piece)
            if 0 <= nul < end:
                raise SeqtagError(f"looks like a binary file (NUL byte at byte offset "
                                  f"{offset + nul})", path=name, line=no, hint=_NUL_HINT)
            last = piece[-1:]
            cut = (2 if piece[-2:] == b"\r\n" else 1) if last in (b"\n", b"\r") else 0
            if max_line is not None and pending + len(piece) - cut > max_line:
                raise SeqtagError(f"line is longer than {max_line:,} bytes", path=name,
                                  line=no, hint=hint or "is this the right file?")
            if not cut:   # the line goes on in the next chunk
                parts.append(piece)
                pending += len(piece)
                break
            body = piece[:-cut]
            if parts:
                body = b"".join(parts) + body
                parts, pending = [], 0
            yield no, _decode(body, line_start, name, no)
            no, line_start, pos = no + 1, offset + end, end
            after_cr = last == b"\r" and end == len(chunk)
        offset += len(chunk)
    if parts:
        yield no, _decode(b"".join(parts), line_start, name, no)


def _decode(body: bytes, start: int, name: str, no: int) -> str:
    """A line's text; ``start`` is its byte offset in the stream (0: it may begin with a BOM)."""
    skip = len(_BOM) if start == 0 and body.startswith(_BOM) else 0
    try:
        text = body[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeqtagError(f"invalid UTF-8 at byte offset {start + skip + e.start}",
                          path=name, line=no,
                          hint="seqtag reads UTF-8; convert the file, "
                               "e.g. iconv -f latin1 -t utf-8") from None
    bom = text.find("\ufeff")
    if bom >= 0:
        # Files joined with cat keep each part's BOM; glued to a token it would make a new word.
        at = start + skip + len(text[:bom].encode("utf-8"))
        raise SeqtagError(f"byte order mark (U+FEFF) at byte offset {at}, which is only "
                          f"allowed at the very start of a file", path=name, line=no,
                          hint="remove it, e.g. sed -i 's/\\xEF\\xBB\\xBF//g' FILE")
    return text
