# seqtag: `make demo` tags a sentence with the bundled model, `make test` runs the whole suite.
# Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SEQTAG := $(VENV)/bin/seqtag
SHARED := ../shared/data
# The bundled model: the default configuration (see README), its seed written out.
MODEL_FLAGS := --seed 1

.PHONY: install install-test demo test fuzz model bench bench-deps bench-accuracy bench-calibration bench-explain bench-startup bench-train bench-protein bench-dna bench-finetune clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files make the installs run once, and again only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(SEQTAG) tag "Sam Li and Tom date on Tuesday."

test: install-test
	$(PY) -m pytest -q

# Property-based fuzzing (tests/fuzz): over 10,000 random inputs to the readers, the tokenizer,
# the model loader and the CLI; prints a table of outcomes per input class (also fuzz-report.md).
# The ordinary test run covers the same properties with a small deterministic profile.
fuzz: install-test
	HYPOTHESIS_PROFILE=fuzz FUZZ_REPORT=fuzz-report.md $(PY) -m pytest -q -p no:cacheprovider tests/fuzz

# Rebuild the bundled model from the freely licensed data in samples/ (see samples/README.md);
# --portable: kernels compiled for x86-64-v3, so that any x86-64 machine with AVX2 builds the
# same bytes from the same commit.
model: install
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(SEQTAG) train samples/btc.train samples/uner-en_ewt-dev.iob2 \
		--dev samples/btc.dev --portable $(MODEL_FLAGS) -o seqtag/data/default.npz
	$(SEQTAG) eval samples/btc.test -m seqtag/data/default.npz
	$(SEQTAG) eval samples/uner-en_ewt-test.iob2 -m seqtag/data/default.npz
	@$(PY) -c "import hashlib; print('sha256', hashlib.sha256(open('seqtag/data/default.npz', 'rb').read()).hexdigest(), 'seqtag/data/default.npz')"

$(VENV)/.installed-bench: | $(VENV)/.installed
	$(PIP) install --quiet torch==2.13.0 threadpoolctl
	touch $@

# Dask for bench_dask.py: the optional extra.
$(VENV)/.installed-dask: pyproject.toml | $(VENV)/.installed
	$(PIP) install --quiet -e '.[dask]'
	touch $@

bench-deps: $(VENV)/.installed-bench $(VENV)/.installed-dask

# Speed and accuracy against PyTorch on CoNLL-2003 (needs ../shared/data); prints ratios: the
# textbook RNN against its PyTorch twin, then the default model against its PyTorch equivalent.
# Then the kernels' efficiency (GFLOP/s of the default model against this machine's one-thread
# matmul peak; the vector registers the kernels compile to) and whole `seqtag tag` processes
# over every sentence of the shared corpora (tokens/s, peak memory); that corpus again on 1 and 2
# Dask workers against one process (tokens/s, scaling). Last, the sha256 of a `train --portable`
# model against those recorded on other CPUs (bench/portable_models.json).
bench: bench-deps
	OMP_WAIT_POLICY=passive $(PY) bench/bench_rnn.py --data $(SHARED)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_default.py --data $(SHARED)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_efficiency.py --data $(SHARED)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_whole.py --data $(SHARED)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_dask.py --data $(SHARED)
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_portable.py

# The default training on CoNLL-2003 as one whole `seqtag train` process, timed (minutes).
bench-train: install
	$(PY) bench/bench_whole.py --data $(SHARED) --train --repeats 1

# The bundled model fine-tuned (train --init default) on the first 1,000 sentences of CoNLL-2003
# against a model trained from scratch on them, test F1 of both (needs ../shared/data; whole
# single-threaded `seqtag train` processes, minutes).
bench-finetune: install
	$(PY) bench/bench_finetune.py --data $(SHARED) $(BENCH_FLAGS)

# Start-up time of `seqtag --help` and `seqtag tag "..."` against `python -c "import numpy"`.
bench-startup: install
	$(PY) bench/bench_startup.py --importtime

# python-crfsuite is the accuracy benchmark's baseline only: installed here, not a seqtag dependency.
$(VENV)/.installed-bench-accuracy: | $(VENV)/.installed
	$(PIP) install --quiet python-crfsuite
	touch $@

# Accuracy against a CRFsuite baseline on CoNLL-2003, CoNLL-2000, UD EWT, BTC and UNER EWT
# (needs ../shared/data); BENCH_FLAGS passes e.g. --quick, --corpora btc,uner or --seqtag-flags.
bench-accuracy: $(VENV)/.installed-bench-accuracy
	OMP_WAIT_POLICY=passive $(PY) bench/bench_accuracy.py --data $(SHARED) $(BENCH_FLAGS)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_calibration.py --data $(SHARED)
	OMP_WAIT_POLICY=passive $(PY) bench/bench_protein.py --data $(SHARED)

# ECE before and after the fitted temperature: the bundled model on BTC and UNER test, a default
# model trained here on CoNLL-2003 (several minutes).
bench-calibration: install
	OMP_WAIT_POLICY=passive $(PY) bench/bench_calibration.py --data $(SHARED)

# Faithfulness of seqtag explain on CoNLL-2003 test (trains a default model first; several minutes).
bench-explain: install
	OMP_WAIT_POLICY=passive $(PY) bench/bench_explain.py --data $(SHARED)

# Protein bar: test Q3 of the default (character-level) model on Qian & Sejnowski's split,
# seeds 1-3 and their mean (needs ../shared/data; a few minutes on one thread); then the same
# from plain column files through `seqtag train` (the same model when the level is detected).
bench-protein: install
	OMP_WAIT_POLICY=passive $(PY) bench/bench_protein.py --data $(SHARED) --columns

# DNA bar: seqtag against the Bayes limit of a CpG-island HMM (bench/dna_hmm.py, its parameters
# written there), trained on 1M generated nucleotides; tagging speed on 2 threads.
bench-dna: install
	OMP_WAIT_POLICY=passive $(PY) bench/dna_hmm.py

clean:
	rm -rf $(VENV) build *.egg-info
