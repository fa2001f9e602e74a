"""The NumPy inference engine against the Numba one (seqtag.engines): the same labels, and
probabilities, n-best lists and entity probabilities within 1e-4, for every architecture; tagging
without Numba at all; the engine option and auto's choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seqtag.build import build_model
from seqtag.config import TrainConfig
from seqtag.corpus import read_corpus
from seqtag.engines import numpy_kernels
from seqtag.model import RNNTagger

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TOL = 1e-4

INPUTS = {
    "multi-hot": dict(embed_dim=0, char_filters=0, features="none"),
    "multi-hot+features": dict(embed_dim=0, char_filters=0),
    "embedded": dict(embed_dim=12, char_filters=0, features="none"),
    "embedded+features+chars": dict(embed_dim=12, char_filters=6, char_dim=5),
}

SENTENCES = [
    ["Sam", "Li", "and", "Tom", "date", "on", "Tuesday", "."],
    [],
    ["Unseenword", "in", "Paris"],
    ["a"],
    ["Supercalifragilisticexpialidocious", "x" * 60, "LONDON", "12.5", "@user", "#tag"],
    ["the"] * 40,
]


def _model(tiny, cell, bidirectional, inputs, crf, seed=3):
    cfg = TrainConfig(cell=cell, bidirectional=bidirectional, crf=crf, hidden=7,
                      **INPUTS[inputs])
    rng = np.random.default_rng(seed)
    model, _ = build_model(cfg, tiny, rng)
    for k, p in model.params.items():
        # larger weights than the initialisation: decisive, varied outputs
        scaled = p * 3 + rng.normal(0, 0.3, p.shape)
        model.params[k][...] = scaled.astype(p.dtype)
    return model


def _analyse(model, engine, sentences, **kw):
    model.use_engine(engine)
    return model.analyse(sentences, **kw), model.predict_proba(sentences)


def _assert_same_nbest(x, y, ranks):
    """The first `ranks` paths of two n-best lists agree, except that paths whose probabilities
    tie within float32 rounding may come in either order: on ["the"] * 40 a unidirectional
    softmax model reaches a fixed point, and dozens of paths that differ in one position share
    one probability, which each engine rounds a little differently (seen on an AMD Zen 5 host,
    2026-12-06, with the numba and numpy releases that had ranked them alike elsewhere)."""
    qx, qy = np.array([q for _, q in x]), np.array([q for _, q in y])
    np.testing.assert_allclose(qx, qy, rtol=TOL, atol=0)
    q = np.concatenate([qx, qy])
    for r in range(min(ranks, len(x))):
        tied = np.sum(np.isclose(q, qx[r], rtol=TOL, atol=0)) > 2
        if not tied:
            assert x[r][0] == y[r][0], f"rank {r}: {x[r]} != {y[r]}"


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
@pytest.mark.parametrize("inputs", list(INPUTS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_numpy_engine_matches_numba(tiny, cell, bidirectional, inputs, crf):
    model = _model(tiny, cell, bidirectional, inputs, crf)
    sentences = SENTENCES + [s.tokens for s in tiny]
    (a, pa), (b, pb) = (_analyse(model, e, sentences, scores=True, nbest=5)
                        for e in ("numba", "numpy"))
    assert model.kernels == "numpy"
    for x, y, px, py in zip(a, b, pa, pb):
        np.testing.assert_array_equal(x["labels"], y["labels"])
        np.testing.assert_allclose(x["emissions"], y["emissions"], atol=TOL)
        np.testing.assert_allclose(x["probs"], y["probs"], atol=TOL)
        np.testing.assert_allclose(px, py, atol=TOL)
        np.testing.assert_allclose(x["spans"], y["spans"], atol=TOL)
        _assert_same_nbest(x["nbest"], y["nbest"], ranks=4)
    # labels vary: the comparison is not between two constant outputs
    assert len({int(k) for r in a for k in r["labels"]}) > 1


def test_crf_kernels_break_ties_as_numba():
    """Integer scores: many exact ties in Viterbi and the k-best lists, broken alike."""
    from seqtag.kernels import crf

    rng = np.random.default_rng(0)
    for L, lengths in ((3, [4, 1, 0, 6]), (5, [7, 7, 2])):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        E = rng.integers(-2, 3, (offsets[-1], L)).astype(np.float32)
        trans = rng.integers(-1, 2, (L, L)).astype(np.float32)
        trans[0, 1] = -np.inf
        start, end = (rng.integers(-1, 2, L).astype(np.float32) for _ in range(2))
        out_a, out_b = (np.zeros(len(E), np.int32) for _ in range(2))
        crf.viterbi(E, offsets, trans, start, end, out_a)
        numpy_kernels.viterbi(E, offsets, trans, start, end, out_b)
        np.testing.assert_array_equal(out_a, out_b)
        za, zb = np.zeros(len(lengths)), np.zeros(len(lengths))
        crf.crf_log_partition(E, offsets, trans, start, end, za)
        numpy_kernels.crf_log_partition(E, offsets, trans, start, end, zb)
        np.testing.assert_allclose(za, zb, atol=1e-9)
        for s in range(len(lengths)):
            e = E[offsets[s]:offsets[s + 1]]
            for k in (1, 3, 50):
                pa, sa = crf.nbest(e, trans, start, end, k)
                pb, sb = numpy_kernels.nbest(e, trans, start, end, k)
                np.testing.assert_array_equal(pa, pb)
                np.testing.assert_array_equal(sa, sb)


def _labels(model, engine, sentences):
    model.use_engine(engine)
    return [label for i in range(0, len(sentences), 256)
            for label in model.predict(sentences[i:i + 256])]


@pytest.mark.parametrize("path", [SHARED / "conll2003" / "eng.testb", REPO / "samples" / "btc.test"],
                         ids=["conll2003-testb", "btc-test"])
def test_bundled_model_same_labels_on_test_sets(bundled_model, path):
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/data)")
    sentences = [s.tokens for s in read_corpus(str(path), labels="auto")[0]]
    assert _labels(bundled_model, "numpy", sentences) == \
        _labels(bundled_model, "numba", sentences)
    bundled_model.use_engine("numba")


# Every import of numba (or llvmlite) fails, as on a machine without them.
NO_NUMBA = textwrap.dedent("""
    import sys
    class NoNumba:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("numba", "llvmlite"):
                raise ImportError("no numba here")
    sys.meta_path.insert(0, NoNumba())
""")


def _run_without_numba(code, *args, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", NO_NUMBA + textwrap.dedent(code), *args],
                          input=stdin, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


CLI = "from seqtag.cli import main; sys.argv[0] = 'seqtag'; main()"


@pytest.mark.parametrize("engine", ["numpy", "auto"])
def test_tag_without_numba(engine):
    r = _run_without_numba(CLI, "tag", "--engine", engine, "-f", "jsonl", "--scores", "--nbest",
                           "2", "Sam Li and Tom date on Tuesday.")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["labels"][:2] == ["B-PER", "I-PER"]
    assert len(record["nbest"]) == 2
    api = _run_without_numba("""
        import seqtag
        tagger = seqtag.Tagger.load(engine=%r)
        print(tagger.tag(["Sam Li and Tom date on Tuesday."])[0][1][1])
        print(tagger.predict_proba([["Sam", "Li"]])[0].shape)
        assert "numba" not in sys.modules
    """ % engine)
    assert api.returncode == 0, api.stderr
    assert api.stdout.split("\n")[:2] == ["I-PER", "(2, 7)"]


def test_tag_without_numba_conll_file_and_eval(tmp_path):
    gold = REPO / "samples" / "btc.test"
    r = _run_without_numba(CLI, "tag", "--input-format", "conll", "-i", str(gold))
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line]
    assert len(lines) == sum(1 for line in gold.read_text().splitlines() if line.strip())
    e = _run_without_numba(CLI, "eval", str(gold), "--json")
    assert e.returncode == 0, e.stderr
    with_numba = subprocess.run([sys.executable, "-m", "seqtag", "eval", str(gold), "--json",
                                 "--engine", "numba"], capture_output=True, text=True, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    a, b = json.loads(e.stdout), json.loads(with_numba.stdout)
    # The calibration comes from probabilities, equal to 1e-4 between the engines.
    cal_a, cal_b = a.pop("calibration"), b.pop("calibration")
    assert a == b
    for key in ("token_ece", "nono_token_ece", "entity_ece"):
        assert cal_a[key] == pytest.approx(cal_b[key], abs=0.02)


def test_engine_numba_refused_without_numba():
    r = _run_without_numba(CLI, "tag", "--engine", "numba", "Sam Li")
    assert r.returncode != 0
    assert r.stderr.startswith("ERROR:") and "numba" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_engine_is_an_error_line():
    r = subprocess.run([sys.executable, "-m", "seqtag", "tag", "--engine", "gpu", "Sam"],
                       capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0
    assert r.stderr.startswith("ERROR:") and "gpu" in r.stderr and "Traceback" not in r.stderr


def test_auto_stays_on_numpy_until_warm_and_long(tmp_path, monkeypatch, bundled_model):
    from seqtag import engines
    from seqtag.engines import warm

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SEQTAG_WARMUP", "0")
    sentence = ["Sam", "Li", "went", "to", "Paris"]
    model = bundled_model.use_engine("auto")
    try:
        for _ in range(3):      # not warm: NumPy however much is tagged
            model.analyse([sentence] * (engines.SWITCH_TOKENS // 10))
            assert model.kernels == "numpy"
        warm.marker().touch()   # as the warm-up leaves it
        model.use_engine("auto")
        model.analyse([sentence])
        assert model.kernels == "numpy"      # short input: NumPy
        model.analyse([sentence] * (engines.SWITCH_TOKENS // 5))
        assert model.kernels == "numba"      # warm and long: Numba
    finally:
        model.use_engine("numba")


def test_auto_takes_numba_from_the_start_when_the_input_will_be_long(tmp_path, monkeypatch,
                                                                    bundled_model):
    from seqtag import engines
    from seqtag.engines import warm

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SEQTAG_WARMUP", "0")
    sentence = ["Sam", "Li", "went", "to", "Paris"]
    model = bundled_model
    try:
        model.use_engine("auto").engine.expect(engines.SWITCH_TOKENS)
        model.analyse([sentence])
        assert model.kernels == "numpy"      # not warm: NumPy whatever is expected
        warm.marker().touch()
        model.use_engine("auto").engine.expect(engines.SWITCH_TOKENS - 1)
        model.analyse([sentence])
        assert model.kernels == "numpy"      # warm, but not long enough to pay Numba's load
        model.use_engine("auto").engine.expect(engines.SWITCH_TOKENS)
        model.analyse([sentence])
        assert model.kernels == "numba"      # warm and long: Numba from the first batch
    finally:
        model.use_engine("numba")


def test_expected_tokens_count_regular_files_only(tmp_path, monkeypatch):
    from seqtag.cli.tag import _BYTES_PER_TOKEN, _expected_tokens

    text = tmp_path / "big.txt"
    text.write_text("Sam Li went to Paris .\n" * 1000)
    size = text.stat().st_size
    assert _expected_tokens([str(text)], "text") == size // _BYTES_PER_TOKEN["text"]
    assert _expected_tokens([str(text), str(text)], "conll") == 2 * size // 14
    assert _expected_tokens([str(tmp_path / "missing.txt")], "text") == 0
    with open(text, "rb", buffering=0) as f:    # seqtag tag < big.txt, 23 bytes already read
        f.read(23)
        monkeypatch.setattr(sys, "stdin", f)
        assert _expected_tokens(["-"], "text") == (size - 23) // 6
    read, write = os.pipe()                 # cat big.txt | seqtag tag: unknown, 0
    with os.fdopen(read) as r, os.fdopen(write, "w"):
        monkeypatch.setattr(sys, "stdin", r)
        assert _expected_tokens(["-"], "text") == 0


def test_sequence_files_tell_auto_how_long_they_are(tmp_path, monkeypatch, capsys):
    """A FASTA (or seqlabels) file's size in residues reaches auto before its first window, as a
    text file's does in tokens: a long record takes Numba from the start once it is warm."""
    from seqtag import engines
    from seqtag.cli import app
    from seqtag.cli.tag import _expected_tokens

    seq = "ACGT" * 15_000
    fasta = tmp_path / "chr.fa"
    fasta.write_text(">chr1\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60)))
    seqlabels = tmp_path / "chr.tsv"
    seqlabels.write_text(f"chr1\t{seq}\t{'p' * len(seq)}\n")
    for path, fmt in ((fasta, "fasta"), (seqlabels, "seqlabels")):
        assert 0.9 * len(seq) <= _expected_tokens([str(path)], fmt) <= len(seq)
    # (the engines' tests' model: any model tags DNA letters, as unknown words)
    expected = []
    monkeypatch.setattr(engines.Engine, "expect", lambda self, n: expected.append(n))
    monkeypatch.setenv("SEQTAG_WARMUP", "0")
    app(["tag", "--input-format", "fasta", str(fasta), "--engine", "auto"],
        standalone_mode=False)
    assert capsys.readouterr().out.startswith(">chr1\n")
    assert expected == [_expected_tokens([str(fasta)], "fasta")]


def test_warm_marker_key_follows_the_kernel_sources(tmp_path, monkeypatch):
    from seqtag.engines import warm

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    before = warm.marker()
    assert before.parent == tmp_path and not warm.is_warm()
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for f in warm.KERNELS.glob("*.py"):
        (kernels / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(warm, "KERNELS", kernels)
    assert warm.marker() == before
    (kernels / "lstm.py").write_text((kernels / "lstm.py").read_text() + "\n# edited\n")
    assert warm.marker() != before


@pytest.mark.slow
def test_warmup_process_writes_the_marker(tmp_path):
    """The real background warm-up, in a cache of its own: the tagging process exits at once
    (its output does not wait for the warm-up), and the marker appears when it is done."""
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("SEQTAG_WARMUP", None)
    r = subprocess.run([sys.executable, "-m", "seqtag", "tag", "Sam Li"], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    # The detached warm-up takes its lock once its interpreter is up, which may be after the
    # tagging process has exited: wait for the lock (or the finished marker), not assume it.
    deadline = time.time() + 600
    while time.time() < deadline and not (tmp_path / "seqtag-warmup.lock").exists() \
            and not list(tmp_path.glob("seqtag-warm-*")):
        time.sleep(0.1)
    assert (tmp_path / "seqtag-warmup.lock").exists() or list(tmp_path.glob("seqtag-warm-*"))
    while time.time() < deadline and not list(tmp_path.glob("seqtag-warm-*")):
        time.sleep(1)
    assert list(tmp_path.glob("seqtag-warm-*"))
    while (tmp_path / "seqtag-warmup.lock").exists() and time.time() < deadline:
        time.sleep(0.2)
    check = subprocess.run([sys.executable, "-c", "from seqtag.engines import warm; "
                            "print(warm.is_warm())"], capture_output=True, text=True, cwd=REPO,
                           env=env)
    assert check.stdout.strip() == "True"


def test_one_sentence_imports_no_numba():
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, seqtag
        print(seqtag.Tagger.load().tag(["Sam Li and Tom date on Tuesday."])[0][0][1])
        print(sorted(m for m in ("numba", "llvmlite") if m in sys.modules))
    """)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "SEQTAG_WARMUP": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["B-PER", "[]"]


@pytest.mark.parametrize("preset", [None, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"])
def test_cli_bounds_blas_threads_unless_the_user_did(preset):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if preset:
        env[preset] = "3"
    r = subprocess.run([sys.executable, "-c", "import os, seqtag.cli; print(os.environ.get("
                        "'OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'))"],
                       capture_output=True, text=True, cwd=REPO,
                       env={**env, "PYTHONPATH": str(REPO)})
    assert r.stdout.split() == {None: ["1", "None"], "OMP_NUM_THREADS": ["None", "3"],
                                "OPENBLAS_NUM_THREADS": ["3", "None"]}[preset]


def test_api_bounds_blas_threads_unless_the_user_did(monkeypatch):
    from threadpoolctl import threadpool_info

    from seqtag.engines import blas_threads

    def blas():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(v, raising=False)
    with blas_threads():
        assert blas() <= {1}
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = blas()
    with blas_threads():
        assert blas() == before


def test_no_warmup_where_the_marker_cannot_be_written(tmp_path, monkeypatch):
    from seqtag.engines import warm

    (tmp_path / "a-file").write_text("x")
    monkeypatch.delenv("SEQTAG_WARMUP", raising=False)
    for cache in (tmp_path / "a-file", tmp_path / "a-file" / "cache", Path("/proc/no-such")):
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
        assert not warm.is_warm()
        assert not warm.start_warmup()


def test_a_thread_keeps_the_network_of_one_engine(bundled_model):
    """auto moves a stream from NumPy to Numba once: a tagging thread's NumPy network (with its
    scratch arrays) is dropped when it takes its Numba one, and the labels stay the same."""
    import threading

    sentences = [["Sam", "Li", "went", "to", "Paris"], ["Tom", "stayed", "."]]
    seen = []

    def run():
        model = bundled_model
        for kernels in ("numpy", "numba"):
            model.use_engine(kernels)
            labels = [r["labels"].tolist() for r in
                      model.analyse(sentences, prepared=model.prepare(sentences))]
            seen.append((labels, sorted(model._threads.networks)))

    try:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    finally:
        bundled_model.use_engine("numba")
    assert [names for _, names in seen] == [["numpy"], ["numba"]]
    assert seen[0][0] == seen[1][0]


@pytest.mark.slow
def test_after_the_warmup_tagging_compiles_nothing(tmp_path):
    """The warm-up compiles every kernel signature `seqtag tag` calls with the bundled model (text,
    column and jsonl output, scores, n-best, kept inputs, threads): a kernel it missed would be
    compiled in the middle of a user's first large input."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path),
           "SEQTAG_WARMUP": "0"}
    subprocess.run([sys.executable, "-c", "from seqtag.warmup import compile_all; compile_all()"],
                   check=True, cwd=REPO, env=env, timeout=900)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import importlib, pkgutil
        import seqtag.kernels
        from seqtag.cli._app import default_model_path
        from seqtag.model import RNNTagger
        from seqtag.tagging import format_conll, format_jsonl, tag_texts
        texts = ["Sam Li and Tom date on Tuesday.", "Unknown Zyx words here", "Paris"] * 40
        for threads in (1, 2):
            model = RNNTagger.load(default_model_path(), engine="numba").keep_inputs()
            for t in tag_texts(model, texts, 16, threads=threads, probs=False):
                format_conll(t)
            for t in tag_texts(model, texts, 16, threads=threads, scores=True, nbest=2):
                format_jsonl(t, True)
        from numba.core.registry import CPUDispatcher
        missed = []
        for info in pkgutil.iter_modules(seqtag.kernels.__path__):
            module = importlib.import_module("seqtag.kernels." + info.name)
            for name, obj in vars(module).items():
                if isinstance(obj, CPUDispatcher) and obj.stats.cache_misses:
                    missed.append(name)
        print(sorted(set(missed)))
    """)], capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"



FIRST_NUMBA_CALLS = """
import sys, threading, time
from seqtag.cli._app import default_model_path
from seqtag.model import RNNTagger
model = RNNTagger.load(default_model_path(), engine="auto")
sentences = [["Sam", "Li", "went", "to", "Paris", "."], ["Tom", "stayed", "home"]]
assert "numba" not in sys.modules
results, errors = [], []

def run():
    prepared = list(model.prepare(sentences))
    prepared[3] = "numba"
    try:
        results.append([r["labels"].tolist() for r in
                        model.analyse(sentences, prepared=tuple(prepared))])
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=run) for _ in range(2)]
threads[0].start()
time.sleep(float(sys.argv[1]))
threads[1].start()
for t in threads:
    t.join()
model.use_engine("numpy")
expected = [r["labels"].tolist() for r in model.analyse(sentences)]
print(errors[:1], len(results), all(x == expected for x in results))
"""


def test_threads_first_numba_calls_while_numba_is_being_imported():
    """auto moves a stream to Numba between two batches, and each tagging thread makes its first
    Numba call when its next batch comes: one thread imports Numba while another calls a kernel.
    Whenever the second starts, both get NumPy's labels. (A second thread that started while
    Numba was half imported failed with "module 'numba' has no attribute 'core'": at 1 or 2 of
    these 11 delays in a sweep, and this test failed 4 runs of 4, on an Intel Xeon; the window
    moves with the machine's speed, hence the sweep.) Each delay in a fresh process, so that
    Numba is not imported yet."""
    from concurrent.futures import ThreadPoolExecutor

    def one(delay):
        return subprocess.run([sys.executable, "-c", FIRST_NUMBA_CALLS, str(delay)],
                              capture_output=True, text=True, cwd=REPO, timeout=600,
                              env={**os.environ, "SEQTAG_WARMUP": "0"})

    delays = [0.03 * k for k in range(1, 12)]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(one, delays))
    for delay, r in zip(delays, runs):
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["[]", "2", "True"], (delay, r.stdout)
