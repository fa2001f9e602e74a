"""Document context (seqtag.documents): readers keep document boundaries, the codes match a
plain reference, the encoder feeds them, a model learns a task that only they can solve, and
the CLI tags documents (-DOCSTART- files, --documents paragraphs, jsonl records)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import islice

import numpy as np
import pytest

from seqtag.config import TrainConfig
from seqtag.corpus import Sentence, read_corpus, read_sentences
from seqtag.documents import FLAGS, N_CODES, InDocument, document_codes, with_context

SEQTAG = [sys.executable, "-m", "seqtag"]


# -- readers ---------------------------------------------------------------------------------

def test_conll_docstart_numbers_documents(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("a O\n\n-DOCSTART- -X- O\n\nb O\n\nc O\n-DOCSTART- -X- O\nd O\n\n"
                    "-DOCSTART- -X- O\n\n-DOCSTART- -X- O\ne O\n")
    sents = list(read_sentences(str(path)))
    assert [(s.tokens, s.document) for s in sents] == [
        (["a"], None), (["b"], 0), (["c"], 0), (["d"], 1), (["e"], 3)]


def test_conllu_newdoc_numbers_documents(tmp_path):
    path = tmp_path / "d.conllu"
    row = "1\t{}\t_\tNOUN\t_\t_\t0\troot\t_\t_\n"
    path.write_text("# newdoc id = x\n# sent_id = 1\n" + row.format("a") + "\n"
                    "# sent_id = 2\n" + row.format("b") + "\n"
                    "# newdoc\n" + row.format("c") + "\n")
    sents = list(read_sentences(str(path)))
    assert [(s.tokens, s.labels, s.document) for s in sents] == [
        (["a"], ["NOUN"], 0), (["b"], ["NOUN"], 0), (["c"], ["NOUN"], 1)]


def test_a_file_without_boundaries_has_no_documents(samples):
    assert all(s.document is None for s in read_corpus(str(samples / "tiny.tsv"))[0])


# -- the codes --------------------------------------------------------------------------------

def reference_codes(document):
    """Each token's flags by looking at every other occurrence in turn."""
    occurrences = [(si, i, tok) for si, sent in enumerate(document) for i, tok in enumerate(sent)]

    def cap(tok):
        return tok[:1].isupper() and any(c.isalpha() for c in tok)

    out = []
    for si, sent in enumerate(document):
        codes = []
        for i, tok in enumerate(sent):
            flags = [False] * 3
            if any(c.isalpha() for c in tok):
                for sj, j, other in occurrences:
                    if (sj, j) == (si, i) or other.casefold() != tok.casefold():
                        continue
                    s2 = document[sj]
                    flags[0] |= cap(other) and j > 0
                    flags[1] |= cap(other) and ((j > 0 and cap(s2[j - 1])) or
                                                (j + 1 < len(s2) and cap(s2[j + 1])))
                    flags[2] |= other.islower()
            codes.append(sum(1 << k for k in range(3) if flags[k]))
        out.append(codes)
    return out


def test_codes_match_a_plain_reference():
    rng = np.random.default_rng(0)
    forms = ["Kor", "kor", "KOR", "Bel", "bel", "New", "York", "the", "The", "12", ".", "Ünal",
             "ünal", "x-Ray"]
    for _ in range(200):
        doc = [[forms[k] for k in rng.integers(0, len(forms), rng.integers(1, 7))]
               for _ in range(rng.integers(1, 5))]
        assert [c.tolist() for c in document_codes(doc)] == reference_codes(doc)


def test_codes_of_a_known_document():
    doc = [["Bill", "Clinton", "spoke", "."], ["Clinton", "left", "."], ["CLINTON", "WINS"],
           ["a", "win", "for", "Clinton"]]
    codes = document_codes(doc)
    # "Clinton" at a sentence start: elsewhere capitalised mid-sentence and in a longer name
    assert codes[1][0] == 1 | 2
    # "CLINTON" in a headline: the name written in full elsewhere; "WINS" occurs once
    assert codes[2][0] == 1 | 2 and codes[2][1] == 0
    assert codes[0][2] == 0 and codes[3][2] == 0          # "spoke", "for": once each
    assert N_CODES == 8 and FLAGS == ("cap", "inseq", "lower")


def test_with_context_groups_documents_and_leaves_loose_sentences_inert():
    sents = [Sentence(["Kor", "ran"], None, [], 1, document=None),
             Sentence(["Kor", "ran"], None, [], 2, document=0),
             Sentence(["saw", "Kor"], None, [], 3, document=0),
             Sentence(["Kor", "ran"], None, [], 4, document=1)]
    out = list(with_context(sents))
    # "Kor" at a start sees "saw Kor" (capitalised, not first); that one sees only a start
    assert [s.tokens.context.tolist() for s in out] == [[0, 0], [1, 0], [0, 0], [0, 0]]
    assert all(isinstance(s.tokens, InDocument) for s in out)


def test_with_context_reads_one_document_ahead_at_most():
    """Streaming: the first document's sentences come out before the reader passes the next
    document's first sentence (memory bounded by the largest document)."""
    read = []

    def endless():
        for n in range(10 ** 9):
            read.append(n)
            yield Sentence(["w"], None, [], n, document=n // 3)

    first = list(islice(with_context(endless()), 3))
    assert [s.line_no for s in first] == [0, 1, 2] and len(read) == 4


def test_encoder_adds_the_code_column(tiny):
    from seqtag.build import build_model

    cfg = TrainConfig(hidden=4, embed_dim=4, char_filters=0, features="shape")
    docs = [Sentence(s.tokens, s.labels, [], 0, document=0) for s in tiny]
    model, _ = build_model(cfg, docs, np.random.default_rng(0))
    assert model.architecture.document and "document-context" in model.meta["requires"]
    enc = model.encoder
    base = enc.n_inputs - N_CODES
    tokens = tiny[0].tokens
    codes = np.arange(len(tokens)) % N_CODES
    with_codes = enc.encode(InDocument(tokens, codes.astype(np.int8)))
    plain = enc.encode(list(tokens))
    assert with_codes.shape == (len(tokens), 3) and enc.n_columns == 3
    assert (with_codes[:, 2] == base + codes).all() and (plain[:, 2] == base).all()
    assert (with_codes[:, :2] == plain[:, :2]).all()


# -- training ---------------------------------------------------------------------------------

def small_config(**changes):
    return TrainConfig(**{**dict(hidden=8, embed_dim=8, char_filters=0, features="casing",
                                 epochs=2, batch_size=8, patience=0, seed=3, threads=1),
                          **changes})


def test_without_boundaries_the_model_is_the_one_without_the_option(tiny):
    from seqtag.training import Trainer

    on = Trainer(small_config()).fit(tiny).model_
    off = Trainer(small_config(document_context=False)).fit(tiny).model_
    assert not on.architecture.document and "requires" not in on.meta
    assert set(on.params) == set(off.params)
    for k in on.params:
        assert np.array_equal(on.params[k], off.params[k]), k


NAMES = ["kor", "bel", "tam", "vex", "dol", "mir", "sul", "pav", "ren", "gos", "lut", "fim"]


def synthetic_documents(n_docs: int, seed: int) -> list[Sentence]:
    """Documents where a capitalised word at a sentence start is an entity (B-ENT) when the
    document also writes it capitalised mid-sentence, and not one (O) when it also writes it in
    lower case: the sentence alone cannot tell the two apart, its document can."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(n_docs):
        word = NAMES[rng.integers(len(NAMES))]
        entity = bool(rng.integers(2))
        start = [word.capitalize(), "went", "home", "."]
        other = ["we", "saw", "the", word.capitalize() if entity else word, "today", "."]
        pair = [(start, ["B-ENT" if entity else "O", "O", "O", "O"]),
                (other, ["O", "O", "O", "B-ENT" if entity else "O", "O", "O"])]
        if rng.integers(2):
            pair.reverse()
        out += [Sentence(t, lab, [], 0, document=d) for t, lab in pair]
    return out


def target_accuracy(model, sents) -> float:
    """Accuracy on the sentence-initial words, the ones only the document decides."""
    if model.architecture.document:
        sents = list(with_context(sents))      # codes from the whole document
    starts = [s for s in sents if s.tokens[1] == "went"]
    predicted = model.predict([s.tokens for s in starts])
    return float(np.mean([p[0] == s.labels[0] for p, s in zip(predicted, starts)]))


@pytest.fixture(scope="module")
def synthetic_models():
    from seqtag.training import Trainer

    train = synthetic_documents(300, 1)
    cfg = dict(epochs=12, lr=0.01, word_dropout=0.0, feature_dropout=0.0, dropout=0.0)
    with_doc = Trainer(small_config(**cfg)).fit(train).model_
    without = Trainer(small_config(document_context=False, **cfg)).fit(
        synthetic_documents(300, 1)).model_
    return with_doc, without


def test_a_model_learns_what_only_the_document_tells(synthetic_models):
    with_doc, without = synthetic_models
    test = synthetic_documents(200, 2)
    assert with_doc.architecture.document and not without.architecture.document
    assert target_accuracy(with_doc, test) >= 0.95
    # without the document the sentence-initial word is a coin toss
    assert target_accuracy(without, test) <= 0.7


# -- model files ------------------------------------------------------------------------------

def test_the_model_file_keeps_document_context(synthetic_models, tmp_path):
    from seqtag.model import RNNTagger

    path = tmp_path / "m.npz"
    synthetic_models[0].save(path)
    again = RNNTagger.load(path)
    assert again.architecture.document
    assert again.meta["architecture"]["document_context"] == list(FLAGS)
    assert "document-context" in again.meta["requires"]
    sents = list(with_context(synthetic_documents(20, 5)))
    assert again.predict([s.tokens for s in sents]) == \
        synthetic_models[0].predict([s.tokens for s in sents])


def test_an_older_model_without_context_tags_documents(bundled_model, tmp_path):
    assert not bundled_model.architecture.document
    path = tmp_path / "d.conll"
    path.write_text("-DOCSTART- -X- O\n\nBill Clinton spoke .\n".replace(" ", "\n")
                    .replace("-DOCSTART-\n-X-\nO", "-DOCSTART- -X- O"))
    from seqtag.tagging import tag_sentences

    tagged = list(tag_sentences(bundled_model, read_sentences(str(path), labels="none")))
    assert tagged[0].tokens == ["Bill", "Clinton", "spoke", "."]


# -- the command line -------------------------------------------------------------------------

def run(*args, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SEQTAG, *map(str, args)], input=input, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory, synthetic_models):
    """The synthetic model's file, and test documents as a -DOCSTART- file."""
    root = tmp_path_factory.mktemp("docs")
    model = root / "m.npz"
    synthetic_models[0].save(model)
    sents = synthetic_documents(30, 7)
    lines, doc = [], None
    for s in sents:
        if s.document != doc:
            lines += ["-DOCSTART- -X- O", ""]
            doc = s.document
        lines += [f"{t} {lab}" for t, lab in zip(s.tokens, s.labels)] + [""]
    conll = root / "test.conll"
    conll.write_text("\n".join(lines) + "\n")
    return model, conll, sents


def test_cli_tags_docstart_files_with_their_documents(synthetic_files):
    model, conll, sents = synthetic_files
    out = run("tag", "-m", model, "-i", conll, "--input-format", "conll", "--threads", "1",
              "--engine", "numpy").stdout
    predicted = [line.split()[-1] for line in out.splitlines()
                 if line.strip() and not line.startswith("-DOCSTART-")]
    # the documents' lines come back in their places
    assert [line for line in out.splitlines() if line.startswith("-DOCSTART-")] == \
        ["-DOCSTART- -X- O O"] * len({s.document for s in sents})
    gold = [lab for s in sents for lab in s.labels]
    assert predicted == gold
    res = run("eval", "-m", model, conll)
    assert "100.00" in res.stdout


def test_cli_documents_and_jsonl_records(synthetic_files):
    model, _, sents = synthetic_files
    docs: dict[int, list[Sentence]] = {}
    for s in sents:
        docs.setdefault(s.document, []).append(s)
    paragraphs = "\n\n".join("\n".join(" ".join(s.tokens) for s in d) for d in docs.values())
    gold = [s.labels for s in sents]

    def labels(out):
        return [r["labels"] for r in map(json.loads, out.splitlines())
                if r["tokens"]]

    with_docs = run("tag", "-m", model, "--documents", "-f", "jsonl", "--threads", "1",
                    input=paragraphs + "\n").stdout
    assert labels(with_docs) == gold
    records = "".join(json.dumps({"text": [" ".join(s.tokens) for s in d]}) + "\n"
                      for d in docs.values())
    as_records = run("tag", "-m", model, "--input-format", "jsonl", "-f", "jsonl",
                     "--threads", "1", input=records).stdout
    assert labels(as_records) == gold
    # each line alone: the sentence-initial words lose their document
    alone = labels(run("tag", "-m", model, "-f", "jsonl", "--threads", "1",
                       input=paragraphs + "\n").stdout)
    assert alone != gold


def test_fine_tuning_keeps_the_document_columns(synthetic_models):
    from seqtag.finetune import extend, init_config
    from seqtag.training import Trainer

    old = synthetic_models[0]
    cfg = init_config(old, {})
    assert cfg.document_context
    more = [Sentence(["Zed", "went", "away", "."], ["B-ENT", "O", "O", "O"], [], 0, document=0),
            Sentence(["the", "Zed", "."], ["O", "B-ENT", "O"], [], 0, document=0)]
    new, added = extend(old, more, cfg, np.random.default_rng(0))
    assert added.words == 2 and new.architecture.document
    codes = slice(new.encoder.n_inputs - N_CODES, None)
    assert np.array_equal(new.params["Ex"][:, codes],
                          old.params["Ex"][:, old.encoder.n_inputs - N_CODES:])
    tuned = Trainer(init_config(old, {"epochs": 1})).fit(more, init=old).model_
    assert tuned.architecture.document and "document-context" in tuned.meta["requires"]
    # from a model without document context, on data with documents: still none
    base = synthetic_models[1]
    assert not init_config(base, {}).document_context
    assert not Trainer(init_config(base, {"epochs": 1})).fit(
        more, init=base).model_.architecture.document


def test_sentences_with_codes_keep_them():
    """A batch cut from a document (Dask's) keeps the codes of its whole document."""
    doc = [Sentence(["Kor", "ran"], None, [], 1, document=0),
           Sentence(["saw", "the", "Kor"], None, [], 2, document=0)]
    whole = [s.tokens.context.tolist() for s in with_context(doc)]
    assert whole[0] == [1, 0]
    again = list(with_context(doc[:1]))
    assert again[0].tokens.context.tolist() == [1, 0]


def test_a_window_and_document_context_train_and_tag_together():
    """--window with documents: the rows had one column too many (the window's copy filled the
    document code's place as well), and training stopped with a traceback."""
    from seqtag.training import Trainer

    train = synthetic_documents(40, 2)
    model = Trainer(small_config(window=1, char_filters=4, char_dim=3)).fit(train).model_
    assert model.architecture.document and model.architecture.window == 1
    ids = model.encoder.encode_batch([s.tokens for s in train[:3]])[0]
    assert ids.shape[1] == model.encoder.n_columns
    tagged = model.predict([s.tokens for s in with_context(train[:4])])
    assert [len(t) for t in tagged] == [len(s.tokens) for s in train[:4]]
