"""The model shipped in the package: present, well-formed, trained only on freely licensed data,
and doing the job the README's first command shows."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path



def test_bundled_model_loads_and_is_trained_on_samples_only(bundled_model, samples):
    model = bundled_model
    corpora = model.meta["corpus"] + [model.meta["dev_corpus"]]
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in samples.iterdir() if p.is_file()}
    for c in corpora:
        name = Path(c["name"]).name
        # Only freely licensed files from samples/, byte for byte, and never a test split.
        assert shipped.get(name) == c["sha256"], c
        assert "test" not in name, c
    assert set(model.labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_demo_sentence_marks_the_persons():
    out = subprocess.run([sys.executable, "-m", "seqtag", "tag", "--format", "jsonl",
                          "Sam Li and Tom date on Tuesday."],
                         capture_output=True, text=True, check=True, timeout=120)
    entities = json.loads(out.stdout)["entities"]
    assert [(e["text"], e["label"]) for e in entities if e["label"] == "PER"] == \
        [("Sam Li", "PER"), ("Tom", "PER")]


def test_bundled_model_has_the_default_configuration(bundled_model):
    # `make model` trains with no options but the seed: a change of the defaults must retrain it.
    from seqtag.build import hyperparameters
    from seqtag.config import TrainConfig

    # Trained on words, at level auto: the word level. Options added since the model was built
    # (level, window, ensemble, document_context: BTC has no documents, refit) count at the values
    # that build it again.
    recorded = {"level": "word", "window": 0, "ensemble": 1, "document_context": True,
                "refit": False,
                **bundled_model.meta["hyperparameters"]}
    assert recorded == hyperparameters(TrainConfig(level="word"))
