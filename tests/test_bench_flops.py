"""bench/flops.py (the FLOPs per token that `make bench` reports) against hand counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def flops():
    spec = importlib.util.spec_from_file_location("bench_flops", BENCH / "flops.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def shapes(**named) -> dict:
    return {k: np.zeros(v, np.float32) for k, v in named.items()}


def test_a_tiny_bilstm_cnn_by_hand(flops):
    # H = 2 (G = 8 LSTM gate rows), d = 3 embedding + F = 2 filters = D = 5 inputs, L = 3
    # labels, 2-dim characters in windows of 3 (Wconv 2 × 6).
    p = shapes(Ex=(3, 10), Wax=(8, 5), Waa=(8, 2), ba=(8,), Wax_b=(8, 5), Waa_b=(8, 2),
               ba_b=(8,), Wya=(3, 4), by=(3,), Ec=(7, 2), Wconv=(2, 6), bconv=(2,))
    f = flops.model_flops(p, ["ab", "c"])       # windows: <bow>ab<eow> 2, <bow>c<eow> 1
    # per token: input 2 dirs · 2·8·5 = 160, recurrence 2 · 2·8·2 = 64, output 2·3·4 = 24,
    # characters 2·2·6 per window · 3 windows / 2 tokens = 36
    assert f.per_token() == {"input projection": 160, "recurrence": 64, "character CNN": 36,
                             "output layer": 24}
    assert f.forward == 284 and f.training == 852


def test_long_words_count_the_characters_the_cnn_keeps(flops):
    p = shapes(Ex=(3, 10), Wax=(8, 5), Waa=(8, 2), Wya=(3, 2), Ec=(7, 2), Wconv=(2, 6))
    kept = 2 * flops.MAX_HALF
    assert flops.char_windows("x" * (kept + 50), 3) == kept
    assert flops.char_windows("x", 5) == 1          # the one window, padded
    f = flops.model_flops(p, ["x" * (kept + 50)])
    assert f.chars == 2 * 2 * 6 * kept


def test_the_textbook_model_has_no_input_product(flops):
    # Multi-hot input: Wax is read by columns. One direction, Elman H = 4, L = 3.
    p = shapes(Wax=(4, 50), Waa=(4, 4), ba=(4,), Wya=(3, 4), by=(3,))
    f = flops.model_flops(p, ["a", "b", "c"])
    assert f.per_token() == {"input projection": 0, "recurrence": 32, "character CNN": 0,
                             "output layer": 24}


def test_the_default_model(flops, bundled_model):
    f = flops.model_flops(bundled_model.params, ["Sam"])
    H, L = 128, len(bundled_model.labels)
    assert f.per_token()["recurrence"] == 2 * 2 * 4 * H * H
    assert f.per_token()["input projection"] == 2 * 2 * 4 * H * (100 + 50)
    assert f.per_token()["output layer"] == 2 * L * 2 * H
    assert f.per_token()["character CNN"] == 2 * 50 * 25 * 3 * 3


def test_the_stricter_count_is_what_the_kernels_compute_once_per_distinct_row(flops):
    # A fresh model (a cache of kept inputs would skip rows): "the" four times and "cat" twice
    # over two sentences of one batch are two distinct input rows, each spelled and projected
    # once per direction; the recurrences and output layer still count every token.
    from seqtag.cli._app import default_model_path
    from seqtag.model import RNNTagger

    model = RNNTagger.load(default_model_path())
    sentences = [["the", "cat", "the", "the"], ["cat", "the"]]
    with flops.Computed() as c:
        model.predict(sentences)
    p = model.params
    assert c.input == 2 * (p["Wax"].size + p["Wax_b"].size) * 2
    assert c.chars == 2 * p["Wconv"].size * (flops.char_windows("the", 3)
                                             + flops.char_windows("cat", 3))
    full = flops.model_flops(p, [t for s in sentences for t in s])
    assert c.forward(full) == pytest.approx((c.input + c.chars + full.recurrent + full.output) / 6)
    assert c.forward(full) < full.forward
    # the layers are themselves again
    with flops.Computed() as again:
        pass
    model.predict(sentences)
    assert again.input == 0 and again.chars == 0
