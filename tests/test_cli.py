"""End-to-end tests of the command line: real subprocesses, real pipes, real files.

One small model is trained once for the whole module (``seqtag train samples/tiny.tsv --hidden 16
--epochs 5``) and passed with -m; the bundled default model is never needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import seqtag

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
TINY = SAMPLES / "tiny.tsv"
UNER_DEV = SAMPLES / "uner-en_ewt-dev.iob2"
BTC_TRAIN = SAMPLES / "btc.train"
DATA = REPO.parent / "shared" / "data"
CONLL03_DEV = DATA / "conll2003" / "eng.testa"

SEQTAG = [sys.executable, "-m", "seqtag"]
# An epoch row of train's progress: "    3    1.9512        -       -    755,656     0.7s *"
EPOCH_ROW = re.compile(r"^\s*\d+\s+\d+\.\d{4}\s+(\S+%|-)\s+(\S+|-)\s+[\d,]+\s+[\d.]+s( \*)?$",
                       re.M)


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode("utf-8")
        self.stderr = proc.stderr.decode("utf-8")

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        # stderr first, and its end (where a traceback says what was raised): CI shows the
        # start of a long message and cut a traceback behind a long stdout.
        return (f"<exit {self.returncode}>\n--- stderr (its last 3000 characters) ---\n"
                f"{self.stderr[-3000:]}\n--- stdout ---\n{self.stdout[:1000]}")


def run(*args, input: str | bytes | None = None, cwd=None, env=None, ok: bool = True) -> Result:
    if isinstance(input, str):
        input = input.encode("utf-8")
    # A wide help screen, so that option descriptions are not wrapped mid-phrase.
    env = {**(env or os.environ), "COLUMNS": "200"}
    proc = subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                          cwd=cwd, env=env, timeout=300)
    res = Result(proc)
    if ok:
        assert res.returncode == 0, res
        assert "Traceback" not in res.stderr, res
    return res


def call(*args, **kw):
    """One command for run_many: call("tag", "-m", model, input="...")."""
    return args, kw


def run_many(*calls) -> list[Result]:
    """Independent commands at once (each process spends ~1 s starting up)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, *args, **kw) for args, kw in calls]
        return [f.result() for f in futures]


def read_tiny() -> list[list[tuple[str, str]]]:
    sents, cur = [], []
    for line in TINY.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tok, lab = line.split("\t")
            cur.append((tok, lab))
        elif cur:
            sents.append(cur)
            cur = []
    if cur:
        sents.append(cur)
    return sents


TINY_SENTS = read_tiny()
TINY_TOKENS = [t for s in TINY_SENTS for t, _ in s]
TINY_LABELS = Counter(lab for s in TINY_SENTS for _, lab in s)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The module's model: (path, the train run's Result)."""
    out = tmp_path_factory.mktemp("model") / "model.npz"
    res = run("train", TINY, "--no-dev", "--hidden", 16, "--epochs", 5, "--seed", 3, "-o", out)
    return out, res


@pytest.fixture(scope="module")
def model(trained) -> Path:
    return trained[0]


@pytest.fixture(scope="module")
def model_labels(model) -> list[str]:
    with zipfile.ZipFile(model) as z, z.open("labels.npy") as f:
        import numpy as np
        return np.lib.format.read_array(f).tobytes().decode("utf-8").split("\n")


# -- help --------------------------------------------------------------------------------------

def _flat(text: str) -> str:
    """Help text without Rich's box characters and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _commands():
    import typer.main

    from seqtag.cli import app
    return typer.main.get_command(app)


@pytest.mark.parametrize("command", [None, "build-vocab", "train", "tag", "eval", "inspect"])
def test_help_lists_every_option_with_a_description(command):
    group = _commands()
    cmd = group if command is None else group.commands[command]
    res = run(*([command] if command else []), "--help")
    flat = _flat(res.stdout)
    assert "Usage:" in flat
    for param in cmd.params:
        if param.param_type_name == "option":
            for opt in param.opts + param.secondary_opts:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", flat), (opt, res)
        assert param.help, f"{command} {param.name} has no description"
        # The description shows (its beginning: wrapping can only split it at spaces).
        assert _flat(param.help)[:40] in flat, (param.name, param.help, res)
    if command is None:
        for name, sub in group.commands.items():
            assert name in flat
            assert sub.help and _flat(sub.help.splitlines()[0])[:30] in flat
    else:
        assert _flat(cmd.help.splitlines()[0])[:30] in flat


@pytest.mark.parametrize("command, shown", [("train", "<corpus>.npz"),
                                            ("tag", "the bundled model"),
                                            ("tag", "pretty on a terminal"),
                                            ("eval", "the bundled model"),
                                            ("inspect", "the bundled model")])
def test_help_shows_computed_defaults(command, shown):
    # Regression: "[default: ...]" inside a help string was eaten as Rich markup.
    assert shown in _flat(run(command, "--help").stdout)


# -- build-vocab -------------------------------------------------------------------------------

def test_build_vocab_file_stdout_and_summary(tmp_path):
    out = tmp_path / "vocab.txt"
    res, res2 = run_many(call("build-vocab", TINY, "-o", out), call("build-vocab", TINY))
    assert res.stdout == ""
    text = out.read_text(encoding="utf-8")
    words_part, labels_part = text.split("\n\n")
    words = [line.split("\t") for line in words_part.splitlines()]
    assert [w for w, _ in words[:2]] == ["<pad>", "<unk>"]
    assert {w: int(c) for w, c in words[2:]} == dict(Counter(TINY_TOKENS))
    counts = [int(c) for _, c in words[2:]]
    assert counts == sorted(counts, reverse=True)
    assert {lab: int(c) for lab, c in (line.split("\t") for line in labels_part.splitlines())} \
        == dict(TINY_LABELS)

    # The summary: sentences, tokens, types, coverage, labels, where it wrote.
    err = res.stderr
    assert f"{len(TINY_SENTS)} sentences" in err
    assert f"{len(TINY_TOKENS)} tokens" in err
    assert f"{len(set(TINY_TOKENS))} word types" in err
    assert re.search(r"covering 100\.00% of tokens", err), res
    labels_line = next(line for line in err.splitlines() if line.startswith("labels: "))
    for lab, c in TINY_LABELS.items():
        assert f"{lab} {c}" in labels_line
    assert str(out) in err

    # Without -o: the same vocabulary on stdout.
    assert res2.stdout == text
    assert "covering" in res2.stderr and "wrote" not in res2.stderr


def test_build_vocab_min_count_feeds_train(tmp_path):
    vocab = tmp_path / "vocab.txt"
    run("build-vocab", TINY, "--min-count", 2, "-o", vocab)
    kept = [line for line in vocab.read_text().split("\n\n")[0].splitlines()]
    out = tmp_path / "m.npz"
    res = run("train", TINY, "--vocab", vocab, "--textbook", "--hidden", 4, "--epochs", 1, "-o", out)
    assert out.exists() and res.stdout == ""
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["vocabulary"]["size"] == len(kept)
    assert info["parameters"]["Wax"]["shape"] == [4, len(kept)]
    assert info["labels"] == dict(TINY_LABELS)


# -- train -------------------------------------------------------------------------------------

def test_train_writes_model_progress_on_stderr_only(trained):
    out, res = trained
    assert out.is_file() and out.stat().st_size > 0
    assert res.stdout == ""
    rows = EPOCH_ROW.findall(res.stderr)
    assert len(rows) == 5, res
    assert re.search(r"training on 13 sentences, 99 tokens", res.stderr)
    assert f"to {out}" in res.stderr


def test_train_default_output_and_reproducible(tmp_path):
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    args = ("train", TINY, "--hidden", 8, "--epochs", 2, "--seed", 7)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    again, other = tmp_path / "again.npz", tmp_path / "other.npz"
    res, _, _ = run_many(
        call(*args, cwd=cwd, env=env), call(*args, "-o", again, env=env),
        call("train", TINY, "--hidden", 8, "--epochs", 2, "--seed", 8, "-o", other, env=env))
    default = cwd / "tiny.npz"
    assert default.is_file(), res
    assert sorted(p.name for p in cwd.iterdir()) == ["tiny.npz"]  # no leftovers
    assert res.stdout == ""
    assert "tiny.npz" in res.stderr

    assert again.read_bytes() == default.read_bytes()
    info = json.loads(run("inspect", again, "--json").stdout)
    assert info["created"].startswith("2023-11-14T22:13:20")

    assert other.read_bytes() != default.read_bytes()


def test_train_time_budget_stops_early_with_a_usable_model(tmp_path):
    # The budget counts from the process start: start-up alone spends 0.1 s, so the run stops
    # after its first epoch (which always runs) instead of training 500.
    out = tmp_path / "budget.npz"
    res = run("train", TINY, "--hidden", 8, "--epochs", 500, "--patience", 0,
              "--time-budget", 0.1, "-o", out)
    assert len(EPOCH_ROW.findall(res.stderr)) == 1, res
    assert re.search(r"stopping after epoch 1: [\d.]+s of the --time-budget 0.1s used", res.stderr)
    assert f"saved the model of epoch 1 to {out}" in res.stderr
    assert not (tmp_path / "budget.ckpt.npz").exists()      # a complete run: nothing to resume
    info = json.loads(run("inspect", out, "--json").stdout)
    assert len(info["history"]) == 1 and "time_budget" not in info["hyperparameters"]
    tagged = run("tag", "-m", out, "--format", "inline", "Sam visited Paris .")
    assert len(tagged.stdout.split()) == 4, tagged
    bad = run("train", TINY, "--time-budget", 0, "-o", tmp_path / "x.npz", ok=False)
    assert bad.returncode == 2 and bad.stderr.startswith("ERROR:") and "--time-budget" in bad.stderr


def test_the_time_budget_counts_from_the_process_start():
    code = ("import time; time.sleep(0.5); from seqtag.cli.train import process_start; "
            "print(time.monotonic() - process_start())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 0.5 <= float(proc.stdout) < 60


# -- tag ---------------------------------------------------------------------------------------

TEXTS = ["Sam Li visited Paris .", "Maria works for Nordwind Labs in Oslo ."]


def conll_blocks(out: str) -> list[list[list[str]]]:
    assert out.endswith("\n\n") or out == ""
    return [[line.split("\t") for line in block.splitlines()]
            for block in out.split("\n\n") if block.strip()]


def test_tag_arguments_stdin_and_dash_agree(model, model_labels):
    stdin = "".join(t + "\n" for t in TEXTS)
    by_args, by_stdin, by_dash, piped, crlf = (r.stdout for r in run_many(
        call("tag", "-m", model, "-f", "conll", *TEXTS),
        call("tag", "-m", model, "-f", "conll", input=stdin),
        call("tag", "-m", model, "-f", "conll", "-", input=stdin),
        call("tag", "-m", model, input=stdin),
        call("tag", "-m", model, "-", input=stdin.replace("\n", "\r\n"))))
    blocks = conll_blocks(by_args)
    assert [[tok for tok, _ in b] for b in blocks] == [t.split() for t in TEXTS]
    assert all(lab in model_labels for b in blocks for _, lab in b)

    assert by_stdin == by_args
    assert by_dash == by_args
    assert piped == by_args  # piped output is conll without -f
    assert crlf == by_args  # CRLF line ends on stdin do not leak into the tokens


def test_tag_inline(model):
    conll, inline = run_many(call("tag", "-m", model, "-f", "conll", *TEXTS),
                             call("tag", "-m", model, "-f", "inline", *TEXTS))
    conll, lines = conll_blocks(conll.stdout), inline.stdout.splitlines()
    assert len(lines) == len(TEXTS)
    for line, block in zip(lines, conll):
        assert line == " ".join(f"{tok}/{lab}" for tok, lab in block)


def test_tag_jsonl_entities_have_char_offsets_into_the_text(model, model_labels):
    texts = ["Sam  Li visited   Paris.", "Maria works for Nordwind Labs in Oslo!",
             "  Tom and Ana Ruiz met in Lisbon  ", "The river runs past Lake Tamsin ."]
    out = run("tag", "-m", model, "-f", "jsonl", *texts).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == texts
    n_entities = 0
    for r in records:
        text = r["text"]
        assert len(r["tokens"]) == len(r["labels"]) > 0
        assert set(r["labels"]) <= set(model_labels)
        pos = 0
        for tok in r["tokens"]:  # tokens appear in order in the text
            pos = text.index(tok, pos) + len(tok)
        for e in r["entities"]:
            n_entities += 1
            assert 0 <= e["start"] < e["end"] <= len(text)
            assert text[e["start"]:e["end"]] == e["text"]
            toks = r["tokens"][e["token_start"]:e["token_end"]]
            assert e["text"].startswith(toks[0]) and e["text"].endswith(toks[-1])
            assert "".join(e["text"].split()) == "".join(toks)
            assert r["labels"][e["token_start"]][2:] == e["label"]
            assert 0.0 <= e["prob"] <= 1.0
    assert n_entities > 0  # the tiny model finds (mostly wrong) entities; offsets were checked


def _units(text: str, indexed: bool) -> list[list[str]]:
    """A column file's sentences as lists of token lines (comments and -DOCSTART- dropped)."""
    sents, cur = [], []
    for line in text.splitlines():
        if indexed and line.startswith("#"):
            continue
        if not line.strip() or line.startswith("-DOCSTART-"):
            if cur:
                sents.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        sents.append(cur)
    return sents


def check_echo(inp: str, out: str, sep: str, labels, indexed: bool = False) -> None:
    """Every input line comes back in its place: a token line with one more column (the
    predicted label), a -DOCSTART- line with an O, a comment as it was."""
    def blocks(text):
        return [block.splitlines() for block in text.split("\n\n") if block.strip()]

    want, got = blocks(inp), blocks(out)
    assert out.endswith("\n\n")
    assert "\n\n\n" not in out
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for out_line, in_line in zip(g, w):
            if indexed and in_line.startswith("#"):
                assert out_line == in_line
            elif in_line.startswith("-DOCSTART-"):
                assert out_line == in_line + sep + "O"
            else:
                assert out_line.startswith(in_line + sep)
                assert out_line[len(in_line) + 1:] in labels, (in_line, out_line)


def test_tag_conll_input_echoes_lines(model, model_labels, tmp_path):
    res, stdin, text = run_many(
        call("tag", "--input-format", "conll", "-m", model, TINY),
        call("tag", "--input-format", "conll", "-m", model, input=TINY.read_bytes()),
        call("tag", "-m", model, "-f", "conll", *[" ".join(t for t, _ in s) for s in TINY_SENTS]))
    check_echo(TINY.read_text(), res.stdout, "\t", model_labels)
    # The same from stdin, and the token column gets the same labels as text input.
    assert stdin.stdout == res.stdout
    text_out = text.stdout
    assert [[row[0], row[2]] for b in conll_blocks(res.stdout) for row in b] == \
        [row for b in conll_blocks(text_out) for row in b]


def test_tag_conll_input_indexed_iob2(model, model_labels, tmp_path):
    # The first 200 sentences of the UNER sample (comments, 5 TAB columns).
    lines = UNER_DEV.read_text(encoding="utf-8").split("\n\n")[:200]
    gold = tmp_path / "part.iob2"
    gold.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    res = run("tag", "--input-format", "conll", "-m", model, gold)
    check_echo(gold.read_text(encoding="utf-8"), res.stdout, "\t", model_labels, indexed=True)
    assert len(_units(res.stdout, False)) == 200


def test_tag_conll_input_four_space_separated_columns(model, model_labels, tmp_path):
    path = tmp_path / "four.txt"
    rows = ["-DOCSTART- -X- -X- O", ""]
    for s in TINY_SENTS:
        rows += [f"{tok} NNP I-NP {lab}" for tok, lab in s] + [""]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res, tab = run_many(call("tag", "--input-format", "conll", "-m", model, path),
                        call("tag", "--input-format", "conll", "-m", model, TINY))
    check_echo(path.read_text(), res.stdout, " ", model_labels)
    # Same predictions as the TAB-separated 2-column file: the token column is the first.
    tab = tab.stdout
    assert [line.split()[-1] for line in res.stdout.splitlines()[2:] if line] == \
        [line.split()[-1] for line in tab.splitlines() if line]


@pytest.mark.skipif(not CONLL03_DEV.exists(), reason="CoNLL-2003 not in ../shared/data")
def test_tag_conll_input_real_conll2003(model, model_labels, tmp_path):
    part = tmp_path / "testa.part"
    part.write_bytes(b"".join(CONLL03_DEV.open("rb").readlines()[:3000]))
    res = run("tag", "--input-format", "conll", "-m", model, part)
    check_echo(part.read_text(encoding="utf-8"), res.stdout, " ", model_labels)


# -- tag | eval --------------------------------------------------------------------------------

def _shell(cmd: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], capture_output=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("gold", [TINY, UNER_DEV], ids=["tiny", "uner-iob2"])
def test_tag_pipe_eval_tagged_equals_eval(model, gold):
    py = " ".join(shlex.quote(a) for a in SEQTAG)
    m, g = shlex.quote(str(model)), shlex.quote(str(gold))
    with ThreadPoolExecutor(max_workers=1) as pool:
        direct = pool.submit(run, "eval", gold, "-m", model)
        piped = _shell(f"{py} tag --input-format conll -m {m} < {g} | {py} eval --tagged -")
        direct = direct.result()
    assert piped.returncode == 0, piped
    assert b"Traceback" not in piped.stderr
    # eval with the model adds the calibration of its probabilities, which --tagged has not.
    report, calibration = direct.stdout.split("calibration (ECE", 1)
    assert piped.stdout.decode("utf-8") == report
    assert direct.stdout.startswith("processed ") and calibration.count("\n") == 1


# -- eval --------------------------------------------------------------------------------------

def test_eval_conlleval_report_and_json(model):
    res, js = run_many(call("eval", TINY, "-m", model), call("eval", TINY, "-m", model, "--json"))
    lines = res.stdout.splitlines()
    n_phrases = sum(lab.startswith("B-") for lab in TINY_LABELS.elements())
    m = re.fullmatch(r"processed (\d+) tokens with (\d+) phrases; found: (\d+) phrases; "
                     r"correct: (\d+)\.", lines[0])
    assert m, res
    assert int(m[1]) == len(TINY_TOKENS) and int(m[2]) == n_phrases
    assert re.fullmatch(r"accuracy: +\d+\.\d\d%; precision: +\d+\.\d\d%; recall: +\d+\.\d\d%; "
                        r"FB1: +\d+\.\d\d", lines[1]), res
    assert re.fullmatch(r"calibration \(ECE, 15 bins; temperature [\d.]+\): token \d+\.\d\d% of "
                        r"\d+; non-O token \d+\.\d\d% of \d+; entity \d+\.\d\d% of \d+ \(recall "
                        r"of entities above 0\.5: \d+\.\d\d%\)", lines[-1]), res
    per_type = {}
    for line in lines[2:-1]:
        mt = re.fullmatch(r" *(\S+): precision: +\d+\.\d\d%; recall: +\d+\.\d\d%; "
                          r"FB1: +\d+\.\d\d  (\d+)", line)
        assert mt, line
        per_type[mt[1]] = int(mt[2])
    assert {"LOC", "ORG", "PER"} <= set(per_type)
    assert sum(per_type.values()) == int(m[3])  # found phrases, per type

    js = json.loads(js.stdout)
    assert js["tokens"] == len(TINY_TOKENS) and js["gold"] == n_phrases
    assert js["found"] == int(m[3]) and js["correct"] == int(m[4])
    assert js["chunked"] is True
    assert f"{100 * js['accuracy']:6.2f}%" in lines[1]
    assert {t: v["found"] for t, v in js["per_type"].items() if v["found"]} == \
        {t: n for t, n in per_type.items() if n}


def test_eval_upos_file_reports_accuracy_only(model, tmp_path):
    conllu = tmp_path / "pos.conllu"
    conllu.write_text(
        "# sent_id = 1\n# text = Sam visited Paris.\n"
        "1\tSam\tSam\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n"
        "2\tvisited\tvisit\tVERB\tVBD\t_\t0\troot\t_\t_\n"
        "3\tParis\tParis\tPROPN\tNNP\t_\t2\tobj\t_\tSpaceAfter=No\n"
        "4\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
        "# sent_id = 2\n1\tMaria\tMaria\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n"
        "2\tworks\twork\tVERB\tVBZ\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    tagged = tmp_path / "pos.tagged"
    tagged.write_text("Sam\tPROPN\tPROPN\nvisited\tVERB\tVERB\nParis\tPROPN\tNOUN\n"
                      ".\tPUNCT\tPUNCT\n", encoding="utf-8")
    res, res_tagged, res_json = run_many(call("eval", conllu, "-m", model),
                                         call("eval", "--tagged", tagged),
                                         call("eval", "--tagged", tagged, "--json"))
    assert res.stdout.splitlines()[0] == "processed 6 tokens."
    assert re.fullmatch(r"accuracy: +0\.00%", res.stdout.splitlines()[1])  # NER labels ≠ UPOS
    assert "phrases" not in res.stdout and "precision" not in res.stdout
    # no entities: the token calibrations only
    assert re.fullmatch(r"calibration \(ECE, 15 bins; temperature [\d.]+\): token \d+\.\d\d% of "
                        r"6; non-O token \d+\.\d\d% of 6", res.stdout.splitlines()[2])
    assert len(res.stdout.splitlines()) == 3

    # An already tagged UPOS file (token, gold, predicted): 3 of 4 right.
    assert res_tagged.stdout == "processed 4 tokens.\naccuracy:  75.00%\n"
    js = json.loads(res_json.stdout)
    assert js["chunked"] is False and js["accuracy"] == 0.75 and js["per_type"] == {}


# -- inspect -----------------------------------------------------------------------------------

def _table_rows(text: str, title: str) -> list[list[str]]:
    block = text.split(title, 1)[1]
    rows = []
    for line in block.splitlines()[1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


def test_textbook_flag_trains_the_plain_rnn(tmp_path):
    out = tmp_path / "m.npz"
    res = run("train", TINY, "--no-dev", "--textbook", "--hidden", 16, "--epochs", 2, "-o", out)
    assert res.returncode == 0, res
    js = json.loads(run("inspect", out, "--json").stdout)
    shapes = {k: v["shape"] for k, v in js["parameters"].items()}
    L, n_words = len(TINY_LABELS), len(set(TINY_TOKENS)) + 2
    assert shapes == {"Wax": [16, n_words], "Waa": [16, 16], "Wya": [L, 16], "ba": [16],
                      "by": [L]}
    assert js["architecture"]["cell"] == "rnn" and not js["architecture"]["features"]


def test_inspect_text_and_json(model):
    from seqtag.model import FORMAT_VERSION

    sha = hashlib.sha256(TINY.read_bytes()).hexdigest()
    n_words = len(set(TINY_TOKENS)) + 2
    res_json, res_text = run_many(call("inspect", model, "--json"), call("inspect", model))
    js = json.loads(res_json.stdout)
    assert js["format_version"] == FORMAT_VERSION
    assert js["seqtag_version"] == seqtag.__version__
    hp = js["hyperparameters"]
    assert (hp["hidden"], hp["epochs"], hp["seed"], hp["optimizer"]) == (16, 5, 3, "adam")
    assert js["seed"] == 3
    [corpus] = js["corpus"]
    assert corpus["name"] == str(TINY) and corpus["sha256"] == sha
    assert (corpus["sentences"], corpus["tokens"], corpus["bytes"]) == \
        (len(TINY_SENTS), len(TINY_TOKENS), TINY.stat().st_size)
    assert js["vocabulary"]["size"] == n_words
    assert js["labels"] == dict(TINY_LABELS)
    assert list(js["labels"]) == [lab for lab, _ in sorted(TINY_LABELS.items(),
                                                            key=lambda x: (-x[1], x[0]))]
    shapes = {k: v["shape"] for k, v in js["parameters"].items()}
    L = len(TINY_LABELS)
    # The default model: a bidirectional LSTM (4 gate blocks) with features, chars and a CRF.
    arch = js["architecture"]
    assert (arch["cell"], arch["bidirectional"], arch["crf"]) == ("lstm", True, True)
    assert arch["features"] and arch["char_filters"] > 0
    n_inputs = shapes["Ex"][1]
    F, dc, d = arch["char_filters"], arch["char_dim"], arch["embed_dim"]
    assert n_inputs > n_words
    assert shapes == {"Ex": [d, n_inputs], "Wax": [64, d + F], "Waa": [64, 16], "ba": [64],
                      "Wax_b": [64, d + F], "Waa_b": [64, 16], "ba_b": [64],
                      "Wya": [L, 32], "by": [L], "trans": [L, L], "start": [L], "end": [L],
                      "Ec": [shapes["Ec"][0], dc], "Wconv": [F, 3 * dc], "bconv": [F]}
    assert [h["epoch"] for h in js["history"]] == [1, 2, 3, 4, 5]
    assert js["best_epoch"] in range(1, 6)
    assert js["label_scheme"] == "IOB2"

    out = res_text.stdout
    assert f"model format {FORMAT_VERSION}" in out
    assert f"seqtag {seqtag.__version__}" in out
    hp_line = next(line for line in out.splitlines() if line.startswith("hyperparameters:"))
    for key in ("hidden=16", "epochs=5", "seed=3", "optimizer=adam"):
        assert key in hp_line
    assert f"trained on {TINY}:" in out and f"sha256 {sha}" in out
    assert f"vocabulary: {n_words} entries" in out
    labels_line = next(line for line in out.splitlines() if line.startswith("labels"))
    for lab, c in TINY_LABELS.items():
        assert f"{lab} {c}" in labels_line
    params = {r[0]: r[1] for r in _table_rows(out, "parameters")}
    assert params == {k: "×".join(map(str, v)) for k, v in shapes.items()}
    history = _table_rows(out, "training history")
    assert [r[0] for r in history] == ["1", "2", "3", "4", "5"]
    assert [r[0] for r in history if r[-1] == "best"] == [str(js["best_epoch"])]
    for r in history:
        assert f"{float(r[1]):.4f}" == f"{js['history'][int(r[0]) - 1]['train_loss']:.4f}"


# -- closed pipes ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["text", "conll"])
def test_tag_into_closed_pipe_no_traceback(model, tmp_path, how):
    if how == "text":
        big = tmp_path / "big.txt"
        big.write_text("Sam Li visited Paris with Maria .\n" * 20000)
        args = f"-f conll < {shlex.quote(str(big))}"
    else:
        args = f"--input-format conll {shlex.quote(str(BTC_TRAIN))}"
    py = " ".join(shlex.quote(a) for a in SEQTAG)
    err = tmp_path / "err.txt"
    res = _shell(f"{py} tag -m {shlex.quote(str(model))} {args} 2> {shlex.quote(str(err))} "
                 f"| head -1; exit ${{PIPESTATUS[0]}}")
    stderr = err.read_text()
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    assert stderr == ""
    assert res.returncode in (0, 141), res  # quiet like a UNIX filter (141: SIGPIPE)
    assert len(res.stdout.decode().splitlines()) == 1


# -- on a terminal -----------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(*args, stream: str) -> tuple[int, str, str]:
    """Run with ``stream`` ("stdout" or "stderr") on a pseudo-terminal, the other on a pipe;
    returns (exit code, terminal text without ANSI codes, piped text)."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    other = subprocess.PIPE
    proc = subprocess.Popen([*SEQTAG, *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave if stream == "stdout" else other,
                            stderr=slave if stream == "stderr" else other, env=env)
    os.close(slave)
    with ThreadPoolExecutor(max_workers=1) as pool:
        piped = pool.submit((proc.stderr if stream == "stdout" else proc.stdout).read)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        piped = piped.result()
    proc.wait(timeout=300)
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")
    return proc.returncode, text, piped.decode("utf-8", "replace")


def test_train_live_progress_on_a_terminal(tmp_path):
    # Regression: Progress.reset() dropped the "loss" field, so on a terminal training died
    # with a KeyError traceback after its first epoch.
    out = tmp_path / "m.npz"
    code, term, stdout = run_on_terminal("train", TINY, "--hidden", 4, "--epochs", 3, "-o", out,
                                         stream="stderr")
    assert code == 0, term
    assert "Traceback" not in term and "Error" not in term, term
    assert out.is_file()
    assert stdout == ""
    assert len({m.group(0).split()[0] for m in EPOCH_ROW.finditer(term)}) == 3, term
    assert f"to {out}" in term


def test_tag_pretty_on_a_terminal(model):
    code, term, stderr = run_on_terminal("tag", "-m", model, *TEXTS, stream="stdout")
    assert code == 0, (term, stderr)
    assert "Traceback" not in term + stderr and stderr == ""
    lines = [line for line in term.splitlines() if line.strip()]
    assert len(lines) == len(TEXTS)
    for line, text in zip(lines, TEXTS):
        for token in text.split():
            assert token in line


def test_ctrl_c_saves_the_best_model_so_far(tmp_path):
    """SIGINT during training: exit 130, the best epoch so far is written, no traceback."""
    import signal
    import time

    out = tmp_path / "interrupted.npz"
    # A test run started in the background by a non-interactive shell (`make test &`) inherits
    # SIGINT ignored, and Python then installs no handler for it: give the child the default.
    proc = subprocess.Popen([*SEQTAG, "train", str(BTC_TRAIN), "--dev", str(SAMPLES / "btc.dev"),
                             "--epochs", "200", "--patience", "0", "--hidden", "16", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.time() + 240
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if EPOCH_ROW.match(line.rstrip("\n")):
            break
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(lines) + rest
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert "interrupted" in stderr
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["interrupted"] is True and info["best_epoch"] >= 1


# BPTT, optimizer steps, losses (crf._backward is the marginals' backward pass: tagging uses it)
TRAINING_KERNELS = re.compile(r"^(elman|lstm|gru|matmul|charcnn)\.\w*_backward|adam_step|"
                              r"sgd_step|crf_nll|softmax_xent|embed_scatter")


def test_tag_compiles_no_training_kernel(model, tmp_path):
    # Compiling costs seconds per kernel: tagging must not pay for the training ones.
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    res = run("tag", "-m", model, "--engine", "numba", "Sam visited Paris .", env=env)
    assert res.returncode == 0, res
    compiled = [p.name for p in cache.rglob("*.nbi")]
    assert any("lstm_forward" in name for name in compiled), compiled   # the cache was used
    assert any("charcnn_forward" in name for name in compiled), compiled
    assert not [n for n in compiled if TRAINING_KERNELS.search(n)], compiled
    assert TRAINING_KERNELS.search("lstm.lstm_backward-1.py311.nbi")
