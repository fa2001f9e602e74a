"""Tagging on Dask (seqtag.distributed, `seqtag tag --workers / --scheduler`), with real Dask
processes: a LocalCluster of worker processes, and `dask scheduler` + `dask worker` processes on
127.0.0.1. The reference is always a single-process `seqtag tag` of the same input with the same
options: the bytes must be equal, also when a worker is killed mid-stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seqtag.corpus import read_corpus

pytest.importorskip("distributed")      # `make test` installs it (the test extra)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SEQTAG = [sys.executable, "-m", "seqtag"]
# numpy: nothing for a worker to compile; a stream's auto choice is tested on its own below.
FLAGS = ["--engine", "numpy"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SEQTAG_WARMUP": "0"}


def seqtag(*args, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                          env=_env(), timeout=300)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """The BTC test sentences (samples/) as raw text lines, tokens joined by spaces."""
    sents = read_corpus(str(SAMPLES / "btc.test"))[0]
    return [" ".join(s.tokens) for s in sents]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, texts) -> Path:
    path = tmp_path_factory.mktemp("dask") / "texts.txt"
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def conll_file(tmp_path_factory) -> Path:
    """The first 600 sentences of samples/btc.test, as columns."""
    blocks = (SAMPLES / "btc.test").read_text(encoding="utf-8").split("\n\n")
    path = tmp_path_factory.mktemp("dask") / "part.conll"
    path.write_text("\n\n".join(blocks[:600]) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes (one thread each), for the in-process tests."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _same(a: subprocess.CompletedProcess, b: subprocess.CompletedProcess) -> None:
    assert a.returncode == b.returncode, (a.stderr.decode(), b.stderr.decode())
    assert a.stdout == b.stdout
    assert b"Traceback" not in a.stderr + b.stderr


def test_workers_give_one_process_output(conll_file, text_file):
    """--workers 2 (a LocalCluster of processes): the same bytes as one process, for column
    input with -f conll and for raw text with -f jsonl --scores (probabilities shown)."""
    conll = ["-i", conll_file, "--input-format", "conll", "-f", "conll",
             "--batch-size", "64"]
    text = ["-i", text_file, "-f", "jsonl", "--scores", "--batch-size", "50"]
    for args in (conll, text):
        one = seqtag("tag", *FLAGS, *args)
        many = seqtag("tag", *FLAGS, "--workers", "2", *args)
        _same(many, one)
    lines = one.stdout.decode().splitlines()
    assert len(lines) == len(text_file.read_text().splitlines())
    assert any(json.loads(line)["entities"] for line in lines)   # not all O: a real tagging


def test_error_mid_stream_after_the_lines_before_it(tmp_path, texts):
    """A bad byte on line 300: one process (on one thread: on more, the batches it had read
    ahead are not written) writes the batches before it, then one ERROR line; so do the
    workers (batches of 16: many are out when the reader fails)."""
    data = "".join(t + "\n" for t in texts[:299]).encode() + b"caf\xe9 au lait\n" + \
        "".join(t + "\n" for t in texts[299:400]).encode()
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    args = ["-i", path, "-f", "inline", "--batch-size", "16"]
    one = seqtag("tag", *FLAGS, "--threads", "1", *args)
    many = seqtag("tag", *FLAGS, "--workers", "2", *args)
    _same(many, one)
    assert one.returncode == 1 and one.stdout.count(b"\n") == 288     # 18 batches of 16
    assert many.stderr.decode().strip().splitlines()[-1] == \
        one.stderr.decode().strip().splitlines()[-1]
    assert f"{path}:300:" in many.stderr.decode()


def test_error_of_a_batch_on_a_worker_after_its_sentences_before(tmp_path, texts):
    """Line 41 too long for --nbest 100: the worker tags the batch's 8 texts before it and
    returns the error with them; the output and the ERROR line are one process's."""
    lines = texts[:120]
    lines.insert(40, " ".join(["word"] * 10_001))
    path = tmp_path / "long.txt"
    path.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    args = ["-i", path, "-f", "jsonl", "--nbest", "100", "--batch-size", "16"]
    one = seqtag("tag", *FLAGS, "--threads", "1", *args)
    many = seqtag("tag", *FLAGS, "--workers", "2", *args)
    _same(many, one)
    assert one.returncode == 1 and one.stdout.count(b"\n") == 40
    assert many.stderr.decode().startswith(f"ERROR: {path}:41: a sentence of 10,001 tokens")


def test_without_dask_one_error_line_says_how_to_install():
    code = ("import sys; sys.modules['distributed'] = None; "
            "sys.argv = ['seqtag', 'tag', '--workers', '2', 'Sam Li went home']; "
            "from seqtag.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.startswith("ERROR:") and proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'seqtag[dask]'" in proc.stderr


def test_threads_refused_with_workers():
    proc = seqtag("tag", "--workers", "2", "--threads", "2", "Sam")
    assert proc.returncode == 2 and proc.stderr.startswith(b"ERROR:")


def _kill_a_busy_worker(client, prefix: str, timeout: float = 120,
                        running=lambda: True) -> int:
    """SIGKILL the process of a worker that holds a task whose key starts with ``prefix``
    (waiting for one while ``running()``); its pid."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running():
        for worker, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys) and worker in pids:
                os.kill(pids[worker], signal.SIGKILL)
                return pids[worker]
    raise AssertionError("no worker held a task of the run while it ran")


def _gone(client, killed: int, timeout: float = 60) -> None:
    """Wait until the killed process is no longer among the cluster's workers (the scheduler
    noticed the loss; the nanny starts a new process in its place)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = client.run(os.getpid, on_error="ignore")
        if killed not in pids.values():
            return
        time.sleep(0.2)
    raise AssertionError(f"the killed worker {killed} is still listed")


def test_killed_worker_loses_and_repeats_nothing(client, texts):
    """A worker killed (SIGKILL) while it holds batches of the stream: the scheduler runs
    them again elsewhere, and the stream, taken in order, is the single-process one."""
    import seqtag.distributed as d
    from seqtag.model import RNNTagger
    from seqtag.tagging import format_jsonl, tag_texts

    stream = texts[:600] * 3     # 225 batches: long enough to be caught running
    model = RNNTagger.load(REPO / "seqtag" / "data" / "default.npz", engine="numpy")
    options = dict(scores=False, nbest=1, probs=True)
    expected = "".join(format_jsonl(t) for t in tag_texts(model, stream, batch_size=8,
                                                         **options))
    shipped = d.ShippedModel.read(None)
    pulled = 0

    def jobs():
        nonlocal pulled
        for batch in d.batches([("text", iter(stream), None)], 8):
            pulled += 1
            yield batch

    # Keys seqtag-<run>-<n> let the killer find the run's tasks on the workers. The stream is
    # read on a thread of its own, as the CLI reads it: a reader that stopped after its first
    # result would leave the window's few quick batches to finish before the killer looked
    # (the failure seen once on CI: nothing left running to kill).
    results = d.tag_batches(client, shipped, jobs(), engine="numpy", options=options,
                            fmt="jsonl", window=8)
    got, errors = [], []

    def read():
        try:
            for result in results:
                got.append(result)
                assert pulled - len(got) <= 8   # memory: the window bounds what is read ahead
        except BaseException as e:              # noqa: BLE001 - reported by the test below
            errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        killed = _kill_a_busy_worker(client, "seqtag-", running=reader.is_alive)
    finally:
        reader.join(300)
    assert not reader.is_alive() and not errors, errors
    assert "".join(got) == expected and pulled == len(got) == len(stream) // 8
    _gone(client, killed)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env=_env(), start_new_session=True)


@pytest.fixture
def scheduler_and_workers(tmp_path):
    """`dask scheduler` and `dask worker` (two worker processes under nannies, one thread
    each) as processes on 127.0.0.1, on free ports; the scheduler's address."""
    info = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        time.sleep(0.1)   # the file is written whole before it is read
        address = json.loads(info.read_text())["address"]
        procs.append(_start(["worker", address, "--host", "127.0.0.1", "--nworkers", "2",
                             "--nthreads", "1", "--no-dashboard"], tmp_path / "worker.log"))
        yield address
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_scheduler_and_worker_processes_with_a_worker_killed(scheduler_and_workers, tmp_path,
                                                            texts):
    """`seqtag tag --scheduler tcp://...` on a `dask scheduler` + `dask worker` pair: the
    single-process bytes, also with one of the worker processes killed mid-stream."""
    from distributed import Client

    path = tmp_path / "texts.txt"
    # 225 batches: long enough for the killer to find one running
    path.write_text("".join(t + "\n" for t in texts[:600] * 3), encoding="utf-8")
    args = ["-i", path, "-f", "conll", "--batch-size", "8"]
    one = seqtag("tag", *FLAGS, *args)
    with Client(scheduler_and_workers, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=120)
        out = tmp_path / "out.conll"
        with out.open("wb") as sink:
            proc = subprocess.Popen([*SEQTAG, "tag", *FLAGS, *args, "--scheduler",
                                     scheduler_and_workers, "--workers", "2"],
                                    stdout=sink, stderr=subprocess.PIPE, env=_env())
            stderr = []
            reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()))
            reader.start()
            killed = _kill_a_busy_worker(c, "seqtag-", running=lambda: proc.poll() is None)
            assert proc.wait(300) == 0, stderr
            reader.join()
        assert out.read_bytes() == one.stdout
        assert b"Traceback" not in stderr[0]
        _gone(c, killed)


def test_auto_engine_chosen_in_input_order(monkeypatch):
    """auto's switch to Numba, chosen by the client from the batches' token counts, falls on
    the batch where one process switches (tokens counted until the choice is settled)."""
    import seqtag.engines as engines
    import seqtag.engines.warm as warm
    from seqtag.distributed import batches
    from seqtag.model import RNNTagger

    monkeypatch.setattr(engines, "SWITCH_TOKENS", 300)
    monkeypatch.setattr(warm, "is_warm", lambda: True)
    texts = [f"Sam Li went to Paris on day {i} ." * (1 + i % 3) for i in range(120)]
    model = RNNTagger.load(REPO / "seqtag" / "data" / "default.npz", engine="auto")
    expected = [model.prepare([[w for w, _, _ in tokenize(t)] for t in b.items])[3]
                for b in batches([("text", texts, None)], 16)]
    chooser = engines.Engine("auto")
    got = [chooser.choose(0 if chooser.settled else b.tokens())
           for b in batches([("text", texts, None)], 16)]
    assert got == expected and "numpy" in got and "numba" in got


def tokenize(text):
    from seqtag.tokenizer import tokenize as tk

    return tk(text)


def _reference_records(texts, scores=False):
    from seqtag.model import RNNTagger
    from seqtag.tagging import record, tag_texts

    model = RNNTagger.load(REPO / "seqtag" / "data" / "default.npz", engine="numpy")
    return [record(t, scores) for t in tag_texts(model, texts, batch_size=256)]


def _same_records(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g["text"], g["tokens"], g["labels"]) == (e["text"], e["tokens"], e["labels"])
        assert [x["label"] for x in g["entities"]] == [x["label"] for x in e["entities"]]
        for x, y in zip(g["entities"], e["entities"]):
            assert abs(x["prob"] - y["prob"]) <= 2e-4


def test_dask_bag_of_texts_into_records(client, texts):
    import dask.bag as db

    from seqtag.distributed import tag_bag

    sample = texts[:300]
    bag = db.from_sequence(sample, npartitions=4)
    got = tag_bag(bag, client=client).compute(scheduler=client)
    _same_records(got, _reference_records(sample))
    assert sum(len(r["entities"]) for r in got) > 0


def test_dask_dataframe_column_into_columns_and_records(client, texts):
    import dask.dataframe as dd
    import pandas as pd

    from seqtag.distributed import tag_dataframe

    sample = texts[:200]
    pdf = pd.DataFrame({"id": range(len(sample)), "text": sample})
    df = dd.from_pandas(pdf, npartitions=3)
    expected = _reference_records(sample)
    cols = tag_dataframe(df, "text", prefix="ner_", client=client).compute(scheduler=client)
    assert list(cols["id"]) == list(range(len(sample)))
    assert [list(x) for x in cols["ner_labels"]] == [r["labels"] for r in expected]
    assert [list(x) for x in cols["ner_tokens"]] == [r["tokens"] for r in expected]
    recs = tag_dataframe(df, "text", output="records", client=client)
    recs = recs.compute(scheduler=client)
    _same_records(list(recs), expected)


def test_dataframe_bad_values_and_names():
    import dask.dataframe as dd
    import pandas as pd

    from seqtag.distributed import tag_dataframe
    from seqtag.errors import SeqtagError

    df = dd.from_pandas(pd.DataFrame({"text": ["Sam Li", None]}, dtype=object), npartitions=1)
    with pytest.raises(SeqtagError, match="no column 'body'"):
        tag_dataframe(df, "body")
    with pytest.raises(SeqtagError, match="not a text"):
        tag_dataframe(df, "text").compute(scheduler="sync")


def test_two_runs_of_one_model_on_a_worker_keep_it_until_both_end():
    """Two `seqtag tag --scheduler` runs of one model on a shared cluster: the first to end
    must not take the model from the other's tasks."""
    import seqtag
    import seqtag.distributed as d

    shipped = d.ShippedModel("m.npz", "f" * 64, b"")
    first, second = (d.ModelPlugin(shipped, seqtag.__version__) for _ in range(2))
    first.setup()
    second.setup()
    first.teardown()
    assert d._SHIPPED[shipped.digest] is shipped
    second.teardown()
    assert shipped.digest not in d._SHIPPED
    with pytest.raises(d.SeqtagError, match="this client 0.0.0"):
        d.ModelPlugin(shipped, "0.0.0").setup()


def _block_numba(block: bool) -> bool:
    """On a worker: make ``import numba`` fail (or work again); whether no Numba kernel was
    imported there yet (else the block would change nothing)."""
    import sys

    if block:
        sys.modules["numba"] = None
    elif sys.modules.get("numba", 0) is None:
        del sys.modules["numba"]
    return not any(name.startswith("seqtag.kernels.") for name in sys.modules)


def test_a_worker_that_cannot_import_the_engine_is_one_error(client):
    import seqtag.distributed as d
    from seqtag.errors import SeqtagError

    try:
        # the workers have tagged with NumPy only: Numba would be imported by this run
        assert all(client.run(_block_numba, True).values())
        results = d.tag_batches(client, d.ShippedModel.read(None),
                                d.batches([("text", ["Sam Li went home ."], None)], 8),
                                engine="numba", fmt="conll")
        with pytest.raises(SeqtagError, match="Dask worker cannot import.*--engine numba"):
            list(results)
    finally:
        client.run(_block_numba, False)
