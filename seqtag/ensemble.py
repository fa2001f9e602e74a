"""An ensemble of taggers as one tagger: the members side by side in one wider network.

Members trained on the same data (the same inventories, seeds apart) are merged so that the
network computes the mean of their emissions: each member keeps its own block of hidden units
(the recurrent weights are block-diagonal, so the blocks never mix), the embedded input stacks
the members' embeddings (Wax block-diagonal over them), and the output layer averages: Wya is
the members' Wya side by side, each divided by N, and by and the CRF's trans, start and end are
the members' means. The CRF over mean scores is the product of the members' distributions,
renormalised (a log-linear pool), decoded exactly by Viterbi. The merged model is an ordinary
model file of hidden N·H and embed_dim N·d, read by any reader; it costs about N² times one
member per residue (dense products over the block-diagonal weights).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from seqtag.layers.recurrent import GATES
from seqtag.model import RNNTagger


def merge(members: Sequence[RNNTagger]) -> RNNTagger:
    """One RNNTagger computing the mean of the members' emissions (see the module)."""
    first = members[0]
    if len(members) == 1:
        return first
    arch = first.architecture
    for m in members[1:]:
        if m.architecture != arch or m.vocab.words != first.vocab.words or \
                m.labels != first.labels or set(m.params) != set(first.params):
            raise ValueError("ensemble members differ in architecture or inventories")
    if "Wconv" in first.params:
        raise ValueError("merging members with a character CNN is not supported")
    n, H, G = len(members), arch.hidden, GATES[arch.cell]
    ps = [m.params for m in members]
    dtype = first.params["Waa"].dtype
    out: dict[str, np.ndarray] = {}
    embedded = "Ex" in first.params
    if embedded:
        out["Ex"] = np.vstack([p["Ex"] for p in ps])
    d = first.params["Ex"].shape[0] if embedded else 0
    for sfx in ("", "_b") if arch.bidirectional else ("",):
        n_in = ps[0]["Wax" + sfx].shape[1]
        Wax = np.zeros((G * n * H, n * d if embedded else n_in), dtype)
        Waa = np.zeros((G * n * H, n * H), dtype)
        ba = np.zeros(G * n * H, dtype)
        for k, p in enumerate(ps):
            cols = slice(k * d, (k + 1) * d) if embedded else slice(None)
            for g in range(G):
                rows = slice((g * n + k) * H, (g * n + k + 1) * H)
                own = slice(g * H, (g + 1) * H)
                Wax[rows, cols] = p["Wax" + sfx][own]
                Waa[rows, k * H:(k + 1) * H] = p["Waa" + sfx][own]
                ba[rows] = p["ba" + sfx][own]
        out["Wax" + sfx], out["Waa" + sfx], out["ba" + sfx] = Wax, Waa, ba
    directions = 2 if arch.bidirectional else 1
    out["Wya"] = np.hstack([p["Wya"][:, j * H:(j + 1) * H] / n
                            for j in range(directions) for p in ps])
    for name in ("by", "trans", "start", "end"):
        if name in first.params:
            out[name] = np.mean([p[name] for p in ps], axis=0)
    out = {k: np.asfortranarray(v.astype(dtype, copy=False))
           if first.params[k].flags.f_contiguous and v.ndim == 2 else
           np.ascontiguousarray(v.astype(dtype, copy=False)) for k, v in out.items()}
    meta = {**first.meta,
            "architecture": {**first.meta["architecture"], "hidden": n * H,
                             "embed_dim": n * d}}
    meta.pop("temperature", None)
    meta.pop("temperature_fit", None)
    return RNNTagger(first.vocab, out, meta, features=first.features, chars=first.chars)
