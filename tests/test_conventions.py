"""The conventions a user expects of the command line and the package: tag -i, honest --nbest,
literal text in the pretty view, eval's messages about the wrong input, --version, shell
completion, licences in the package. CLI behaviour is checked in real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import seqtag
from seqtag import tagging
from seqtag.corpus import Sentence
from seqtag.errors import SeqtagError
from seqtag.build import init_params
from seqtag.model import RNNTagger
from seqtag.schemes import allowed_end, allowed_transitions
from seqtag.vocab import Vocabulary

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LABELS = ["O", "B-PER", "I-PER", "B-LOC"]
WORDS = ["<pad>", "<unk>", "Sam", "Li", "in", "Paris"]


def make_model(crf: bool, seed: int = 0) -> RNNTagger:
    """A small untrained model with weights large enough that its probabilities differ."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary(WORDS, [0] * len(WORDS), LABELS, [1] * len(LABELS))
    params = init_params(len(WORDS), len(LABELS), 6, rng, bidirectional=True, crf=crf)
    for k in params:
        params[k] = (params[k] * 3).astype(np.float32)
        if k.startswith("Wax"):
            params[k] = np.asfortranarray(params[k])
    return RNNTagger(vocab, params, {"label_scheme": "IOB2"})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    model = make_model(True)
    model.meta.update({"architecture": {"bidirectional": True, "crf": True}})
    model.save(path)
    return path


def run(*args, input: str | bytes | None = None, ok: bool = True, env=None,
        argv0: str | None = None) -> subprocess.CompletedProcess:
    """seqtag in a subprocess (as `python -m seqtag`, or as the console script `argv0` runs)."""
    cmd = [sys.executable, "-m", "seqtag"] if argv0 is None else \
        [sys.executable, "-c", f"import sys; sys.argv[0] = {argv0!r}; "
                               "from seqtag.cli import main; main()"]
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    res = subprocess.run([*cmd, *map(str, args)], input=input, capture_output=True, env=env,
                         text=not isinstance(input, bytes), timeout=300)
    if ok:
        assert res.returncode == 0, res
    return res


def one_error(res, *, says: str = "", where: str | None = None) -> str:
    """A non-zero exit with exactly one ERROR line on stderr and no traceback."""
    assert res.returncode != 0, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), res
    if where is not None:
        assert lines[0].startswith(f"ERROR: {where}: "), res
    assert says in lines[0], res
    return lines[0]


# -- tag -i -------------------------------------------------------------------------------------

TEXTS = ["Sam Li in Paris", "Paris", "", "Li in Sam Li"]


def test_input_files_read_like_stdin(model_file, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(TEXTS[:2]) + "\n", encoding="utf-8")
    b.write_text("\r\n".join(TEXTS[2:]) + "\r\n", encoding="utf-8")   # CRLF as well
    piped = run("tag", "-m", model_file, "-f", "jsonl", input="\n".join(TEXTS) + "\n").stdout
    files = run("tag", "-m", model_file, "-f", "jsonl", "-i", a, "--input", b).stdout
    assert files == piped
    assert [json.loads(line)["text"] for line in files.splitlines()] == TEXTS
    # Arguments first, then the -i inputs in order; '-' among them is stdin.
    mixed = run("tag", "-m", model_file, "-f", "jsonl", "-i", b, "-i", "-", "Sam",
                input="Paris\n").stdout
    assert [json.loads(line)["text"] for line in mixed.splitlines()] == \
        ["Sam", *TEXTS[2:], "Paris"]


def test_input_file_in_conll_format(model_file, tmp_path):
    gold = tmp_path / "gold.tsv"
    gold.write_text("Sam\tB-PER\nLi\tI-PER\n\nParis\tB-LOC\n", encoding="utf-8")
    piped = run("tag", "-m", model_file, "--input-format", "conll", input=gold.read_text()).stdout
    assert run("tag", "-m", model_file, "--input-format", "conll", "-i", gold).stdout == piped
    assert piped.splitlines()[0].startswith("Sam\tB-PER\t")


def test_input_file_errors_name_the_file_and_line(model_file, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Sam\nL\xffi\n")
    res = run("tag", "-m", model_file, "-f", "inline", "-i", bad, ok=False)
    one_error(res, where=f"{bad}:2", says="invalid UTF-8")
    one_error(run("tag", "-m", model_file, "-i", tmp_path / "nope.txt", ok=False),
              where=str(tmp_path / "nope.txt"), says="no such file")


def test_an_argument_that_names_a_file_is_tagged_as_text_with_a_note(model_file, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("Sam Li in Paris\n", encoding="utf-8")
    res = run("tag", "-m", model_file, "-f", "jsonl", str(texts), "Sam", str(texts))
    assert [json.loads(line)["text"] for line in res.stdout.splitlines()] == \
        [str(texts), "Sam", str(texts)]
    assert res.stderr.splitlines() == \
        [f"note: '{texts}' is a file; to tag its contents use: seqtag tag -i {texts}"]
    # No note for a text that is no file, nor for column files (arguments ARE files there).
    assert run("tag", "-m", model_file, "-f", "inline", "Sam Li").stderr == ""
    gold = tmp_path / "gold.tsv"
    gold.write_text("Sam\tB-PER\n", encoding="utf-8")
    assert run("tag", "-m", model_file, "--input-format", "conll", gold).stderr == ""


# -- --nbest and the output formats -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["inline", "pretty"])
def test_nbest_with_a_format_that_cannot_show_it(model_file, fmt):
    res = run("tag", "-m", model_file, "-f", fmt, "--nbest", "3", "Sam Li", ok=False)
    one_error(res, says=f"-f {fmt}")
    assert "-f conll or -f jsonl" in res.stderr and res.stdout == ""


def test_nbest_with_scores(model_file):
    res = run("tag", "-m", model_file, "-f", "conll", "--nbest", "2", "--scores", "Sam Li",
              ok=False)
    one_error(res, says="--scores with --nbest")
    rec = json.loads(run("tag", "-m", model_file, "-f", "jsonl", "--nbest", "2", "--scores",
                         "Sam Li").stdout)
    assert len(rec["probs"]) == 2 and len(rec["nbest"]) == 2
    assert rec["nbest"][0]["labels"] == rec["labels"]


def test_nbest_limit_in_process(monkeypatch):
    model = make_model(True)
    monkeypatch.setattr(tagging, "NBEST_LIMIT", 20)
    at_limit, over = " ".join(["Sam"] * 10), " ".join(["Sam"] * 11)
    got = []
    with pytest.raises(SeqtagError) as e:
        for t in tagging.tag_texts(model, ["Li", at_limit, over, "Paris"], nbest=2,
                                   name="in.txt"):
            got.append(t)
    # What comes before the long text is tagged; the error says where and what to do.
    assert [len(t.tokens) for t in got] == [1, 10] and all(len(t.nbest) == 2 for t in got)
    assert str(e.value).startswith("in.txt:3: a sentence of 11 tokens is too long for --nbest 2")
    assert "lower --nbest" in str(e.value)
    # The limit is on N × tokens: one best sequence of the same text is no n-best search.
    assert len(list(tagging.tag_texts(model, [over], nbest=1))) == 1


def test_scores_limit_in_process(monkeypatch):
    model = make_model(True)
    long_text = " ".join(["Sam Li in Paris"] * 5)
    (plain,) = tagging.tag_texts(model, [long_text])
    n_spans = len(plain.entities())
    assert n_spans > 0   # the seed's model finds entities, so the limit can bite
    monkeypatch.setattr(tagging, "SCORES_LIMIT", n_spans * len(plain.tokens) - 1)
    got = []
    with pytest.raises(SeqtagError) as e:
        for t in tagging.tag_sentences(model, [Sentence(["Sam"], None, ["Sam"], 4),
                                               Sentence(plain.tokens, None, plain.tokens, 7)],
                                       scores=True, name="in.tsv"):
            got.append(t)
    assert len(got) == 1 and got[0].span_probs is not None
    assert str(e.value).startswith(f"in.tsv:7: a sentence of {len(plain.tokens)} tokens with "
                                   f"{n_spans} entities is too long for --scores")
    # Without --scores the same sentence is tagged.
    assert len(list(tagging.tag_texts(model, [long_text], scores=False))) == 1


def test_nbest_limit_in_a_real_process(model_file, tmp_path):
    limit = tagging.NBEST_LIMIT
    texts = tmp_path / "t.txt"
    texts.write_text("Sam Li\n" + "Sam " * (limit // 1000 + 1) + "\n", encoding="utf-8")
    res = run("tag", "-m", model_file, "-f", "conll", "-n", "1000", "-i", texts, ok=False)
    one_error(res, where=f"{texts}:2", says=f"too long for --nbest 1000")
    assert res.stdout.startswith("# 0 ")   # the first text's n-best list was written
    # A huge N on a short text is refused, not an allocation failure inside the search.
    one_error(run("tag", "-m", model_file, "-f", "jsonl", "-n", "1000000000", "Sam Li",
                  ok=False), says="too long for --nbest")


def test_tag_help_states_the_limits():
    # The help is written without importing tagging (numpy), so it spells the numbers out.
    out = " ".join(run("tag", "--help").stdout.replace("│", " ").split())
    assert f"at most {tagging.NBEST_LIMIT:,}" in out and f"at most {tagging.SCORES_LIMIT:,}" in out
    assert "-i, --input" in out or "--input -i" in out


def test_nbest_of_a_long_sentence_without_crf():
    """Every path of a long sentence scores far below zero; the valid ones must still come."""
    model = make_model(False, seed=2)
    tokens = (["Sam", "Li", "in", "Paris"] * 500)
    best = model.nbest(tokens, 3)
    assert len(best) == 3
    ok_start, ok_trans = allowed_transitions(LABELS, "IOB2")
    ok_end = allowed_end(LABELS, "IOB2")
    for labels, _ in best:
        path = [LABELS.index(lab) for lab in labels]
        assert ok_start[path[0]] and ok_end[path[-1]]
        assert all(ok_trans[a, b] for a, b in zip(path, path[1:]))
    assert best[0][0] == [LABELS[k] for k in model.decode([tokens], proba=False)[0][0]]
    assert len({tuple(labels) for labels, _ in best}) == 3


# -- the pretty view prints user text literally --------------------------------------------------

@pytest.mark.parametrize("text", ["[/] Sam [bold]Li[/bold] in [red]", "Sam\\[/] :smile: [link=x]"])
def test_pretty_prints_markup_literally(model_file, text):
    out = run("tag", "-m", model_file, "-f", "pretty", text).stdout
    # The text as given, with each entity's type after it.
    assert re.sub(r" (PER|LOC)", "", out) == text + "\n", out


def test_pretty_token_label_view_prints_tokens_literally():
    # Column input (no raw text): the token/label view.
    t = tagging.Tagged(["[/]", "[bold]x"], ["O", "B-PER"], np.array([0.9, 0.8]))
    from io import StringIO

    from rich.console import Console

    from seqtag.cli.tag import render_pretty

    buf = StringIO()
    render_pretty(t, Console(file=buf, highlight=False, width=200))
    assert buf.getvalue() == "[/]/O [bold]x/B-PER\n"


# -- eval: messages about the input -------------------------------------------------------------

def test_eval_on_plain_text_says_so(model_file, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Sam Li went to Paris.\nHello world\nBye\n", encoding="utf-8")
    msg = one_error(run("eval", text, "-m", model_file, ok=False), where=f"{text}:2",
                    says="plain text")
    assert f"seqtag tag -i {text}" in msg
    msg = one_error(run("eval", "--tagged", "-", input=text.read_text(), ok=False),
                    where="<stdin>:2", says="plain text")
    assert "prediction" in msg


def test_eval_on_tokens_without_labels(model_file, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("Sam\nLi\n\nParis\n", encoding="utf-8")
    msg = one_error(run("eval", tokens, "-m", model_file, ok=False), where=f"{tokens}:1",
                    says="no gold label column")
    assert "seqtag tag --input-format conll" in msg


@pytest.mark.parametrize("content,ncols", [("Sam\tB-PER\nLi\tI-PER\n\nParis\tB-LOC\n", 2),
                                           ("Sam\nLi\n", 1)])
def test_eval_tagged_on_a_file_without_predictions(tmp_path, content, ncols):
    gold = tmp_path / "gold.tsv"
    gold.write_text(content, encoding="utf-8")
    msg = one_error(run("eval", "--tagged", gold, ok=False), where=f"{gold}:1",
                    says=f"--tagged needs a gold label and a predicted label")
    assert f"has {ncols}" in msg and "seqtag tag --input-format conll" in msg


def test_eval_keeps_the_reader_s_message_for_a_broken_column_file(model_file, tmp_path):
    # One ragged line among many is a broken column file, not plain text.
    lines = [f"w{i} x O" for i in range(12)]
    lines[3] = "w3 O"
    bad = tmp_path / "ragged.txt"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    msg = one_error(run("eval", bad, "-m", model_file, ok=False), where=f"{bad}:4")
    assert "plain text" not in msg and "columns" in msg


def test_eval_notes_gold_labels_the_model_does_not_know(model_file, tmp_path):
    text = tmp_path / "pairs.txt"
    text.write_text("Hello world\nfoo bar\n", encoding="utf-8")
    res = run("eval", text, "-m", model_file)
    assert res.stdout.startswith("processed 2 tokens.")
    assert res.stderr.startswith(f"note: no gold label of {text} is a label of the model")
    gold = tmp_path / "gold.tsv"
    gold.write_text("Sam\tB-PER\nLi\tI-PER\n", encoding="utf-8")
    assert run("eval", gold, "-m", model_file).stderr == ""


# -- --version, completion, --help ----------------------------------------------------------------

def test_version():
    res = run("--version")
    assert res.stdout == f"seqtag {seqtag.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", seqtag.__version__)


def test_help_lists_version_and_completion_without_numba():
    res = run("--help")
    for option in ("--version", "--install-completion", "--show-completion"):
        assert option in res.stdout, res
    code = ("import sys\nfrom seqtag.cli import main\nsys.argv = ['seqtag', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(str('numba' in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.stderr.endswith("False"), res


def test_shell_completion():
    # Typer's --show-completion is a flag that detects the shell of the parent process (sh under
    # make: "Shell sh not supported"); with detection off it takes the shell by name instead.
    script = run("--show-completion", "bash", argv0="seqtag",
                 env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}).stdout
    assert "_SEQTAG_COMPLETE" in script and "complete " in script
    # What the installed script does on <TAB>: the shell calls seqtag with these variables.
    env = {"_SEQTAG_COMPLETE": "complete_bash", "COMP_WORDS": "seqtag ta", "COMP_CWORD": "1"}
    assert run(argv0="seqtag", env=env).stdout.split() == ["tag"]
    env.update(COMP_WORDS="seqtag tag --inp", COMP_CWORD="2")
    assert "--input" in run(argv0="seqtag", env=env).stdout.split()


# -- licences in the package ----------------------------------------------------------------------

DATA = ROOT / "seqtag" / "data"


def test_license_file():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 the seqtag developers" in text


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples/ not present")
@pytest.mark.parametrize("name", ["LICENSE-BTC", "LICENSE-UNER-EWT"])
def test_data_licences_travel_with_the_model(name):
    assert (DATA / name).read_bytes() == (SAMPLES / name).read_bytes()
    attribution = (DATA / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert name in attribution


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_package_data_and_license_files_match_the_files():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package = ROOT / "seqtag"
    shipped = {p for pattern in config["tool"]["setuptools"]["package-data"]["seqtag"]
               for p in package.glob(pattern)}
    assert {p.name for p in shipped} >= {"default.npz", "ATTRIBUTION.md", "LICENSE-BTC",
                                         "LICENSE-UNER-EWT"}
    for pattern in config["project"]["license-files"]:
        assert list(ROOT.glob(pattern)), pattern
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8")
    for needed in ("LICENSE", "Makefile", "tests", "samples"):
        assert needed in manifest
