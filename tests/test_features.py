"""Tests for seqtag.features: the word-form feature functions, --features parsing and the
inventories of feature values (FeatureSet)."""

from __future__ import annotations

import pytest

from seqtag.errors import SeqtagError
from seqtag.features import FEATURES, UNK_VALUE, FeatureSet, parse_features


# -- the feature functions -----------------------------------------------------------------------

@pytest.mark.parametrize("token, shape", [
    ("Sam", "Xxx"),
    ("sam", "xx"),
    ("Samantha", "Xxx"),            # a run of lower-case letters is kept to two
    ("SAMANTHA", "XX"),
    ("McDonald's", "XxXxx'x"),      # punctuation is kept as itself
    ("U.S.", "X.X."),
    ("2024", "dd"),
    ("7", "d"),
    ("1996-08-22", "dd-dd-dd"),
    ("$3.50", "$d.dd"),
    ("...", ".."),                  # punctuation runs collapse too
    ("a", "x"),
    ("", ""),
    ("Über", "Xxx"),               # not just ASCII
])
def test_shape(token, shape):
    assert FEATURES["shape"](token) == shape


def test_shape_is_at_most_twelve_characters():
    token = "aB" * 20
    assert FEATURES["shape"](token) == "xX" * 6
    assert len(FEATURES["shape"]("a-" * 50)) == 12


@pytest.mark.parametrize("token, casing", [
    ("", "empty"),
    ("2024", "number"),
    ("A1", "has-digit"),
    ("1996-08-22", "has-digit"),
    ("covid19", "has-digit"),
    ("USA", "upper"),
    ("U.S.", "upper"),
    ("Sam", "title"),
    ("Éric", "title"),
    ("McDonald", "mixed-cap"),
    ("SAm", "mixed-cap"),
    ("sam", "lower"),
    ("iPhone", "other"),
    ("...", "other"),
    ("-", "other"),
])
def test_casing(token, casing):
    assert FEATURES["casing"](token) == casing


@pytest.mark.parametrize("token, lower", [
    ("Sam", "sam"),
    ("USA", "usa"),
    ("1996-08-22", "0000-00-00"),   # every digit becomes 0, other characters stay
    ("B2B", "b0b"),
    ("$3.50", "$0.00"),
    ("", ""),
])
def test_lower(token, lower):
    assert FEATURES["lower"](token) == lower


@pytest.mark.parametrize("token, p2, p3, s2, s3", [
    ("Washington", "wa", "was", "on", "ton"),
    ("EU", "eu", "eu", "eu", "eu"),
    ("A", "a", "a", "a", "a"),
    ("McDONALD", "mc", "mcd", "ld", "ald"),
    ("2024", "20", "202", "24", "024"),   # digits are not replaced in affixes
])
def test_prefixes_and_suffixes_are_lower_case(token, p2, p3, s2, s3):
    assert FEATURES["prefix2"](token) == p2
    assert FEATURES["prefix3"](token) == p3
    assert FEATURES["suffix2"](token) == s2
    assert FEATURES["suffix3"](token) == s3


def test_every_feature_returns_a_string():
    assert set(FEATURES) == {"lower", "shape", "casing", "prefix2", "prefix3", "suffix2",
                             "suffix3"}
    for fn in FEATURES.values():
        for token in ("Sam", "", "1996", "日本", "U.S."):
            assert isinstance(fn(token), str)


# -- --features ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, names", [
    ("", []),
    ("none", []),
    ("shape", ["shape"]),
    ("shape,suffix3", ["shape", "suffix3"]),
    ("suffix3,shape", ["suffix3", "shape"]),        # order is kept
    (" shape , casing ", ["shape", "casing"]),
    ("shape,,casing,", ["shape", "casing"]),
    (",".join(FEATURES), list(FEATURES)),
])
def test_parse_features(spec, names):
    assert parse_features(spec) == names


@pytest.mark.parametrize("spec, bad", [("shapes", "shapes"), ("shape,Suffix3", "Suffix3"),
                                       ("word", "word"), ("suffix4", "suffix4")])
def test_parse_features_rejects_unknown_names(spec, bad):
    with pytest.raises(SeqtagError) as info:
        parse_features(spec)
    assert repr(bad) in info.value.message
    assert "suffix3" in (info.value.hint or "")       # the hint lists the choices


@pytest.mark.parametrize("spec", ["shape,shape", "shape,casing,shape", "lower, lower"])
def test_parse_features_rejects_a_name_given_twice(spec):
    with pytest.raises(SeqtagError, match="twice"):
        parse_features(spec)


# -- inventories ---------------------------------------------------------------------------------

TOKENS = ["Sam", "Li", "met", "Tom", "in", "Paris", "on", "Friday", "2024", "at", "10", "Sam"]


def test_build_orders_values_by_count_then_value():
    fs = FeatureSet.build(TOKENS, ["casing"], min_count=1)
    # title: Sam Li Tom Paris Friday Sam (6); lower: met in on at (4); number: 2024 10 (2)
    assert fs.values == [[UNK_VALUE, "title", "lower", "number"]]
    fs = FeatureSet.build(["b", "a", "c", "a", "b"], ["lower"], min_count=1)
    assert fs.values == [[UNK_VALUE, "a", "b", "c"]]    # a and b tie at 2: by value
    assert fs.sizes == [4]


def test_build_does_not_depend_on_token_order():
    a = FeatureSet.build(TOKENS, ["shape", "suffix2"], min_count=1)
    b = FeatureSet.build(TOKENS[::-1], ["shape", "suffix2"], min_count=1)
    assert a.values == b.values


def test_build_keeps_one_inventory_per_feature_in_order():
    fs = FeatureSet.build(TOKENS, ["suffix2", "casing"], min_count=1)
    assert fs.names == ["suffix2", "casing"]
    assert fs.values[1] == [UNK_VALUE, "title", "lower", "number"]
    suffixes = [FEATURES["suffix2"](t) for t in TOKENS]
    assert set(fs.values[0][1:]) == set(suffixes)
    assert fs.values[0][1] == "am"                      # the only suffix seen twice
    assert fs.sizes == [len(set(suffixes)) + 1, 4]


def test_min_count_drops_rare_values():
    fs = FeatureSet.build(TOKENS, ["casing", "lower"], min_count=2)
    assert fs.values[0] == [UNK_VALUE, "title", "lower", "number"]
    assert fs.values[1] == [UNK_VALUE, "sam"]           # the only word seen twice
    fs = FeatureSet.build(TOKENS, ["casing"], min_count=5)
    assert fs.values == [[UNK_VALUE, "title"]]
    fs = FeatureSet.build(TOKENS, ["casing"], min_count=100)
    assert fs.values == [[UNK_VALUE]]
    assert fs.ids("Sam") == [0]


def test_value_zero_is_unk_and_unseen_values_map_to_it():
    fs = FeatureSet.build(TOKENS, ["casing", "suffix3", "lower"], min_count=1)
    for vals in fs.values:
        assert vals[0] == UNK_VALUE
    assert fs.ids("Sam") == [fs.values[0].index("title"), fs.values[1].index("sam"),
                             fs.values[2].index("sam")]
    assert fs.ids("Sam") != [0, 0, 0]
    # "Zürich": title case is known, its suffix and lower-cased form are not
    assert fs.ids("Zürich") == [fs.values[0].index("title"), 0, 0]
    assert fs.ids("USA") == [0, 0, 0]                    # "upper" never seen
    # lower maps digits to 0: "99" reads as the "00" of "10"; its suffix "99" is unseen
    assert fs.ids("99") == [fs.values[0].index("number"), 0, fs.values[2].index("00")]
    assert fs.ids("99")[2] != 0


def test_a_value_spelling_unk_is_not_a_second_entry():
    fs = FeatureSet.build(["<unk>", "<unk>", "a"], ["lower"], min_count=1)
    assert fs.values == [[UNK_VALUE, "a"]]
    assert fs.ids("<unk>") == [0]
    assert fs.ids("a") == [1]


def test_build_without_tokens():
    fs = FeatureSet.build([], ["shape"], min_count=1)
    assert fs.values == [[UNK_VALUE]] and fs.sizes == [1]
    assert fs.ids("Anything") == [0]


def test_inventory_round_trips_through_the_constructor():
    fs = FeatureSet.build(TOKENS, ["shape", "casing"], min_count=1)
    again = FeatureSet(list(fs.names), [list(v) for v in fs.values])
    for tok in TOKENS + ["unseen", "X"]:
        assert again.ids(tok) == fs.ids(tok)


@pytest.mark.parametrize("names, values", [
    (["shapes"], [[UNK_VALUE, "Xx"]]),             # not a feature
    (["shape"], [[]]),                              # no <unk>
    (["shape"], [["Xx", UNK_VALUE]]),               # <unk> not first
    (["shape"], [["Xx"]]),
    (["shape", "casing"], [[UNK_VALUE], ["title"]]),
    (["shape", "casing"], [[UNK_VALUE]]),           # fewer inventories than names
    (["shape"], [[UNK_VALUE], [UNK_VALUE]]),        # more inventories than names
    (["shape", "shape"], [[UNK_VALUE], [UNK_VALUE]]),   # a feature twice
])
def test_bad_inventories_are_rejected(names, values):
    with pytest.raises(ValueError):
        FeatureSet(names, values)


def test_batch_features_equal_one_token_at_a_time():
    """ids_of_all (the encoder's batch path) gives each token's ids, as ids does, for every
    feature."""
    import random

    rng = random.Random(7)
    alphabet = list("aAzZ09.-'_@é\u0301ÜẞΣ😀²\t\n") + ["xxxx", "DDDD", "....", "ddd", "XXX"]
    tokens = ["", "a", "Sam", "McDonald's", "U.S.", "2024", "aaaaaaaaaaaaaaaaaaaaaaa"] + \
        ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))) for _ in range(3000)]
    fs = FeatureSet.build(tokens[::2], list(FEATURES), 1)
    assert fs.ids_of_all(tokens) == [list(col) for col in zip(*map(fs.ids, tokens))]
