"""Property-based fuzzing of the tokenizer (seqtag.tokenizer.tokenize).

Properties: the tokens, concatenated, are the text without its whitespace; each token is the
slice of the text its offsets name, holds no whitespace, and follows the one before; and the time
grows linearly with the length of the text (a hang would be an input that runs for minutes).
"""

from __future__ import annotations

import re
import time

from hypothesis import example, given, settings, strategies as st

import fuzz_harness as H
from seqtag.tokenizer import tokenize

# Fragments that steer the tokenizer's alternatives (URLs, e-mails, mentions, hashtags,
# emoticons, abbreviations, numbers, clitics, emoji, combining marks) mixed with arbitrary text.
_FRAGMENTS = st.sampled_from([
    "http://", "https://a.b/c?d=e", "www.", "mailto:", "ftp://x", "a@b.com", "@user", "#tag",
    "#1", ":)", ";-D", "<3", ":(", "=]", "U.S.", "e.g.", "Mr.", "J.", "etc.", "3.5", "1,000",
    "10:30", "12/03/2020", "853-7906", "-2", "+3", "'68", "n't", "'s", "can", "not", "cannot",
    "gonna", "state-of-the-art", "...", "?!", "--", "**", "\u0915\u093f", "\u094d", "\u0301",
    "\U0001f600", "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3", "\U0001f468\u200d\U0001f469",
    "\u00a0", "\u3000", "\u2028", "\t", "\r\n", " ", ".", ",", ")", "]", "'", '"', "\u2019",
    "a", "Sam", "Tuesday", "\u00e9t\u00e9", "\u0645\u0631\u062d\u0628\u0627", "\ufeff", "\x00",
])
_TEXT = st.lists(_FRAGMENTS | st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
                 max_size=40).map("".join)


def check_tokens(text: str) -> list:
    tokens = tokenize(text)
    assert "".join(t for t, _, _ in tokens) == re.sub(r"\s+", "", text)
    pos = 0
    for tok, start, end in tokens:
        assert tok and text[start:end] == tok and start >= pos
        assert not re.search(r"\s", tok)
        pos = end
    return tokens


@settings(max_examples=H.budget(3000, 100))
@given(_TEXT)
@example("Sam Li and Tom date on Tuesday.")
@example("[/] [bold]x[/bold]")
def test_tokens_are_the_text_without_whitespace(text):
    with H.observe("tokenizer: generated text") as box:
        check_tokens(text)
        box["outcome"] = "correct"


def _seconds(fn, *args) -> float:
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def check_linear(unit: str, prefix: str = "", suffix: str = "", n: int = 2000) -> None:
    """Four times the text may take at most about four times as long (8x allows for noise,
    and quadratic growth gives 16x); tiny timings are too noisy to judge. A ratio over 8x is
    timed twice more before it fails: on a loaded machine one pause of 50 ms fakes it, while
    quadratic growth fails every time."""
    texts = (prefix + unit * n + suffix, prefix + unit * (4 * n) + suffix)
    for _ in range(3):
        small, large = (_seconds(tokenize, text) for text in texts)
        if large < 0.05 or large < 8 * max(small, 1e-3):
            return
    raise AssertionError(f"{len(unit) * n} chars: {small:.3f} s, 4x as long: {large:.3f} s")


# Repeated units without a URL scheme (a URL before a long punctuation run has its own test
# below), separated by a space: text of ordinary words must tokenize in linear time.
_UNITS = st.lists(_FRAGMENTS.filter(lambda f: not re.search(r"://|www\.|mailto:", f)),
                  min_size=1, max_size=4).map("".join)


@settings(max_examples=H.budget(150, 10), deadline=None)
@given(_UNITS)
@example(".")
@example("U.S.Sam")
@example("-2")
def test_tokenizer_time_is_linear(unit):
    with H.observe("tokenizer: long text of spaced words (linear time)") as box:
        check_linear(unit + " ")
        box["outcome"] = "correct"


@settings(max_examples=H.budget(20, 3), deadline=None)
@given(_UNITS)
@example("-2")
def test_tokenizer_long_chunk_without_spaces_is_linear(unit):
    with H.observe("tokenizer: long chunk without spaces (linear time)") as box:
        check_linear(unit)
        box["outcome"] = "correct"


@settings(max_examples=H.budget(20, 3), deadline=None)
@given(st.sampled_from(["http://a.b", "https://x.org/p", "www.a.com", "mailto:a"]),
       st.sampled_from([".", ",", ")", "!?", "'", ".,;:"]))
@example("http://a.b", ".")
def test_tokenizer_url_then_punctuation_is_linear(url, punct):
    with H.observe("tokenizer: URL + long punctuation run") as box:
        check_linear(punct, prefix=url, suffix="x")
        check_tokens(url + punct * 100 + "x")
        box["outcome"] = "correct"
