"""What every fuzz test shares: the outcome recorder, the CLI drivers and the ERROR-line check.

Every generated input ends in one of four outcomes, counted per input class for the table that
``make fuzz`` prints (conftest.py):

  correct    the command or function succeeded and its result passed the test's property
  error      it refused the input with one ``ERROR: file[:line]: ...`` line (a SeqtagError in
             the library) and a non-zero exit
  traceback  anything else escaped: an exception, a traceback on stderr, several lines, exit 0
             with a wrong result (the test fails)
  hang       one input ran longer than HANG_SECONDS (the test fails)

Inputs of tests marked xfail (known, still open bugs) are counted as "known bug" instead of
traceback, so the table separates what is known from what is new.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
TINY = SAMPLES / "tiny.tsv"
SEQTAG = [sys.executable, "-m", "seqtag"]
HANG_SECONDS = 10.0
WALL = 6     # the wall-clock backstop of _alarm, in HANG_SECONDS
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
OUTCOMES = ("correct", "error", "traceback", "hang", "known bug")

# (input class, outcome) -> inputs; filled by observe(), printed by conftest.py.
RECORDS: dict[str, Counter] = defaultdict(Counter)
# Set by an autouse fixture: the running test is a known bug (xfail) whose failures are expected.
STATE = {"xfail": False}


def budget(fuzz: int, ci: int) -> int:
    """Examples for one test: ``fuzz`` under `make fuzz`, ``ci`` in the ordinary test run."""
    return fuzz if PROFILE == "fuzz" else ci


class Hang(AssertionError):
    pass


class Traceback(AssertionError):
    """The input neither succeeded with a correct result nor got one ERROR line."""


@contextmanager
def _alarm(seconds: float):
    """Interrupt pure-Python work that runs past ``seconds`` (a Numba kernel is interrupted only
    when it returns, so tests that may hang inside one run in a subprocess instead)."""
    if seconds is None or not hasattr(signal, "SIGALRM"):
        yield
        return

    def ring(signum, frame):
        what = "CPU time" if signum == signal.SIGPROF else "wall time"
        raise Hang(f"one input ran over {seconds * (1 if signum == signal.SIGPROF else WALL):.0f} s "
                   f"of {what}")

    # The process's CPU time, which other processes on a busy machine do not inflate (wall time
    # did: a million-token read ran over 10 s at a load of 6 on 2 cores), and a wall-clock
    # backstop, WALL times longer, for an input that blocks instead of computing.
    old = signal.signal(signal.SIGALRM, ring), signal.signal(signal.SIGPROF, ring)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGPROF, old[1])


@contextmanager
def observe(cls: str, limit: float | None = HANG_SECONDS):
    """Count one input of class ``cls``. The body sets ``box["outcome"]`` to "correct" or
    "error" once it has checked the result; an exception escaping it is a traceback (or a hang)."""
    box = {"outcome": None}
    start, cpu = time.monotonic(), time.process_time()
    try:
        with _alarm(limit):
            yield box
    except BaseException as e:
        kind = "known bug" if STATE["xfail"] else ("hang" if isinstance(e, Hang) else "traceback")
        RECORDS[cls][kind] += 1
        raise
    took, took_cpu = time.monotonic() - start, time.process_time() - cpu
    if limit is not None and (took_cpu > limit or took > limit * WALL):
        RECORDS[cls]["known bug" if STATE["xfail"] else "hang"] += 1
        raise Hang(f"{cls}: one input took {took_cpu:.1f} s of CPU, {took:.1f} s of wall time "
                   f"(limits {limit:.0f} s and {limit * WALL:.0f} s)")
    if box["outcome"] not in ("correct", "error"):
        RECORDS[cls]["known bug" if STATE["xfail"] else "traceback"] += 1
        raise Traceback(f"{cls}: the test recorded no outcome")
    RECORDS[cls][box["outcome"]] += 1


# -- the ERROR line ----------------------------------------------------------------------------

ERROR_LINE = re.compile(r"ERROR: \S.*")


def assert_one_error_line(stderr: str, path: str | None = None, line: int | None = None) -> None:
    """stderr is exactly one ``ERROR:`` line, naming ``path`` (and ``line``) when given."""
    lines = stderr.splitlines()
    if len(lines) != 1 or not ERROR_LINE.fullmatch(lines[0]) or "Traceback" in stderr:
        raise Traceback(f"expected one ERROR line on stderr, got:\n{stderr[:3000]}")
    if path is not None:
        where = f"{path}:{line}:" if line is not None else f"{path}"
        if where not in lines[0]:
            raise Traceback(f"the ERROR line does not name {where!r}:\n{lines[0][:3000]}")


def assert_seqtag_error(exc: BaseException, path: str | None = None,
                        line: int | None = None) -> None:
    """A library error: a SeqtagError, on one line, naming the file (and line) when given."""
    from seqtag.errors import SeqtagError

    if not isinstance(exc, SeqtagError):
        raise exc
    text = str(exc)
    if "\n" in text or "\r" in text:
        # One ERROR line: a message with a line break would print as several.
        raise Traceback(f"the error message spans several lines: {text[:2000]!r}")
    if path is not None and exc.path != path:
        raise Traceback(f"the error names {exc.path!r}, not {path!r}: {text[:2000]}")
    if line is not None and exc.line != line:
        raise Traceback(f"the error names line {exc.line}, not {line}: {text[:2000]}")


def lines(out: str) -> list[str]:
    """Output lines split at LF only: str.splitlines() would also split inside a JSON string
    at U+2028 or U+0085, which ensure_ascii=False leaves as they are."""
    return out.split("\n")[:-1] if out.endswith("\n") else out.split("\n") if out else []


# -- driving the CLI -----------------------------------------------------------------------------

class Run:
    def __init__(self, code: int, stdout: str, stderr: str, exception: BaseException | None,
                 how: str):
        self.code, self.stdout, self.stderr, self.exception, self.how = \
            code, stdout, stderr, exception, how

    def __repr__(self) -> str:
        return (f"<{self.how}: exit {self.code}, exception {self.exception!r}>\n"
                f"--- stdout ---\n{self.stdout[:2000]}\n--- stderr ---\n{self.stderr[:2000]}")

    def ok_or_error(self, path: str | None = None, line: int | None = None) -> bool:
        """True on success (exit 0, no exception, nothing alarming on stderr); False after
        checking the failure is one ERROR line naming ``path``; raises Traceback otherwise."""
        if self.exception is not None:
            raise Traceback(f"an exception escaped the CLI: {self!r}") from self.exception
        if "Traceback" in self.stderr:
            raise Traceback(f"a traceback on stderr: {self!r}")
        if self.code == 0:
            if "ERROR" in self.stderr:
                raise Traceback(f"exit 0 with an ERROR line: {self!r}")
            return True
        try:
            assert_one_error_line(self.stderr, path, line)
        except Traceback as e:
            raise Traceback(f"{e}\n{self!r}") from None
        return False

    def outcome(self, path: str | None = None, line: int | None = None) -> str:
        """"correct" (the caller then checks the result) or "error"; raises Traceback otherwise."""
        return "correct" if self.ok_or_error(path, line) else "error"


_RUNNER = None


def cli(*args, input: bytes | str | None = None, env: dict | None = None) -> Run:
    """``seqtag args...`` in this process, through ``seqtag.cli.main`` (the console script's
    entry, which turns Typer's usage errors into one ERROR line) with typer's CliRunner
    isolating stdin, stdout, stderr and the environment: any exception other than SystemExit
    is reported as ``exception``."""
    global _RUNNER
    from typer.testing import CliRunner

    from seqtag.cli import main

    if _RUNNER is None:
        _RUNNER = CliRunner()
    argv, exc, code = sys.argv, None, 0
    with _RUNNER.isolation(input=input, env=env) as (out, err, _):
        sys.argv = ["seqtag", *map(str, args)]
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        except Exception as e:   # a traceback in a real run
            exc, code = e, 1
        finally:
            sys.argv = argv
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
        stdout, stderr = out.getvalue(), err.getvalue()
    return Run(code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"), exc,
               "in-process")


def process(*args, input: bytes | str | None = None, env: dict | None = None,
            timeout: float = HANG_SECONDS, cwd=None, memory: int | None = 3 << 30) -> Run:
    """A real ``python -m seqtag`` process; over ``timeout`` seconds of CPU time (RLIMIT_CPU), or
    WALL times that of wall time (an input that blocks), it is killed: a hang. CPU time, because
    other processes on a busy machine stretch the wall time of a correct run. ``memory`` caps
    its address space, so that an input that grows without bound (a device that never ends a
    line) fails there instead of exhausting the shared machine."""
    if isinstance(input, str):
        input = input.encode("utf-8")
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}

    def limit():
        import resource

        cpu = math.ceil(timeout)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        proc = subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                              env=full_env, timeout=timeout * WALL, cwd=cwd, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        raise Hang(f"seqtag {' '.join(map(str, args))[:300]} ran over {timeout * WALL:.0f} s "
                   "of wall time") from None
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise Hang(f"seqtag {' '.join(map(str, args))[:300]} ran over {timeout:.0f} s of CPU "
                   "time")
    return Run(proc.returncode, proc.stdout.decode("utf-8", "replace"),
               proc.stderr.decode("utf-8", "replace"), None, "process")
