"""The command line on biological sequences, in real subprocesses: train, tag and eval with
--input-format fasta|seqlabels, the fasta/conll/bed outputs, gzip, windows and the errors.

The module trains one small model on a toy task whose labels are a function of the residue
(purine 'p' or pyrimidine 'y'; soft-masked lowercase letters and N are 'n'), so its tagging can
be checked exactly against labels computed here.
"""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest

from test_cli import run, run_many

LABEL = {"A": "p", "G": "p", "C": "y", "T": "y"}


def labels_of(seq: str) -> str:
    return "".join(LABEL.get(c, "n") for c in seq)


def random_seq(rng: random.Random, n: int, alphabet: str = "ACGT") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def write_fasta(path, records: dict[str, str], width: int | None = 60, gz: bool = False):
    lines = []
    for rid, seq in records.items():
        lines.append(f">{rid} some description")
        lines += [seq[i:i + width] for i in range(0, len(seq), width)] if width else [seq]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_label_fasta(text: str) -> dict[str, str]:
    out, rid = {}, None
    for line in text.splitlines():
        if line.startswith(">"):
            rid = line[1:].split()[0]
            out[rid] = ""
        else:
            out[rid] += line
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("seqs")
    rng = random.Random(7)
    train = [random_seq(rng, rng.randint(20, 120), "ACGTACGTacgtN") for _ in range(300)]
    (d / "train.tsv").write_text("".join(f"r{i}\t{s}\t{labels_of(s)}\n"
                                         for i, s in enumerate(train)))
    test = {f"t{i}": random_seq(rng, rng.randint(30, 400), "ACGTACGTacgtN") for i in range(12)}
    write_fasta(d / "test.fa", test)
    write_fasta(d / "test.labels.fa", {k: labels_of(v) for k, v in test.items()}, width=None)
    write_fasta(d / "test.fa.gz", test, gz=True)
    write_fasta(d / "test.labels.fa.gz", {k: labels_of(v) for k, v in test.items()}, gz=True)
    return d, test


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    d, _ = data
    out = tmp_path_factory.mktemp("m") / "dna.npz"
    res = run("train", d / "train.tsv", "--input-format", "seqlabels", "--textbook", "--hidden",
              8, "--epochs", 6, "--lr", 0.05, "--seed", 1, "--threads", 1, "-o", out)
    assert "saved the model" in res.stderr
    return out


def test_tag_fasta_gives_a_label_string_per_record(data, model):
    d, test = data
    plain, gz, stdin = run_many(
        (("tag", "--input-format", "fasta", d / "test.fa", "-m", model), {}),
        (("tag", "--input-format", "fasta", "-i", d / "test.fa.gz", "-m", model), {}),
        (("tag", "--input-format", "fasta", "-", "-m", model),
         {"input": (d / "test.fa.gz").read_bytes()}))
    assert plain.stdout == gz.stdout == stdin.stdout
    headers = [line for line in plain.stdout.splitlines() if line.startswith(">")]
    assert headers == [f">{k} some description" for k in test]
    assert read_label_fasta(plain.stdout) == {k: labels_of(v) for k, v in test.items()}


def test_seqlabels_input_and_conll_output_score_with_eval_tagged(data, model, tmp_path):
    d, test = data
    lines = "".join(f"{k}\t{v}\t{labels_of(v)}\n" for k, v in test.items())
    (tmp_path / "test.tsv").write_text(lines)
    conll = run("tag", "--input-format", "seqlabels", tmp_path / "test.tsv", "-m", model,
                "-f", "conll")
    rows = conll.stdout.split("\n\n")[0].splitlines()
    first = next(iter(test.values()))
    assert rows == [f"{r}\t{labels_of(r)}\t{labels_of(r)}" for r in first]
    scored = run("eval", "--tagged", "-", input=conll.stdout)
    assert "accuracy: 100.00%" in scored.stdout
    # a seqlabels line of one column is a record to tag
    bare = run("tag", "--input-format", "seqlabels", "-", "-m", model,
               input="ACGTN\nacg\n")
    assert bare.stdout == ">1\npypyn\n>2\nnnn\n"


def test_eval_reports_per_residue_accuracy(data, model):
    d, test = data
    text, js = run_many(
        (("eval", d / "test.fa", "--input-format", "fasta", "--labels", d / "test.labels.fa",
          "-m", model), {}),
        (("eval", d / "test.fa.gz", "--input-format", "fasta", "--labels",
          d / "test.labels.fa.gz", "-m", model, "--json"), {}))
    n = sum(len(v) for v in test.values())
    assert f"residues: {n:,} in {len(test)} records; per-residue accuracy (Q3): 100.00%" \
        in text.stdout, text
    scores = json.loads(js.stdout)
    assert scores["residues"]["residues"] == n and scores["residues"]["accuracy"] == 1.0
    assert set(scores["residues"]["per_label"]) == {"p", "y", "n"}


def test_bed_lists_runs_of_non_background_labels(data, model):
    d, test = data
    default, explicit = run_many(
        (("tag", "--input-format", "fasta", d / "test.fa", "-m", model, "-f", "bed"), {}),
        (("tag", "--input-format", "fasta", d / "test.fa", "-m", model, "-f", "bed",
          "--background", "n"), {}))

    def runs(background):
        out = []
        for rid, seq in test.items():
            for m in re.finditer(r"(.)\1*", labels_of(seq)):
                if m.group(1) != background:
                    out.append(f"{rid}\t{m.start()}\t{m.end()}\t{m.group(1)}")
        return out

    # the training data's most frequent label is the background by default
    train = (d / "train.tsv").read_text()
    counts = {lab: sum(line.split("\t")[2].count(lab) for line in train.splitlines())
              for lab in "pyn"}
    assert default.stdout.splitlines() == runs(max(counts, key=counts.get))
    assert explicit.stdout.splitlines() == runs("n")


def test_train_on_fasta_with_label_fasta_and_dev(data, tmp_path):
    d, test = data
    res = run("train", d / "test.fa.gz", "--labels", d / "test.labels.fa", "--input-format",
              "fasta", "--dev", d / "test.fa", "--dev-labels", d / "test.labels.fa.gz",
              "--textbook", "--hidden", 8, "--epochs", 2, "--threads", 1, "--max-length", 50,
              "-o", tmp_path / "m.npz")
    n = sum(len(v) for v in test.values())
    # records cut into chunks of at most 50 residues
    chunks = sum((len(v) + 49) // 50 for v in test.values())
    assert f"training on {chunks:,} sentences, {n:,} tokens" in res.stderr, res
    info = run("inspect", tmp_path / "m.npz")
    assert "test.fa.gz" in info.stdout


def test_long_record_in_windows_equals_one_window(model, tmp_path):
    rng = random.Random(3)
    seq = random_seq(rng, 300_000, "ACGTacgtN")
    write_fasta(tmp_path / "chr.fa", {"chr1": seq})
    small, whole, threads = run_many(
        (("tag", "--input-format", "fasta", tmp_path / "chr.fa", "-m", model, "--chunk", 1000,
          "--overlap", 100, "--threads", 1), {}),
        (("tag", "--input-format", "fasta", tmp_path / "chr.fa", "-m", model, "--chunk",
          400_000), {}),
        (("tag", "--input-format", "fasta", tmp_path / "chr.fa", "-m", model, "--chunk", 1000,
          "--overlap", 100, "--threads", 3, "--batch-size", 7), {}))
    assert small.stdout == whole.stdout == threads.stdout
    assert read_label_fasta(small.stdout)["chr1"] == labels_of(seq)


@pytest.mark.parametrize("files, args, words", [
    ({"s.fa": ">a\nAC1T\n"}, ["tag", "--input-format", "fasta", "s.fa"],
     "s.fa:2: character '1' at column 3 is not a residue"),
    ({"s.fa": "ACGT\n"}, ["tag", "--input-format", "fasta", "s.fa"],
     "s.fa:1: a sequence line comes before any '>' header"),
    ({"s.fa": ">a\n>b\nAC\n"}, ["tag", "--input-format", "fasta", "s.fa"],
     "s.fa:1: record 'a' has no sequence"),
    ({"s.tsv": "ACGT\tppy\n"}, ["eval", "--input-format", "seqlabels", "s.tsv"],
     "s.tsv:1: record '1' has 4 residues but 3 labels"),
    ({"s.fa": ">a\nAC\n", "l.fa": ">b\npy\n"},
     ["eval", "--input-format", "fasta", "s.fa", "--labels", "l.fa"],
     "l.fa:1: label record 'b' where the labels of sequence 'a'"),
    ({"s.fa": ">a\nAC\n"}, ["train", "--input-format", "fasta", "s.fa"],
     "needs one --labels FILE per sequence file"),
    ({"s.fa": ">a\nAC\n"}, ["eval", "--input-format", "fasta", "s.fa"],
     "s.fa: FASTA sequences need their labels"),
    ({"s.fa": ">a\nAC\n"}, ["tag", "--input-format", "fasta", "s.fa", "-f", "jsonl"],
     "-f jsonl is not an output for sequences"),
    ({"s.fa": ">a\nAC\n"}, ["tag", "--input-format", "fasta", "s.fa", "--chunk", 10,
                            "--overlap", 10], "--overlap is 10"),
    ({"s.fa": ">a\nAC\n"}, ["tag", "--input-format", "fasta", "s.fa", "-f", "bed",
                            "--background", "Q"], "--background 'Q' is not a label"),
    ({"s.tsv": "ACGT\tpp\n"}, ["tag", "--input-format", "seqlabels", "s.tsv", "--labels",
                               "s.tsv"], "--labels goes with --input-format fasta"),
    ({"s.txt": "hello\n"}, ["tag", "-i", "s.txt", "-f", "bed"], "-f bed is for sequences"),
    ({"s.fa": ">a\nAC\n"}, ["tag", "--input-format", "fasta", "s.fa", "--workers", 2],
     "sequences are tagged in one process"),
    ({"s.tsv": "ACGT\tpypy\n"}, ["eval", "--input-format", "seqlabels", "s.tsv", "--plot",
                                  "x.png"], "--plot is for column files"),
])
def test_errors_are_one_line(model, tmp_path, files, args, words):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    res = run(*args, *(["-m", model] if args[0] != "train" else []), cwd=tmp_path, ok=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and words in lines[0], res


def test_gzip_text_and_column_inputs_read_like_plain_ones(model, tmp_path):
    text = "A C G\nT T a\n"
    conll = "A\tp\nC\ty\n\nG\tp\n"
    (tmp_path / "t.txt").write_text(text)
    (tmp_path / "t.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "c.tsv").write_text(conll)
    (tmp_path / "c.tsv.gz").write_bytes(gzip.compress(conll.encode()))
    a, b, c, e = run_many(
        (("tag", "-m", model, "-i", tmp_path / "t.txt"), {}),
        (("tag", "-m", model, "-i", tmp_path / "t.txt.gz"), {}),
        (("tag", "-m", model, "--input-format", "conll", tmp_path / "c.tsv.gz"), {}),
        (("eval", "-m", model, tmp_path / "c.tsv.gz"), {}))
    assert a.stdout == b.stdout and a.stdout.count("\n") == 8
    assert c.stdout == "A\tp\tp\nC\ty\ty\n\nG\tp\tp\n\n"
    assert "accuracy: 100.00%" in e.stdout
