"""Odd input a new user may give: line ends, labels, BOMs, adversarial text, odd write targets,
odd environments, odd files, vocabularies and embeddings that lie, memory that is not there.

Each case ends in a correct result or in exactly one ``ERROR: file:line: what (what to do)``
line and a non-zero exit, never a traceback. Command-line cases run as real processes (the CLI's
entry point, where the environment is checked, only runs there), several at a time.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from seqtag import memory
from seqtag.corpus import read_corpus, read_sentences
from seqtag.errors import SeqtagError
from seqtag.textfile import read_lines

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "samples" / "tiny.tsv"
SEQTAG = [sys.executable, "-m", "seqtag"]


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (f"<exit {self.returncode}>\n--- stdout ---\n{self.stdout[:2000]}\n"
                f"--- stderr ---\n{self.stderr[:2000]}")


def run(*args, input: bytes | str | None = None, env: dict | None = None,
        unset: tuple[str, ...] = (), cwd: Path | None = None) -> Result:
    """A real ``python -m seqtag`` process; ``env`` adds to (``unset`` removes from) ours."""
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    environ.update(env or {})
    if isinstance(input, str):
        input = input.encode("utf-8")
    proc = subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                          timeout=300, env=environ, cwd=cwd)
    return Result(proc)


def run_parallel(jobs: dict) -> dict:
    """{key: kwargs of run()} -> {key: Result}, a few processes at a time."""
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        futures = {key: pool.submit(run, *job.pop("args"), **job) for key, job in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def assert_error(res: Result, path=None, line: int | None = None, says: str = "") -> str:
    """One ERROR line (all of stderr) naming ``path`` (and ``line``); nothing on stdout."""
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), res
    if path is not None:
        where = f"ERROR: {path}:{line}: " if line is not None else f"ERROR: {path}: "
        assert lines[0].startswith(where), (where, res)
    assert says.lower() in lines[0].lower(), (says, res)
    assert res.stdout == "", res
    return lines[0]


def corpus_error(data: bytes, **kw) -> SeqtagError:
    with pytest.raises(SeqtagError) as info:
        list(read_sentences(io.BytesIO(data), name="c.tsv", **kw))
    return info.value


class Chunks:
    """A stream that hands out the given chunks one read at a time, as a pipe does."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)

    def read1(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


# -- 1. line ends ------------------------------------------------------------------------------

@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_cr_lf_and_crlf_end_lines_alike(end):
    data = end.join([b"Sam\tB-PER", b"visited\tO", b"", b"Paris\tB-LOC", b""])
    sents, info = read_corpus(io.BytesIO(data), name="c.tsv")
    assert [s.tokens for s in sents] == [["Sam", "visited"], ["Paris"]]
    assert [s.labels for s in sents] == [["B-PER", "O"], ["B-LOC"]]
    assert [s.line_no for s in sents] == [1, 4]
    assert info.bytes == len(data)


def test_crlf_split_between_two_reads_is_one_line_break():
    lines = list(read_lines(Chunks(b"a\r", b"\nb\r", b"\r\n", b"c\r\n\r", b"\n"), "x"))
    assert lines == [(1, "a"), (2, "b"), (3, ""), (4, "c"), (5, "")]
    # A CR that ends a read is yielded at once, not held back until the next read.
    reader = read_lines(Chunks(b"a\r"), "x")
    assert next(reader) == (1, "a")


def test_cr_only_file_trains_on_its_sentences(tmp_path):
    cr = tmp_path / "cr.tsv"
    cr.write_bytes(TINY.read_bytes().replace(b"\n", b"\r"))
    res = run("build-vocab", cr)
    assert res.returncode == 0, res
    expected = run("build-vocab", TINY)
    assert res.stdout == expected.stdout and res.stderr == expected.stderr.replace(
        str(TINY), str(cr))


def test_tag_reads_cr_separated_texts_from_stdin():
    res = run("tag", "-f", "inline", input=b"Sam visited Paris .\rMaria works\r\nBye")
    assert res.returncode == 0, res
    assert [line.split(" ")[0].split("/")[0] for line in res.stdout.splitlines()] == \
        ["Sam", "Maria", "Bye"]


# -- 2. labels outside the tag scheme's grammar -------------------------------------------------

@pytest.mark.parametrize("label, says", [(b"", "empty label"), (b" ", "empty label"),
                                         (b"B-", "'B-' has a chunk prefix but no type"),
                                         (b"I-", "'I-'"), (b"E-", "'E-'"), (b"S-", "'S-'")])
def test_label_without_type_is_an_error_naming_the_line(label, says):
    e = corpus_error(b"Sam\tB-PER\n\nvisited\t" + label + b"\nParis\tO\n")
    assert (e.path, e.line) == ("c.tsv", 3)
    assert says in str(e)


def test_predicted_label_column_is_checked_too():
    e = corpus_error(b"Sam\tB-PER\tB-PER\nvisited\tO\tI-\n", pred_col=-1)
    assert e.line == 2 and "predicted label 'I-'" in str(e)


def test_tagging_echoes_columns_without_checking_them_as_labels():
    """Only training and eval read the column after the token as a gold label; tag appends its
    prediction to whatever the columns hold (found by the fuzz suite)."""
    data = b"Sam\tB-\nLi\t\xc3\xa9\n"
    (sent,) = read_sentences(io.BytesIO(data), name="c.tsv", check_labels=False)
    assert sent.tokens == ["Sam", "Li"] and sent.labels == ["B-", "\u00e9"]
    res = run("tag", "--input-format", "conll", input=data)
    assert res.returncode == 0, res
    assert [line.split("\t")[:2] for line in res.stdout.splitlines() if line] == \
        [["Sam", "B-"], ["Li", "\u00e9"]]


def test_labels_the_schemes_read_are_kept():
    data = b"a\tB\nb\tI\nc\tO\nd\tNN\ne\tB-X-Y\nf\tU-LOC\n"
    (sent,) = read_sentences(io.BytesIO(data), name="c.tsv")
    assert sent.labels == ["B", "I", "O", "NN", "B-X-Y", "U-LOC"]


# -- 3. byte order marks -----------------------------------------------------------------------

def test_bom_only_at_the_very_start():
    (sent,) = read_sentences(io.BytesIO(b"\xef\xbb\xbfSam\tO\n"), name="c.tsv")
    assert sent.tokens == ["Sam"]
    e = corpus_error(b"Sam\tO\n\n\xef\xbb\xbfParis\tO\n")
    assert e.line == 3 and "byte order mark (U+FEFF) at byte offset 7" in str(e)
    e = corpus_error(b"Sam\tO\nParis\xef\xbb\xbf\tO\n")
    assert e.line == 2 and "byte offset 11" in str(e)
    # A second BOM at the start (a file whose BOM was doubled) is not the start any more.
    e = corpus_error(b"\xef\xbb\xbf\xef\xbb\xbfSam\tO\n")
    assert e.line == 1 and "byte offset 3" in str(e)


def test_bom_in_cat_joined_files_through_the_cli(tmp_path):
    joined = tmp_path / "joined.tsv"
    joined.write_bytes(b"\xef\xbb\xbfSam\tB-PER\n\n\xef\xbb\xbfParis\tB-LOC\n")
    assert_error(run("build-vocab", joined), joined, 3, "byte order mark")
    res = run("tag", "-f", "conll", input=b"\xef\xbb\xbfSam\nand\xef\xbb\xbfTom\n")
    assert res.returncode != 0 and "Traceback" not in res.stderr, res
    assert res.stderr.startswith("ERROR: <stdin>:2: byte order mark"), res


# -- 12. memory --------------------------------------------------------------------------------

def fake_files(monkeypatch, tmp_path, meminfo: str | None, limit: str | None,
               current: str | None) -> None:
    for attr, text in (("MEMINFO", meminfo), ("CGROUP_MAX", limit), ("CGROUP_CURRENT", current)):
        path = tmp_path / attr
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(memory, attr, str(path))


MEMINFO = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n"


@pytest.mark.parametrize("meminfo, limit, current, expected", [
    (MEMINFO, None, None, 8_000_000 * 1024),
    (MEMINFO, "max\n", "123\n", 8_000_000 * 1024),                  # no cgroup limit
    (MEMINFO, "1000000000\n", "400000000\n", 600_000_000),          # the cgroup is tighter
    (MEMINFO, "1000000000000\n", "0\n", 8_000_000 * 1024),          # the machine is tighter
    (None, "1000\n", "1500\n", 0),                                  # over the limit already
    (None, None, None, memory.UNKNOWN),
    ("garbage\n", "max\n", "0\n", memory.UNKNOWN),
])
def test_available_bytes(monkeypatch, tmp_path, meminfo, limit, current, expected):
    fake_files(monkeypatch, tmp_path, meminfo, limit, current)
    assert memory.available_bytes() == expected


def test_ensure_memory_names_what_how_much_and_what_to_lower(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 << 30)
    memory.ensure_memory(3 << 30, "the weights", "lower --hidden")  # exactly enough
    with pytest.raises(SeqtagError) as info:
        memory.ensure_memory(5 << 40, "the weights", "lower --hidden")
    assert str(info.value) == ("the weights would need 5.0 TB of memory, but only 3.0 GB is "
                               "available (lower --hidden)")


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_available_bytes_of_this_machine_is_read_from_proc():
    # Read, not the stand-in for "unknown": some memory, and less than a petabyte.
    assert 0 < memory.available_bytes() < 1 << 50


# -- 6.-8. the environment ---------------------------------------------------------------------

BAD_EPOCHS = ["abc", "", "1.5", "-1", "99999999999999999999999", "300000000000", " 17"]


@pytest.fixture(scope="module")
def env_runs(tmp_path_factory):
    """Every command under each odd environment, as real processes: {key: Result}."""
    d = tmp_path_factory.mktemp("env")
    jobs = {}
    model = d / "m.npz"
    train = ["train", TINY, "--textbook", "--hidden", 4, "--epochs", 1, "-o", model]
    # The model the other commands read, written under a malformed SOURCE_DATE_EPOCH.
    first = run(*train, env={"SOURCE_DATE_EPOCH": "abc"})
    for value in BAD_EPOCHS:
        env = {"SOURCE_DATE_EPOCH": value}
        jobs[("epoch", value, "tag")] = dict(args=["tag", "-m", model, "Sam"], env=env)
    env = {"SOURCE_DATE_EPOCH": "abc"}
    jobs[("epoch", "abc", "build-vocab")] = dict(args=["build-vocab", TINY], env=env)
    jobs[("epoch", "abc", "eval")] = dict(args=["eval", TINY, "-m", model], env=env)
    jobs[("epoch", "abc", "inspect")] = dict(args=["inspect", model, "--json"], env=env)
    text = "Sam Müller visited Zürich ☃ ."
    for key, env in {"ascii": {"PYTHONIOENCODING": "ascii"},
                     "C": {"LANG": "C", "LC_ALL": "C"}}.items():
        jobs[("locale", key, "tag")] = dict(args=["tag", "-f", "inline", text], env=env)
        jobs[("locale", key, "help")] = dict(args=["train", "--help"], env=env)
        jobs[("locale", key, "error")] = dict(args=["build-vocab", d / "Zürich.tsv"], env=env)
    jobs[("jit", "1")] = dict(args=["tag", "Sam"], env={"NUMBA_DISABLE_JIT": "1"})
    jobs[("jit", "abc")] = dict(args=["tag", "Sam"], env={"NUMBA_DISABLE_JIT": "abc"})
    jobs[("jit", "0")] = dict(args=["tag", "Sam"], env={"NUMBA_DISABLE_JIT": "0"})
    (d / "a-file").write_text("x")
    for key, value in {"file": d / "a-file", "under-file": d / "a-file" / "cache",
                       "proc": "/proc/no-such-dir"}.items():
        jobs[("cache", key)] = dict(args=["tag", "Sam"], env={"NUMBA_CACHE_DIR": str(value)})
    jobs[("home-unset",)] = dict(args=["tag", "Sam"], unset=("HOME",))
    results = run_parallel(jobs)
    results["first"] = first
    return results


@pytest.mark.parametrize("value", BAD_EPOCHS)
def test_malformed_source_date_epoch_is_ignored_with_one_warning(value, env_runs):
    res = env_runs[("epoch", value, "tag")]
    assert res.returncode == 0 and res.stdout.startswith("Sam\t"), res
    if value:
        assert res.stderr.splitlines() == [
            f"WARNING: SOURCE_DATE_EPOCH={value!r} is not a time (whole seconds since 1970, "
            "before the year 10000); ignored, so a model records the current time"], res
    else:
        assert res.stderr == "", res  # an empty value is an unset one


def test_every_command_runs_under_a_malformed_source_date_epoch(env_runs):
    import json
    from datetime import datetime, timezone

    first = env_runs["first"]
    assert first.returncode == 0 and "Traceback" not in first.stderr, first
    for command in ("build-vocab", "eval", "inspect"):
        res = env_runs[("epoch", "abc", command)]
        assert res.returncode == 0 and res.stderr.startswith("WARNING: SOURCE_DATE_EPOCH"), res
        assert "Traceback" not in res.stderr, res
    created = json.loads(env_runs[("epoch", "abc", "inspect")].stdout)["created"]
    # The ignored value gives the clock's time, not the epoch or a value made of "abc".
    age = datetime.now(timezone.utc) - datetime.fromisoformat(created)
    assert 0 <= age.total_seconds() < 600, created


@pytest.mark.parametrize("locale", ["ascii", "C"])
def test_non_ascii_output_under_an_ascii_locale(locale, env_runs):
    res = env_runs[("locale", locale, "tag")]
    assert res.returncode == 0 and res.stderr == "", res
    tokens = [pair.rsplit("/", 1)[0] for pair in res.stdout.split()]
    assert tokens == ["Sam", "Müller", "visited", "Zürich", "☃", "."]  # UTF-8, exactly
    res = env_runs[("locale", locale, "help")]
    assert res.returncode == 0 and "--word-dropout" in res.stdout and res.stderr == "", res
    res = env_runs[("locale", locale, "error")]
    message = assert_error(res, says="no such file")
    assert "Zürich.tsv" in message or "Z\\xfcrich.tsv" in message


def test_numba_disable_jit_is_refused_in_one_line(env_runs):
    res = env_runs[("jit", "1")]
    assert_error(res)
    assert res.stderr == ("ERROR: NUMBA_DISABLE_JIT is set: seqtag's kernels need Numba's "
                          "compiler (unset it)\n")
    res = env_runs[("jit", "abc")]
    assert res.returncode == 0 and res.stdout.startswith("Sam\t"), res
    assert res.stderr == "WARNING: NUMBA_DISABLE_JIT='abc' is not a number; ignored\n", res
    res = env_runs[("jit", "0")]
    assert res.returncode == 0 and res.stdout.startswith("Sam\t") and res.stderr == "", res


@pytest.mark.parametrize("key", [("cache", "file"), ("cache", "under-file"), ("cache", "proc"),
                                 ("home-unset",)], ids=str)
def test_odd_cache_dir_and_no_home_still_tag(key, env_runs):
    res = env_runs[key]
    assert res.returncode == 0 and res.stdout.startswith("Sam\t"), res
    assert "Traceback" not in res.stderr, res


# -- 4. the tokenizer runs in linear time -------------------------------------------------------

ADVERSARIAL = {
    # name: (head, unit repeated to the line's length, tail)
    "url-then-punctuation": ("see http://x.org/a", ".", "b"),
    "url-then-quotes-and-dots": ("https://a.b/", ".'", "x"),
    "url-then-emoticons": ("http://x.y/", ":)", "b"),
    "e-mail-local-part-run": ("", "a+", "."),
    "signed-numbers": ("", "-1", "x"),
    "one-letter-run": ("", "a", ""),
    "one-punctuation-run": ("", ".", "a"),
    "alternating-letter-dot": ("", "a.", "1"),
    "combining-marks": ("", "a\u0301", "."),
    "number-groups": ("", "1.", "'1"),
}


def _cpu_seconds(text: str, repeat: int) -> float:
    from seqtag.tokenizer import tokenize

    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        tokenize(text)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("shape", list(ADVERSARIAL))
def test_tokenizer_time_grows_linearly_on_adversarial_lines(shape):
    from seqtag.tokenizer import tokenize

    head, unit, tail = ADVERSARIAL[shape]
    small, big = (head + unit * (n // len(unit)) + tail for n in (100_000, 1_000_000))
    assert "".join(t for t, _, _ in tokenize(small)) == "".join(small.split())
    t_small = _cpu_seconds(small, 3)
    # Only a guard against waiting minutes for the big line if the time were quadratic (it was:
    # 25 s for a 60 KB line); the test itself is the ratio below.
    assert t_small < 10, t_small
    t_big = _cpu_seconds(big, 1)
    if t_big / max(t_small, 1e-3) >= 40:
        t_big = min(t_big, _cpu_seconds(big, 1))  # once more, in case another process got in
    # Linear is about 10, but up to 25-32 on a busy machine when the small line's work fits in
    # the CPU's cache and the big one's does not (number-groups: 1M/100k = 24 on a quiet
    # machine, yet 3M/1M = 3.1 and 9M/3M = 2.5: linear); quadratic is about 100. The floor keeps
    # the timer noise of a line that takes microseconds from deciding.
    assert t_big / max(t_small, 1e-3) < 40, (t_small, t_big)


def test_tokenizer_cuts_urls_and_e_mails_as_before():
    from seqtag.tokenizer import tokenize

    cases = {
        "see http://x.org/a.": ["see", "http://x.org/a", "."],
        "(www.x.org/a?b=1)!": ["(", "www.x.org/a?b=1", ")", "!"],
        "http://...": ["http://.", ".."],
        "mailto:a@b.c).": ["mailto:a@b.c", ")", "."],
        ".a@b.com": [".", "a@b.com"],
        "x+.a@b.com": ["x+.a@b.com"],
        "a+a+a": ["a", "+", "a", "+", "a"],
        "a+b+c@d.e": ["a+b+c@d.e"],
        "ka\u0301ra\u0301": ["ka\u0301ra\u0301"],
    }
    for text, expected in cases.items():
        assert [t for t, _, _ in tokenize(text)] == expected, text


# -- 5. writes ---------------------------------------------------------------------------------

from seqtag import atomic  # noqa: E402  (kept beside the tests that use it)


def _odd_targets(tmp_path: Path) -> dict[str, Path]:
    real = tmp_path / "real.npz"
    real.write_bytes(b"keep me")
    targets = {"symlink": tmp_path / "link.npz", "dangling-symlink": tmp_path / "dangling.npz",
               "directory": tmp_path / "dir.npz", "fifo": tmp_path / "fifo.npz"}
    targets["symlink"].symlink_to(real)
    targets["dangling-symlink"].symlink_to(tmp_path / "nowhere.npz")
    targets["directory"].mkdir()
    os.mkfifo(targets["fifo"])
    try:
        os.mknod(tmp_path / "null.npz", 0o666 | __import__("stat").S_IFCHR, os.makedev(1, 3))
        targets["device"] = tmp_path / "null.npz"
    except (PermissionError, OSError):
        pass  # no mknod in this container: the other kinds still run
    return targets


def _listing(directory: Path) -> dict[str, object]:
    return {p.name: (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p)
                     if p.is_symlink() else "other") for p in directory.iterdir()}


def test_atomic_write_refuses_anything_but_a_regular_file(tmp_path):
    targets = _odd_targets(tmp_path)
    before = _listing(tmp_path)
    for kind, target in targets.items():
        with pytest.raises(SeqtagError) as info:
            atomic.write_bytes_atomic(target, b"new")
        assert info.value.path == str(target), kind
        assert "only replaces regular files" in str(info.value), kind
    assert _listing(tmp_path) == before  # nothing written, nothing left behind
    atomic.write_bytes_atomic(tmp_path / "real.npz", b"new")
    assert (tmp_path / "real.npz").read_bytes() == b"new"


def test_build_vocab_refuses_odd_targets_and_long_names(tmp_path):
    targets = _odd_targets(tmp_path)
    targets["too-long-name"] = tmp_path / ("v" * 300)
    before = _listing(tmp_path)
    results = run_parallel({kind: dict(args=["build-vocab", TINY, "-o", target])
                            for kind, target in targets.items()})
    for kind, res in results.items():
        says = "File name too long" if kind == "too-long-name" else "only replaces regular"
        assert_error(res, targets[kind], says=says)
    assert _listing(tmp_path) == before


SLOW_WRITER = """
import sys, time
from seqtag.atomic import write_bytes_atomic

def writer(f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()          # hold the write open until the test says go
    f.write(b" and the rest")

write_bytes_atomic(sys.argv[1], writer=writer)
print("done", flush=True)
"""


def _start_slow_writer(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline() == b"writing\n"
    return proc


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    proc = _start_slow_writer(target)
    (tmp,) = _temporaries(tmp_path)
    assert tmp.startswith(f".model.npz.seqtag-{atomic._host()}-{proc.pid}-")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == b"old"          # the old file is whole
    assert _temporaries(tmp_path) == [tmp]        # and the dead writer's file is left over
    atomic.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and _temporaries(tmp_path) == []


def test_a_live_concurrent_writers_temporary_file_is_kept(tmp_path):
    target = tmp_path / "model.npz"
    proc = _start_slow_writer(target)
    try:
        (tmp,) = _temporaries(tmp_path)
        atomic.write_bytes_atomic(target, b"mine")
        assert _temporaries(tmp_path) == [tmp]
        assert target.read_bytes() == b"mine"
    finally:
        out, _ = proc.communicate(b"go\n", timeout=60)
    assert proc.returncode == 0 and out == b"done\n"
    assert target.read_bytes() == b"partial and the rest" and _temporaries(tmp_path) == []


def test_stale_temporaries_of_other_targets_and_odd_files_are_left_alone(tmp_path):
    target = tmp_path / "m.npz"
    here, live = atomic._host(), os.getpid()
    dead = 2 ** 22 + 12345  # above the usual pid_max: no such process
    planted = {
        "dead": tmp_path / f".m.npz.seqtag-{here}-{dead}-x1.tmp",
        "old": tmp_path / f".m.npz.seqtag-{here}-{live}-x2.tmp",    # alive, but an hour old
        "old-elsewhere": tmp_path / f".m.npz.seqtag-otherhost-{dead}-x3.tmp",
        "young-elsewhere": tmp_path / f".m.npz.seqtag-otherhost-{dead}-x4.tmp",
        "other-target": tmp_path / f".other.npz.seqtag-{here}-{dead}-x5.tmp",
        "young-live": tmp_path / f".m.npz.seqtag-{here}-{live}-x6.tmp",
        "not-ours": tmp_path / ".m.npz.backup.tmp",
    }
    for p in planted.values():
        p.write_bytes(b"x")
    for key in ("old", "old-elsewhere"):
        os.utime(planted[key], (time.time() - 3600, time.time() - 3600))
    (tmp_path / f".m.npz.seqtag-{here}-{dead}-dir.tmp").mkdir()   # not a regular file: kept
    removed = atomic.remove_stale_temporaries(target)
    gone = ("dead", "old", "old-elsewhere")
    assert sorted(removed) == sorted(planted[k] for k in gone)
    assert all(p.exists() for k, p in planted.items() if k not in gone)


def test_temporary_name_of_a_long_target_name_fits(tmp_path):
    target = tmp_path / ("m" * 240 + ".npz")
    atomic.write_bytes_atomic(target, b"ok")
    assert target.read_bytes() == b"ok" and _temporaries(tmp_path) == []


# -- 9. odd files given to every command that reads one ---------------------------------------

def _reading_commands(f, out: Path) -> dict[str, list]:
    train = ["train", TINY, "--textbook", "--hidden", 4, "--epochs", 1, "-o", out]
    return {"train": ["train", f, *train[2:]], "tag": ["tag", "--input-format", "conll", f],
            "eval": ["eval", f], "build-vocab": ["build-vocab", f],
            "--vocab": [*train, "--vocab", f], "--embeddings": [*train, "--embeddings", f],
            "--dev": [*train, "--dev", f]}


@pytest.fixture(scope="module")
def odd_file_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    (d / "dir").mkdir()
    (d / "eio").symlink_to("/proc/self/mem")   # opens, then every read fails with EIO
    odd = {"too-long-name": (d / ("a" * 300), None, "File name too long"),
           "missing": (d / "missing.tsv", None, "no such"),
           "directory": (d / "dir", None, "directory"),
           "zero-device": (Path("/dev/zero"), 1, "NUL byte at byte offset 0"),
           "null-device": (Path("/dev/null"), None, ""),
           "read-error": (d / "eio", 1, "cannot be read (Input/output error)")}
    jobs, expect = {}, {}
    for kind, (f, line, says) in odd.items():
        for command, args in _reading_commands(f, d / "out.npz").items():
            jobs[(kind, command)] = dict(args=args)
            expect[(kind, command)] = (f, line, says)
    results = run_parallel(jobs)
    assert not (d / "out.npz").exists()
    return {key: (results[key], *expect[key]) for key in jobs}


ODD_KINDS = ["too-long-name", "missing", "directory", "zero-device", "null-device", "read-error"]
READERS = ["train", "tag", "eval", "build-vocab", "--vocab", "--embeddings", "--dev"]


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("kind", ODD_KINDS)
def test_odd_file_gives_one_error_line(kind, command, odd_file_runs):
    res, f, line, says = odd_file_runs[(kind, command)]
    message = assert_error(res, f, line, says)
    assert "training on" not in res.stderr
    if kind == "null-device":
        assert "empty" in message or "no vectors" in message


def test_fifo_inputs_are_read_as_streams(tmp_path):
    """Process substitution, seqtag train <(zcat corpus.gz), hands over a pipe: it is read."""
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*SEQTAG, "build-vocab", str(fifo)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    with open(fifo, "wb") as w:     # blocks until seqtag opens it, as for cat
        w.write(TINY.read_bytes())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.decode() == run("build-vocab", TINY).stdout


# -- 10. vocabulary and embeddings files that lie ------------------------------------------------

VOCAB_HEAD = "<pad>\t0\n<unk>\t1\nthe\t3\n"
BAD_VOCABS = {
    # name: (text, line, words in the message)
    "count-2**63": (VOCAB_HEAD + f"of\t{2 ** 63}\n\nO\t1\n", 4, "too large"),
    "count-2**64": (VOCAB_HEAD + f"of\t{2 ** 64 + 5}\n\nO\t1\n", 4, "too large"),
    "negative": (VOCAB_HEAD + "of\t-2\n\nO\t1\n", 4, "'-2' is not a whole number"),
    "fraction": (VOCAB_HEAD + "of\t1.5\n\nO\t1\n", 4, "'1.5' is not a whole number"),
    "underscore": (VOCAB_HEAD + "of\t1_000\n\nO\t1\n", 4, "not a whole number"),
    "duplicate-word": (VOCAB_HEAD + "of\t2\nthe\t1\n\nO\t1\n", 5,
                       "word 'the' is listed twice (lines 3 and 5)"),
    "duplicate-label": (VOCAB_HEAD + "\nO\t1\nB-X\t1\nO\t2\n", 7,
                        "label 'O' is listed twice (lines 5 and 7)"),
    "no-blank-line": (VOCAB_HEAD + "O\t1\nB-X\t1\n", 5, "without the blank line"),
    "third-section": (VOCAB_HEAD + "\nO\t1\n\nB-X\t1\n", 7, "third section"),
    "cr-line-ends": (VOCAB_HEAD.replace("\n", "\r") + "\rO\t1\rO\t1\r", 6, "listed twice"),
}


def assert_reader_error(read, path, text: str, line: int, says: str) -> None:
    """``read(path)`` of a file holding ``text`` raises one SeqtagError naming path and line."""
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SeqtagError) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line), str(info.value)
    assert says in str(info.value)


@pytest.mark.parametrize("case", list(BAD_VOCABS))
def test_bad_vocabulary_names_file_and_line(case, tmp_path):
    from seqtag.vocab import Vocabulary

    assert_reader_error(Vocabulary.load, tmp_path / "v.txt", *BAD_VOCABS[case])


def test_vocabulary_with_big_counts_and_crlf_loads(tmp_path):
    from seqtag.vocab import Vocabulary

    path = tmp_path / "v.txt"
    path.write_bytes(f"<pad>\t0\r\n<unk>\t1\r\nthe\t{2 ** 63 - 1}\r\n\r\nO\t1\r\n".encode())
    v = Vocabulary.load(path)
    assert v.words == ["<pad>", "<unk>", "the"] and int(v.word_counts[2]) == 2 ** 63 - 1


VECTOR_LINE = "the 0.1 0.2 0.3\n"
BAD_VECTORS = {
    # name: (text, line, words in the message)
    "ragged": (VECTOR_LINE + "a 1 2\n", 2, "has 2 numbers where the file's vectors have 3"),
    "non-numeric": (VECTOR_LINE + "a 1 x 2\n", 2, "holds 'x', which is not a number"),
    "nan": (VECTOR_LINE + "a 1 nan 2\n", 2, "'nan', which is not a finite number"),
    "inf": (VECTOR_LINE + "a 1 2 -inf\n", 2, "'-inf', which is not a finite number"),
    "float32-overflow": (VECTOR_LINE + "a 1 2 1e39\n", 2, "'1e39', which is not a finite"),
    "header-dim-lies": ("2 4\n" + VECTOR_LINE + "a 1 2 3\n", 2, "the header (line 1) says 4"),
    "header-count-too-small": ("1 3\n" + VECTOR_LINE + "a 1 2 3\n", 3,
                               "vector 2, but the header (line 1) says the file has 1"),
    "header-count-10**12": (f"{10 ** 12} 3\n" + VECTOR_LINE + "a 1 2 3\n", 1,
                            "the header says 1,000,000,000,000 vectors, but the file has 2"),
    "10-MB-line": (VECTOR_LINE + "a" + " 1" * 5_000_000 + "\n", 2, "line is longer than"),
    "mid-file-bom": (VECTOR_LINE + "\ufeffa 1 2 3\n", 2, "byte order mark"),
}


@pytest.mark.parametrize("case", list(BAD_VECTORS))
def test_bad_embeddings_name_file_and_line(case, tmp_path):
    from seqtag.embeddings import read_vectors

    assert_reader_error(lambda path: read_vectors(path, ["the", "a"]), tmp_path / "vec.txt",
                        *BAD_VECTORS[case])


def test_embeddings_that_need_more_memory_than_there_is(tmp_path, monkeypatch):
    from seqtag.embeddings import read_vectors

    path = tmp_path / "vec.txt"
    path.write_text(VECTOR_LINE)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    with pytest.raises(SeqtagError, match=r"pretrained vectors of 3 numbers for 100 words "
                                          r"would need 3\.5 KB of memory, but only 1000 bytes"):
        read_vectors(path, [f"w{i}" for i in range(100)])


def test_bad_vocabulary_and_embeddings_through_the_cli(tmp_path):
    vocab, vectors = tmp_path / "v.txt", tmp_path / "vec.txt"
    vocab.write_text(BAD_VOCABS["count-2**64"][0])
    vectors.write_text(BAD_VECTORS["nan"][0].replace("a 1", "Paris 1"))
    train = ["train", TINY, "--textbook", "--hidden", 4, "--epochs", 1, "-o", tmp_path / "m.npz"]
    results = run_parallel({"vocab": dict(args=[*train, "--vocab", vocab]),
                            "vectors": dict(args=[*train, "--embeddings", vectors])})
    assert_error(results["vocab"], vocab, 4, "too large")
    assert_error(results["vectors"], vectors, 2, "not a finite number")
    assert "training on" not in results["vectors"].stderr
    assert not (tmp_path / "m.npz").exists()


# -- 13. user text reaches the terminal literally ------------------------------------------------

def test_paths_with_markup_and_emoji_codes_are_printed_literally(tmp_path):
    odd = tmp_path / ":thumbs_up: [bold red]x["
    odd.mkdir()
    # The "/" between directory and file closes a tag: "...x[/]:smile:.tsv".
    missing, out = odd / "]:smile:.tsv", odd / "][b]v.txt"
    assert "[/]" in str(missing)
    results = run_parallel({"error": dict(args=["build-vocab", missing]),
                            "wrote": dict(args=["build-vocab", TINY, "-o", out])})
    assert_error(results["error"], missing, says="no such file")
    res = results["wrote"]
    assert res.returncode == 0 and res.stderr.splitlines()[-1] == f"wrote {out}", res
    assert out.exists()


# -- closed and full standard streams ------------------------------------------------------------

def _run_with_fds(args: list, stdin=None, stdout=None) -> Result:
    """Like run(), but stdin or stdout may be "closed" in the child, or a given file."""
    def closer(fds):
        return lambda: [os.close(fd) for fd in fds]
    closed = [fd for fd, how in ((0, stdin), (1, stdout)) if how == "closed"]
    proc = subprocess.run([*SEQTAG, *map(str, args)], preexec_fn=closer(closed),
                          stdin=None if stdin == "closed" else stdin,
                          stdout=subprocess.DEVNULL if stdout == "closed" else
                          (stdout or subprocess.PIPE), stderr=subprocess.PIPE, timeout=300)
    proc.stdout = proc.stdout or b""
    return Result(proc)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_closed_or_full_streams_give_one_error_line(tmp_path):
    model = tmp_path / "m.npz"
    assert run("train", TINY, "--textbook", "--hidden", 4, "--epochs", 1, "-o",
               model).returncode == 0
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = {
            "stdin-closed": pool.submit(_run_with_fds, ["tag", "-m", model], stdin="closed"),
            "stdout-closed": pool.submit(_run_with_fds, ["tag", "-m", model, "Sam"],
                                         stdout="closed"),
        }
        with open("/dev/full", "wb") as full:
            for command in (["tag", "-m", model, "Sam"], ["tag", "-f", "pretty", "-m", model, "x"],
                            ["build-vocab", TINY], ["eval", TINY, "-m", model],
                            ["inspect", model, "--json"]):
                jobs[f"full-{' '.join(map(str, command[:2]))}"] = pool.submit(
                    _run_with_fds, command, stdout=full)
            results = {key: f.result() for key, f in jobs.items()}
    assert_error(results.pop("stdin-closed"), "<stdin>", says="is closed")
    assert_error(results.pop("stdout-closed"), "<stdout>", says="cannot write the output")
    for key, res in results.items():
        assert_error(res, "<stdout>", says="cannot write the output (No space left on device)")


# -- Typer's own usage errors --------------------------------------------------------------------

def test_usage_errors_are_one_error_line():
    cases = {
        "not-a-number": (["train", TINY, "--hidden", "abc"], "Invalid value for '--hidden'"),
        "below-minimum": (["train", TINY, "--hidden", "0"], "--hidden is 0, out of its range"),
        "unknown-command": (["tagg"], "No such command 'tagg'"),
        "unknown-option": (["tag", "--nosuch"], "No such option: --nosuch"),
        "missing-argument": (["train"], "Missing argument"),
    }
    results = run_parallel({k: dict(args=args) for k, (args, _) in cases.items()})
    for key, (args, says) in cases.items():
        message = assert_error(results[key], says=says)
        # Typer's own errors point to --help; a value out of TrainConfig's bounds names them
        assert results[key].returncode == 2, results[key]
        assert message.endswith(" --help')") or key == "below-minimum", results[key]
    res = run("--help")
    assert res.returncode == 0 and "Usage:" in res.stdout and res.stderr == "", res
    res = run()   # no arguments: the help, and the usage error's exit code
    assert res.returncode == 2 and "Usage:" in res.stdout + res.stderr, res
    assert "ERROR" not in res.stderr, res


def test_eval_reads_cr_files_and_refuses_typeless_labels(tmp_path):
    cr = tmp_path / "cr.tsv"
    cr.write_bytes(TINY.read_bytes().replace(b"\n", b"\r"))
    gold = tmp_path / "gold.tsv"
    gold.write_text("Sam\tB-PER\nvisited\tB-\n")
    tagged = tmp_path / "tagged.tsv"
    tagged.write_text("Sam\tB-PER\tB-PER\n\nParis\tB-LOC\tI-\n")
    results = run_parallel({"lf": dict(args=["eval", TINY, "--json"]),
                            "cr": dict(args=["eval", cr, "--json"]),
                            "gold": dict(args=["eval", gold]),
                            "tagged": dict(args=["eval", "--tagged", tagged])})
    assert results["cr"].returncode == 0 and results["cr"].stdout == results["lf"].stdout
    assert_error(results["gold"], gold, 2, "label 'B-' has a chunk prefix but no type")
    assert_error(results["tagged"], tagged, 3, "predicted label 'I-'")
