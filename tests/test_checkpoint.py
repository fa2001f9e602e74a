"""Training that survives being stopped: checkpoints at every epoch's end, --resume, SIGTERM.

Real processes: one run is killed with SIGKILL after a checkpoint and resumed, and must write the
same bytes as a run that was never stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seqtag.config import TrainConfig
from seqtag.errors import SeqtagError
from seqtag.modelfile import load_model
from seqtag.training import Trainer, split_dev

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SEQTAG = [sys.executable, "-m", "seqtag"]
ENV = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The first 1,200 sentences of the BTC sample: about a second per epoch of the default
    model, long enough to be stopped in the middle of one."""
    text = (SAMPLES / "btc.train").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("ckpt") / "small.train"
    path.write_text("\n\n".join(text.split("\n\n")[:1200]) + "\n", encoding="utf-8")
    return path


def train_args(corpus: Path, out: Path, epochs: int = 5) -> list[str]:
    return [*SEQTAG, "train", str(corpus), "--dev", str(SAMPLES / "tiny.tsv"), "--epochs",
            str(epochs), "--patience", "0", "-o", str(out)]


def checkpoint_epoch(path: Path) -> int:
    _, state = load_model(path, with_state=True)
    return state.meta["epoch"]


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_run_killed_after_an_epoch_and_resumed_writes_the_same_model(corpus, tmp_path):
    whole = tmp_path / "whole.npz"
    subprocess.run(train_args(corpus, whole), env=ENV, check=True, capture_output=True,
                   timeout=600)
    assert not (tmp_path / "whole.ckpt.npz").exists()    # a finished run leaves none behind

    out, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    proc = subprocess.Popen(train_args(corpus, out), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ckpt.exists() or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    stopped_at = checkpoint_epoch(ckpt)
    assert 1 <= stopped_at < 5 and not out.exists()

    res = subprocess.run([*train_args(corpus, out), "--resume"], env=ENV, capture_output=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr.decode()
    assert f"resuming from {ckpt}" in res.stderr.decode()
    assert out.read_bytes() == whole.read_bytes()
    assert not ckpt.exists()


def test_sigterm_saves_the_best_epoch_so_far_and_exits_143(corpus, tmp_path):
    out, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    proc = subprocess.Popen(train_args(corpus, out, epochs=40), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ckpt.exists() or proc.poll() is not None)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    stderr = stderr.decode()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "(interrupted;" in stderr
    model = load_model(out)
    assert model.meta["interrupted"] is True and model.meta["best_epoch"] >= 1
    assert ckpt.exists()                         # kept, so that --resume can go on


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path, tiny):
    train = tiny
    ckpt = tmp_path / "c.ckpt.npz"
    small = dict(hidden=4, epochs=2, embed_dim=4, char_filters=2, char_dim=2)
    Trainer(TrainConfig(**small), checkpoint=ckpt).fit(train)
    assert checkpoint_epoch(ckpt) == 2
    with pytest.raises(SeqtagError, match="other options"):
        Trainer(TrainConfig(**{**small, "hidden": 5}), checkpoint=ckpt).fit(train, resume=True)
    with pytest.raises(SeqtagError, match="no checkpoint"):
        Trainer(TrainConfig(**small), checkpoint=tmp_path / "none.npz").fit(train, resume=True)


def test_resuming_in_process_after_each_epoch_gives_the_same_weights(tmp_path, tiny):
    """A k-epoch run's checkpoint, resumed to 3 epochs (epochs may change on resume), ends with
    the weights, history and kept epoch of the 3-epoch run, with averaging on."""
    train = tiny
    small = dict(hidden=4, embed_dim=4, char_filters=2, char_dim=2, average=0.5, patience=0)
    whole = Trainer(TrainConfig(**small, epochs=3)).fit(train, train[:4])
    for k in (1, 2):
        ckpt = tmp_path / f"k{k}.ckpt.npz"
        Trainer(TrainConfig(**small, epochs=k), checkpoint=ckpt).fit(train, train[:4])
        resumed = Trainer(TrainConfig(**small, epochs=3), checkpoint=ckpt).fit(
            train, train[:4], resume=True)
        assert checkpoint_epoch(ckpt) == 3
        assert resumed.history_ == whole.history_ and resumed.best_epoch_ == whole.best_epoch_
        for name, w in whole.model_.params.items():
            np.testing.assert_array_equal(resumed.model_.params[name], w, err_msg=name)


def test_split_dev_holds_out_a_seeded_tenth_in_corpus_order(tiny):
    train = tiny
    rest, dev = split_dev(train, 0.1, seed=3)
    assert len(dev) == round(0.1 * len(train)) and len(rest) + len(dev) == len(train)
    assert [s.line_no for s in rest + dev] != [s.line_no for s in train] or len(dev) == 0
    assert split_dev(train, 0.1, seed=3) == (rest, dev)
    assert sorted(s.line_no for s in rest) == [s.line_no for s in rest]
    assert split_dev(train[:1], 0.1, seed=3) == (train[:1], [])


def test_train_without_dev_holds_out_a_tenth_and_says_so(tmp_path):
    out = tmp_path / "m.npz"
    args = [*SEQTAG, "train", str(SAMPLES / "tiny.tsv"), "--hidden", "4", "--epochs", "2",
            "--embed-dim", "4", "--char-filters", "2", "-o", str(out)]
    held = subprocess.run(args, capture_output=True, timeout=300, env=ENV)
    assert held.returncode == 0, held.stderr.decode()
    stderr = held.stderr.decode()
    assert "no --dev: holding out 1 of the training sentences (10%, seed 1)" in stderr
    assert "training on 12 sentences" in stderr
    whole = subprocess.run([*args, "--no-dev"], capture_output=True, timeout=300, env=ENV)
    assert whole.returncode == 0 and "training on 13 sentences" in whole.stderr.decode()
    both = subprocess.run([*args, "--no-dev", "--dev", str(SAMPLES / "tiny.tsv")],
                          capture_output=True, timeout=300, env=ENV)
    assert both.returncode != 0 and both.stderr.decode().startswith("ERROR: --dev and --no-dev")


def test_a_checkpoint_without_an_option_added_since_resumes_at_its_default(tmp_path, tiny):
    """A checkpoint written before an option existed records no value for it: its run had the
    option's default, so resuming with the default works, and with another value is refused."""
    from seqtag.modelfile import save_model

    small = dict(hidden=4, embed_dim=4, char_filters=2, char_dim=2, average=0.5, patience=0)
    ckpt = tmp_path / "old.ckpt.npz"
    Trainer(TrainConfig(**small, epochs=1), checkpoint=ckpt).fit(tiny)

    def drop(name):
        model, state = load_model(ckpt, with_state=True)
        del state.meta["hyperparameters"][name]
        save_model(model, ckpt, state=state)

    drop("ensemble")            # default 1, as this run had
    Trainer(TrainConfig(**small, epochs=2), checkpoint=ckpt).fit(tiny, resume=True)
    assert checkpoint_epoch(ckpt) == 2
    drop("average")             # default 0.0, but this run averaged at 0.5
    with pytest.raises(SeqtagError, match="other options"):
        Trainer(TrainConfig(**small, epochs=3), checkpoint=ckpt).fit(tiny, resume=True)
