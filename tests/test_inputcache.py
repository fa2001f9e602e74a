"""Tagging with the embedded inputs kept from batch to batch (seqtag.inputcache) gives the bits of
tagging without them: the same emissions, labels and probabilities, on one or two threads, with
word types past the cache's limit and after the encoder numbers its types anew."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from seqtag.corpus import read_corpus
from seqtag.model import RNNTagger


@pytest.fixture(scope="module")
def sentences(samples):
    # BTC test tweets: many rare tokens, and frequent ones again in every batch
    return [s.tokens for s in read_corpus(str(samples / "btc.test"))[0][:300]]


def _fresh():
    from seqtag.cli._app import default_model_path

    return RNNTagger.load(default_model_path(), engine="numba")


def _analyses(model, sentences, batch, threads=1):
    from seqtag.tagging import analysed

    jobs = [(sentences[i:i + batch],) for i in range(0, len(sentences), batch)]
    return [r for _, results in analysed(model, jobs, True, 1, threads) for r in results]


def _same(a, b):
    assert len(a) == len(b)
    for (la, pa, ra), (lb, pb, rb) in zip(a, b):
        assert la == lb
        assert np.array_equal(pa, pb)
        assert np.array_equal(ra["emissions"], rb["emissions"])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("limit, projected", [(65_536, 8_192), (65_536, 300), (40, 10),
                                              (40, 0)])
def test_kept_inputs_give_the_same_bits(sentences, threads, limit, projected):
    from seqtag.inputcache import InputCache

    plain = _analyses(_fresh(), sentences, 16)
    model = _fresh().keep_inputs()
    # 40: most types are embedded by their batch; 300: batches mix kept projections, kept x
    # and x embedded there
    model._input_cache = InputCache(limit, projected)
    kept = _analyses(model, sentences, 16, threads)
    _same(plain, kept)
    cache = model._input_cache
    n_types = len(model.encoder._types)
    # every type below the limit but type 0 (no spelling, never a token) is kept
    assert cache.kept.sum() == min(limit, n_types) - 1
    assert (cache.P is not None) == (projected > 0)
    assert (cache.X is not None) == (n_types > projected)


def test_kept_inputs_follow_a_new_numbering(sentences, monkeypatch):
    import seqtag.encoding

    plain = _analyses(_fresh(), sentences, 16)
    # the encoder drops its caches (and numbers word types anew) after every batch or two
    monkeypatch.setattr(seqtag.encoding, "_CACHE_LIMIT", 200)
    model = _fresh().keep_inputs()
    kept = _analyses(model, sentences, 16)
    _same(plain, kept)


def test_numpy_engine_keeps_nothing(sentences):
    model = RNNTagger.load(_fresh_path(), engine="numpy").keep_inputs()
    _analyses(model, sentences[:40], 16)
    assert model._input_cache.kept is None


def _fresh_path():
    from seqtag.cli._app import default_model_path

    return default_model_path()


def test_cli_output_is_the_same_with_and_without_kept_inputs(sentences, tmp_path):
    # `seqtag tag` keeps the inputs; the API's analyse without keep_inputs does not
    text = tmp_path / "in.txt"
    text.write_text("\n".join(" ".join(s) for s in sentences[:120]) + "\n", encoding="utf-8")
    outs = []
    for threads in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "seqtag", "tag", "--engine", "numba",
                               "--threads", threads, "--batch-size", "8", "-i", str(text)],
                              capture_output=True, text=True, check=True, timeout=300)
        outs.append(proc.stdout)
    from seqtag.tagging import format_conll, tag_texts

    model = _fresh()
    lines = text.read_text(encoding="utf-8").splitlines()
    expected = "".join(format_conll(t) for t in tag_texts(model, lines, 8, probs=False))
    assert outs == [expected, expected]


def test_a_model_with_document_context_keeps_no_inputs(tmp_path):
    """Its x depends on the token's document code as well as on the word type, so the kept x of
    a type would be another occurrence's: such a model embeds every batch itself."""
    from seqtag.config import TrainConfig
    from seqtag.corpus import Sentence
    from seqtag.documents import with_context
    from seqtag.training import Trainer

    docs = []
    for d in range(40):
        word = ["Kor", "Bel", "Tam"][d % 3]
        low = d % 2 == 0
        docs += [Sentence([word, "went", "home", "."], ["B-X" if not low else "O", "O", "O", "O"],
                          [], 0, document=d),
                 Sentence(["we", "saw", word.lower() if low else word, "."],
                          ["O", "O", "O" if low else "B-X", "O"], [], 0, document=d)]
    cfg = TrainConfig(hidden=8, embed_dim=8, char_filters=4, char_dim=3, features="casing",
                      epochs=2, batch_size=8, patience=0, seed=1, threads=1)
    model = Trainer(cfg).fit(docs).model_
    assert model.architecture.document and model.chars is not None
    path = tmp_path / "doc.npz"
    model.save(path)
    sents = [s.tokens for s in with_context(docs)]
    # the same word types with different codes in one stream
    assert len({(t, int(c)) for s in sents for t, c in zip(s, s.context)}) > \
        len({t for s in sents for t in s})
    plain = _analyses(RNNTagger.load(path, engine="numba"), sents, 8)
    kept_model = RNNTagger.load(path, engine="numba").keep_inputs()
    _same(plain, _analyses(kept_model, sents, 8))
