"""Tests for seqtag.training: learning, reproducibility, early stopping, optimizers, clipping,
interruption, configuration checks."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import numpy as np
import pytest

from gradcheck import central_difference

from seqtag.corpus import CorpusInfo, Sentence
from seqtag.errors import SeqtagError
from seqtag.metrics import evaluate
from seqtag.build import init_params
from seqtag.model import BACKWARD_NAMES, CRF_NAMES, PARAM_NAMES, RNNTagger, pack
from seqtag.schemes import allowed_transitions
from seqtag.config import TrainConfig
from seqtag.training import Trainer, created_now
from seqtag.vocab import UNK_ID, Vocabulary

# Lower-case symbols: single capitals such as "B" or "S" would read as chunk tags.
SYMBOLS = [f"w{i}" for i in range(8)]
K = 2


def memory_task(rng: np.random.Generator, n: int, k: int = K) -> list[Sentence]:
    """The label of token t is the token seen k steps before ("O" for the first k)."""
    out = []
    for i in range(n):
        toks = [SYMBOLS[j] for j in rng.integers(0, len(SYMBOLS), rng.integers(5, 16))]
        out.append(Sentence(toks, ["O"] * k + toks[:-k], [], i + 1))
    return out


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    return memory_task(rng, 300), memory_task(rng, 100)


def cfg(**kw) -> TrainConfig:
    base = dict(hidden=8, epochs=3, lr=0.01, batch_size=16, word_dropout=0.0, patience=0, seed=1)
    base.update(kw)
    return TrainConfig.textbook(**base)


def accuracy(model: RNNTagger, sents: list[Sentence]) -> float:
    return evaluate([s.labels for s in sents], model.predict([s.tokens for s in sents])).accuracy


def assert_same_params(a: dict, b: dict) -> None:
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def arrays_of(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# -- learning ------------------------------------------------------------------------------------

def test_memory_task_cannot_be_solved_without_memory(data):
    """The best tagger that only sees the current token (its most frequent label) is poor,
    so the accuracy reached below needs the recurrence."""
    train, dev = data
    by_word = defaultdict(Counter)
    for s in train:
        for w, lab in zip(s.tokens, s.labels):
            by_word[w][lab] += 1
    best = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
    pred = [[best[w] for w in s.tokens] for s in dev]
    assert evaluate([s.labels for s in dev], pred).accuracy < 0.4


@pytest.fixture(scope="module")
def memory_model(data):
    train, dev = data
    trainer = Trainer(cfg(hidden=32, epochs=20, lr=0.01, optimizer="adam"))
    return trainer.fit(train, dev)


def test_learns_a_task_that_needs_memory(data, memory_model):
    _, dev = data
    model = memory_model.model_
    assert accuracy(model, dev) >= 0.99
    # fresh sequences, never seen in training
    fresh = memory_task(np.random.default_rng(7), 50)
    assert accuracy(model, fresh) >= 0.99


def test_loss_goes_down(memory_model):
    losses = [row["train_loss"] for row in memory_model.history_]
    assert losses[-1] < 0.1 * losses[0]
    assert all(np.isfinite(losses))


# -- history, best epoch, patience ---------------------------------------------------------------

def test_history_and_meta(data, memory_model):
    t = memory_model
    assert [row["epoch"] for row in t.history_] == list(range(1, 21))
    for row in t.history_:
        assert set(row) == {"epoch", "train_loss", "dev_accuracy"}   # labels are not chunk tags
    accs = [row["dev_accuracy"] for row in t.history_]
    assert t.best_epoch_ == int(np.argmax(accs)) + 1
    assert t.interrupted_ is False
    meta = t.model_.meta
    assert meta["best_epoch"] == t.best_epoch_
    assert meta["history"] == t.history_
    assert meta["interrupted"] is False
    assert meta["hyperparameters"]["hidden"] == 32
    assert meta["architecture"]["hidden"] == 32
    assert meta["seed"] == 1
    assert meta["label_scheme"] == "none"


def test_chunk_labels_record_dev_f1():
    train = [Sentence(["a", "b", "c"], ["B-X", "I-X", "O"], [], 1),
             Sentence(["c", "a"], ["O", "B-X"], [], 5)]
    t = Trainer(cfg(epochs=2)).fit(train, train)
    assert all("dev_f1" in row and "dev_accuracy" in row for row in t.history_)
    assert t.model_.meta["label_scheme"] == "IOB2"


def test_without_dev_the_lowest_training_loss_wins(data):
    train, _ = data
    t = Trainer(cfg(epochs=4)).fit(train)
    losses = [row["train_loss"] for row in t.history_]
    assert all("dev_accuracy" not in row for row in t.history_)
    # a per-token loss above 1 is a score below -1: it must still count as an improvement
    assert losses[0] > 1
    assert t.model_ is not None
    assert t.best_epoch_ == int(np.argmin(losses)) + 1


@pytest.fixture(scope="module")
def noisy_dev(data):
    """Dev labels that are random: the dev score wanders, so the best epoch is not the last."""
    _, dev = data
    rng = np.random.default_rng(5)
    return [Sentence(s.tokens, [SYMBOLS[j] for j in rng.integers(0, 8, len(s.tokens))], [], 1)
            for s in dev]


@pytest.fixture(scope="module")
def early_stopped(data, noisy_dev):
    train, _ = data
    return Trainer(cfg(epochs=40, patience=2)).fit(train, noisy_dev)


def test_patience_stops_early(early_stopped):
    t = early_stopped
    assert len(t.history_) < 40
    assert len(t.history_) == t.best_epoch_ + 2
    accs = [row["dev_accuracy"] for row in t.history_]
    # the last two epochs did not beat the best one
    assert max(accs[-2:]) <= accs[t.best_epoch_ - 1]


def test_the_dev_best_epoch_is_the_one_kept(data, noisy_dev, early_stopped, tmp_path):
    train, _ = data
    t = early_stopped
    accs = [row["dev_accuracy"] for row in t.history_]
    assert t.best_epoch_ < len(t.history_)            # the fixture is built for this
    assert accs[t.best_epoch_ - 1] == max(accs)
    assert accs.index(max(accs)) == t.best_epoch_ - 1  # ties keep the earlier epoch
    # the kept model scores what the best epoch scored, not what the last epoch scored
    assert round(accuracy(t.model_, noisy_dev), 6) == accs[t.best_epoch_ - 1]
    # and it is exactly the model after best_epoch_ epochs of the same run
    again = Trainer(cfg(epochs=t.best_epoch_, patience=0)).fit(train, noisy_dev)
    assert_same_params(again.model_.params, t.model_.params)
    path = tmp_path / "best.npz"
    t.model_.save(path)
    loaded = RNNTagger.load(path)
    sents = [s.tokens for s in noisy_dev]
    assert loaded.predict(sents) == again.model_.predict(sents)


def test_patience_zero_runs_every_epoch(data, noisy_dev):
    train, _ = data
    t = Trainer(cfg(epochs=6, patience=0)).fit(train, noisy_dev)
    assert len(t.history_) == 6


# -- reproducibility -----------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "946684800")
    train, dev = data
    info = CorpusInfo("train.tsv", len(train), sum(len(s.tokens) for s in train), "0" * 64, 123)
    paths = []
    for i in range(2):
        t = Trainer(cfg(seed=7, word_dropout=0.25)).fit(train, dev, corpus=[info])
        paths.append(tmp_path / f"m{i}.npz")
        t.model_.save(paths[-1])
        assert t.model_.meta["created"] == "2000-01-01T00:00:00+00:00"
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_dev_is_tagged_on_threads_as_a_fresh_tagger_tags_it(data):
    """Selection keeps one dev tagger over the run (the weights change in place) and tags dev in
    batches on several threads: each epoch's labels are those a tagger made afresh from that
    epoch's weights gives, with one thread."""
    from seqtag.training import DEV_BATCH, Selection

    train, dev = data
    dev = (dev * (DEV_BATCH // len(dev) + 2))[:DEV_BATCH * 2 + 7]     # several batches
    model = Trainer(TrainConfig(hidden=8, embed_dim=8, char_filters=4, epochs=1,
                                patience=0, seed=3)).fit(train).model_
    selection = Selection(dataclasses.replace(TrainConfig(), threads=2))
    rng = np.random.default_rng(0)
    epochs = []
    for _ in range(2):
        epochs.append(selection._predict_dev(model, model.params, dev))
        fresh = RNNTagger(model.vocab, model.params, model.meta, features=model.features,
                          chars=model.chars).use_engine("numba")
        assert epochs[-1] == fresh.predict([s.tokens for s in dev])
        for v in model.params.values():         # the next epoch's weights, in place
            v += rng.normal(scale=0.3, size=v.shape).astype(v.dtype)
    assert epochs[0] != epochs[1]
    assert selection._dev_tagger.params is model.params


def test_different_seeds_give_different_weights(data):
    train, _ = data
    a = Trainer(cfg(seed=1)).fit(train).model_
    b = Trainer(cfg(seed=2)).fit(train).model_
    for k in ("Wax", "Waa", "Wya"):
        assert not np.array_equal(a.params[k], b.params[k])


def test_without_source_date_epoch_the_arrays_are_identical(data, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    train, dev = data
    paths = []
    for i in range(2):
        t = Trainer(cfg(seed=3, word_dropout=0.25)).fit(train, dev)
        paths.append(tmp_path / f"m{i}.npz")
        t.model_.save(paths[-1])
    a, b = arrays_of(paths[0]), arrays_of(paths[1])
    assert set(a) == set(b)
    for k in a:
        if k != "meta":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_created_now(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert created_now() == "1970-01-01T00:00:00+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "not a number")
    assert created_now().endswith("+00:00") and not created_now().startswith("1970")


# -- optimizers, clipping, word dropout ----------------------------------------------------------

def test_sgd_reduces_the_loss(data):
    train, dev = data
    t = Trainer(cfg(optimizer="sgd", lr=0.5, epochs=5, hidden=16)).fit(train, dev)
    losses = [row["train_loss"] for row in t.history_]
    assert losses[-1] < 0.8 * losses[0]
    assert losses[-1] < np.log(len(t.model_.labels))    # better than uniform guessing


def one_step(train, *, clip, lr=0.1, hidden=8, seed=4):
    """Parameters before and after a single SGD step on the whole corpus as one batch."""
    vocab, _ = Vocabulary.build(train)
    before = init_params(vocab.n_words, vocab.n_labels, hidden, np.random.default_rng(seed))
    t = Trainer(cfg(optimizer="sgd", lr=lr, clip=clip, epochs=1, hidden=hidden, seed=seed,
                    batch_size=len(train))).fit(train, vocab=vocab)
    after = t.model_.params
    return np.concatenate([(after[k].astype(np.float64) - before[k]).ravel()
                           for k in PARAM_NAMES])


def test_clipping_bounds_the_step_norm(data):
    train, _ = data
    lr = 0.1
    free = one_step(train, clip=0, lr=lr)
    grad_norm = np.linalg.norm(free) / lr          # the norm of the mean gradient
    assert grad_norm > 0.05
    clip = grad_norm / 4
    clipped = one_step(train, clip=clip, lr=lr)
    assert np.linalg.norm(clipped) == pytest.approx(lr * clip, rel=1e-3)
    # same direction, a quarter of the length
    np.testing.assert_allclose(clipped, free / 4, atol=1e-6)
    # a threshold above the norm changes nothing
    loose = one_step(train, clip=grad_norm * 2, lr=lr)
    np.testing.assert_allclose(loose, free, atol=1e-7)


def test_clipping_keeps_a_high_learning_rate_stable(data):
    train, _ = data
    clipped = Trainer(cfg(optimizer="sgd", lr=10.0, clip=0.1, epochs=5, hidden=16)).fit(train)
    losses = [row["train_loss"] for row in clipped.history_]
    assert all(np.isfinite(losses))
    assert all(np.isfinite(v).all() for v in clipped.model_.params.values())
    assert losses[-1] < losses[0]
    free = Trainer(cfg(optimizer="sgd", lr=10.0, clip=0, epochs=5, hidden=16)).fit(train)
    assert free.history_[-1]["train_loss"] > losses[-1]


def test_divergence_is_an_error(data, monkeypatch):
    train, _ = data
    # The trainer's own guard, behind --lr's bound (at 100, the bound, this small RNN still
    # trains): the config is let through unchecked.
    monkeypatch.setattr(TrainConfig, "check", lambda self: self)
    with pytest.raises(SeqtagError, match="diverged"):
        Trainer(cfg(lr=1e36, clip=0, epochs=3)).fit(train)


def test_word_dropout_trains_the_unk_column(data):
    train, _ = data
    vocab, _ = Vocabulary.build(train)
    init = init_params(vocab.n_words, vocab.n_labels, 8, np.random.default_rng(1))
    # every training word is known, so without word dropout <unk> is never seen
    plain = Trainer(cfg(word_dropout=0.0)).fit(train).model_
    np.testing.assert_array_equal(plain.params["Wax"][:, UNK_ID], init["Wax"][:, UNK_ID])
    assert not np.array_equal(plain.params["Wax"][:, 2], init["Wax"][:, 2])
    dropped = Trainer(cfg(word_dropout=0.25)).fit(train).model_
    assert not np.array_equal(dropped.params["Wax"][:, UNK_ID], init["Wax"][:, UNK_ID])


def test_min_count_and_max_size_shape_the_vocabulary(data):
    train, _ = data
    t = Trainer(cfg(epochs=1, max_size=5)).fit(train)
    assert t.model_.vocab.n_words == 5
    assert t.model_.params["Wax"].shape == (8, 5)
    t = Trainer(cfg(epochs=1, min_count=10 ** 6)).fit(train)
    assert t.model_.vocab.n_words == 2


# -- interruption --------------------------------------------------------------------------------

def interrupt_at(epoch: int, batch: int = 1):
    def progress(event, info):
        if event == "batch" and info["epoch"] == epoch and info["batch"] == batch:
            raise KeyboardInterrupt
    return progress


def test_interrupt_in_epoch_two_keeps_the_epoch_one_model(data):
    train, dev = data
    t = Trainer(cfg(epochs=5), progress=interrupt_at(2, batch=3)).fit(train, dev)
    assert t.interrupted_ is True
    assert len(t.history_) == 1 and t.best_epoch_ == 1
    assert t.model_ is not None
    assert t.model_.meta["interrupted"] is True
    one = Trainer(cfg(epochs=1)).fit(train, dev)
    assert_same_params(t.model_.params, one.model_.params)


def test_interrupt_in_epoch_one_leaves_no_model(data):
    train, dev = data
    t = Trainer(cfg(epochs=5), progress=interrupt_at(1, batch=2)).fit(train, dev)
    assert t.interrupted_ is True
    assert t.model_ is None
    assert t.history_ == []


def test_progress_events(data):
    train, dev = data
    events = []
    Trainer(cfg(epochs=2, batch_size=64),
            progress=lambda e, info: events.append((e, dict(info)))).fit(train, dev)
    assert events[0][0] == "start"
    start = events[0][1]
    assert start["sentences"] == len(train)
    assert start["tokens"] == sum(len(s.tokens) for s in train)
    assert start["batches"] == -(-len(train) // 64)
    kinds = [e for e, _ in events]
    assert kinds.count("epoch") == 2
    assert kinds.count("batch") == 2 * start["batches"]
    epoch_rows = [info for e, info in events if e == "epoch"]
    assert [r["epoch"] for r in epoch_rows] == [1, 2]
    assert epoch_rows[0]["best"] is True


# -- vocabulary and configuration checks ---------------------------------------------------------

def test_vocabulary_without_a_label_of_the_data(data):
    train, _ = data
    vocab, _ = Vocabulary.build([s for s in train if "w3" not in s.labels])
    assert not vocab.has_label("w3")
    with pytest.raises(SeqtagError, match="'w3'"):
        Trainer(cfg(epochs=1)).fit(train, vocab=vocab)


def test_dev_label_missing_from_the_inventory(data):
    train, dev = data
    odd = [Sentence(["w1", "w2"], ["O", "B-NEW"], [], 9)]
    with pytest.raises(SeqtagError, match="'B-NEW'"):
        Trainer(cfg(epochs=1)).fit(train, dev + odd)


def test_vocabulary_missing_words_is_fine(data):
    train, dev = data
    vocab, _ = Vocabulary.build(train, max_size=4)      # most words become <unk>
    t = Trainer(cfg(epochs=1)).fit(train, dev, vocab=vocab)
    assert t.model_.vocab is vocab
    assert t.model_.params["Wax"].shape[1] == 4


def test_default_config_is_valid():
    TrainConfig().check()
    cfg().check()


@pytest.mark.parametrize("change", [
    dict(optimizer="rmsprop"), dict(optimizer="Adam"), dict(hidden=0), dict(epochs=0),
    dict(batch_size=0), dict(lr=0.0), dict(lr=-0.1), dict(clip=-1.0), dict(word_dropout=-0.1),
    dict(patience=-1), dict(min_count=0),
])
def test_config_check_rejects_bad_values(change):
    with pytest.raises(SeqtagError):
        TrainConfig(**change).check()


def test_fit_checks_the_config(data):
    train, _ = data
    with pytest.raises(SeqtagError):
        Trainer(TrainConfig(hidden=0)).fit(train)


# -- a backward direction ------------------------------------------------------------------------

def lookahead_task(rng: np.random.Generator, n: int, k: int = K) -> list[Sentence]:
    """The label of token t is the token k steps AFTER it ("O" for the last k): the memory task
    read right to left, which a left-to-right RNN cannot see coming."""
    out = []
    for i in range(n):
        toks = [SYMBOLS[j] for j in rng.integers(0, len(SYMBOLS), rng.integers(5, 16))]
        out.append(Sentence(toks, toks[k:] + ["O"] * k, [], i + 1))
    return out


@pytest.fixture(scope="module")
def lookahead_data():
    rng = np.random.default_rng(2025)
    return lookahead_task(rng, 300), lookahead_task(rng, 100)


def majority_accuracy(train: list[Sentence], dev: list[Sentence]) -> float:
    """Accuracy on dev of always answering the most frequent training label."""
    top = Counter(lab for s in train for lab in s.labels).most_common(1)[0][0]
    labels = [lab for s in dev for lab in s.labels]
    return sum(lab == top for lab in labels) / len(labels)


@pytest.fixture(scope="module")
def lookahead_models(lookahead_data):
    train, dev = lookahead_data
    return {bi: Trainer(cfg(hidden=32, epochs=20, lr=0.01, bidirectional=bi)).fit(train, dev)
            for bi in (False, True)}


def test_a_left_to_right_rnn_cannot_see_the_right_context(lookahead_data, lookahead_models):
    train, dev = lookahead_data
    model = lookahead_models[False].model_
    assert not model.bidirectional and "Wax_b" not in model.params
    baseline = majority_accuracy(train, dev)
    assert baseline < 0.3
    acc = accuracy(model, dev)
    assert acc < 0.6
    assert acc < baseline + 0.15


def test_a_bidirectional_rnn_learns_the_right_context(lookahead_data, lookahead_models):
    _, dev = lookahead_data
    t = lookahead_models[True]
    model = t.model_
    assert model.bidirectional
    H = 32
    assert model.params["Wax_b"].shape == (H, model.vocab.n_words)
    assert model.params["Waa_b"].shape == (H, H) and model.params["ba_b"].shape == (H,)
    assert model.params["Wya"].shape == (model.vocab.n_labels, 2 * H)
    assert model.meta["architecture"]["bidirectional"] is True
    assert accuracy(model, dev) >= 0.99
    assert accuracy(model, lookahead_task(np.random.default_rng(8), 50)) >= 0.99
    # the history reports the same thing the kept model scores
    assert max(row["dev_accuracy"] for row in t.history_) >= 0.99


def test_a_bidirectional_rnn_still_learns_the_left_context(data):
    train, dev = data
    t = Trainer(cfg(hidden=32, epochs=20, lr=0.01, bidirectional=True)).fit(train, dev)
    assert accuracy(t.model_, dev) >= 0.99


# -- word-form features --------------------------------------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def form_task(rng: np.random.Generator) -> tuple[list[Sentence], list[Sentence]]:
    """Capitalised words are "B-PER", lower-case ones "O"; dev words never occur in training
    (in either case)."""
    pool: set[str] = set()
    while len(pool) < 400:
        pool.add("".join(LETTERS[j] for j in rng.integers(0, 26, rng.integers(3, 9))))
    words = sorted(pool)
    rng.shuffle(words)

    def sentences(vocab: list[str], n: int) -> list[Sentence]:
        out = []
        for i in range(n):
            toks, labs = [], []
            for j in rng.integers(0, len(vocab), rng.integers(4, 12)):
                cap = rng.random() < 0.4
                toks.append(vocab[j].capitalize() if cap else vocab[j])
                labs.append("B-PER" if cap else "O")
            out.append(Sentence(toks, labs, [], i + 1))
        return out

    return sentences(words[:200], 300), sentences(words[200:], 100)


@pytest.fixture(scope="module")
def form_data():
    return form_task(np.random.default_rng(11))


def test_form_task_dev_words_are_unseen(form_data):
    train, dev = form_data
    seen = {t.lower() for s in train for t in s.tokens}
    assert not seen & {t.lower() for s in dev for t in s.tokens}
    labels = [lab for s in dev for lab in s.labels]
    assert 0.3 < labels.count("B-PER") / len(labels) < 0.5


@pytest.mark.parametrize("features", ["casing", "shape"])
def test_features_tag_unseen_words_by_their_form(form_data, features):
    train, dev = form_data
    baseline = majority_accuracy(train, dev)
    plain = Trainer(cfg(hidden=16, epochs=5, word_dropout=0.25)).fit(train, dev).model_
    assert plain.features is None
    assert plain.meta["architecture"]["features"] == []
    plain_acc = accuracy(plain, dev)
    # every dev word is <unk> to it: it can do no better than a constant guess
    assert plain_acc <= baseline + 0.05
    t = Trainer(cfg(hidden=16, epochs=5, word_dropout=0.25, features=features)).fit(train, dev)
    model = t.model_
    assert model.features is not None and model.features.names == [features]
    assert model.meta["architecture"]["features"] == [features]
    assert model.params["Wax"].shape[1] == model.vocab.n_words + model.features.sizes[0]
    acc = accuracy(model, dev)
    assert acc >= 0.95
    assert acc > plain_acc + 0.3


def test_feature_min_count_shapes_the_inventory(form_data):
    train, _ = form_data
    t = Trainer(cfg(epochs=1, features="suffix3,casing", feature_min_count=1)).fit(train)
    fs = t.model_.features
    suffixes = Counter(t.lower()[-3:] for s in train for t in s.tokens)
    assert fs.values[0][1:] == sorted(suffixes, key=lambda v: (-suffixes[v], v))
    assert fs.values[1][1:] == ["lower", "title"]
    t = Trainer(cfg(epochs=1, features="suffix3,casing", feature_min_count=5)).fit(train)
    fs = t.model_.features
    assert set(fs.values[0][1:]) == {v for v, c in suffixes.items() if c >= 5}
    assert t.model_.params["Wax"].shape[1] == t.model_.vocab.n_words + sum(fs.sizes)


# -- a CRF output layer --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crf_memory_model(data):
    train, dev = data
    return Trainer(cfg(hidden=32, epochs=20, lr=0.01, crf=True)).fit(train, dev)


def test_a_crf_learns_the_memory_task(data, crf_memory_model):
    _, dev = data
    model = crf_memory_model.model_
    assert model.crf
    assert set(CRF_NAMES) <= set(model.params)
    L = model.vocab.n_labels
    assert model.params["trans"].shape == (L, L)
    assert model.params["start"].shape == (L,) and model.params["end"].shape == (L,)
    assert model.params["trans"].any()                  # it was trained, not left at zero
    assert model.meta["architecture"]["crf"] is True
    assert accuracy(model, dev) >= 0.99
    assert accuracy(model, memory_task(np.random.default_rng(9), 50)) >= 0.99


def ambiguous_iob2_task(rng: np.random.Generator, n: int) -> list[Sentence]:
    """Fillers "f" (O) and pairs "k m" whose labels no model can know: B-X I-X (1/4),
    B-Y I-Y (1/4) or O then one of O/B-Z/B-V/B-W (1/2). The most probable label of "k" is O
    and that of "m" I-X or I-Y, so a per-token argmax yields I- after O."""
    out = []
    for i in range(n):
        toks, labs = [], []
        for _ in range(rng.integers(2, 6)):
            if rng.random() < 0.5:
                toks.append("f")
                labs.append("O")
                continue
            toks += ["k", "m"]
            r = rng.random()
            if r < 0.25:
                labs += ["B-X", "I-X"]
            elif r < 0.5:
                labs += ["B-Y", "I-Y"]
            else:
                labs += ["O", ["O", "B-Z", "B-V", "B-W"][rng.integers(0, 4)]]
        out.append(Sentence(toks, labs, [], i + 1))
    return out


def iob2_violations(label_names: list[str], sequences) -> int:
    start, trans = allowed_transitions(label_names, "IOB2")
    index = {lab: i for i, lab in enumerate(label_names)}
    bad = 0
    for seq in sequences:
        y = [index[lab] for lab in seq]
        bad += bool(y) and not start[y[0]]
        bad += sum(not trans[a, b] for a, b in zip(y, y[1:]))
    return bad


@pytest.mark.parametrize("crf", [False, True])
def test_predictions_are_valid_iob2(crf):
    rng = np.random.default_rng(12)
    train, dev = ambiguous_iob2_task(rng, 300), ambiguous_iob2_task(rng, 100)
    assert iob2_violations(sorted({lab for s in train for lab in s.labels}),
                           [s.labels for s in train]) == 0
    model = Trainer(cfg(hidden=16, epochs=10, crf=crf)).fit(train, dev).model_
    assert model.crf is crf
    assert model.scheme == "IOB2"
    sents = [s.tokens for s in dev]
    # the per-token argmax (softmax, or CRF marginals) breaks the scheme ...
    argmax = [[model.labels[k] for k in p.argmax(axis=1)] for p in model.predict_proba(sents)]
    assert iob2_violations(model.labels, argmax) > 10
    # ... the decoded sequences never do
    predicted = model.predict(sents)
    assert [len(p) for p in predicted] == [len(s) for s in sents]
    assert iob2_violations(model.labels, predicted) == 0
    # and neither do those of sentences made of the ambiguous pair alone
    odd = [["m"], ["m", "m"], ["k", "m", "m", "k"], ["m", "f", "m"]]
    assert iob2_violations(model.labels, model.predict(odd)) == 0


# -- dropout -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dropout_runs(data):
    train, dev = data
    return [Trainer(cfg(hidden=16, epochs=6, dropout=0.3, seed=5)).fit(train, dev)
            for _ in range(2)]


def test_dropout_trains(dropout_runs):
    t = dropout_runs[0]
    losses = [row["train_loss"] for row in t.history_]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    assert all(np.isfinite(v).all() for v in t.model_.params.values())
    assert t.model_.meta["hyperparameters"]["dropout"] == 0.3


def test_dropout_is_deterministic_for_a_seed(dropout_runs):
    a, b = (t.model_ for t in dropout_runs)
    assert set(a.params) == set(b.params)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert dropout_runs[0].history_ == dropout_runs[1].history_


def test_dropout_changes_training(data, dropout_runs):
    train, dev = data
    plain = Trainer(cfg(hidden=16, epochs=6, dropout=0.0, seed=5)).fit(train, dev)
    for k in ("Wax", "Waa", "Wya"):
        assert not np.array_equal(plain.model_.params[k], dropout_runs[0].model_.params[k])
    # the dropped run's training loss is that of thinned networks: higher
    assert dropout_runs[0].history_[-1]["train_loss"] > plain.history_[-1]["train_loss"]


def test_prediction_does_not_drop_units(data, dropout_runs):
    _, dev = data
    model = dropout_runs[0].model_
    sents = [s.tokens for s in dev[:10]]
    first = model.predict_proba(sents)
    for a, b in zip(first, model.predict_proba(sents)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", [
    dict(dropout=1.0), dict(dropout=1.5), dict(dropout=-0.1), dict(dropout=float("nan")),
    dict(features="shape,nonsense"), dict(features="Shape"), dict(features="shape,shape"),
    dict(feature_min_count=0),
])
def test_config_check_rejects_bad_new_options(change):
    with pytest.raises(SeqtagError):
        TrainConfig(**change).check()


@pytest.mark.parametrize("change", [
    dict(dropout=0.0), dict(dropout=0.99), dict(features="none"),
    dict(features="shape,suffix3"), dict(bidirectional=True, crf=True, feature_min_count=1),
])
def test_config_check_accepts_good_new_options(change):
    TrainConfig(**change).check()


def test_fit_rejects_a_bad_feature_name(data):
    train, _ = data
    with pytest.raises(SeqtagError, match="nonsense"):
        Trainer(cfg(features="nonsense")).fit(train)


# -- every option at once ------------------------------------------------------------------------

def test_same_seed_with_every_option_gives_identical_params(form_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "946684800")
    train, dev = form_data
    options = dict(hidden=12, epochs=3, bidirectional=True, features="shape,suffix3",
                   feature_min_count=2, crf=True, dropout=0.25, word_dropout=0.25, seed=21)
    runs = [Trainer(cfg(**options)).fit(train, dev) for _ in range(2)]
    a, b = (t.model_ for t in runs)
    assert set(a.params) == set(PARAM_NAMES) | set(BACKWARD_NAMES) | set(CRF_NAMES)
    assert set(b.params) == set(a.params)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert a.features.names == b.features.names == ["shape", "suffix3"]
    assert a.features.values == b.features.values
    assert runs[0].history_ == runs[1].history_
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    # and a different seed gives a different model
    c = Trainer(cfg(**{**options, "seed": 22})).fit(train, dev).model_
    for k in ("Wax", "Wax_b", "trans"):
        assert not np.array_equal(a.params[k], c.params[k]), k


def test_one_sgd_step_with_dropout_matches_numpy_backprop(data):
    """The gradient reaching the recurrence goes through the same dropout mask as the forward
    pass. Replays the trainer's random stream (init, shuffle, mask) for one full-batch SGD step
    and compares the step with backpropagation through time written in NumPy."""
    from seqtag.layers.dropout import Dropout
    from seqtag.network import chunk_bounds, chunk_order

    train = data[0][:20]
    p_drop, lr, hidden, seed = 0.5, 0.1, 6, 4
    vocab, _ = Vocabulary.build(train)
    rng = np.random.default_rng(seed)
    before = {k: v.astype(np.float64)
              for k, v in init_params(vocab.n_words, vocab.n_labels, hidden, rng).items()}
    order = rng.permutation(len(train))
    # the one batch's sentences in the order the trainer cuts them into chunks
    order = order[chunk_order(np.array([len(train[i].tokens) for i in order]))]
    sents = [train[i] for i in order]
    n = sum(len(s.tokens) for s in sents)
    # one mask per chunk of the batch, each from its generator seeded in chunk order
    rows = np.diff(np.r_[0, np.cumsum([len(s.tokens) for s in sents])][chunk_bounds(len(sents))])
    keep = np.concatenate([r.random((k, hidden), dtype=np.float32) >= p_drop for k, r in
                           zip(rows, Dropout(p_drop).seeds(len(rows), rng))])
    mask = keep * np.float32(1 / (1 - p_drop))
    t = Trainer(cfg(optimizer="sgd", lr=lr, clip=0, epochs=1, hidden=hidden, seed=seed,
                    batch_size=len(train), dropout=p_drop)).fit(train, vocab=vocab)
    after = t.model_.params

    p = before
    g = {k: np.zeros_like(v) for k, v in p.items()}
    row = 0
    for s in sents:
        x, y = vocab.word_ids(s.tokens), vocab.label_ids(s.labels)
        T = len(x)
        A = np.zeros((T + 1, hidden))                  # A[0] is a<0>
        for i in range(T):
            A[i + 1] = np.tanh(p["Waa"] @ A[i] + p["Wax"][:, x[i]] + p["ba"])
        M = mask[row:row + T]
        Z = (A[1:] * M) @ p["Wya"].T + p["by"]
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        dZ = P.copy()
        dZ[np.arange(T), y] -= 1
        g["Wya"] += dZ.T @ (A[1:] * M)
        g["by"] += dZ.sum(axis=0)
        dA = (dZ @ p["Wya"]) * M
        carry = np.zeros(hidden)
        for i in range(T - 1, -1, -1):
            dz = (dA[i] + carry) * (1 - A[i + 1] ** 2)
            g["Wax"][:, x[i]] += dz
            g["Waa"] += np.outer(dz, A[i])
            g["ba"] += dz
            carry = p["Waa"].T @ dz
        row += T
    assert row == n and 0.3 < keep.mean() < 0.7
    for k in PARAM_NAMES:
        np.testing.assert_allclose(after[k], p[k] - lr * g[k] / n, atol=2e-6, rtol=0,
                                   err_msg=k)


# -- gated cells ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_learn_the_memory_task(data, cell, tmp_path):
    train, dev = data
    t = Trainer(cfg(hidden=24, epochs=25, lr=0.02, cell=cell, bidirectional=True)).fit(train, dev)
    model = t.model_
    gates = {"gru": 3, "lstm": 4}[cell]
    assert model.cell == cell and model.meta["architecture"]["cell"] == cell
    assert model.params["Waa"].shape == (gates * 24, 24)
    assert model.params["Wax_b"].shape == (gates * 24, model.n_inputs)
    assert accuracy(model, dev) >= 0.99
    # The cell is part of the file: a reloaded model predicts the same.
    model.save(tmp_path / "m.npz")
    again = RNNTagger.load(tmp_path / "m.npz")
    assert again.cell == cell
    sents = [s.tokens for s in dev]
    assert again.predict(sents) == model.predict(sents)
    np.testing.assert_array_equal(np.concatenate(again.predict_proba(sents)),
                                  np.concatenate(model.predict_proba(sents)))


def test_lstm_forget_gate_starts_open():
    from seqtag.build import init_params
    p = init_params(10, 3, 4, np.random.default_rng(0), bidirectional=True, cell="lstm")
    for b in (p["ba"], p["ba_b"]):
        np.testing.assert_array_equal(b, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])


def test_unknown_cell_is_rejected():
    with pytest.raises(SeqtagError, match="--cell is 'transformer', not one of rnn, gru, lstm"):
        TrainConfig(cell="transformer").check()


# -- character CNN, feature dropout, learning-rate decay ---------------------------------------

def test_a_char_cnn_tags_unseen_words_by_their_spelling(form_data, tmp_path):
    train, dev = form_data
    t = Trainer(cfg(hidden=16, epochs=5, word_dropout=0.25, char_filters=8, char_dim=6,
                    embed_dim=5)).fit(train, dev)
    model = t.model_
    arch = model.meta["architecture"]
    assert arch["char_filters"] == 8 and arch["char_dim"] == 6 and model.features is None
    assert arch["embed_dim"] == 5
    assert model.params["Wconv"].shape == (8, 3 * 6)
    assert model.params["Ex"].shape == (5, model.vocab.n_words)
    assert model.params["Wax"].shape == (16, 5 + 8)
    # Every dev word is unseen: only the spelling (its capital) can tell the label.
    assert accuracy(model, dev) >= 0.95
    model.save(tmp_path / "m.npz")
    again = RNNTagger.load(tmp_path / "m.npz")
    assert again.chars == model.chars
    sents = [s.tokens for s in dev]
    np.testing.assert_array_equal(np.concatenate(again.predict_proba(sents)),
                                  np.concatenate(model.predict_proba(sents)))


def test_batches_with_more_word_types_than_slots_grow_them(form_data):
    train, dev = form_data
    model = Trainer(cfg(epochs=1, char_filters=4, char_dim=3, embed_dim=4)).fit(train).model_
    sents = [s.tokens for s in train + dev]
    one_batch = model.predict_proba(sents)
    assert model.network.directions[0].slots(0).shape[1] >= len({t for s in sents for t in s})
    in_pieces = [p for i in range(0, len(sents), 7) for p in model.predict_proba(sents[i:i + 7])]
    np.testing.assert_allclose(np.concatenate(one_batch), np.concatenate(in_pieces), atol=1e-6)


def full_model(train, **kw):
    """A float64 model of every part (features, char CNN, both directions, CRF) with its
    optimizer, for gradient checks of the whole training step."""
    from seqtag.optim import Optimizer

    config = cfg(dropout=0.0, word_dropout=0.0, **kw)
    t = Trainer(dataclasses.replace(config, epochs=1)).fit(train)
    m = t.model_
    params = {k: (np.asfortranarray if k.startswith("Wax") else np.ascontiguousarray)(
        v + np.random.default_rng(3).normal(0, 0.3, v.shape), dtype=np.float64)
        for k, v in m.params.items()}
    model = RNNTagger(m.vocab, params, m.meta, features=m.features, chars=m.chars)
    sents = train[:4]
    ids, offsets = pack([model.encode(s.tokens) for s in sents])
    labels, _ = pack([model.vocab.label_ids(s.labels) for s in sents])
    return model, config, Optimizer(config, model.params), ids, offsets, labels


@pytest.mark.parametrize("cell, embed_dim, char_filters, input_dropout", [
    ("rnn", 4, 3, 0), ("gru", 4, 3, 0), ("lstm", 4, 3, 0), ("lstm", 4, 0, 0), ("lstm", 0, 0, 0),
    ("lstm", 4, 3, 0.4)])
def test_whole_training_step_gradients_equal_central_differences(form_data, cell, embed_dim,
                                                                  char_filters, input_dropout):
    from seqtag.network import Network
    from seqtag.training import train_step

    train, _ = form_data
    model, config, opt, ids, offsets, labels = full_model(
        train, hidden=3, cell=cell, bidirectional=True, crf=True, features="shape,suffix2",
        char_filters=char_filters, char_dim=2, embed_dim=embed_dim)
    network = Network(model.params, model.architecture, model.encoder.spellings,
                      input_dropout=input_dropout)
    network.attach_grads(opt.grads)
    rng = np.random.default_rng(0)

    def loss():
        for g in opt.grads.values():
            g[...] = 0
        # the same dropout masks at every call
        return train_step(network, ids, offsets, labels, np.random.default_rng(7), exact=True)

    loss()
    analytic = {k: g.copy() for k, g in opt.grads.items()}
    eps = 1e-6
    n_real = 3
    used = np.unique(ids[:, :n_real])
    checked = 0
    lazy = "Ex" if embed_dim else "Wax"
    for k, param in model.params.items():
        cols = used if k.startswith(lazy) else None
        entries = [(r, c) for r in range(param.shape[0]) for c in cols] if cols is not None \
            else list(np.ndindex(param.shape))
        for i in [entries[j] for j in rng.choice(len(entries), min(12, len(entries)),
                                                   replace=False)]:
            assert analytic[k][i] == pytest.approx(central_difference(loss, param, i, eps),
                                                   rel=1e-4, abs=1e-7), k
            checked += 1
    expected = {"trans", "Wax_b"} | ({"Ex"} if embed_dim else set()) | \
        ({"Ec", "Wconv", "bconv"} if char_filters else set())
    assert expected <= set(model.params)
    assert checked > 80


def test_feature_dropout_trains_each_features_unk(form_data):
    train, _ = form_data
    conf = cfg(epochs=2, features="shape", feature_min_count=1)
    plain = Trainer(conf).fit(train).model_
    dropped = Trainer(dataclasses.replace(conf, feature_dropout=0.3)).fit(train).model_
    unk = plain.vocab.n_words           # the shape feature's <unk> column
    init = init_params(plain.n_inputs, plain.vocab.n_labels, 8, np.random.default_rng(1))["Wax"]
    # Every shape of the training data is in the inventory: only dropout reaches <unk>.
    np.testing.assert_array_equal(plain.params["Wax"][:, unk], init[:, unk])
    assert np.abs(dropped.params["Wax"][:, unk] - init[:, unk]).max() > 1e-3


def test_lr_decay_shrinks_later_steps(data):
    train, _ = data
    once = Trainer(cfg(epochs=1)).fit(train)
    frozen = Trainer(cfg(epochs=3, lr_decay=1e9)).fit(train)
    # Epoch 1 steps with lr itself; the later ones with lr / (1 + 1e9 (e - 1)): no change.
    assert frozen.history_[0] == once.history_[0]
    for k, v in once.model_.params.items():
        np.testing.assert_allclose(frozen.model_.params[k], v, atol=1e-6, err_msg=k)
    moving = Trainer(cfg(epochs=3, lr_decay=1.0)).fit(train)
    assert np.abs(moving.model_.params["Waa"] - once.model_.params["Waa"]).max() > 1e-3


def test_average_keeps_the_running_average_of_epoch_ends(data):
    train, _ = data
    once = Trainer(cfg(epochs=1)).fit(train).model_
    two = Trainer(cfg(epochs=2)).fit(train)
    half = Trainer(cfg(epochs=2, average=0.5)).fit(train)
    # Without dev the lowest training loss picks the epoch; training is the same in both runs.
    assert two.best_epoch_ == half.best_epoch_ == 2
    assert half.history_ == two.history_
    for k, w1 in once.params.items():
        np.testing.assert_allclose(half.model_.params[k],
                                   0.5 * w1 + 0.5 * two.model_.params[k], atol=1e-6, err_msg=k)
    assert np.abs(two.model_.params["Waa"] - once.params["Waa"]).max() > 1e-2


# -- memory -------------------------------------------------------------------------------------

def test_a_run_that_would_not_fit_in_memory_is_refused_before_allocating(data, monkeypatch):
    """The estimate is compared with what the machine has before any weight is allocated
    (Linux overcommits: a too large allocation would kill the process later)."""
    import seqtag.memory
    from seqtag.build import training_bytes

    train, _ = data
    small = cfg(epochs=1)
    vocab, _ = Vocabulary.build(train)
    need = training_bytes(small, vocab.n_words, vocab.n_labels, 0, 100, 1000, 1)
    big = training_bytes(dataclasses.replace(small, hidden=4096), vocab.n_words,
                         vocab.n_labels, 0, 100, 1000, 1)
    assert big > 1000 * need                     # H² weights: the estimate grows with H
    monkeypatch.setattr(seqtag.memory, "available_bytes", lambda: 100 * need)
    Trainer(small).fit(train)                     # fits
    allocated = []
    monkeypatch.setattr("seqtag.build.init_params",
                        lambda *a, **k: allocated.append(1))
    with pytest.raises(SeqtagError, match=r"training this model would need .*lower --hidden"):
        Trainer(dataclasses.replace(small, hidden=4096)).fit(train)
    assert not allocated


# -- time budget ---------------------------------------------------------------------------------

def test_an_exhausted_time_budget_stops_after_the_first_epoch(data):
    import time

    train, dev = data
    events = []
    # A run that began long ago: the budget is spent when the first epoch ends.
    t = Trainer(cfg(epochs=50, time_budget=60.0), started=time.monotonic() - 3600,
                progress=lambda e, info: events.append((e, info))).fit(train, dev)
    assert t.stopped_by_budget_ is True
    assert len(t.history_) == 1 and t.best_epoch_ == 1
    assert t.model_ is not None and accuracy(t.model_, dev) > 0
    budget = [info for e, info in events if e == "budget"]
    assert len(budget) == 1 and budget[0]["epoch"] == 1 and budget[0]["elapsed"] > 3600
    assert "time_budget" not in t.model_.meta["hyperparameters"]
    one = Trainer(cfg(epochs=1)).fit(train, dev)
    assert_same_params(t.model_.params, one.model_.params)


def test_an_ample_time_budget_changes_nothing(data):
    train, dev = data
    t = Trainer(cfg(epochs=3, time_budget=1e6)).fit(train, dev)
    assert t.stopped_by_budget_ is False and len(t.history_) == 3
    assert_same_params(t.model_.params, Trainer(cfg(epochs=3)).fit(train, dev).model_.params)


def test_the_budget_judges_the_next_epoch_by_the_last_ones():
    from seqtag.training import Budget

    b = Budget(10.0, started=100.0)
    x = Budget.EXIT                                   # the process's exit is kept free
    assert x > 0
    assert not b.exceeded_by_next(now=200.0)          # no epoch yet: the first always runs
    b.end_epoch(5.0)                                  # the first: compilation included
    assert b.exceeded_by_next(now=105.1 - x) and not b.exceeded_by_next(now=105.0 - x)
    b.end_epoch(2.0)                                  # later epochs leave the first out
    assert b.next_epoch() == 2.0
    assert not b.exceeded_by_next(now=108.0 - x) and b.exceeded_by_next(now=108.1 - x)
    b.saved(0.5)                                      # the final save must fit too
    assert b.exceeded_by_next(now=107.6 - x)
    b.scored(0.25)                                    # and the temperature's fit on dev
    assert b.calibration == 0.25 * Budget.CALIBRATION
    assert b.exceeded_by_next(now=110.0 - 2.0 - 0.5 - b.calibration - x + 0.1)
    assert not b.exceeded_by_next(now=110.0 - 2.0 - 0.5 - b.calibration - x - 0.1)
    assert b.report()["finish"] == pytest.approx(0.5 + b.calibration + x)
    for s in (3.0, 8.0, 4.0):
        b.end_epoch(s)
    assert b.next_epoch() == 8.0                      # the slowest of the last three
    for s in (3.0, 2.5):
        b.end_epoch(s)
    assert b.next_epoch() == 4.0                      # an old slow epoch is forgotten
    assert not Budget(None, 0.0).exceeded_by_next(now=1e9)


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), "10"])
def test_config_check_rejects_a_bad_time_budget(value):
    with pytest.raises(SeqtagError, match="--time-budget"):
        TrainConfig(time_budget=value).check()


@pytest.mark.parametrize("rate", [0.25, 0.6])
def test_a_dropout_mask_drawn_into_a_buffer_is_the_one_drawn_fresh(rate):
    """Training draws its masks into kept buffers: the same draws, the same values (the rate's
    share dropped, the rest scaled by 1/(1-p)), as a mask allocated for the occasion."""
    from seqtag.layers.dropout import Dropout

    drop = Dropout(rate)
    fresh = drop.mask((300, 40), np.float32, np.random.default_rng(9))
    buffer = np.full((310, 40), np.nan, np.float32)
    kept = drop.mask((300, 40), np.float32, np.random.default_rng(9), buffer[5:305])
    np.testing.assert_array_equal(kept, fresh)
    assert kept.base is buffer and np.isnan(buffer[:5]).all() and np.isnan(buffer[305:]).all()
    assert set(np.unique(fresh)) == {0, np.float32(1 / (1 - rate))}
    assert abs((fresh == 0).mean() - rate) < 0.02
