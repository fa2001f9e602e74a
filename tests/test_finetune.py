"""Fine-tuning (seqtag train --init): a new run from a model's weights, its inventories extended.

In-process: the extended model keeps every old weight exactly (checked entry by entry through
each model's own encoder, by name, not by index arithmetic), scores the old labels as the model
it came from did, draws new entries as a fresh model would; labels are converted to the model's
scheme; options that would change the architecture are refused. Real processes: the CLI's
notes and ERROR lines, a zero-learning-rate run that tags exactly as the bundled model, and the
resume of an interrupted fine-tuning run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtag.config import TrainConfig
from seqtag.corpus import Sentence, read_corpus
from seqtag.errors import SeqtagError
from seqtag.finetune import extend, init_config, to_scheme
from seqtag.training import Trainer

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
TINY = SAMPLES / "tiny.tsv"
SEQTAG = [sys.executable, "-m", "seqtag"]
SMALL = dict(hidden=16, embed_dim=16, char_filters=8, char_dim=8, epochs=3, seed=3,
             threads=1)


def sents(text: str) -> list[Sentence]:
    """Sentences from "tok/LABEL tok/LABEL" lines."""
    out = []
    for i, line in enumerate(text.strip().splitlines()):
        pairs = [t.rsplit("/", 1) for t in line.split()]
        out.append(Sentence([p[0] for p in pairs], [p[1] for p in pairs], [], i + 1))
    return out


# New words (some twice), new feature values, new characters (Ω, ß), a new entity type (MISC),
# written in IOB1 (I- starts a chunk).
NEW_IOB1 = """
Zorblax/I-PER Quint/I-PER flew/O to/O Ωmega/I-LOC City/I-LOC ./O
Zorblax/I-PER liked/O the/O Straße/I-MISC festival/O ./O
The/O Ωmega/I-LOC council/O met/O Quint/I-PER ./O
Ana/I-PER saw/O the/O Euro/I-MISC Cup/I-MISC ./O
"""


@pytest.fixture(scope="module")
def tiny():
    return read_corpus(str(TINY))[0]


@pytest.fixture(scope="module")
def base(tiny):
    """A small model of every part (embedded input, all features, character CNN, CRF)."""
    return Trainer(TrainConfig(**SMALL)).fit(tiny, tiny).model_


@pytest.fixture(scope="module")
def base_multihot(tiny):
    """The textbook input (x<t> multi-hot: Wax's columns are the inputs), both directions."""
    cfg = TrainConfig(**{**SMALL, "embed_dim": 0, "char_filters": 0})
    return Trainer(cfg).fit(tiny, tiny).model_


def new_data(scheme="IOB2"):
    data, found = to_scheme(sents(NEW_IOB1), scheme)
    assert found == "IOB1"
    return data


def check_kept(old, new, tokens):
    """Every input of ``tokens`` the old model knew has the same weights in the new one; every
    weight that is not per entry is equal."""
    o_rows, n_rows = old.encode(tokens), new.encode(tokens)
    wax = "Ex" if old.embedded else "Wax"
    n_real = 1 + len(old.features.names if old.features else ())
    for t, tok in enumerate(tokens):
        for c in range(n_real):
            oi, ni = o_rows[t, c], n_rows[t, c]
            if c == 0 and oi == 1:        # <unk> to the old model: may be a new word now
                assert ni == 1 or tok in new.vocab.words[old.vocab.n_words:]
                if ni != 1:
                    continue
            if c > 0 and oi == old.vocab.n_words + sum(old.features.sizes[:c - 1]):
                continue                  # the feature's <unk>: the value may be new now
            for name in (wax, "Wax_b") if wax == "Wax" else (wax,):
                np.testing.assert_array_equal(new.params[name][:, ni], old.params[name][:, oi])
    if old.chars is not None:
        for i, ch in enumerate(old.chars.alphabet):
            assert new.chars.alphabet[i] == ch
            np.testing.assert_array_equal(new.params["Ec"][i], old.params["Ec"][i])
    L = old.vocab.n_labels
    assert new.labels[:L] == old.labels
    for name in ("Wya", "by", "start", "end"):
        np.testing.assert_array_equal(new.params[name][:L], old.params[name][:L])
    np.testing.assert_array_equal(new.params["trans"][:L, :L], old.params["trans"][:L, :L])
    for name in ("Waa", "ba", "Waa_b", "ba_b", "Wconv", "bconv") + (
            ("Wax", "Wax_b") if old.embedded else ()):
        if name in old.params:
            np.testing.assert_array_equal(new.params[name], old.params[name])


@pytest.mark.parametrize("which", ["embedded", "multihot"])
def test_extend_keeps_every_old_weight_and_adds_fresh_entries(which, base, base_multihot, tiny):
    old = base if which == "embedded" else base_multihot
    before = {k: v.copy() for k, v in old.params.items()}
    cfg = init_config(old, {})
    data = new_data()
    new, added = extend(old, data, cfg, np.random.default_rng(7))
    for k, v in old.params.items():       # the init model is left as it was
        np.testing.assert_array_equal(v, before[k])
    tokens = [t for s in tiny + data for t in s.tokens]
    check_kept(old, new, tokens)

    # What was added: the new words (min_count 1), labels in the model's scheme, characters.
    assert set(new.vocab.words[old.vocab.n_words:]) == {
        t for s in data for t in s.tokens} - set(old.vocab.words)
    assert "Zorblax" in new.vocab.words and added.words == new.vocab.n_words - old.vocab.n_words
    assert new.labels[old.vocab.n_labels:] == ["B-MISC", "I-MISC"] == added.labels
    if old.chars is not None:
        assert {"Ω", "ß"} <= set(new.chars.alphabet[len(old.chars):])
    # The new entries are drawn as init_params draws a fresh model's: bounded as it bounds them,
    # not zero, not copies of an old entry.
    wax = "Ex" if old.embedded else "Wax"
    col = new.vocab.words.index("Zorblax")
    bound = np.sqrt(3 / (1 + len(old.features.names))) if old.embedded else 1 / np.sqrt(16)
    fresh = new.params[wax][:, col]
    assert np.all(np.abs(fresh) <= bound) and np.std(fresh) > bound / 4
    rows = new.params["Wya"][old.vocab.n_labels:]
    assert np.all(np.abs(rows) <= 1 / np.sqrt(16)) and np.std(rows) > 0.02
    assert not new.params["by"][old.vocab.n_labels:].any()
    assert not new.params["trans"][old.vocab.n_labels:].any()
    assert not new.params["trans"][:, old.vocab.n_labels:].any()
    # Word counts: the old ones plus the new data's.
    i = old.vocab.words.index("Ana")
    assert new.vocab.word_counts[i] == old.vocab.word_counts[i] + 1


def unchanged_inputs(old, new, tokens) -> bool:
    """Whether both models read each token as the same entries: the same word, feature values
    and characters, by name (an input the old model had as <unk> may be a new entry now)."""
    def names(model, tok):
        row = model.encode([tok])[0]
        out = [model.vocab.words[row[0]]]
        base = model.vocab.n_words
        for values, size, col in zip(model.features.values, model.features.sizes, row[1:]):
            out.append(values[col - base])
            base += size
        out.append([model.chars.alphabet[i] for i in model.chars.spell(tok, 3)])
        return out

    return all(names(old, t) == names(new, t) for t in tokens)


def test_the_old_labels_score_as_before_any_update(base, tiny):
    """Before training, the extended model gives the old labels the emissions of the model it
    came from, exactly, on sentences that it reads as the same entries; without new labels it
    tags them alike."""
    cfg = init_config(base, {})
    with_labels, _ = extend(base, new_data(), cfg, np.random.default_rng(1))
    tokens = [s.tokens for s in tiny if unchanged_inputs(base, with_labels, s.tokens)]
    assert len(tokens) >= 5
    E_old, _ = base.emissions(tokens)
    E_new, _ = with_labels.emissions(tokens)
    np.testing.assert_array_equal(E_new[:, :base.vocab.n_labels], E_old)
    # Data without new labels (the same words and characters): the same labels, exactly.
    no_misc = [s for s in new_data() if not any("MISC" in lab for lab in s.labels)]
    same, added = extend(base, no_misc, cfg, np.random.default_rng(1))
    assert added.labels == [] and added.words > 0
    assert same.predict(tokens) == base.predict(tokens)
    # The extended model is uncalibrated, as a model in training is (the run fits its own
    # temperature on dev): with the init model's temperature, the same probabilities.
    assert same.temperature == 1.0 and base.temperature != 1.0
    same.set_temperature(base.temperature)
    P_old, P_new = base.predict_proba(tokens), same.predict_proba(tokens)
    for a, b in zip(P_old, P_new):
        np.testing.assert_array_equal(a, b)


def test_new_entries_follow_the_count_rules(base):
    data = new_data()
    cfg = init_config(base, {"min_count": 2, "feature_min_count": 2})
    new, added = extend(base, data, cfg, np.random.default_rng(1))
    counts = {}
    for s in data:
        for t in s.tokens:
            counts[t] = counts.get(t, 0) + 1
    expected = {t for t, c in counts.items() if c >= 2} - set(base.vocab.words)
    assert set(new.vocab.words[base.vocab.n_words:]) == expected == {"Zorblax", "Quint", "Ωmega"}
    # most frequent first, ties by the word (as Vocabulary.build orders)
    assert new.vocab.words[base.vocab.n_words:] == sorted(expected, key=lambda w: (-counts[w], w))
    capped, _ = extend(base, data, init_config(base, {"max_size": base.vocab.n_words + 1}),
                       np.random.default_rng(1))
    assert capped.vocab.n_words == base.vocab.n_words + 1
    # A feature value seen once is not added at feature_min_count 2, and is at 1.
    lower = base.features.names.index("lower")
    assert "straße" not in new.features.values[lower]
    loose, _ = extend(base, data, init_config(base, {"feature_min_count": 1}),
                      np.random.default_rng(1))
    assert "straße" in loose.features.values[lower]


def test_labels_are_converted_to_the_models_scheme():
    iob1 = sents("A/I-PER B/I-PER C/B-PER d/O E/I-LOC")
    out, found = to_scheme(iob1, "IOB2")
    assert found == "IOB1" and out[0].labels == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    out, found = to_scheme(iob1, "IOBES")
    assert found == "IOB1" and out[0].labels == ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    iobes = sents("A/B-PER B/E-PER c/O D/S-ORG")
    out, found = to_scheme(iobes, "IOB2")
    assert found == "IOBES" and out[0].labels == ["B-PER", "I-PER", "O", "B-ORG"]
    iob2 = sents("A/B-PER B/I-PER c/O")
    assert to_scheme(iob2, "IOB2") == (iob2, None)
    pos = sents("the/DT cat/NN")
    assert to_scheme(pos, "IOB2") == (pos, None)
    assert to_scheme(iob1, "none") == (iob1, None)


def test_options_that_change_the_architecture_are_refused(base):
    for option, value, flag in (("hidden", 32, "--hidden 32"), ("crf", False, "--no-crf"),
                                ("features", "shape", "--features shape"),
                                ("cell", "gru", "--cell gru"), ("embed_dim", 0, "--embed-dim 0")):
        with pytest.raises(SeqtagError, match=flag):
            init_config(base, {option: value})
    with pytest.raises(SeqtagError, match="--embeddings"):
        init_config(base, {"embeddings": "vectors.txt"})
    # The model's own values are no conflict; training options apply; the rest is the model's.
    cfg = init_config(base, {"hidden": 16, "features": "lower, casing,shape,prefix3,suffix3",
                             "lr": 0.01, "epochs": 2})
    assert (cfg.hidden, cfg.lr, cfg.epochs, cfg.seed) == (16, 0.01, 2, SMALL["seed"])


def test_fine_tuning_learns_a_new_label_and_records_its_origin(base, tiny):
    """A run from the small model learns MISC, which it never saw; the progress says the
    labels were converted; the model records where it started."""
    events = []
    cfg = init_config(base, {"epochs": 40, "lr": 0.02, "patience": 0, "dropout": 0.0,
                             "feature_dropout": 0.0, "input_dropout": 0.0, "word_dropout": 0.0})
    data = sents(NEW_IOB1) * 3
    t = Trainer(cfg, progress=lambda e, info: events.append((e, info))).fit(
        data + list(tiny), None, init=base, init_source={"name": "small.npz", "sha256": "x"})
    assert ("converted", {"part": "training", "from": "IOB1", "to": "IOB2"}) in events
    model = t.model_
    assert model.scheme == "IOB2" and "I-MISC" in model.labels
    got = model.predict([s.tokens for s in new_data()])
    gold = [s.labels for s in new_data()]
    assert got == gold
    init = model.meta["init"]
    assert init["name"] == "small.npz" and init["added"]["labels"] == ["B-MISC", "I-MISC"]
    assert t.model_.meta["hyperparameters"]["hidden"] == 16


def test_the_api_fits_from_a_model(base, tiny, tmp_path):
    import seqtag

    path = tmp_path / "small.npz"
    base.save(path)
    data = [(s.tokens, s.labels) for s in sents(NEW_IOB1)]
    tagger = seqtag.Tagger(epochs=2, threads=1)
    assert tagger.fit(data, dev=data, init=str(path)) is tagger
    assert tagger.labels_[:base.vocab.n_labels] == base.labels
    assert "I-MISC" in tagger.labels_ and tagger.config.hidden == 16
    assert tagger.model_.meta["init"]["name"] == str(path)
    again = seqtag.Tagger(epochs=1, threads=1).fit(data, holdout=0, init=tagger)
    assert again.labels_ == tagger.labels_
    with pytest.raises(SeqtagError, match="--hidden 64"):
        seqtag.Tagger(hidden=64).fit(data, init=str(path))


# -- the command line, in real processes ---------------------------------------------------------

def run(*args, ok=True, env=None):
    proc = subprocess.run([*SEQTAG, *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200", **(env or {})})
    if ok:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def small_file(base, tmp_path_factory):
    path = tmp_path_factory.mktemp("ft") / "small.npz"
    base.save(path)
    return path


@pytest.fixture(scope="module")
def new_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ft") / "new.iob1"
    path.write_text("\n\n".join("\n".join(f"{t}\t{lab}" for t, lab in zip(s.tokens, s.labels))
                                for s in sents(NEW_IOB1)) + "\n", encoding="utf-8")
    return path


def test_cli_fine_tunes_converts_and_says_so(small_file, new_file, tmp_path):
    out = tmp_path / "ft.npz"
    res = run("train", new_file, "--dev", new_file, "--init", small_file, "--epochs", "2",
              "--threads", "1", "-o", out)
    lines = res.stderr.splitlines()
    assert f"converted the labels of {new_file}, {new_file} from IOB1 to IOB2 (the model's " \
           f"scheme)" in lines, res.stderr
    assert any(line.startswith(f"starting from {small_file}:") and "new labels B-MISC, I-MISC"
               in line for line in lines), res.stderr
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["architecture"]["hidden"] == 16 and info["hyperparameters"]["epochs"] == 2
    assert list(info["labels"])[-2:] == ["B-MISC", "I-MISC"]
    assert info["init"]["name"] == str(small_file) and len(info["init"]["sha256"]) == 64
    assert "fine-tuned from " + str(small_file) in run("inspect", out).stdout


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--init starts a new run from a model's weights and --resume continues"),
    (["--hidden", "32"], "--hidden 32 would change the architecture of the model given to "
                         "--init (hidden: 16)"),
    (["--no-bidirectional"], "--no-bidirectional would change the architecture"),
    (["--textbook"], "--textbook sets the architecture"),
])
def test_cli_conflicts_are_one_error_line(args, message, small_file, new_file, tmp_path):
    res = run("train", new_file, "--init", small_file, *args, "-o", tmp_path / "x.npz", ok=False)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and message in lines[0], res.stderr
    assert not (tmp_path / "x.npz").exists()


def test_cli_init_names_a_missing_model(new_file, tmp_path):
    res = run("train", new_file, "--init", tmp_path / "none.npz", ok=False)
    assert res.returncode != 0
    assert res.stderr.startswith("ERROR: ") and "give --init a model file" in res.stderr


def test_cli_a_run_at_a_vanishing_rate_tags_as_the_bundled_model(tmp_path):
    """`--init default` with new words but no new labels, at lr 1e-30 for one epoch: every
    float32 weight stays as it was, so the written model tags BTC test as the bundled one."""
    new = tmp_path / "new.tsv"
    new.write_text("Zorblax\tB-PER\nQwimbly\tI-PER\nflurbed\tO\n.\tO\n\n"
                   "Vexhaven\tB-LOC\nglimmed\tO\n.\tO\n", encoding="utf-8")
    out = tmp_path / "ft.npz"
    res = run("train", new, "--dev", new, "--init", "default", "--epochs", "1", "--lr", "1e-30",
              "--threads", "1", "-o", out)
    assert "starting from default (the bundled model): 5 new words" in res.stderr, res.stderr
    test = tmp_path / "test.tsv"
    text = (SAMPLES / "btc.test").read_text(encoding="utf-8")
    test.write_text("\n\n".join(text.split("\n\n")[:400]) + "\n", encoding="utf-8")
    ours = run("tag", "-m", out, "--input-format", "conll", "-i", test).stdout
    bundled = run("tag", "--input-format", "conll", "-i", test).stdout
    assert ours == bundled and ours.count("\n") > 5000


def test_cli_an_interrupted_fine_tuning_run_is_resumed(small_file, new_file, tmp_path):
    """Stopped after its first epoch (Ctrl-C, in a real process), then `--resume` alone: the
    run takes its init model from the checkpoint and ends as the run never stopped."""
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    args = ["train", new_file, "--dev", new_file, "--init", small_file, "--epochs", "3",
            "--patience", "0", "--threads", "1"]
    whole = tmp_path / "whole.npz"
    run(*args, "-o", whole, env=env)
    out = tmp_path / "m.npz"
    stop_after_first = (
        "import sys, seqtag.cli.train as t\n"
        "r = t.Renderer.__call__\n"
        "def call(self, event, info):\n"
        "    if event == 'epoch' and info['epoch'] == 2: raise KeyboardInterrupt\n"
        "    r(self, event, info)\n"
        "t.Renderer.__call__ = call\n"
        "from seqtag.cli import main\n"
        "sys.argv = ['seqtag'] + sys.argv[1:]\n"
        "main()\n")
    proc = subprocess.run([sys.executable, "-c", stop_after_first, *map(str, args), "-o",
                           str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})
    assert proc.returncode == 130, proc.stderr
    assert (tmp_path / "m.ckpt.npz").exists()
    resume = [a for a in args if a not in ("--init", small_file)]
    assert len(resume) == len(args) - 2
    res = run(*resume, "--resume", "-o", out, env=env)
    assert f"resuming from {tmp_path / 'm.ckpt.npz'}" in res.stderr, res.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "m.ckpt.npz").exists()
