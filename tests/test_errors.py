"""Bad input through the command line.

Every case must give exactly one ``ERROR:`` line on stderr that names the file (and the line when
there is one), a non-zero exit, no traceback, and must leave files already written (a model or a
vocabulary at the -o path, a file in the way of the -o path) byte-identical. Training failures
must happen before training starts: stderr has no epoch rows.

The full matrix (every bad file through every command, every bad model, ...) runs in-process with
Typer's CliRunner, since the CLI takes about a second to start; a representative case of each kind
then runs again as a real process (in parallel), where a traceback would really reach stderr.

Tests run as root, so chmod cannot make a directory unwritable; a path under a regular file
(``somefile/model.npz``) is used instead.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag.cli import app
from seqtag.model import FORMAT_VERSION

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "samples" / "tiny.tsv"
SEQTAG = [sys.executable, "-m", "seqtag"]
EPOCH_ROW = re.compile(r"^\s*\d+\s+\d+\.\d{4}\s", re.M)


class Result:
    def __init__(self, returncode: int, stdout: bytes | str, stderr: bytes | str,
                 exception: BaseException | None = None, how: str = "process"):
        decode = (lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b)
        self.returncode, self.stdout, self.stderr = returncode, decode(stdout), decode(stderr)
        self.exception, self.how = exception, how

    def __repr__(self) -> str:
        return (f"<{self.how}: exit {self.returncode}, exception {self.exception!r}>\n"
                f"--- stdout ---\n{self.stdout[:2000]}\n--- stderr ---\n{self.stderr[:2000]}")


def run(*args, input: bytes | str | None = None) -> Result:
    """A real ``python -m seqtag`` process."""
    if isinstance(input, str):
        input = input.encode("utf-8")
    proc = subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                          timeout=300)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def invoke(*args, input: bytes | str | None = None) -> Result:
    """The same command in this process (no start-up cost)."""
    res = CliRunner().invoke(app, [str(a) for a in args], input=input)
    # An exception that escaped the CLI's error handling is a bug (a traceback in a real run).
    exc = None if isinstance(res.exception, SystemExit) else res.exception
    return Result(res.exit_code, res.stdout_bytes, res.stderr_bytes, exc, how="in-process")


def run_parallel(jobs: dict) -> dict:
    """Many independent real processes at once: {key: (args, input)} -> {key: Result}."""
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 2) as pool:
        futures = {key: pool.submit(run, *args, input=inp) for key, (args, inp) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def assert_error(res: Result, path=None, line: int | None = None, *, says: str = "",
                 stdout_empty: bool = True) -> str:
    """One ERROR line (all of stderr), naming ``path`` (and ``line``); returns the message."""
    assert res.returncode != 0, res
    assert res.exception is None, res
    assert "Traceback" not in res.stderr, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), res
    message = lines[0]
    if path is not None:
        where = f"ERROR: {path}:{line}: " if line is not None else f"ERROR: {path}: "
        assert message.startswith(where), (where, res)
    if says:
        assert says in message, (says, res)
    if stdout_empty:
        assert res.stdout == "", res
    return message


def assert_not_trained(res: Result) -> None:
    assert "training on" not in res.stderr and not EPOCH_ROW.search(res.stderr), res


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.npz"
    # --dev also runs the tagging kernels, so that (after an edit of seqtag/kernels/) Numba's
    # cache is rebuilt here once, not by each of the processes started in parallel below.
    res = run("train", TINY, "--dev", TINY, "--hidden", 8, "--epochs", 2, "-o", out)
    assert res.returncode == 0, res
    return out


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    res = invoke("build-vocab", TINY, "-o", out)
    assert res.returncode == 0, res
    return out


@pytest.fixture
def outputs(tmp_path, model, vocab):
    """A model and a vocabulary already at the -o paths, that a failing run must not touch."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_model, out_vocab = out_dir / "existing.npz", out_dir / "existing.vocab"
    shutil.copyfile(model, out_model)
    shutil.copyfile(vocab, out_vocab)
    before = _snapshot(out_dir)
    yield out_model, out_vocab
    # Byte-identical, and no temporary file left beside them.
    assert _snapshot(out_dir) == before


# -- bad corpus files, through every command that reads one -----------------------------------

UTF8_LINES = b"Sam\tB-PER\nvisited\tO\n"
BAD_FILES = {
    # name: (bytes, error line, words in the message)
    "empty": (b"", None, "is empty"),
    "blank-lines-only": (b"\n \n\t\n", None, "is empty"),
    "docstart-only": (b"-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n\n", None, "no sentence"),
    "ragged-columns": (b"Sam\tB-PER\nvisited\tO\n\nParis\tB-LOC\nis\tO\tX\n", 5,
                       "has 3 columns but its sentence has 2"),
    "label-missing-later": (b"Sam\tB-PER\nvisited\tO\n\nParis\n", 4, "only a token column"),
    "invalid-utf8": (UTF8_LINES + b"M\xfcnchen\tB-LOC\n", 3,
                     f"invalid UTF-8 at byte offset {len(UTF8_LINES) + 1}"),
    "latin1-after-bom": (b"\xef\xbb\xbfSam\tB-PER\n\xe9t\xe9\tO\n", 2,
                         "invalid UTF-8 at byte offset 13"),  # the BOM counts
    # gzip is read transparently (its magic bytes): a truncated one is the bad file
    "gzip": (gzip.compress(TINY.read_bytes(), mtime=0)[:-20], None,
             "is not a valid gzip file (Compressed file ended"),
    "utf16": (TINY.read_text(encoding="utf-8").encode("utf-16"), 1, "binary file (NUL byte"),
    "npz-bytes": (None, 1, "binary file (NUL byte"),  # the start of a real model file
}
COMMANDS = ("train", "build-vocab", "eval", "tag")


def command_args(command: str, corpus: Path, model: Path, out_model: Path, out_vocab: Path):
    return {
        "train": ["train", corpus, "--hidden", 4, "--epochs", 1, "-o", out_model],
        "build-vocab": ["build-vocab", corpus, "-o", out_vocab],
        "eval": ["eval", corpus, "-m", model],
        "tag": ["tag", "--input-format", "conll", "-m", model, corpus],
    }[command]


def write_bad_file(case: str, directory: Path, model: Path) -> Path:
    data = BAD_FILES[case][0]
    path = directory / f"{case}.txt"
    path.write_bytes(data if data is not None else model.read_bytes()[:300])
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_corpus_file(case, command, tmp_path, model, outputs):
    _, line, says = BAD_FILES[case]
    bad = write_bad_file(case, tmp_path, model)
    res = invoke(*command_args(command, bad, model, *outputs))
    assert_error(res, bad, line, says=says)
    if command == "train":
        assert_not_trained(res)


@pytest.mark.parametrize("command", COMMANDS)
def test_nonexistent_input_file(command, tmp_path, model, outputs):
    missing = tmp_path / "no-such-corpus.tsv"
    res = invoke(*command_args(command, missing, model, *outputs))
    assert_error(res, missing, says="no such file")


@pytest.mark.parametrize("command", ["train", "build-vocab", "eval"])
def test_missing_label_column(command, tmp_path, model, outputs):
    bad = tmp_path / "tokens-only.txt"
    bad.write_text("Sam\nvisited\nParis\n\nMaria\nworks\n", encoding="utf-8")
    res = invoke(*command_args(command, bad, model, *outputs))
    assert_error(res, bad, 1, says="label column")
    if command == "train":
        assert_not_trained(res)


def test_directory_as_input(tmp_path, model, outputs):
    res = invoke(*command_args("train", tmp_path, model, *outputs))
    assert_error(res, tmp_path, says="directory")


def test_train_dev_file_errors_before_training(tmp_path, outputs):
    bad = tmp_path / "dev.txt"
    bad.write_bytes(b"Sam\tB-PER\n\xff\tO\n")
    res = invoke("train", TINY, "--dev", bad, "--hidden", 4, "--epochs", 1, "-o", outputs[0])
    assert_error(res, bad, 2, says="invalid UTF-8 at byte offset 10")
    assert_not_trained(res)


def test_stdin_errors_name_stdin(model, outputs):
    res = invoke("train", "-", "--epochs", 1, "-o", outputs[0], input=b"")
    assert_error(res, "<stdin>", says="is empty")
    assert_not_trained(res)
    res = invoke("build-vocab", "-", input=b"Sam\tB-PER\nis\tO\tX\n")
    assert_error(res, "<stdin>", 2, says="has 3 columns")
    # Text on stdin: the line and the byte offset of the bad byte in the whole stream.
    res = invoke("tag", "-m", model, "-f", "conll", input=b"fine\nbad \xff byte\n")
    assert_error(res, "<stdin>", 2, says="invalid UTF-8 at byte offset 9", stdout_empty=False)


# -- bad model files ---------------------------------------------------------------------------

def rewrite_model(src: Path, dst: Path, **replace: np.ndarray) -> None:
    """Copy a model, replacing some of its arrays (written as numpy does, without pickles)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name = info.filename[:-len(".npy")]
            if name in replace:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, replace[name], allow_pickle=False)
                zout.writestr(info.filename, buf.getvalue())
            else:
                zout.writestr(info, zin.read(info))


def make_bad_model(case: str, model: Path, directory: Path) -> Path:
    path = directory / f"{case}.npz"
    data = model.read_bytes()
    if case == "text-file":
        path.write_text("this is not a model\n")
    elif case == "zip-of-text":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("README.txt", "hello")
    elif case == "npz-of-other-arrays":
        np.savez(path, a=np.arange(3), b=np.zeros((2, 2)))
    elif case == "npy-file":
        np.save(path, np.arange(5))
        path = path.with_suffix(".npz.npy")
    elif case == "empty-file":
        path.write_bytes(b"")
    elif case.startswith("truncated-"):
        keep = {"truncated-half": len(data) // 2, "truncated-1-byte": len(data) - 1,
                "truncated-100-bytes": 100}[case]
        path.write_bytes(data[:keep])
    elif case == "newer-format":
        rewrite_model(model, path, format_version=np.array(FORMAT_VERSION + 1, dtype=np.int64))
    elif case == "directory":
        path.mkdir()
    elif case != "nonexistent":
        raise AssertionError(case)
    return path


MODEL_CASES = ["text-file", "zip-of-text", "npz-of-other-arrays", "npy-file", "empty-file",
               "truncated-half", "truncated-1-byte", "truncated-100-bytes", "newer-format",
               "directory", "nonexistent"]


def check_model_message(case: str, message: str) -> None:
    if case == "newer-format":
        assert f"model format {FORMAT_VERSION + 1}" in message and "upgrade" in message
    elif case.startswith("truncated"):
        assert "truncated" in message or "damaged" in message
    elif case == "nonexistent":
        assert "no such model file" in message
    elif case == "directory":
        assert "directory" in message
    else:
        assert "not a seqtag model" in message
        assert "pickle" not in message.lower()


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_file(case, model, tmp_path):
    bad = make_bad_model(case, model, tmp_path)
    before = bad.read_bytes() if bad.is_file() else None
    messages = [assert_error(invoke(*args), bad) for args in (
        ["tag", "-m", bad, "Sam visited Paris ."],
        ["tag", "--input-format", "conll", "-m", bad, TINY],
        ["inspect", bad],
        ["inspect", bad, "--json"],
        ["eval", TINY, "-m", bad],
    )]
    assert all(m == messages[0] for m in messages)  # one loader, one message
    check_model_message(case, messages[0])
    if before is not None:
        assert bad.read_bytes() == before


def test_rewrite_model_keeps_a_good_model(model, tmp_path):
    # The helper that makes the newer-format file changes nothing else.
    same = tmp_path / "same.npz"
    rewrite_model(model, same, format_version=np.array(FORMAT_VERSION, dtype=np.int64))
    res = invoke("inspect", same, "--json")
    assert res.returncode == 0 and res.exception is None, res


# -- vocabularies ------------------------------------------------------------------------------

def test_vocab_missing_a_label(tmp_path, outputs):
    small = tmp_path / "small.vocab"
    small.write_text("<pad>\t0\n<unk>\t0\nSam\t1\n\nO\t5\nB-PER\t1\nI-PER\t1\n")
    res = invoke("train", TINY, "--vocab", small, "--hidden", 4, "--epochs", 1, "-o", outputs[0])
    message = assert_error(res, TINY, 1)  # tiny.tsv's first sentence has B-LOC
    assert str(small) in message and "'B-LOC'" in message
    assert_not_trained(res)


def test_vocab_missing_a_dev_label(tmp_path, vocab, outputs):
    dev = tmp_path / "dev.tsv"
    dev.write_text("Sam\tB-PER\n\nacme\tB-MISC\n")
    res = invoke("train", TINY, "--dev", dev, "--vocab", vocab, "--hidden", 4, "--epochs", 1,
                 "-o", outputs[0])
    message = assert_error(res, dev, 3)
    assert "'B-MISC'" in message and str(vocab) in message
    assert_not_trained(res)


@pytest.mark.parametrize("case", ["corpus-as-vocab", "nonexistent", "binary", "no-labels"])
def test_vocab_not_a_vocabulary(case, tmp_path, model, outputs):
    path = tmp_path / "x.vocab"
    line = None
    if case == "corpus-as-vocab":
        shutil.copyfile(TINY, path)
        line = 1
    elif case == "binary":
        shutil.copyfile(model, path)
        line = 1  # its first NUL byte
    elif case == "no-labels":
        path.write_text("<pad>\t0\n<unk>\t0\nSam\t1\n")
        line = 3  # where it ends without the labels
    res = invoke("train", TINY, "--vocab", path, "--hidden", 4, "--epochs", 1, "-o", outputs[0])
    assert_error(res, path, line)
    assert_not_trained(res)


# -- output paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["missing-directory", "under-a-file", "is-a-directory"])
def test_train_unwritable_output(where, tmp_path):
    somefile = tmp_path / "somefile"
    somefile.write_bytes(b"keep me\n")
    target = {"missing-directory": tmp_path / "missing" / "model.npz",
              "under-a-file": somefile / "model.npz",
              "is-a-directory": tmp_path}[where]
    res = invoke("train", TINY, "--hidden", 4, "--epochs", 1, "-o", target)
    assert_error(res, target)
    assert_not_trained(res)  # checked before, not after, the training
    assert somefile.read_bytes() == b"keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


@pytest.mark.parametrize("where", ["missing-directory", "under-a-file"])
def test_build_vocab_unwritable_output(where, tmp_path):
    somefile = tmp_path / "somefile"
    somefile.write_bytes(b"keep me\n")
    target = {"missing-directory": tmp_path / "missing" / "v.txt",
              "under-a-file": somefile / "v.txt"}[where]
    res = invoke("build-vocab", TINY, "-o", target)
    assert_error(res, target)
    assert somefile.read_bytes() == b"keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


# -- unknown option values ---------------------------------------------------------------------

UNKNOWN_VALUES = [
    (["tag", "-f", "xml", "hi"], "xml"),
    (["tag", "--format", "CONLL", "hi"], "CONLL"),
    (["tag", "--input-format", "csv", "hi"], "csv"),
    (["train", TINY, "--optimizer", "rmsprop"], "rmsprop"),
    (["train", TINY, "--input-format", "csv"], "csv"),
    (["build-vocab", TINY, "--input-format", "csv"], "csv"),
]


@pytest.mark.parametrize("args, bad", UNKNOWN_VALUES, ids=lambda x: str(x))
def test_unknown_option_values(args, bad, model, outputs):
    if args[0] == "tag":
        args = [*args, "-m", model]
    if args[0] == "train":
        args = [*args, "--epochs", 1, "-o", outputs[0]]
    res = invoke(*args)
    message = assert_error(res)
    assert f"'{bad}'" in message
    if args[0] == "train":
        assert_not_trained(res)


# -- the same, as real processes ---------------------------------------------------------------

@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, model, vocab):
    """A representative case of each kind, as real processes run in parallel:
    {name: (Result, expected path, expected line, words, directory that must stay unchanged)}.

    Each case gets a directory ``d`` whose ``out/`` holds a model (``om``) and a vocabulary
    (``ov``) already written, which the failing run must leave alone."""
    base = tmp_path_factory.mktemp("real")
    jobs, expect = {}, {}

    def add(name, prepare, path, line=None, says="", input=None):
        """``prepare(d, om, ov)`` writes the case's files and returns the command's arguments;
        ``path`` is the file the ERROR line must name (a function of ``d``, or fixed)."""
        d = base / name
        (d / "out").mkdir(parents=True)
        om, ov = d / "out" / "existing.npz", d / "out" / "existing.vocab"
        shutil.copyfile(model, om)
        shutil.copyfile(vocab, ov)
        jobs[name] = (prepare(d, om, ov), input)
        expect[name] = (path(d) if callable(path) else path, line, says, d / "out",
                        _snapshot(d / "out"))

    def bad_corpus(case, command):
        return lambda d, om, ov: command_args(command, write_bad_file(case, d, model), model,
                                              om, ov)

    def tokens_only(d, om, ov):
        (d / "t.txt").write_text("Sam\nvisited\n")
        return command_args("train", d / "t.txt", model, om, ov)

    def bad_model(case):
        return lambda d, om, ov: ["tag", "-m", make_bad_model(case, model, d), "Sam"]

    def vocab_mismatch(d, om, ov):
        (d / "v").write_text("<pad>\t0\n<unk>\t0\n\nO\t1\n")
        return ["train", TINY, "--vocab", d / "v", "--epochs", 1, "-o", om]

    for case, command in [("empty", "train"), ("docstart-only", "build-vocab"),
                          ("ragged-columns", "tag"), ("invalid-utf8", "eval"),
                          ("npz-bytes", "train"), ("gzip", "tag")]:
        _, line, says = BAD_FILES[case]
        add(f"{case}-{command}", bad_corpus(case, command),
            lambda d, case=case: d / f"{case}.txt", line, says)
    add("nonexistent-train",
        lambda d, om, ov: command_args("train", d / "nope.tsv", model, om, ov),
        lambda d: d / "nope.tsv", None, "no such file")
    add("tokens-only-train", tokens_only, lambda d: d / "t.txt", 1, "label column")
    for case in ("text-file", "truncated-half", "newer-format"):
        add(f"model-{case}", bad_model(case), lambda d, case=case: d / f"{case}.npz")
    add("vocab-mismatch", vocab_mismatch, TINY, 1, "'B-PER'")
    add("output-under-a-file",
        lambda d, om, ov: ["train", TINY, "--epochs", 1, "-o", om / "model.npz"],
        lambda d: d / "out" / "existing.npz" / "model.npz", None, "cannot write")
    add("output-missing-dir",
        lambda d, om, ov: ["build-vocab", TINY, "-o", d / "missing" / "v.txt"],
        lambda d: d / "missing" / "v.txt", None, "cannot write")
    add("unknown-format", lambda d, om, ov: ["tag", "-m", model, "-f", "xml", "hi"],
        None, None, "'xml'")
    add("unknown-optimizer",
        lambda d, om, ov: ["train", TINY, "--optimizer", "rmsprop", "-o", om], None, None,
        "'rmsprop'")
    add("stdin-empty-train", lambda d, om, ov: ["train", "-", "-o", om], "<stdin>", None,
        "is empty", input=b"")
    add("stdin-bad-utf8-tag", lambda d, om, ov: ["tag", "-m", model, "-f", "conll"],
        "<stdin>", 2, "invalid UTF-8 at byte offset 5", input=b"fine\n\xff\n")
    results = run_parallel(jobs)
    return {name: (results[name], *expect[name]) for name in jobs}


REAL_CASES = ["empty-train", "docstart-only-build-vocab", "ragged-columns-tag",
              "invalid-utf8-eval", "npz-bytes-train", "gzip-tag", "nonexistent-train",
              "tokens-only-train", "model-text-file", "model-truncated-half",
              "model-newer-format", "vocab-mismatch", "output-under-a-file",
              "output-missing-dir", "unknown-format", "unknown-optimizer", "stdin-empty-train",
              "stdin-bad-utf8-tag"]


@pytest.mark.parametrize("name", REAL_CASES)
def test_real_process(name, real_runs):
    res, path, line, says, out_dir, before = real_runs[name]
    assert_error(res, path, line, says=says, stdout_empty=True)
    assert "training on" not in res.stderr and not EPOCH_ROW.search(res.stderr), res
    assert _snapshot(out_dir) == before
    if name.startswith("model-"):
        check_model_message(name[len("model-"):], res.stderr)


def test_real_cases_cover_the_fixture(real_runs):
    assert sorted(real_runs) == sorted(REAL_CASES)
