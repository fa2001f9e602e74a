"""Odd paths, hostile environment variables and huge inputs through the command line.

Paths (in-process): directories, device nodes, symlinks (to a file, to a directory, dangling,
looping), unreadable paths (under a regular file), over-long names and paths, names with rich
markup or a line break, given wherever a command reads or writes a file. Property: a command
that reads one gives one ERROR line naming it (or works, for a symlink to a good file); a
command that writes one never replaces a symlink or a device with a regular file.

Environment and size (real processes, killed after 10 s): the command works or gives one ERROR
line, within 10 s. Device nodes used as outputs are created in a temporary directory: never pass
/dev/null or another system node as -o, a test that fails would replace it for the machine.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fuzz_harness as H


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    """Name -> an odd path, all inside one temporary directory."""
    d = tmp_path_factory.mktemp("odd-paths")
    (d / "dir").mkdir()
    regular = d / "regular.txt"
    regular.write_text("a\tO\n", encoding="utf-8")
    paths = {
        "directory": d / "dir",
        "dangling symlink": d / "dangling",
        "symlink loop": d / "loop-a",
        "symlink to a directory": d / "to-dir",
        "path under a regular file": regular / "x.tsv",
        "300-character name": d / ("n" * 300 + ".tsv"),
        "5000-character path": d / "/".join(["p" * 200] * 25),
        "missing, name with [/] markup": d / "[/]x[bold].tsv",
        "missing, name with a line break": d / "two\nlines.tsv",
        "empty device (null)": d / "null-device",
    }
    paths["unreadable file (chmod 000)"] = d / "unreadable.tsv"
    paths["unreadable file (chmod 000)"].write_text("a\tO\n", encoding="utf-8")
    os.chmod(paths["unreadable file (chmod 000)"], 0)
    os.symlink(d / "nowhere", paths["dangling symlink"])
    os.symlink(d / "loop-b", paths["symlink loop"])
    os.symlink(d / "loop-a", d / "loop-b")
    os.symlink(d / "dir", paths["symlink to a directory"])
    try:
        os.mknod(paths["empty device (null)"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        del paths["empty device (null)"]
    return paths


# Where a command reads a path: (input class, argv with P for the path).
_READERS = [
    ("tag -m", ("tag", "-m", "P", "x")),
    ("tag --input-format conll", ("tag", "-m", "NER", "--input-format", "conll", "P")),
    ("eval", ("eval", "P", "-m", "NER")),
    ("eval --tagged", ("eval", "--tagged", "P")),
    ("build-vocab", ("build-vocab", "P")),
    ("train", ("train", "P", "--epochs", "1", "--hidden", "4", "-o", "OUT")),
    ("train --dev", ("train", "TINY", "--dev", "P", "--epochs", "1", "--hidden", "4", "-o", "OUT")),
    ("train --vocab", ("train", "TINY", "--vocab", "P", "--epochs", "1", "--hidden", "4",
                       "-o", "OUT")),
    ("train --embeddings", ("train", "TINY", "--embeddings", "P", "--epochs", "1", "--hidden", "4",
                            "-o", "OUT")),
    ("inspect", ("inspect", "P")),
    ("inspect --json", ("inspect", "--json", "P")),
]
_KINDS = ["directory", "dangling symlink", "symlink loop", "symlink to a directory",
          "path under a regular file", "300-character name", "5000-character path",
          "missing, name with [/] markup", "missing, name with a line break",
          "empty device (null)", "unreadable file (chmod 000)"]

# (reader, kind) -> why it fails today.
PATH_BUGS: dict[tuple[str, str], str] = {}     # none open


def _fill(argv, path: Path, ner: Path, out: Path) -> list:
    subst = {"P": path, "NER": ner, "TINY": H.TINY, "OUT": out}
    return [subst.get(a, a) for a in argv]


def _reader_cases(known: bool):
    cases = []
    for reader, argv in _READERS:
        for kind in _KINDS:
            if ((reader, kind) in PATH_BUGS) != known:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=PATH_BUGS[reader, kind])] \
                if known else []
            cases.append(pytest.param(reader, argv, kind, marks=marks, id=f"{reader}: {kind}"))
    return cases


def check_reader(odd, ner_model, tmp_path, reader, argv, kind):
    if kind not in odd:
        pytest.skip("no device nodes here (mknod needs root)")
    if kind == "unreadable file (chmod 000)" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    path, out = odd[kind], tmp_path / "out.npz"
    if reader == "eval":
        argv = argv[:-1] + ("NER",)
    with H.observe(f"paths: {kind}") as box:
        run = H.cli(*_fill(argv, path, ner_model, out))
        # A path with a line break cannot be named on one line as it is: it is quoted, with
        # the line break escaped (seqtag.errors.show_path).
        name = repr(str(path)) if "\n" in str(path) else str(path)
        if reader == "tag -m" and kind == "empty device (null)":
            name = str(path)
        box["outcome"] = run.outcome(name)
        assert box["outcome"] == "error", run
        assert not out.exists(), run


@pytest.mark.parametrize("reader,argv,kind", _reader_cases(known=False))
def test_odd_input_paths(odd, ner_model, tmp_path, reader, argv, kind):
    check_reader(odd, ner_model, tmp_path, reader, argv, kind)


@pytest.mark.parametrize("reader,argv,kind", _reader_cases(known=True))
def test_odd_input_paths_known_bugs(odd, ner_model, tmp_path, reader, argv, kind):
    check_reader(odd, ner_model, tmp_path, reader, argv, kind)


def test_symlink_to_a_good_file_is_read(ner_model, tmp_path):
    link = tmp_path / "link.npz"
    os.symlink(ner_model, link)
    corpus = tmp_path / "corpus-link.tsv"
    os.symlink(H.TINY, corpus)
    for args in (("tag", "-m", link, "x"), ("inspect", link), ("build-vocab", corpus)):
        with H.observe("paths: symlink to a good file") as box:
            run = H.cli(*args)
            box["outcome"] = run.outcome()
            assert box["outcome"] == "correct", run


# -- outputs -------------------------------------------------------------------------------------

_WRITERS = [
    ("build-vocab -o", ("build-vocab", "TINY", "-o", "P")),
    ("train -o", ("train", "TINY", "--epochs", "1", "--hidden", "4", "--textbook", "-o", "P")),
]


def _output_path(tmp_path: Path, kind: str) -> Path:
    """A fresh odd output path (a failing run may replace it, so none is shared)."""
    if kind == "directory":
        (tmp_path / "dir").mkdir()
        return tmp_path / "dir"
    if kind == "300-character name":
        return tmp_path / ("n" * 300 + ".npz")
    if kind == "5000-character path":
        return tmp_path / "/".join(["p" * 200] * 25)
    if kind == "path under a regular file":
        (tmp_path / "regular").write_text("x", encoding="utf-8")
        return tmp_path / "regular" / "out"
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "dir", tmp_path / "to-dir")
    return tmp_path / "to-dir"


# (writer, kind) -> why it fails today.
_OUTPUT_BUGS: dict[tuple[str, str], str] = {}     # none open


def _output_params():
    out = []
    for writer, argv in _WRITERS:
        for kind in ("directory", "300-character name", "path under a regular file",
                     "symlink to a directory", "5000-character path"):
            why = _OUTPUT_BUGS.get((writer, kind))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            out.append(pytest.param(writer, argv, kind, marks=marks, id=f"{writer}: {kind}"))
    return out


@pytest.mark.parametrize("writer,argv,kind", _output_params())
def test_odd_output_paths_are_refused(ner_model, tmp_path, writer, argv, kind):
    path = _output_path(tmp_path, kind)
    with H.observe(f"paths: -o {kind}") as box:
        run = H.cli(*_fill(argv, path, ner_model, tmp_path))
        box["outcome"] = run.outcome(str(path))
        assert box["outcome"] == "error", run
        if kind == "symlink to a directory":
            assert path.is_symlink()


@pytest.mark.parametrize("writer,argv", _WRITERS, ids=[w for w, _ in _WRITERS])
def test_output_name_with_markup_is_written(ner_model, tmp_path, writer, argv):
    path = tmp_path / "[bold]out[red]x"
    with H.observe("paths: -o name with [bold] markup") as box:
        run = H.cli(*_fill(argv, path, ner_model, tmp_path))
        box["outcome"] = run.outcome()
        assert box["outcome"] == "correct" and path.is_file(), run


@pytest.mark.parametrize("writer,argv", _WRITERS, ids=[w for w, _ in _WRITERS])
@pytest.mark.parametrize("kind", ["symlink", "device"])
def test_output_never_replaces_a_symlink_or_device(ner_model, tmp_path, writer, argv, kind):
    """Writing through -o either follows the symlink (the link stays, its target gets the new
    file) or refuses; a device node is written to or refused, never replaced."""
    if kind == "symlink":
        target = tmp_path / "target"
        target.write_text("old", encoding="utf-8")
        path = tmp_path / "link"
        os.symlink(target, path)
    else:
        path = tmp_path / "device"
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))   # a private null device
        except OSError:
            pytest.skip("mknod needs root")
    with H.observe(f"paths: -o {kind}") as box:
        run = H.cli(*_fill(argv, path, ner_model, tmp_path))
        box["outcome"] = run.outcome(str(path))
        if kind == "symlink":
            assert path.is_symlink(), "the symlink was replaced by a regular file"
        else:
            assert stat.S_ISCHR(os.lstat(path).st_mode), "the device was replaced by a file"


# -- hostile environment variables (real processes) ----------------------------------------------

_NON_ASCII = "Caf\u00e9 M\u00fcller visited Z\u00fcrich ."
# (class, env, argv with NER/TINY/OUT, reason when it fails today or None)
_ENV_CASES = [
    ("PYTHONIOENCODING=ascii", {"PYTHONIOENCODING": "ascii"},
     ("tag", "-m", "NER", "-f", "inline", _NON_ASCII), None),
    ("PYTHONIOENCODING=ascii", {"PYTHONIOENCODING": "ascii"}, ("inspect", "--json", "NER"), None),
    ("NUMBA_DISABLE_JIT=1", {"NUMBA_DISABLE_JIT": "1"}, ("tag", "-m", "NER", "Sam Li ."), None),
    ("SOURCE_DATE_EPOCH not an integer", {"SOURCE_DATE_EPOCH": "abc"},
     ("train", "TINY", "--epochs", "1", "--hidden", "4", "--textbook", "-o", "OUT"), None),
    ("SOURCE_DATE_EPOCH not an integer", {"SOURCE_DATE_EPOCH": "1.5"},
     ("train", "TINY", "--epochs", "1", "--hidden", "4", "--textbook", "-o", "OUT"), None),
    ("SOURCE_DATE_EPOCH not an integer", {"SOURCE_DATE_EPOCH": ""},
     ("train", "TINY", "--epochs", "1", "--hidden", "4", "--textbook", "-o", "OUT"), None),
    ("SOURCE_DATE_EPOCH not an integer", {"SOURCE_DATE_EPOCH": "abc"},
     ("tag", "-m", "NER", "Sam Li ."), None),
    ("COLUMNS, LINES odd", {"COLUMNS": "abc", "LINES": "-3"}, ("inspect", "NER"), None),
    ("COLUMNS, LINES odd", {"COLUMNS": "0"}, ("tag", "-m", "NER", "-f", "pretty", "Sam Li ."),
     None),
    ("locale C", {"LC_ALL": "C", "LANG": "C"}, ("tag", "-m", "NER", "-f", "jsonl", _NON_ASCII),
     None),
    ("TERM=dumb, NO_COLOR", {"TERM": "dumb", "NO_COLOR": "1", "FORCE_COLOR": "1"},
     ("tag", "-m", "NER", "-f", "pretty", _NON_ASCII), None),
    ("HOME unset", {"HOME": None}, ("tag", "-m", "NER", "Sam Li ."), None),
    ("NUMBA_CACHE_DIR unwritable", {"NUMBA_CACHE_DIR": str(H.TINY / "cache")},
     ("tag", "-m", "NER", "Sam Li ."), None),
    ("TMPDIR missing", {"TMPDIR": "/nonexistent-fuzz-dir"},
     ("train", "TINY", "--epochs", "1", "--hidden", "4", "--textbook", "-o", "OUT"), None),
    ("PYTHONHASHSEED, PYTHONUTF8", {"PYTHONHASHSEED": "123", "PYTHONUTF8": "0"},
     ("eval", "TINY", "-m", "NER"), None),
]
# The ordinary run samples one case of each kind; `make fuzz` runs them all.
_ENV_CI = {0, 2, 3, 7, 10}


def _env_params():
    out = []
    for i, (cls, env, argv, why) in enumerate(_ENV_CASES):
        if H.PROFILE != "fuzz" and i not in _ENV_CI:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(cls, env, argv, marks=marks, id=f"{i}: {cls}"))
    return out


@pytest.mark.parametrize("cls,env,argv", _env_params())
def test_hostile_environment(ner_model, tmp_path, cls, env, argv):
    out = tmp_path / "env.npz"
    args = _fill(argv, Path("-"), ner_model, out)
    with H.observe(f"env: {cls}", limit=None) as box:
        run = H.process(*args, env=env, cwd=tmp_path)
        box["outcome"] = run.outcome()
        if box["outcome"] == "correct" and argv[0] == "train":
            assert out.is_file()


# -- devices that never end a line, huge inputs (real processes) ---------------------------------

def _million(tmp_path: Path) -> Path:
    path = tmp_path / "million.tsv"
    path.write_bytes(b"w\tO\n" * 1_000_000)
    return path


# Devices used only as inputs (never as -o): (argv, the device the ERROR line names).
_ENDLESS = [
    pytest.param(("eval", "--tagged", "/dev/zero"), "/dev/zero", id="eval --tagged /dev/zero"),
    pytest.param(("build-vocab", "/dev/zero"), "/dev/zero", id="build-vocab /dev/zero"),
    pytest.param(("train", "TINY", "--vocab", "/dev/zero", "-o", "OUT"), "/dev/zero",
                 id="train --vocab /dev/zero"),
    pytest.param(("tag", "-m", "/dev/zero", "x"), "/dev/zero", id="tag -m /dev/zero"),
    pytest.param(("inspect", "/dev/urandom"), "/dev/urandom", id="inspect /dev/urandom"),
    pytest.param(("tag", "--input-format", "conll", "-m", "NER", "/dev/urandom"), "/dev/urandom",
                 id="tag --input-format conll /dev/urandom"),
    pytest.param(("train", "TINY", "--embeddings", "/dev/urandom", "-o", "OUT"), "/dev/urandom",
                 id="train --embeddings /dev/urandom"),
]
# Each case is a process of a few seconds: the ordinary run takes three of them.
_ENDLESS_CI = ("eval --tagged /dev/zero", "tag -m /dev/zero", "inspect /dev/urandom")


@pytest.mark.parametrize("argv,device", [p for p in _ENDLESS
                                         if H.PROFILE == "fuzz" or p.id in _ENDLESS_CI])
def test_endless_device_gets_one_error(ner_model, tmp_path, argv, device):
    """System devices only as inputs, in a process with 3 GB of address space at most."""
    args = _fill(argv, Path("-"), ner_model, tmp_path / "out.npz")
    with H.observe("paths: endless device (/dev/zero, /dev/urandom)", limit=None) as box:
        run = H.process(*args)
        box["outcome"] = run.outcome(device)
        assert box["outcome"] == "error"


def test_nbest_on_a_million_token_sentence(ner_model, tmp_path):
    """It used to hang in crf.py's n-best; --nbest now has a limit (N x tokens <= 1,000,000),
    so the sentence is refused on its line before anything is computed."""
    path = _million(tmp_path)
    with H.observe("size: --nbest 3 on a 1M-token sentence", limit=None) as box:
        run = H.process("tag", "-m", ner_model, "--input-format", "conll", "--nbest", "3", path)
        box["outcome"] = run.outcome(str(path), 1)
        assert box["outcome"] == "error" and "--nbest 3" in run.stderr, run


@pytest.mark.skipif(H.PROFILE != "fuzz", reason="about 8 s with the small model: `make fuzz` only")
def test_tag_a_two_million_token_sentence(ner_model, tmp_path):
    path = tmp_path / "two-million.tsv"
    path.write_bytes(b"w\tO\n" * 2_000_000)
    with H.observe("size: tag a 2M-token sentence", limit=None) as box:
        run = H.process("tag", "-m", ner_model, "--input-format", "conll", path)
        box["outcome"] = run.outcome(str(path))


@pytest.mark.parametrize("argv", [("eval", "--tagged", "P"), ("build-vocab", "P")],
                         ids=["eval --tagged", "build-vocab"])
def test_million_token_sentence_read_by_commands(tmp_path, argv):
    path = _million(tmp_path)
    with H.observe("size: 1M-token sentence (eval, build-vocab)", limit=None) as box:
        run = H.process(*[path if a == "P" else a for a in argv])
        box["outcome"] = run.outcome(str(path))


def test_ten_megabyte_line(ner_model, tmp_path):
    """One 10 MB token line: read as one token (or refused on its line), within 10 s."""
    path = tmp_path / "long-line.tsv"
    path.write_bytes(b"x" * 10_000_000 + b"\tO\nb\tO\n")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda argv: H.process(*argv), [
            ("build-vocab", path), ("tag", "-m", ner_model, "--input-format", "conll", path)]))
    for run in runs:
        with H.observe("size: 10 MB line (build-vocab, tag)", limit=None) as box:
            box["outcome"] = run.outcome(str(path), 1)
