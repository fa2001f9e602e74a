"""Why a label: each input token's share, and each of its parts' (word, features, spelling), in
the log-probability of an entity or of one token's label.

The attribution is integrated gradients (Sundararajan et al. 2017) of the target's
log-probability log P, backpropagated through time to the input vector of every token,
x<t> = [Σ_f Ex[:, id_f] ; c<t>] (the embedding sum of its word and feature values, then its
spelling's character-CNN vector), from a baseline x0<t>: the token taken away (unknown word,
unknown feature values, the empty spelling), which is also what the faithfulness test removes.
With g<t> the mean gradient on the straight path from every token at its baseline to the
sentence as it is (STEPS midpoints), each part's attribution is

    a(t, f) = (Ex[:, id_f(t)] − Ex[:, unknown_f]) · g_e<t>          (word and each feature)
    a(t, spelling) = (c<t> − c_empty) · g_c<t>

(a model with a window has a "window" part, its neighbours' columns against no neighbour; one
trained on documents a "document" part, its code against code 0, which is 0 here since explain
reads each sentence alone)

so a token's parts add up to its total (x<t> − x0<t>) · g<t>, and all tokens' totals to about
log P(x) − log P(x0) (completeness). Integrated gradients and not plain gradient × input: on
CoNLL-2003 test the one-pass gradient (× input or × (input − baseline)) ranked the tokens whose
removal lowers an entity's probability most in only about 71% of cases, integrated gradients
with 8 steps in 88% (bench/bench_explain.py); 8 steps cost 8 backward passes, a few
milliseconds a sentence.

The target's gradient with respect to the emissions is exact for a CRF: log P(entity) =
log Z(clamped) − log Z, and ∂log Z/∂e<t>[j] is the marginal P(y<t> = j), so
∂log P/∂e = (P_clamped − P) / τ, with τ the model's temperature. For a softmax, log P is
Σ_t log ŷ<t>[y_t] over the entity, whose gradient is (onehot − ŷ<t>) / τ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from seqtag.schemes import continues, spans

_NEG = np.float32(-1e30)
STEPS = 8       # integrated gradients' steps (bench/bench_explain.py: 1 step is not faithful enough)


@dataclass
class Explanation:
    """What made ``target`` (an entity's span and type, or a token's label) its label."""

    tokens: list[str]
    labels: list[str]
    target: dict                 # {"kind": "entity"|"token", "label", "start", "end", "text"}
    prob: float                  # the target's probability under the model
    parts: list[str]             # names of the parts: "word", each feature, ("window",
                                 # "document",) "spelling"
    attribution: np.ndarray      # (T, len(parts)) float64: a(t, part)
    clamp: dict = field(default_factory=dict, repr=False)   # token -> the label ids it may take
    method: str = "integrated gradients"
    total: np.ndarray = field(init=False)

    def __post_init__(self):
        self.total = self.attribution.sum(axis=1)

    def ranked(self, top: int | None = None) -> list[dict]:
        """Tokens by |attribution|, largest first: index, token, total and each part's."""
        order = sorted(range(len(self.tokens)), key=lambda t: (-abs(self.total[t]), t))
        return [{"index": t, "token": self.tokens[t], "total": float(self.total[t]),
                 "parts": {p: float(v) for p, v in zip(self.parts, self.attribution[t])}}
                for t in order[:top]]

    def as_json(self, top: int | None = None) -> dict:
        return {"tokens": self.tokens, "labels": self.labels, "target": self.target,
                "prob": round(self.prob, 6), "method": self.method,
                "attribution": [{**r, "total": round(r["total"], 6),
                                 "parts": {k: round(v, 6) for k, v in r["parts"].items()}}
                                for r in self.ranked(top)]}


class Explainer:
    """Input attributions for one model (an embedded one: the default BiLSTM-CNN-CRF)."""

    def __init__(self, model, exact: bool = False, steps: int = STEPS):
        """``steps``: of integrated gradients (1: plain gradient × (input − baseline));
        ``exact``: np.tanh and np.exp in the cells (float64 gradient checks), not the fast
        float32 approximations."""
        self.exact, self.steps = exact, steps
        if not model.embedded:
            raise ValueError("explain needs a model with embedded input (the default model); "
                             "the multi-hot and textbook models have no input vectors to "
                             "attribute to")
        from seqtag.engines import kernel_set
        from seqtag.network import Network

        self.model = model
        self.network = Network(model.params, model.architecture, model.encoder.spellings,
                               kernels=kernel_set("numba"))
        self.network.attach_grads({k: np.zeros_like(v) for k, v in model.params.items()})
        self.network.output.temperature = model.temperature
        names = list(model.architecture.features)
        enc = model.encoder
        # The part of each embedded column of a row (all but the word type's): the word, each
        # feature, the window's neighbours as one part, the document code.
        self._column_part = list(range(1 + len(names)))
        extra = []
        if enc.window:
            self._column_part += [1 + len(names) + len(extra)] * (2 * enc.window)
            extra.append("window")
        if enc.context:
            self._column_part.append(1 + len(names) + len(extra))
            extra.append("document")
        self.parts = ["word", *names, *extra] + (["spelling"] if model.chars is not None else [])

    # -- the network, one token per input row ---------------------------------------------

    def _forward(self, ids: np.ndarray, x_delta: np.ndarray | None = None):
        """(E, X, backprop(dE) -> dX) of one sentence's rows, each token its own input row
        (the network shares rows between equal tokens, which would merge their gradients);
        ``x_delta`` is added to the input vectors (finite-difference checks)."""
        net = self.network
        T = len(ids)
        offsets = np.array([0, T], dtype=np.int64)
        rows = np.ascontiguousarray(ids, dtype=np.int32)
        X, _ = net.embed.forward(rows)
        if net.chars is not None:
            spellings = self.model.encoder.spellings()
            net.chars.spellings = lambda: spellings
            c, _ = net.chars.forward(rows)
            X = np.concatenate([X, c], axis=1)
        X = np.ascontiguousarray(X)
        if x_delta is not None:
            X = np.ascontiguousarray(X + x_delta.astype(X.dtype))
        step_ids = np.arange(T, dtype=np.int32).reshape(-1, 1)
        A = np.empty((T, self.model.params["Wya"].shape[1]), dtype=X.dtype)
        backs = [d.forward(X, step_ids, offsets, A, True, self.exact) for d in net.directions]
        E, proj_back = net.projection.forward(A, True)
        E = E.copy()

        def backprop(dE: np.ndarray) -> np.ndarray:
            dA = proj_back(np.ascontiguousarray(dE, dtype=E.dtype))
            dX = None
            for back in backs:
                d = back(dA)
                dX = d.copy() if dX is None else dX + d
            return dX

        return E, X, backprop

    def _target_grad(self, E: np.ndarray, clamp: dict[int, list[int]]) -> tuple[float, np.ndarray]:
        """(P(target), ∂log P(target)/∂E): the target fixes token t to one of clamp[t]."""
        tau = self.model.temperature
        if self.model.crf:
            from seqtag.decoding import _log_partition

            out = self.network.output        # divides by τ itself (its temperature)
            offsets = np.array([0, len(E)], dtype=np.int64)
            V = E.copy()
            for t, allowed in clamp.items():
                keep = V[t, allowed].copy()
                V[t, :] = _NEG
                V[t, allowed] = keep
            U, trans, start, end = out.chain(E, offsets)
            log_z = _log_partition(out.kernels, U, offsets, trans, start, end)
            log_zc = _log_partition(out.kernels, out.chain(V, offsets)[0], offsets, trans, start,
                                    end)
            P, Pc = out.marginals(E, offsets), out.marginals(V, offsets)
            return float(np.exp(log_zc - log_z)), (Pc - P).astype(np.float64) / tau
        Y = E.astype(np.float64) / tau
        Y = np.exp(Y - Y.max(axis=1, keepdims=True))
        Y /= Y.sum(axis=1, keepdims=True)
        grad = np.zeros_like(Y)
        prob = 1.0
        for t, allowed in clamp.items():
            q = Y[t, allowed].sum()
            prob *= q
            onehot = np.zeros(Y.shape[1])
            onehot[allowed] = Y[t, allowed] / q
            grad[t] = (onehot - Y[t]) / tau
        return float(prob), grad

    # -- targets ------------------------------------------------------------------------------

    def explain(self, tokens: Sequence[str], *, entity: int | None = None,
                token: int | None = None) -> list[Explanation]:
        """Explanations of every predicted entity (or the ``entity``-th, from 0), or of the
        ``token``-th token's label."""
        tokens = list(tokens)
        model = self.model
        labels = model.predict([tokens])[0]
        ids = model.encoder.encode(tokens)
        # The baseline's input vector first: a forward pass reuses the scratch arrays that the
        # sentence's backprop reads.
        base = self.unk_row()
        _, X0, _ = self._forward(base.reshape(1, -1))
        X0 = X0.copy()
        E, X, backprop = self._forward(ids)
        index = {lab: k for k, lab in enumerate(model.labels)}
        targets = []
        if token is not None:
            if not 0 <= token < len(tokens):
                raise IndexError(f"token {token} is not in a sentence of {len(tokens)} tokens")
            targets.append(({"kind": "token", "label": labels[token], "start": token,
                             "end": token + 1, "text": tokens[token]},
                            {token: [index[labels[token]]]}))
        else:
            found = spans(labels)
            chosen = range(len(found)) if entity is None else [entity]
            for n in chosen:
                if not 0 <= n < len(found):
                    raise IndexError(f"entity {n} is not among the {len(found)} found")
                typ, i, j = found[n]
                clamp = {t: [index[labels[t]]] for t in range(i, j)}
                if j < len(tokens):
                    # the entity ends at j: the next token does not continue it
                    stop = set(continues(model.labels, typ))
                    clamp[j] = [k for k in range(len(model.labels)) if k not in stop]
                targets.append(({"kind": "entity", "label": typ, "start": i, "end": j,
                                 "text": " ".join(tokens[i:j]), "index": n}, clamp))
        out = []
        d = model.params["Ex"].shape[0]
        Ex = model.params["Ex"].astype(np.float64)
        for target, clamp in targets:
            prob, dE = self._target_grad(E, clamp)
            if self.steps <= 1:
                dX = backprop(dE).astype(np.float64)
            else:
                # integrated gradients: the mean gradient on the straight path from every token
                # at its baseline to the sentence as it is (midpoint rule)
                dX = np.zeros(X.shape)
                diff = X - X0[0]
                for k in range(self.steps):
                    alpha = (k + 0.5) / self.steps
                    E_a, _, back_a = self._forward(ids, (alpha - 1) * diff)
                    dX += back_a(self._target_grad(E_a, clamp)[1])
                dX /= self.steps
            att = np.zeros((len(tokens), len(self.parts)))
            for c, k in enumerate(self._column_part):
                # each part against its own "absent" value (the baseline): unknown word, unknown
                # feature value, no neighbour, document code 0, the empty spelling's CNN vector
                part = Ex[:, ids[:, c]] - Ex[:, base[c]][:, None]
                att[:, k] += np.einsum("dt,td->t", part, dX[:, :d])
            if model.chars is not None:
                part = X[:, d:].astype(np.float64) - X0[0, d:].astype(np.float64)
                att[:, -1] = (part * dX[:, d:]).sum(axis=1)
            method = (f"integrated gradients, {self.steps} steps" if self.steps > 1
                      else "gradient x (input - baseline)")
            out.append(Explanation(tokens, labels, target, prob, self.parts, att, clamp, method))
        return out

    # -- faithfulness -------------------------------------------------------------------------

    def unk_row(self) -> np.ndarray:
        """The input row of a token taken away (Encoder.unknown_row: the unknown word, every
        feature unknown, no spelling; with a window no neighbours, with document context code
        0, as for the sentence alone that explain reads)."""
        return self.model.encoder.unknown_row()

    def probability_without(self, explanation: Explanation, removed: Sequence[int]) -> float:
        """P(the explained target) when the tokens ``removed`` are taken away (unk_row)."""
        ids = self.model.encoder.encode(explanation.tokens).copy()
        for t in removed:
            ids[t] = self.unk_row()
        E, _, _ = self._forward(ids)
        return self._target_grad(E, explanation.clamp)[0]
