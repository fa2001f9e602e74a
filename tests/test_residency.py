"""seqtag.residency: giving up the resident pages of LLVM's code once Numba is loaded leaves the
process working (kernels loaded before and compiled after give the same results), never touches
a mapping with a written page, and lowers the resident memory; and seqtag tag, whose engine
moves to Numba mid-stream, gives the same output as with NumPy alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


# The child's resident bytes of libllvmlite.so, from /proc/self/smaps (prepended to _run's code).
LLVM_RSS = """
def llvm_rss():
    rss, keep = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if not head[0].endswith(":") and "-" in head[0]:
            keep = head[-1].endswith("libllvmlite.so")
        elif keep and head[0] == "Rss:":
            rss += int(head[1]) * 1024
    return rss
"""


def _run(code: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", LLVM_RSS + textwrap.dedent(code)],
                       capture_output=True,
                       text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO),
                                                 "SEQTAG_WARMUP": "0"})
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@linux_only
def test_release_after_numba_keeps_kernels_and_compiling_working():
    out = _run("""
        import numpy as np
        from seqtag.residency import clean_mappings, release_compiler_pages

        import numba
        from seqtag.kernels.matmul import linear_forward
        X = np.arange(12, dtype=np.float32).reshape(3, 4)
        W = np.ones((5, 4), np.float32)
        out = np.empty((3, 5), np.float32)
        linear_forward(X, W, np.zeros(5, np.float32), out)     # loaded before the release
        before = llvm_rss()
        dirty = {(s, e) for s, e, _ in clean_mappings()}
        freed = release_compiler_pages()
        after = llvm_rss()
        out2 = np.empty((3, 5), np.float32)
        linear_forward(X, W, np.zeros(5, np.float32), out2)

        @numba.njit(cache=False)
        def double(a):          # compiled after: LLVM's code is mapped again as it runs
            return a * 2

        print(before, after, freed, len(dirty))
        print(bool((out == X @ W.T).all()), bool((out2 == out).all()), double(21))
    """)
    before, after, freed, n = map(int, out[:4])
    assert n >= 1 and freed > 10 << 20
    assert after < before - (10 << 20)
    assert out[4:] == ["True", "True", "42"]


@linux_only
def test_clean_mappings_leave_written_pages_alone():
    out = _run("""
        import numba
        from seqtag.residency import clean_mappings

        spans = clean_mappings()
        written = []
        current = None
        for line in open("/proc/self/smaps"):
            head = line.split()
            if not head[0].endswith(":") and "-" in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                current = (lo, hi)
            elif head[0] in ("Private_Dirty:", "Anonymous:") and int(head[1]) > 0:
                written.append(current)
        print(len(spans), sum(1 for s, e, _ in spans if (s, e) in written))
    """)
    assert int(out[0]) >= 1 and out[1] == "0"


@linux_only
def test_engine_kernels_give_the_pages_back_after_loading():
    """Loading a kernel of the Numba engine touches LLVM's code again; its first call (and any
    call that loads a new version) gives it back: less of LLVM stays resident than the load
    touched, and the results are the kernel's."""
    out = _run("""
        import numpy as np
        from seqtag.engines import numba_kernels as k

        X = np.arange(12, dtype=np.float32).reshape(3, 4)
        W = np.ones((5, 4), np.float32)
        out = np.empty((3, 5), np.float32)
        k.linear_forward(X, W, np.zeros(5, np.float32), out)
        after_first = llvm_rss()
        out64 = np.empty((3, 5))
        k.linear_forward(X.astype(np.float64), W.astype(np.float64), np.zeros(5), out64)
        print(after_first, llvm_rss(), bool((out == X @ W.T).all()),
              bool((out64 == X @ W.T).all()))
    """)
    assert int(out[0]) < 40 << 20 and int(out[1]) < 40 << 20
    assert out[2:] == ["True", "True"]


def test_release_is_harmless_where_nothing_is_found():
    from seqtag.residency import clean_mappings, release_compiler_pages, trim_heap

    assert clean_mappings(("no-such-library-anywhere",)) == []
    assert release_compiler_pages() >= 0
    trim_heap()


def test_auto_moving_to_numba_mid_stream_tags_as_numpy(tmp_path, monkeypatch):
    """The CLI on a stream long enough for auto to move to Numba (a low switch point), with two
    threads: the same output as the NumPy engine's, after the release."""
    from seqtag.engines import warm

    if not warm.is_warm():
        pytest.skip("Numba kernels not compiled here yet (auto would stay on NumPy)")
    lines = [f"Sam Li{i} met Tom in Paris on Tuesday number {i} ." for i in range(1200)]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEQTAG_WARMUP": "0"}
    code = ("import atexit, sys, seqtag.engines as e; e.SWITCH_TOKENS = 2000; "
            "atexit.register(lambda: print('numba' in sys.modules, file=sys.stderr)); "
            "from seqtag.cli import main; sys.argv = ['seqtag'] + sys.argv[1:]; main()")
    outs = {}
    for engine in ("auto", "numpy"):
        r = subprocess.run([sys.executable, "-c", code, "tag", "-i", str(src), "--threads", "2",
                            "--engine", engine], capture_output=True, text=True, cwd=REPO,
                           env=env)
        assert r.returncode == 0, r.stderr
        assert r.stderr.split()[-1] == str(engine == "auto")      # auto did move to Numba
        outs[engine] = r.stdout
    assert outs["auto"] == outs["numpy"] and outs["auto"].count("\n") > 12000
