"""--threads: training and tagging on several threads give the same bits as on one.

Training cuts each batch into chunks of sentences (and its distinct input rows into blocks)
whose gradients are summed in chunk order (seqtag.network.Network.train_step), so the model may
not depend on the thread count; tagging runs whole batches on the threads and keeps the input
order. Checked through the library and through the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from seqtag.config import TrainConfig
from seqtag.corpus import read_corpus
from seqtag.errors import SeqtagError
from seqtag.threads import Pool, available_cores

REPO = Path(__file__).resolve().parents[1]
BTC_DEV = REPO / "samples" / "btc.dev"

# Small models of each kind of network: the default one (BiLSTM, features, character CNN, CRF),
# the textbook multi-hot Elman RNN, and a bidirectional multi-hot GRU with features.
ARCHITECTURES = {
    "default": dict(hidden=8, embed_dim=8, char_filters=4, char_dim=3),
    "textbook": {k: v for k, v in TrainConfig.textbook(hidden=8).__dict__.items()
                 if k != "threads"},
    "gru": dict(hidden=8, cell="gru", embed_dim=0, char_filters=0, crf=False,
                features="shape,suffix3"),
}


@pytest.fixture(scope="module")
def btc():
    sents = read_corpus(str(BTC_DEV))[0]
    return sents[:120], sents[120:160]


def _train(train, dev, threads, **options):
    from seqtag.training import Trainer

    cfg = TrainConfig(**{**dict(epochs=2, patience=0, seed=3), **options, "threads": threads})
    return Trainer(cfg).fit(train, dev).model_


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_training_gives_the_same_model_for_any_thread_count(btc, arch, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    train, dev = btc
    # 48 sentences a batch: three chunks, so that 2 threads share them unevenly
    options = {**ARCHITECTURES[arch], "batch_size": 48}
    models = {n: _train(train, dev, n, **options) for n in (1, 2, 3)}
    for n, model in models.items():
        model.save(tmp_path / f"{n}.npz")
        assert model.params.keys() == models[1].params.keys()
        for k, v in model.params.items():
            assert np.array_equal(v, models[1].params[k]), (n, k)
        assert model.meta["history"] == models[1].meta["history"]
    assert len({(tmp_path / f"{n}.npz").read_bytes() for n in models}) == 1
    assert "threads" not in models[1].meta["hyperparameters"]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_batch_in_chunks_has_the_gradient_of_the_whole_batch(btc, arch):
    """Float64: summing the chunks' gradients (one sentence a chunk, the most there can be)
    gives the gradients of the batch in one piece (Network.forward and its backprop)."""
    from seqtag.build import build_model
    from seqtag.encoding import pack
    from seqtag.network import Network
    from seqtag.optim import Optimizer

    train, _ = btc
    # (without dropout: the chunks draw their masks from generators of their own)
    cfg = TrainConfig(**{**ARCHITECTURES[arch], "word_dropout": 0, "dropout": 0,
                         "input_dropout": 0}).check()
    model, _ = build_model(cfg, train, np.random.default_rng(1), None, None)
    for k, v in model.params.items():
        model.params[k] = (np.asfortranarray if v.flags.f_contiguous and v.ndim == 2
                           else np.ascontiguousarray)(v, dtype=np.float64)
    sents = train[:11]
    ids, offsets = pack([model.encode(s.tokens) for s in sents])
    labels, _ = pack([model.vocab.label_ids(s.labels) for s in sents])

    def gradients(chunk=None):
        network = Network(model.params, model.architecture, model.encoder.spellings,
                          dropout=cfg.dropout, input_dropout=cfg.input_dropout)
        opt = Optimizer(cfg, model.params)
        network.attach_grads(opt.grads)
        rng = np.random.default_rng(5)
        if chunk is None:
            E, backprop = network.forward(ids, offsets, rng, exact=True)
            loss, dE = network.output.loss(E, offsets, labels)
            backprop(dE)
        else:
            network.chunk = chunk
            network.pool = Pool(2)
            loss = network.train_step(ids, offsets, labels, rng, exact=True)
        return loss, opt.grads

    whole_loss, whole = gradients()
    for chunk in (1, 3, 16):
        loss, grads = gradients(chunk)
        assert loss == pytest.approx(whole_loss, rel=1e-12)
        for k in whole:
            np.testing.assert_allclose(grads[k], whole[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_tagging_gives_the_same_output_for_any_thread_count(bundled_model):
    from seqtag.tagging import format_jsonl, tag_sentences, tag_texts

    sents = read_corpus(str(BTC_DEV))[0][:200]
    texts = [" ".join(s.tokens) for s in sents]
    for tag, items in ((tag_texts, texts), (tag_sentences, sents)):
        outputs = {n: "".join(format_jsonl(t, True) for t in tag(
            bundled_model, items, batch_size=7, scores=True, threads=n)) for n in (1, 2, 3)}
        assert outputs[1] and outputs[1] == outputs[2] == outputs[3]


def test_the_numpy_engine_tags_the_same_on_threads_and_restores_the_blas_pool(monkeypatch):
    # Threads on the NumPy engine share one BLAS limit: set by the first thread in, restored by
    # the last out (a thread restoring it under another's feet would leave the pool changed).
    from threadpoolctl import threadpool_info

    from seqtag.cli._app import default_model_path
    from seqtag.engines import BLAS_VARIABLES
    from seqtag.model import RNNTagger
    from seqtag.tagging import format_jsonl, tag_texts

    for v in BLAS_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    before = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    model = RNNTagger.load(default_model_path(), engine="numpy")
    texts = [" ".join(s.tokens) for s in read_corpus(str(BTC_DEV))[0][:120]]
    outputs = {n: "".join(format_jsonl(t, True) for t in tag_texts(
        model, texts, batch_size=5, scores=True, threads=n)) for n in (1, 2, 3)}
    assert model.kernels == "numpy"
    assert outputs[1] and outputs[1] == outputs[2] == outputs[3]
    assert [(p["internal_api"], p["num_threads"]) for p in threadpool_info()] == before


def test_an_error_after_some_batches_comes_after_their_output_on_threads(bundled_model):
    from seqtag.tagging import tag_texts

    texts = ["Sam Li"] * 10 + ["a " * 400] + ["Tom"] * 10
    got = []
    with pytest.raises(SeqtagError, match="too long for --nbest"):
        for t in tag_texts(bundled_model, texts, batch_size=3, nbest=5000, threads=2):
            got.append(t.tokens)
    assert got == [["Sam", "Li"]] * 10


def test_a_bad_input_line_comes_after_the_batches_read_before_it_on_threads(tmp_path):
    """The input fails while batches read before it are still running: they are written, as
    with one thread, then the ERROR line."""
    from seqtag.threads import ordered

    def jobs():
        yield from range(7)
        raise SeqtagError("bad line", path="x", line=8)

    got = []
    with pytest.raises(SeqtagError, match="bad line"):
        for job, result in ordered(lambda j: j * j, jobs(), threads=2):
            got.append((job, result))
    assert got == [(j, j * j) for j in range(7)]
    text = tmp_path / "texts.txt"
    text.write_bytes(b"Sam Li met Tom .\n" * 299 + b"bad \xff byte\n" + b"Tom .\n" * 5)
    outs = [subprocess.run([sys.executable, "-m", "seqtag", "tag", "-i", text, "--batch-size",
                            "16", "--threads", str(n)], capture_output=True, timeout=600)
            for n in (1, 2)]
    for proc in outs:
        assert proc.returncode != 0 and proc.stderr.startswith(b"ERROR:"), proc.stderr
    assert outs[0].stdout == outs[1].stdout
    assert outs[0].stdout.count(b"\n\n") == 288      # the 18 whole batches before line 300


def _cli(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "seqtag", *map(str, args)],
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=600)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def test_the_cli_trains_and_tags_the_same_with_1_and_2_threads(btc, tmp_path):
    train_file, dev_file = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    for path, sents in zip((train_file, dev_file), btc):
        path.write_text("".join("".join(f"{w}\t{y}\n" for w, y in zip(s.tokens, s.labels))
                                + "\n" for s in sents))
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    for n in (1, 2):
        _cli("train", train_file, "--dev", dev_file, "-o", tmp_path / f"m{n}.npz", "--epochs",
             2, "--hidden", 8, "--embed-dim", 8, "--char-filters", 4, "--threads", n, env=env)
    a, b = (np.load(tmp_path / f"m{n}.npz", allow_pickle=False) for n in (1, 2))
    assert a.files == b.files
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    out = [_cli("tag", "-m", tmp_path / "m1.npz", "--input-format", "conll", "-i", dev_file,
                "--batch-size", 5, "--threads", n).stdout for n in (1, 2)]
    assert out[0].count(b"\n") > 300 and out[0] == out[1]


def test_threads_out_of_range_are_refused(tmp_path):
    with pytest.raises(SeqtagError, match="--threads is 0"):
        TrainConfig(threads=0).check()
    proc = subprocess.run([sys.executable, "-m", "seqtag", "tag", "--threads", "0", "x"],
                          capture_output=True, timeout=120)
    assert proc.returncode != 0 and b"Traceback" not in proc.stderr


def test_the_pool_runs_every_item_once_in_order_and_passes_errors_on():
    pool = Pool(3)
    assert pool.map(lambda x: x * x, list(range(50))) == [x * x for x in range(50)]

    def fail(x):
        if x == 7:
            raise ValueError("seven")
        return x

    with pytest.raises(ValueError, match="seven"):
        pool.map(fail, list(range(20)))
    pool.close()
    assert Pool(None).threads == available_cores() >= 1


class _Signalled(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_a_signal_while_the_pool_waits_for_a_worker_is_raised_once_it_is_done():
    # The calling thread finishes its item and waits for the worker's; a signal comes then
    # (as SIGTERM or Ctrl-C come to a training run): map must raise it, after the worker is done.
    started, done = threading.Event(), []

    def item(x):
        if threading.current_thread() is threading.main_thread():
            assert started.wait(10)
            return x
        started.set()
        time.sleep(0.6)
        done.append(x)
        return x

    def handler(signum, frame):
        raise _Signalled

    before = signal.signal(signal.SIGUSR1, handler)
    pool = Pool(2)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(_Signalled):
            pool.map(item, [0, 1])
        assert len(done) == 1          # raised after the worker's item, not while it ran
    finally:
        # never left to fire once the default action (ending pytest) is back
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, before)
        pool.close()


def test_a_run_resumed_on_other_threads_ends_with_the_same_model(btc, tmp_path):
    from seqtag.training import Trainer

    train, dev = btc
    options = dict(ARCHITECTURES["default"], patience=0, seed=3, batch_size=40)
    whole = Trainer(TrainConfig(**options, epochs=2, threads=1)).fit(train, dev).model_
    ckpt = tmp_path / "m.ckpt.npz"
    Trainer(TrainConfig(**options, epochs=1, threads=2), checkpoint=ckpt).fit(train, dev)
    resumed = Trainer(TrainConfig(**options, epochs=2, threads=3), checkpoint=ckpt).fit(
        train, dev, resume=True).model_
    for k, v in whole.params.items():
        assert np.array_equal(v, resumed.params[k]), k


def test_ordered_switches_threads_quickly_while_it_runs_and_restores_the_interval_after():
    # (a thread back from a kernel would otherwise wait up to 5 ms for the GIL: seqtag.threads)
    from seqtag.threads import SWITCH_INTERVAL, ordered

    before = sys.getswitchinterval()
    seen = [sys.getswitchinterval() for _, _ in ordered(lambda j: j, range(5), threads=2)]
    assert seen and max(seen) <= SWITCH_INTERVAL < before
    assert sys.getswitchinterval() == before
    with pytest.raises(ZeroDivisionError):
        for _ in ordered(lambda j: 1 / 0 if j == 2 else j, range(5), threads=2):
            pass
    assert sys.getswitchinterval() == before


def test_ordered_reads_a_bounded_number_of_jobs_ahead_of_its_results():
    from seqtag.threads import READ_AHEAD, ordered

    read = []

    def jobs():
        for j in range(100):
            read.append(j)
            yield j

    it = ordered(lambda j: j, jobs(), threads=2)
    assert next(it) == (0, 0)
    assert len(read) <= READ_AHEAD * 2 + 1      # memory: what is read ahead stays bounded
    assert list(it) == [(j, j) for j in range(1, 100)]


def test_a_job_not_taken_yet_is_replaced_by_the_next():
    # A map interrupted between giving its job and waiting leaves the job untaken; close()
    # then gives None. That raised "release unlocked lock" (a SIGTERM test failed so in CI).
    from seqtag import threads

    gate = threading.Event()

    class Late(threads._Worker):
        def run(self):
            gate.wait()          # the worker does not take its job before the second give
            super().run()

    w = Late()
    ran = []
    w.give(lambda: ran.append("first"))
    w.give(None)
    gate.set()
    w.join(timeout=10)
    assert not w.is_alive() and ran == []
