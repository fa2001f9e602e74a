"""Tests for seqtag.modelfile: round trips, old formats, requirements and optional sections, and
the schema every file is validated against (each violation one SeqtagError naming the key)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag import modelfile
from seqtag.chars import CharVocab
from seqtag.cli import app
from seqtag.corpus import Sentence
from seqtag.errors import SeqtagError
from seqtag.features import FeatureSet
from seqtag.build import init_params
from seqtag.model import FORMAT_VERSION, RNNTagger
from seqtag.modelfile import State, list_sections, load_model, save_model
from seqtag.vocab import Vocabulary

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "seqtag" / "data" / "default.npz"
SENTS = [
    ("Sam Li and Tom date on Tuesday .", "B-PER I-PER O B-PER O O O O"),
    ("EU rejects German call to boycott British lamb .",
     "B-ORG O B-MISC O O O B-MISC O O"),
    ("Peter Blackburn visited Paris", "B-PER I-PER O B-LOC"),
]
TOKENS = [["Sam", "Li", "visited", "Blackburn", "."], ["Unseen", "words", "like", "Zyx"]]
H = 4


def _sentences():
    return [Sentence(t.split(), lab.split(), [], 1) for t, lab in SENTS]


def _meta(arch: dict) -> dict:
    corpus = {"name": "train.tsv", "sentences": 3, "tokens": 25, "sha256": "ab" * 32,
              "bytes": 200}
    return {"seqtag_version": "test", "created": "2000-01-01T00:00:00+00:00",
            "architecture": arch, "hyperparameters": {"hidden": H, "lr": 0.01},
            "seed": 1, "pretrained_words": 0, "label_scheme": "IOB2", "corpus": [corpus],
            "dev_corpus": dict(corpus, name="dev.tsv"),
            "history": [{"epoch": 1, "train_loss": 1.5, "dev_accuracy": 0.5, "dev_f1": 0.25},
                        {"epoch": 2, "train_loss": 0.9, "dev_accuracy": 0.75, "dev_f1": 0.5}],
            "best_epoch": 2, "interrupted": False, "note": "ünïcode ✓"}


def _randomise(params: dict, rng) -> dict:
    # Non-zero biases and transitions, so that every array changes what the model computes.
    return {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32) if not k.startswith(
        ("Wax", "Ex")) else v for k, v in params.items()}


def full_model() -> RNNTagger:
    """A bidirectional LSTM with features, embeddings, a character CNN and a CRF."""
    sents = _sentences()
    vocab, _ = Vocabulary.build(sents)
    tokens = [t for s in sents for t in s.tokens]
    features = FeatureSet.build(tokens, ["shape", "suffix3"], 1)
    chars = CharVocab.build(tokens)
    rng = np.random.default_rng(5)
    n_inputs = vocab.n_words + sum(features.sizes)
    params = init_params(n_inputs, vocab.n_labels, H, rng, bidirectional=True, crf=True,
                         cell="lstm", chars=(len(chars), 4, 5), embed_dim=6, columns=3)
    arch = {"cell": "lstm", "bidirectional": True, "crf": True, "hidden": H,
            "features": ["shape", "suffix3"], "embed_dim": 6, "char_filters": 5, "char_dim": 4}
    return RNNTagger(vocab, _randomise(params, rng), _meta(arch), features=features,
                     chars=chars)


def textbook_model() -> RNNTagger:
    vocab, _ = Vocabulary.build(_sentences())
    rng = np.random.default_rng(6)
    params = _randomise(init_params(vocab.n_words, vocab.n_labels, H, rng), rng)
    params["Wax"] = np.asfortranarray(params["Wax"])
    # what format 1 files held: no embed_dim, char_filters or char_dim
    arch = {"cell": "rnn", "bidirectional": False, "crf": False, "hidden": H, "features": []}
    return RNNTagger(vocab, params, _meta(arch))


@pytest.fixture(scope="module")
def model() -> RNNTagger:
    return full_model()


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("full") / "full.npz"
    save_model(model, path)
    return path


def read_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_npz(path, arrays: dict, *, allow_pickle=False) -> None:
    """As numpy.savez does: each value an .npy entry; bytes are written as the entry itself."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            if isinstance(arr, bytes):
                zf.writestr(name + ".npy", arr)
                continue
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=allow_pickle)


def utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def meta_of(arrays) -> dict:
    return json.loads(arrays["meta"].tobytes().decode("utf-8"))


def same_predictions(a: RNNTagger, b: RNNTagger) -> None:
    for pa, pb in zip(a.predict_proba(TOKENS), b.predict_proba(TOKENS)):
        np.testing.assert_array_equal(pa, pb)
    assert a.predict(TOKENS) == b.predict(TOKENS)


def load_error(path) -> SeqtagError:
    with pytest.raises(SeqtagError) as info:
        load_model(path)
    err = info.value
    assert err.path == str(path) and str(err).startswith(f"{path}: ")
    assert "\n" not in str(err)
    return err


# -- round trips ---------------------------------------------------------------------------------

def test_round_trip_and_byte_identical_re_save(model, model_file, tmp_path):
    loaded = load_model(model_file)
    assert type(loaded) is RNNTagger and loaded.format_version == FORMAT_VERSION == 3
    assert set(loaded.params) == set(model.params)
    for k, v in model.params.items():
        assert loaded.params[k].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[k], v, err_msg=k)
    assert loaded.params["Ex"].flags.f_contiguous and loaded.params["Waa"].flags.c_contiguous
    assert loaded.meta == model.meta
    assert loaded.vocab.words == model.vocab.words and loaded.vocab.labels == model.vocab.labels
    assert loaded.features.values == model.features.values
    assert loaded.chars.alphabet == model.chars.alphabet
    same_predictions(loaded, model)
    again = tmp_path / "again.npz"
    save_model(loaded, again)
    assert again.read_bytes() == model_file.read_bytes()


def test_the_methods_delegate_to_the_module(model, model_file, tmp_path):
    model.save(tmp_path / "m.npz")
    assert (tmp_path / "m.npz").read_bytes() == model_file.read_bytes()

    class Sub(RNNTagger):
        pass

    assert type(Sub.load(model_file)) is Sub
    assert type(load_model(model_file, cls=Sub)) is Sub


def test_format_2_file_loads_and_re_saves_as_3(tmp_path):
    """The bundled model's arrays as format 2 wrote them (no requirements, no sections)."""
    arrays = read_arrays(BUNDLED)
    meta = meta_of(arrays)
    meta.pop("requires", None)
    arrays["meta"] = utf8(json.dumps(meta, sort_keys=True))
    arrays["format_version"] = np.array(2, dtype=np.int64)
    v2 = tmp_path / "v2.npz"
    write_npz(v2, arrays)
    old = load_model(v2)
    assert old.format_version == 2
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    save_model(old, first)
    new = load_model(first)
    assert new.format_version == 3
    save_model(new, second)
    assert first.read_bytes() == second.read_bytes()
    a, b = read_arrays(v2), read_arrays(first)
    assert set(a) == set(b)
    assert int(a["format_version"]) == 2 and int(b["format_version"]) == 3
    for k in set(a) - {"format_version", "meta"}:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert meta_of(b) == meta
    sents = [["Sam", "Li", "and", "Tom", "date", "on", "Tuesday", "."]]
    assert old.predict(sents) == new.predict(sents)


def write_format_1(model: RNNTagger, path: Path) -> None:
    """A model file as format 1 wrote it: the textbook arrays only."""
    arrays = {"magic": utf8("seqtag-model"), "format_version": np.array(1, dtype=np.int64),
              "meta": utf8(json.dumps(model.meta, sort_keys=True)),
              "words": utf8("\n".join(model.vocab.words)), "word_counts": model.vocab.word_counts,
              "labels": utf8("\n".join(model.vocab.labels)),
              "label_counts": model.vocab.label_counts,
              **{k: model.params[k] for k in ("Wax", "Waa", "Wya", "ba", "by")}}
    write_npz(path, arrays)


def test_format_1_file_loads(tmp_path):
    model = textbook_model()
    path = tmp_path / "v1.npz"
    write_format_1(model, path)
    loaded = load_model(path)
    assert loaded.format_version == 1 and loaded.meta == model.meta
    assert loaded.params["Wax"].flags.f_contiguous
    same_predictions(loaded, model)
    save_model(loaded, tmp_path / "v3.npz")
    assert load_model(tmp_path / "v3.npz").format_version == 3


def test_format_1_file_cannot_claim_embeddings(tmp_path):
    model = textbook_model()
    model.meta["architecture"]["embed_dim"] = 6
    path = tmp_path / "v1.npz"
    write_format_1(model, path)
    assert "meta.architecture.embed_dim" in load_error(path).message


# -- the training state and other optional sections ----------------------------------------------

def _state() -> State:
    rng = np.random.default_rng(3)
    rng.random(5)
    return State(arrays={"adam/m/Wax": np.ones((2, 3), np.float32),
                         "adam/v/Wax": np.full((2, 3), 0.5, np.float32),
                         "step": np.array(1200, np.int64), "mask": np.array([True, False])},
                 meta={"epoch": 7, "rng": rng.bit_generator.state, "best_epoch": 5,
                       "best_score": 0.8125, "bad_epochs": 2})


def test_state_round_trip(model, model_file, tmp_path):
    state = _state()
    path = tmp_path / "ckpt.npz"
    save_model(model, path, state=state)
    loaded, got = load_model(path, with_state=True)
    assert got.meta == state.meta
    assert set(got.arrays) == set(state.arrays)
    for k, v in state.arrays.items():
        assert got.arrays[k].dtype == v.dtype
        np.testing.assert_array_equal(got.arrays[k], v)
    # the RNG resumes where it was
    rng = np.random.default_rng()
    rng.bit_generator.state = got.meta["rng"]
    expected = np.random.default_rng(3)
    expected.random(5)
    assert rng.random() == expected.random()
    same_predictions(loaded, model)
    assert list_sections(path)["state"] and "state" not in list_sections(model_file)
    # without with_state, and re-saved without state=, the model alone
    alone = tmp_path / "alone.npz"
    save_model(load_model(path), alone)
    assert alone.read_bytes() == model_file.read_bytes()
    assert load_model(model_file, with_state=True)[1] is None


def test_state_bytes_do_not_depend_on_insertion_order(model, tmp_path):
    state = _state()
    shuffled = State(dict(reversed(list(state.arrays.items()))),
                     dict(reversed(list(state.meta.items()))))
    save_model(model, tmp_path / "a.npz", state=state)
    save_model(model, tmp_path / "b.npz", state=shuffled)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


@pytest.mark.parametrize("arrays", [{"": np.zeros(2)}, {"/x": np.zeros(2)}, {".json": np.zeros(2)},
                                    {"x": np.array([{}], dtype=object)}])
def test_save_refuses_bad_state_arrays(model, tmp_path, arrays):
    with pytest.raises(ValueError):
        save_model(model, tmp_path / "m.npz", state=State(arrays, {}))
    assert not (tmp_path / "m.npz").exists()


def test_damaged_state_json(model, tmp_path):
    path = tmp_path / "ckpt.npz"
    save_model(model, path, state=_state())
    arrays = read_arrays(path)
    arrays["state/.json"] = utf8("[1, 2]")
    write_npz(path, arrays)
    load_model(path)      # tagging never reads the state
    with pytest.raises(SeqtagError) as info:
        load_model(path, with_state=True)
    assert "state/.json" in info.value.message


def test_unknown_optional_sections_and_keys_are_ignored(model, model_file, tmp_path):
    arrays = read_arrays(model_file)
    meta = meta_of(arrays)
    meta["calibration"] = {"temperature": 1.25}
    arrays["meta"] = utf8(json.dumps(meta))
    arrays["calibration/.json"] = utf8('{"temperature": 1.25}')
    arrays["calibration/bins"] = np.arange(10.0)
    # an entry a later seqtag might add, even one that this reader could not parse
    arrays["future/blob"] = b"not an npy at all"
    path = tmp_path / "later.npz"
    write_npz(path, arrays)
    loaded, state = load_model(path, with_state=True)
    assert state is None and loaded.meta["calibration"] == {"temperature": 1.25}
    same_predictions(loaded, model)
    assert sorted(list_sections(path)) == ["calibration", "future"]


def test_a_required_capability_this_reader_lacks_is_refused(model_file, tmp_path, monkeypatch):
    arrays = read_arrays(model_file)
    meta = meta_of(arrays)
    meta["requires"] = ["sentence-state"]
    # what the newer writer put beside it may well look wrong to this reader's schema
    meta["architecture"]["cell"] = "transformer"
    arrays["meta"] = utf8(json.dumps(meta))
    path = tmp_path / "future.npz"
    write_npz(path, arrays)
    err = load_error(path)
    assert "'sentence-state'" in err.message and "meta.requires" in err.message
    assert "upgrade" in err.hint
    # a reader that knows the capability reads the file (and then judges the rest)
    monkeypatch.setattr(modelfile, "KNOWN_REQUIREMENTS", frozenset({"sentence-state"}))
    assert "meta.architecture.cell" in load_error(path).message
    meta["architecture"]["cell"] = "lstm"
    arrays["meta"] = utf8(json.dumps(meta))
    write_npz(path, arrays)
    assert load_model(path).meta["requires"] == ["sentence-state"]


def test_save_refuses_a_requirement_its_reader_would_refuse(model, tmp_path):
    odd = RNNTagger(model.vocab, model.params, dict(model.meta, requires=["x"]),
                    features=model.features, chars=model.chars)
    with pytest.raises(ValueError):
        save_model(odd, tmp_path / "m.npz")


# -- schema violations ---------------------------------------------------------------------------

def _set_meta(path: str, value):
    """An edit of the key at ``path`` ("a.b", "a[0].b") of meta; value DELETE removes it."""
    def edit(arrays):
        meta = meta_of(arrays)
        *parents, last = path.replace("[", ".[").split(".")
        obj = meta
        for part in parents:
            obj = obj[int(part[1:-1])] if part.startswith("[") else obj[part]
        key = int(last[1:-1]) if last.startswith("[") else last
        if value is DELETE:
            del obj[key]
        else:
            obj[key] = value
        arrays["meta"] = utf8(json.dumps(meta))
    return edit


def _set(name: str, value):
    def edit(arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return edit


def _delete(name: str):
    def edit(arrays):
        del arrays[name]
    return edit


def _text_entry(name: str, change):
    def edit(arrays):
        items = arrays[name].tobytes().decode("utf-8").split("\n")
        arrays[name] = utf8("\n".join(change(items)))
    return edit


def _huge_header(arrays):
    """Ec's .npy header declares 10^12 floats; the entry holds a few bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)})
    arrays["Ec"] = buf.getvalue() + b"\0" * 16


def _set_nonfinite(name: str, value: float):
    def change(arr):
        arr = arr.copy()
        arr.flat[arr.size // 2] = value
        return arr
    return _set(name, change)


DELETE = object()
# (case, edit of the arrays of a good file, what the message must name)
VIOLATIONS = [
    ("format-vector", _set("format_version", np.array([3])), "format_version"),
    ("format-inf", _set("format_version", np.array(np.inf)), "format_version"),
    ("format-0", _set("format_version", np.array(0)), "format_version"),
    ("format--1", _set("format_version", np.array(-1)), "format_version"),
    ("format-2.5", _set("format_version", np.array(2.5)), "format_version"),
    ("format-str", _set("format_version", np.array("2")), "format_version"),
    ("meta-not-json", _set("meta", utf8("{not json")), "meta"),
    ("meta-deep-json", _set("meta", utf8("[" * 100000 + "]" * 100000)), "meta"),
    ("meta-a-list", _set("meta", utf8("[1, 2]")), "meta"),
    ("meta-pickled", _set("meta", np.array([{"evil": 1}], dtype=object)), "meta"),
    ("cell-unknown", _set_meta("architecture.cell", "foo"), "meta.architecture.cell"),
    ("cell-wrong-type", _set_meta("architecture.cell", 3), "meta.architecture.cell"),
    ("architecture-list", _set_meta("architecture", []), "meta.architecture"),
    ("features-not-list", _set_meta("architecture.features", "shape"),
     "meta.architecture.features"),
    ("feature-unknown", _set_meta("architecture.features", ["shape", "nonsense"]),
     "meta.architecture.features[1]"),
    ("feature-twice", _set_meta("architecture.features", ["shape", "shape"]),
     "meta.architecture.features"),
    ("scheme-unknown", _set_meta("label_scheme", "BILOU"), "meta.label_scheme"),
    ("history-not-list", _set_meta("history", "x"), "meta.history"),
    ("history-of-numbers", _set_meta("history", [1, 2]), "meta.history[0]"),
    ("history-epoch-str", _set_meta("history[1].epoch", "2"), "meta.history[1].epoch"),
    ("history-no-epoch", _set_meta("history[0].epoch", DELETE), "meta.history[0].epoch"),
    ("history-f1-range", _set_meta("history[0].dev_f1", 1.5), "meta.history[0].dev_f1"),
    ("history-nan", _set_meta("history[0].dev_accuracy", float("nan")),
     "meta.history[0].dev_accuracy"),
    ("hidden-disagrees", _set_meta("architecture.hidden", H + 1), "meta.architecture.hidden"),
    ("hidden-float", _set_meta("architecture.hidden", float(H)), "meta.architecture.hidden"),
    ("hidden-huge", _set_meta("architecture.hidden", 10 ** 15), "meta.architecture.hidden"),
    ("hidden-bool", _set_meta("architecture.hidden", True), "meta.architecture.hidden"),
    ("crf-str", _set_meta("architecture.crf", "yes"), "meta.architecture.crf"),
    ("crf-false-with-transitions", _set_meta("architecture.crf", False), "trans"),
    ("one-direction-with-backward-weights", _set_meta("architecture.bidirectional", False),
     "Wax_b"),
    ("char-filters-negative", _set_meta("architecture.char_filters", -5),
     "meta.architecture.char_filters"),
    ("chars-without-embeddings", _set_meta("architecture.embed_dim", 0),
     "meta.architecture.char_filters"),
    ("best-epoch-negative", _set_meta("best_epoch", -1), "meta.best_epoch"),
    ("seed-str", _set_meta("seed", "1"), "meta.seed"),
    ("interrupted-str", _set_meta("interrupted", "no"), "meta.interrupted"),
    ("pretrained-float", _set_meta("pretrained_words", 2.0), "meta.pretrained_words"),
    ("corpus-tokens-float", _set_meta("corpus[0].tokens", 25.0), "meta.corpus[0].tokens"),
    ("corpus-no-name", _set_meta("corpus[0].name", DELETE), "meta.corpus[0].name"),
    ("dev-corpus-number", _set_meta("dev_corpus", 5), "meta.dev_corpus"),
    ("hyperparameters-list", _set_meta("hyperparameters", [1]), "meta.hyperparameters"),
    ("requires-not-list", _set_meta("requires", "x"), "meta.requires"),
    ("labels-twice", _text_entry("labels", lambda x: x[:-1] + [x[0]]), "labels"),
    ("label-empty", _text_entry("labels", lambda x: x[:-1] + [""]), "labels"),
    ("words-twice", _text_entry("words", lambda x: x[:-1] + [x[2]]), "words"),
    ("words-no-reserved", _text_entry("words", lambda x: [x[1], x[0]] + x[2:]), "words"),
    ("words-not-utf8", _set("words", np.frombuffer(b"\xff\xfe", np.uint8)), "words"),
    ("feature-values-twice", _text_entry("feature_shape", lambda x: x[:-1] + [x[1]]),
     "feature_shape"),
    ("feature-no-unk", _text_entry("feature_shape", lambda x: x[1:] + ["zz"]), "feature_shape"),
    ("chars-twice", _text_entry("chars", lambda x: [x[0] + x[0][-1]]), "chars"),
    ("word-counts-float", _set("word_counts", lambda a: a.astype(np.float64)), "word_counts"),
    ("label-counts-negative", _set("label_counts", lambda a: a - a.max() - 1), "label_counts"),
    ("word-counts-0d", _set("word_counts", np.array(5, np.int64)), "word_counts"),
    ("word-counts-short", _set("word_counts", lambda a: a[:-1]), "word_counts"),
    ("words-int", _set("words", np.arange(5)), "words"),
    ("missing-Wya", _delete("Wya"), "Wya"),
    ("missing-backward", _delete("Waa_b"), "Waa_b"),
    ("missing-feature", _delete("feature_suffix3"), "feature_suffix3"),
    ("missing-chars", _delete("chars"), "chars"),
    ("missing-meta", _delete("meta"), "meta"),
    ("missing-format", _delete("format_version"), "format_version"),
    ("Waa-float64", _set("Waa", lambda a: a.astype(np.float64)), "Waa"),
    ("Wya-int", _set("Wya", lambda a: a.astype(np.int32)), "Wya"),
    ("Wya-transposed", _set("Wya", lambda a: a.T.copy()), "Wya"),
    ("Waa-1d", _set("Waa", lambda a: a.reshape(-1)), "Waa"),
    ("by-0d", _set("by", np.array(0.5, np.float32)), "by"),
    ("Ec-wrong-rows", _set("Ec", lambda a: a[:-1]), "Ec"),
    ("Ex-nan", _set_nonfinite("Ex", np.nan), "Ex"),
    ("Wconv-inf", _set_nonfinite("Wconv", np.inf), "Wconv"),
    ("trans--inf", _set_nonfinite("trans", -np.inf), "trans"),
    ("Ec-huge-declared-size", _huge_header, "Ec"),
]


@pytest.fixture(scope="module")
def edited(model_file, tmp_path_factory) -> dict[str, Path]:
    """Each case of VIOLATIONS as a file."""
    directory = tmp_path_factory.mktemp("edited")
    files = {}
    for case, edit, _ in VIOLATIONS:
        arrays = read_arrays(model_file)
        edit(arrays)
        files[case] = directory / f"{case}.npz"
        write_npz(files[case], arrays, allow_pickle=case == "meta-pickled")
    return files


def test_rewriting_alone_changes_nothing(model_file, tmp_path):
    """The files of the cases below differ from a good one by their edit alone."""
    path = tmp_path / "copy.npz"
    write_npz(path, read_arrays(model_file))
    load_model(path)


@pytest.mark.parametrize("case, key", [(c, k) for c, _, k in VIOLATIONS],
                         ids=[c for c, _, _ in VIOLATIONS])
def test_schema_violation_is_one_error_naming_the_key(edited, case, key):
    err = load_error(edited[case])
    assert key in err.message, err
    if key.startswith("meta."):
        assert err.message.startswith(key + " ") or f" {key} " in err.message, err
    assert "pickle" not in err.message.lower() or case == "meta-pickled"


def test_messages_say_what_was_found_and_expected(edited):
    assert load_error(edited["cell-unknown"]).message == \
        "meta.architecture.cell is 'foo', expected one of rnn, gru, lstm"
    err = load_error(edited["hidden-float"])
    assert err.message == "meta.architecture.hidden is 4.0, expected an integer"
    assert err.hint == "the file is damaged; retrain or restore it"


# -- through the command line --------------------------------------------------------------------

def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr, \
        None if isinstance(res.exception, SystemExit) else res.exception


def assert_one_error(path, key, code, stdout, stderr, exception=None):
    assert code != 0 and exception is None, (stderr, exception)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {path}: "), stderr
    assert key in lines[0]
    assert stdout == ""


@pytest.mark.parametrize("case, key", [(c, k) for c, _, k in VIOLATIONS],
                         ids=[c for c, _, _ in VIOLATIONS])
def test_cli_in_process(edited, case, key):
    for args in (["tag", "-m", edited[case], "Sam Li ."], ["inspect", edited[case]],
                 ["inspect", edited[case], "--json"]):
        assert_one_error(edited[case], key, *invoke(*args))


def test_cli_processes(edited):
    cases = ["cell-unknown", "format-str", "Ec-huge-declared-size", "history-of-numbers",
             "labels-twice", "meta-deep-json"]
    key = dict((c, k) for c, _, k in VIOLATIONS)
    jobs = [(case, args) for case in cases for args in
            (["tag", "-m", edited[case], "Sam Li and Tom date on Tuesday."],
             ["inspect", edited[case]])]

    def run(args):
        return subprocess.run([sys.executable, "-m", "seqtag", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [args for _, args in jobs]))
    for (case, _), res in zip(jobs, results):
        assert_one_error(edited[case], key[case], res.returncode, res.stdout, res.stderr)


# -- inspect shows every valid file literally ----------------------------------------------------

def test_inspect_a_minimal_odd_model_with_sections(tmp_path):
    # a path whose text holds "[/]" and "[bold]"
    odd = tmp_path / "odd ["
    odd.mkdir()
    path = odd / "] [bold]m.npz"
    assert "[/] [bold]" in str(path)
    words = ["<pad>", "<unk>", "[/]", "[bold]x", "plain"]
    vocab = Vocabulary(words, [0, 1, 5, 4, 3], ["O", "B-[/]", "I-[/]"], [9, 2, 1])
    params = init_params(len(words), 3, 2, np.random.default_rng(0))
    meta = {"history": [{"epoch": 1}], "corpus": [{"name": "[/]", "sentences": 1, "tokens": 2,
                                                   "sha256": "x"}]}
    save_model(RNNTagger(vocab, params, meta), path,
               state=State({"m/Wax": np.zeros((2, 5), np.float32)}, {"epoch": 1}))
    arrays = read_arrays(path)
    arrays["extra/thing"] = np.zeros(3)
    write_npz(path, arrays)
    code, out, err, exc = invoke("inspect", path)
    assert code == 0 and exc is None, (err, exc)
    assert str(path) in out and "[/](5)" in out and "B-[/] 2" in out
    assert "trained on [/]: 1 sentences" in out
    assert "section state: m/Wax 2×5 float32" in out
    assert "section extra: 1 entries, not read by this seqtag (ignored)" in out
    code, out, err, exc = invoke("inspect", path, "--json")
    assert code == 0 and exc is None, (err, exc)
    info = json.loads(out)
    assert info["format_version"] == 3 and info["requires"] == []
    assert info["sections"]["state"]["arrays"] == {"m/Wax": {"shape": [2, 5],
                                                             "dtype": "float32"}}
    assert info["sections"]["state"]["meta"] == {"epoch": 1}
    assert info["sections"]["extra"] == {"known": False, "arrays": ["thing"]}


def test_inspect_shows_requirements(model_file, tmp_path, monkeypatch):
    arrays = read_arrays(model_file)
    meta = meta_of(arrays)
    meta["requires"] = ["sentence-state"]
    arrays["meta"] = utf8(json.dumps(meta))
    path = tmp_path / "m.npz"
    write_npz(path, arrays)
    code, out, err, exc = invoke("inspect", path)
    assert code != 0 and "upgrade" in err
    monkeypatch.setattr(modelfile, "KNOWN_REQUIREMENTS", frozenset({"sentence-state"}))
    code, out, err, exc = invoke("inspect", path)
    assert code == 0 and exc is None, (err, exc)
    assert "requires: sentence-state" in out.splitlines()
    code, out, err, exc = invoke("inspect", path, "--json")
    assert json.loads(out)["requires"] == ["sentence-state"]


def test_encrypted_entries(model_file, tmp_path):
    data = bytearray(model_file.read_bytes())
    i = 0
    while (i := data.find(b"PK\x01\x02", i)) >= 0:   # each central directory record
        data[i + 8] |= 1                               # general purpose flag: encrypted
        i += 4
    path = tmp_path / "encrypted.npz"
    path.write_bytes(bytes(data))
    assert "encrypted" in load_error(path).message
