"""train --portable: kernels compiled for x86-64-v3, so that a seed's model does not depend on
the machine (seqtag.portable).

One machine cannot be another, but it can hide what it has: the run with the CPU's AVX-512
masked from NumPy's dispatch (NPY_DISABLE_CPU_FEATURES) and from glibc's libm variants
(GLIBC_TUNABLES) must write the same bytes as the plain one. Numba's code is the same by
construction (the target is named, not detected)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import sys
from pathlib import Path

import pytest

from seqtag import portable
from seqtag.errors import SeqtagError
from seqtag.modelfile import load_model

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--hidden", "8", "--embed-dim", "8", "--char-filters", "4", "--char-dim", "3",
         "--epochs", "2", "--patience", "0", "--seed", "3"]

# What an AVX2-only machine would have: NumPy dispatches nothing above X86_V3, glibc picks no
# AVX-512 variant. (Unknown or absent names are ignored by both.)
MASKED = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL "
                                      "AVX512_SPR AVX512F",
          "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,"
                            "-AVX512VL,-AVX512ER,-AVX512PF"}


def _numpy_has_v4(env) -> bool:
    probe = ("import numpy._core._multiarray_umath as m; "
             "print(bool(m.__cpu_features__.get('X86_V4')))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout
    return out.strip() == "True"


def _args(out: Path, *extra: str, corpus: Path = REPO / "samples" / "btc.dev") -> list[str]:
    return [sys.executable, "-m", "seqtag", "train", str(corpus), *SMALL, "-o", str(out), *extra]


def _train(tmp_path: Path, name: str, *extra: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(_args(tmp_path / f"{name}.npz", *extra), env=env, capture_output=True,
                          text=True, cwd=tmp_path)


@pytest.mark.skipif(bool(portable.missing_features()),
                    reason="this CPU cannot run x86-64-v3 code")
def test_a_portable_model_does_not_depend_on_the_cpus_extensions(tmp_path):
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    masked = {**env, **MASKED}
    if _numpy_has_v4(env):
        assert not _numpy_has_v4(masked), "the mask did not reach NumPy's dispatch"
    runs = {"plain": _train(tmp_path, "plain", "--portable", env=env),
            "masked": _train(tmp_path, "masked", "--portable", "--threads", "1", env=masked)}
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
    plain, masked_bytes = ((tmp_path / f"{n}.npz").read_bytes() for n in runs)
    assert plain == masked_bytes
    assert load_model(tmp_path / "plain.npz").meta["kernels"] == "x86-64-v3"
    shown = subprocess.run([sys.executable, "-m", "seqtag", "inspect", str(tmp_path / "plain.npz")],
                           capture_output=True, text=True, check=True).stdout
    assert "trained with kernels compiled for x86-64-v3 (--portable)" in shown


# Compiles, with an empty cache (cached code cannot be inspected), the kernels where a division or
# a square root sits in a hot loop: the sigmoid and tanh of the cells (inlined into lstm_forward
# too) and Adam.
_ESTIMATES_PROBE = """
import re
import numpy as np
from seqtag.kernels import lstm, optim, simd

v = np.linspace(-3, 3, 64).astype(np.float32)
simd._sigmoid_in_place(v.copy(), False)
simd._tanh_in_place(v.copy(), False)
p, g, m, s = (np.ones(64, np.float32) for _ in range(4))
optim._adam(p, g, m, s, 1.0, 1e-3, 0.9, 0.999, 1e-8)
H, V = 4, 6
rng = np.random.default_rng(0)
Wax = np.asfortranarray(rng.standard_normal((4 * H, V)).astype(np.float32))
Waa = rng.standard_normal((4 * H, H)).astype(np.float32)
ids, offsets = np.array([[1], [2], [3]], np.int64), np.array([0, 3], np.int64)
A, C = np.zeros((3, H), np.float32), np.zeros((3, 5 * H), np.float32)
lstm.lstm_forward(Wax, Waa, np.zeros(4 * H, np.float32), ids, offsets, False, False, A, 0, C)
for k in (simd._sigmoid_in_place, simd._tanh_in_place, optim._adam, lstm.lstm_forward):
    for sig in k.signatures:
        found = sorted(set(re.findall(r"\\bv?(?:rcp|rsqrt)(?:ps|ss)\\b", k.inspect_asm(sig))))
        print(k.__name__, *found)
"""


@pytest.mark.skipif(bool(portable.missing_features()),
                    reason="this CPU cannot run x86-64-v3 code")
def test_portable_kernels_use_no_estimate_whose_bits_depend_on_the_vendor(tmp_path):
    # vrcpps/vrsqrtps (and their scalar forms) are only bounded by x86: Intel's and AMD's bits
    # differ, and with them one portable run wrote different models on the two vendors' CPUs.
    env = {**os.environ, **portable.environment(), "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", _ESTIMATES_PROBE], env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    found = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()}
    assert set(found) == {"_sigmoid_in_place", "_tanh_in_place", "_adam", "lstm_forward"}
    assert not any(found.values()), found


def test_a_model_for_the_host_says_nothing_of_a_target(tmp_path):
    run = _train(tmp_path, "host", "--epochs", "1")
    assert run.returncode == 0, run.stderr
    assert "kernels" not in load_model(tmp_path / "host.npz").meta


@pytest.mark.skipif(bool(portable.missing_features()),
                    reason="this CPU cannot run x86-64-v3 code")
def test_a_portable_run_resumes_portable_and_ends_as_if_never_stopped(tmp_path):
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    corpus = tmp_path / "small.train"
    text = (REPO / "samples" / "btc.train").read_text(encoding="utf-8")
    corpus.write_text("\n\n".join(text.split("\n\n")[:1200]) + "\n", encoding="utf-8")
    options = ("--portable", "--epochs", "4", "--hidden", "32")
    whole = tmp_path / "whole.npz"
    subprocess.run(_args(whole, *options, corpus=corpus), env=env, check=True,
                   capture_output=True, timeout=600)
    out, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    proc = subprocess.Popen(_args(out, *options, corpus=corpus), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None:
            assert time.monotonic() < end, "no checkpoint"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    resumed = subprocess.run(_args(out, "--epochs", "4", "--hidden", "32", "--resume",
                                   corpus=corpus), env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "compiled its kernels for x86-64-v3 (--portable): so does this one" in resumed.stderr
    assert out.read_bytes() == whole.read_bytes()


def test_resuming_a_run_for_the_host_with_portable_is_refused(tmp_path):
    out, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    from seqtag.config import TrainConfig
    from seqtag.corpus import read_corpus
    from seqtag.training import Trainer

    sents = read_corpus(str(REPO / "samples" / "tiny.tsv"))[0]
    Trainer(TrainConfig(hidden=4, epochs=1, embed_dim=4, char_filters=2, char_dim=2),
            checkpoint=ckpt).fit(sents)
    assert ckpt.exists()
    run = subprocess.run(_args(out, "--portable", "--resume"), capture_output=True, text=True)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "m.ckpt.npz" in lines[0] and \
        "its machine's CPU, so --portable would not end as it would have" in lines[0], lines


def test_pin_sets_the_target_before_numba_is_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(portable, "missing_features", lambda: [])
    environ = {"PATH": "/bin"}
    portable.pin(environ)
    assert environ["NUMBA_CPU_NAME"] == "x86-64-v3"
    features = environ["NUMBA_CPU_FEATURES"].split(",")
    assert {"+avx2", "+fma"} <= set(features)
    assert not [f for f in features if "avx512" in f]
    portable.pin(environ)          # already pinned to the same target: fine


def test_pin_refuses_what_it_cannot_honour(monkeypatch):
    monkeypatch.setattr(portable, "missing_features", lambda: [])
    monkeypatch.setitem(sys.modules, "numba", sys)      # Numba has read its settings already
    with pytest.raises(SeqtagError, match="before Numba is imported"):
        portable.pin({})
    monkeypatch.delitem(sys.modules, "numba")
    with pytest.raises(SeqtagError, match="NUMBA_CPU_NAME is set to 'skylake'"):
        portable.pin({"NUMBA_CPU_NAME": "skylake"})
    monkeypatch.setattr(portable, "missing_features", lambda: ["avx2", "fma"])
    with pytest.raises(SeqtagError, match="lacks avx2, fma.*without --portable"):
        portable.pin({})


def test_off_x86_every_feature_is_missing(monkeypatch):
    monkeypatch.setattr(portable.platform, "machine", lambda: "aarch64")
    assert portable.missing_features() == list(portable.FEATURES)


def test_the_cli_reports_a_conflicting_target_in_one_line(tmp_path):
    env = {**os.environ, "NUMBA_CPU_NAME": "skylake"}
    run = _train(tmp_path, "x", "--portable", env=env)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        "ERROR: --portable compiles the kernels for x86-64-v3, but NUMBA_CPU_NAME is set to "
        "'skylake' (unset NUMBA_CPU_NAME)"]
    assert not (tmp_path / "x.npz").exists()
