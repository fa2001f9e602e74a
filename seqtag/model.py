"""The recurrent tagger: a network with its inventories and metadata.

RNNTagger is what a model file holds (seqtag.modelfile reads and writes it): the vocabulary and
labels, the word-form features and the character inventory, the parameters, and the metadata
(architecture, training history). From them it builds, once, the input encoder
(seqtag.encoding) and the network (seqtag.network, a composition of seqtag.layers); tagging is
encode → network → decode (seqtag.decoding), all from one pass of emissions per batch.

The textbook Elman RNN is the base case: one direction, one input id per token,
a<t> = tanh(Waa·a<t-1> + Wax·x<t> + ba), ŷ<t> = softmax(Wya·a<t> + by). The architecture adds a
backward direction (its own Wax_b, Waa_b, ba_b, states joined before the output layer, so Wya
is L × 2H), GRU or LSTM cells (gates stacked in the rows of Wax, Waa, ba), word-form features
(more columns of Wax; see seqtag.features), a CRF output layer (trans, start, end), and the
embedded input: x<t> = [Σ Ex columns of the word and its features ; the character CNN's vector
of its spelling] with Wax of G × (d + filters) — the usual BiLSTM-CNN-CRF, about 4H/d times
smaller than the multi-hot model.

The model file (save, load and its checks) is seqtag.modelfile.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from seqtag.chars import CharVocab
from seqtag.encoding import Encoder, pack  # noqa: F401  (pack: the batch layout, re-exported)
from seqtag.features import FeatureSet
from seqtag.network import Architecture, Network
from seqtag.vocab import Vocabulary

MAGIC = "seqtag-model"
FORMAT_VERSION = 3      # of the files save writes; seqtag.modelfile tells the versions
PARAM_NAMES = ("Wax", "Waa", "Wya", "ba", "by")        # the textbook model's
BACKWARD_NAMES = ("Wax_b", "Waa_b", "ba_b")            # the backward direction's
CRF_NAMES = ("trans", "start", "end")                  # the CRF output layer's
CHAR_NAMES = ("Ec", "Wconv", "bconv")                  # the character CNN's


@dataclass
class RNNTagger:
    """A tagger: inventories, parameters, metadata; its encoder and network built from them."""

    vocab: Vocabulary
    params: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    features: FeatureSet | None = None
    chars: CharVocab | None = None
    format_version: int = FORMAT_VERSION     # of the file it was loaded from

    def __post_init__(self):
        self.architecture = Architecture.of(self.meta, self.params)
        self.encoder = Encoder(self.vocab, self.features, self.chars,
                               window=self.architecture.window,
                               context=self.architecture.document)
        self.use_engine("numba")

    def use_engine(self, engine: str) -> "RNNTagger":
        """Tag with the inference engine ``engine``: "numba", "numpy" or "auto" (NumPy for short
        inputs and until Numba's kernels are compiled; seqtag.engines). A new model tags with
        Numba (training has compiled its kernels anyway); the CLI and seqtag.Tagger choose
        auto."""
        from seqtag.engines import Engine

        self.engine = Engine(engine)
        self._network_for(self.engine.current)
        return self

    def _network_for(self, kernels: str) -> None:
        from seqtag.engines import kernel_set

        self.kernels = kernels      # the engine the network runs now: "numpy" or "numba"
        self.network = Network(self.params, self.architecture, self.encoder.spellings,
                               kernels=kernel_set(kernels))
        self.network.output.temperature = self.temperature

    @property
    def temperature(self) -> float:
        """What the output scores are divided by for probabilities (1: as trained)."""
        return float(self.meta.get("temperature", 1.0))

    def set_temperature(self, temperature: float, fit: dict | None = None) -> "RNNTagger":
        """Calibrate: probabilities from scores / ``temperature`` (labels stay the same);
        ``fit`` says how it was chosen (kept in meta)."""
        self.meta["temperature"] = float(temperature)
        if fit is not None:
            self.meta["temperature_fit"] = fit
        self.network.output.temperature = self.temperature
        return self

    @property
    def cell(self) -> str:
        return self.architecture.cell

    @property
    def hidden(self) -> int:
        return self.params["Waa"].shape[1]

    @property
    def bidirectional(self) -> bool:
        return "Wax_b" in self.params

    @property
    def crf(self) -> bool:
        return "trans" in self.params

    @property
    def embedded(self) -> bool:
        return "Ex" in self.params

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    @property
    def scheme(self) -> str:
        return self.meta.get("label_scheme", "none")

    @property
    def n_inputs(self) -> int:
        return self.encoder.n_inputs

    @property
    def n_columns(self) -> int:
        return self.encoder.n_columns

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(tokens)

    @cached_property
    def masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start, trans, end) forbidding what the tag scheme forbids."""
        from seqtag.decoding import transition_mask

        return transition_mask(self.labels, self.scheme)

    def emissions(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Wya·a<t> + by for every token of the packed sentences, and their offsets."""
        prepared = self.prepare(sentences)
        _, E = self._forward(prepared)
        return E, prepared[1]

    def prepare(self, sentences: Sequence[Sequence[str]]):
        """(ids, offsets, spellings, kernels, inputs): the sentences encoded and packed, the
        spellings their rows refer to, the engine that runs them (chosen here, in input order, so
        that auto moves a stream to Numba between two batches whichever thread runs them), and
        the embedded inputs already known (seqtag.inputcache; None without it). The
        encoder's caches are not for sharing between threads: a caller that tags on several
        threads prepares here, in its own thread, and passes the result to
        ``analyse(..., prepared=)`` on the others."""
        self.encoder.trim()
        ids, offsets = self.encoder.encode_batch(sentences)
        spellings = self.encoder.spellings() if self.chars is not None else None
        kernels = self.engine.choose(len(ids))
        return ids, offsets, spellings, kernels, self._known_inputs(ids, spellings, kernels)

    def keep_inputs(self) -> "RNNTagger":
        """Keep the embedded input of each word type from batch to batch (seqtag.inputcache):
        for a model that only tags from now on (`seqtag tag`), since the kept inputs would not
        follow a change of its parameters."""
        from seqtag.inputcache import InputCache

        self._input_cache = InputCache()
        return self

    def _known_inputs(self, ids, spellings, kernels):
        """The batch's distinct rows with the x of the word types met before (seqtag.inputcache,
        which fills it here, in input order), for a Numba network with a character CNN, no
        window and no document context (whose x depend on more than the word type); None for
        the others, and for the first batches of a NumPy engine."""
        cache = self.__dict__.get("_input_cache")
        if cache is None or kernels != "numba" or self.chars is None or not self.embedded \
                or self.architecture.window or self.architecture.document or not len(ids):
            return None
        try:
            network = self._model_network(kernels)
        except ImportError:
            return None         # (auto: _forward falls back to NumPy)
        return cache.batch(network, ids, self.encoder.generation)

    def _forward(self, prepared, own: bool = False) -> tuple[Network, np.ndarray]:
        """(network, E) of a prepared batch, on the network of the engine it was prepared for:
        the model's, or with ``own`` the calling thread's own (its scratch arrays are its
        own)."""
        ids, offsets, spellings, kernels, inputs = prepared
        try:
            network = self._thread_network(spellings, kernels) if own else \
                self._model_network(kernels)
            if kernels == "numpy":
                from seqtag.engines import blas_threads

                with blas_threads():
                    return network, network.forward(ids, offsets)[0]
            return network, network.forward(ids, offsets, inputs=inputs)[0]
        except ImportError:
            if self.engine.requested != "auto":
                raise
            # auto saw Numba installed but it does not import: NumPy for good.
            self.engine.fall_back()
            return self._forward((ids, offsets, spellings, "numpy", None), own)

    def _model_network(self, kernels: str) -> Network:
        if kernels != self.kernels:
            self._network_for(kernels)
        return self.network

    def predict_proba(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """P(y<t> = label) for each token: one (T, L) float32 array per sentence (ŷ<t> of the
        softmax, or the CRF's marginals)."""
        if not sentences:
            return []
        E, offsets = self.emissions(sentences)
        P = self.network.output.marginals(E, offsets)
        return [P[offsets[i]:offsets[i + 1]] for i in range(len(sentences))]

    def analyse(self, sentences: Sequence[Sequence[str]], proba: bool = True,
                scores: bool = False, nbest: int = 0, prepared=None) -> list[dict]:
        """Everything tagging can show of each sentence, from one pass of the network: its
        best valid labels ("labels", indices), their probabilities ("probs", or None without
        ``proba``), with ``scores`` each entity's probability ("spans"), with ``nbest`` > 0 the
        n best sequences and their probabilities ("nbest"), and its emissions ("emissions",
        what span_probabilities can take instead of computing them again). With ``prepared``
        (from ``prepare``), safe to call from several threads at once: it uses a network of its
        own."""
        from seqtag.decoding import decode_emissions, nbest_paths, span_probabilities

        if not sentences:
            return []
        if prepared is None:
            prepared = self.prepare(sentences)
            network, E = self._forward(prepared)
        else:
            network, E = self._forward(prepared, own=True)
        offsets = prepared[1]
        output = network.output
        best, P = decode_emissions(output, E, offsets, self.masks, proba or scores)
        out = []
        for i in range(len(sentences)):
            lo, hi = offsets[i], offsets[i + 1]
            r = {"labels": best[lo:hi], "probs": None if P is None or not proba else P[lo:hi],
                 "emissions": E[lo:hi]}
            if scores:
                r["spans"] = span_probabilities(output, E[lo:hi], self.labels,
                                                [self.labels[k] for k in best[lo:hi]])
            if nbest > 0:
                r["nbest"] = [([self.labels[j] for j in path], p) for path, p in
                              nbest_paths(output, E[lo:hi], self.masks, nbest)]
            out.append(r)
        return out

    def _thread_network(self, spellings, kernels: str) -> Network:
        """The calling thread's own network on the engine ``kernels``, reading ``spellings``."""
        from seqtag.engines import kernel_set

        local = self.__dict__.setdefault("_threads", threading.local())
        networks = local.__dict__.setdefault("networks", {})
        network = networks.get(kernels)
        if network is None:
            # auto moves a stream from NumPy to Numba once: the other engine's network (its
            # scratch arrays sized to the largest batch) would be kept for nothing.
            networks.clear()
            network = networks[kernels] = Network(self.params, self.architecture,
                                                  kernels=kernel_set(kernels))
        if network.chars is not None:
            network.chars.spellings = lambda: spellings
        network.output.temperature = self.temperature
        return network

    def decode(self, sentences: Sequence[Sequence[str]], proba: bool = True
               ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per sentence: the label indices of the best sequence that is valid for the tag scheme
        (never I-PER after O in IOB2), and each chosen label's probability (None when ``proba``
        is false: a CRF then skips its forward-backward pass)."""
        return [(r["labels"], r["probs"]) for r in self.analyse(sentences, proba)]

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The most probable valid label sequence of each sentence."""
        labels = self.vocab.labels
        return [[labels[k] for k in best] for best, _ in self.decode(sentences, proba=False)]

    def nbest(self, tokens: Sequence[str], k: int) -> list[tuple[list[str], float]]:
        """The k most probable valid label sequences of one sentence, with probabilities."""
        if not tokens:
            return [([], 1.0)]
        return self.analyse([tokens], proba=False, nbest=k)[0]["nbest"]

    def span_probabilities(self, tokens: Sequence[str], labels: Sequence[str],
                           emissions: np.ndarray | None = None) -> list[float]:
        """For each entity of the labelling ``labels`` (in schemes.spans order), the
        probability that exactly it is there (seqtag.decoding.span_probabilities); from the
        sentence's ``emissions`` when analyse gave them."""
        from seqtag.decoding import span_probabilities

        E = emissions if emissions is not None else self.emissions([tokens])[0]
        return span_probabilities(self.network.output, E, self.labels, list(labels))

    # -- file ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically (seqtag.modelfile)."""
        from seqtag.modelfile import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, engine: str = "numba") -> "RNNTagger":
        """Read and check a model file; every problem is a SeqtagError naming the file. It tags
        with ``engine`` (use_engine)."""
        from seqtag.modelfile import load_model

        model = load_model(path, cls=cls)
        if engine != "numba":
            model.use_engine(engine)
        return model
