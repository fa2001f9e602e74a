"""The dense products a model defines, counted per real token: its FLOPs per token.

A multiply-add is 2 FLOPs. For each token of the text (no padding; every token counts its input
projection, although the kernels compute it once per distinct input row of a batch: Computed,
below, gives the stricter count of what they compute):

    input projection   per direction  Wax (G × D)·x<t>           G·D        (D = embed + filters)
    recurrence         per direction  Waa (G × H)·a<t-1>         G·H        (G = H, 3H or 4H)
    character CNN      per window of the spelling  Wconv (F × w·dc)  F·w·dc
    output layer       Wya (L × 2H)·[a→; a←]                     L·2H

The character windows of a token are those of <bow> + its characters + <eow> (w of them each:
as many windows as characters when w = 3; at least one). A textbook multi-hot model (no Ex)
reads Wax by columns, which is no product: its input projection counts 0. Training counts 3×
the forward (the forward product, and the two of the backward pass: through the input and into
the weights). The embedding sums, the gates' elementwise work, the softmax and the CRF are not
counted. Everything is read from the parameters' shapes.

Benchmark code: not imported by seqtag (tests/test_bench_flops.py loads it from bench/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

# The character CNN keeps at most this many characters of a token (seqtag.chars.MAX_HALF from
# each end); kept here so that this module needs nothing of seqtag.
try:
    from seqtag.chars import MAX_HALF
except ImportError:   # pragma: no cover
    MAX_HALF = 10 ** 9


@dataclass
class Flops:
    tokens: int
    input: float        # totals over the tokens, forward pass
    recurrent: float
    chars: float
    output: float

    @property
    def forward(self) -> float:
        """Forward FLOPs per token."""
        return (self.input + self.recurrent + self.chars + self.output) / max(self.tokens, 1)

    @property
    def training(self) -> float:
        """Training FLOPs per token (forward + backward: 3× the forward products)."""
        return 3 * self.forward

    def per_token(self) -> dict[str, float]:
        n = max(self.tokens, 1)
        return {"input projection": self.input / n, "recurrence": self.recurrent / n,
                "character CNN": self.chars / n, "output layer": self.output / n}


def char_windows(token: str, width: int) -> int:
    """Windows of width ``width`` over <bow> + the token's (kept) characters + <eow>."""
    n = min(len(token), 2 * MAX_HALF) + 2
    return max(n - width + 1, 1)


def model_flops(params: dict, tokens: Iterable[str]) -> Flops:
    """The forward FLOPs of the dense products of the model whose parameters are ``params``
    (anything with a .shape) over ``tokens``."""
    tokens = list(tokens)
    n = len(tokens)
    directions = 2 if "Wax_b" in params else 1
    G, H = params["Waa"].shape
    D = params["Wax"].shape[1] if "Ex" in params else 0
    L, S = params["Wya"].shape          # S = H per direction, joined
    chars = 0.0
    if "Wconv" in params:
        F, k = params["Wconv"].shape
        dc = params["Ec"].shape[1]
        width = k // dc
        chars = 2.0 * F * k * sum(char_windows(t, width) for t in tokens)
    return Flops(tokens=n, input=2.0 * directions * G * D * n,
                 recurrent=2.0 * directions * G * H * n, chars=chars, output=2.0 * L * S * n)


class Computed:
    """What the kernels compute of the input projection and the character CNN, in forward FLOPs:
    the stricter count, with no credit for a repeated input (each distinct input row of a batch
    is embedded, spelled and projected once; a token whose row came before costs nothing there).
    The recurrences and the output layer run for every token, so only these two parts differ
    from model_flops. Counted by wrapping the layers' methods while the block runs (one thread:
    the counts are not locked)::

        with Computed() as c:
            model.predict(batch)
        c.input, c.chars
    """

    def __enter__(self) -> "Computed":
        from seqtag.layers.charcnn import CHAR_WIDTH, CharCNN
        from seqtag.layers.recurrent import Recurrent

        self.input = self.chars = 0.0
        self._saved = (Recurrent, Recurrent.project, Recurrent.forward, CharCNN,
                       CharCNN.forward)
        project, forward, spell = Recurrent.project, Recurrent.forward, CharCNN.forward

        def counted_project(layer, X, lo, hi):      # training: a block of distinct rows
            self.input += 2.0 * layer.params[layer.Wax].size * (hi - lo)
            return project(layer, X, lo, hi)

        def counted_forward(layer, X, *args, **kwargs):     # tagging: the rows of X
            if layer.embedded and X is not None:
                self.input += 2.0 * layer.params[layer.Wax].size * len(X)
            return forward(layer, X, *args, **kwargs)

        def counted_spell(layer, rows):
            _, starts = layer.spellings()
            types = rows[:, -1]
            windows = np.maximum(starts[types + 1] - starts[types] - CHAR_WIDTH + 1, 1)
            self.chars += 2.0 * layer.params["Wconv"].size * float(windows.sum())
            return spell(layer, rows)

        Recurrent.project, Recurrent.forward = counted_project, counted_forward
        CharCNN.forward = counted_spell
        return self

    def __exit__(self, *exc) -> None:
        Recurrent, project, forward, CharCNN, spell = self._saved
        Recurrent.project, Recurrent.forward, CharCNN.forward = project, forward, spell

    def forward(self, full: Flops, passes: int = 1) -> float:
        """Forward FLOPs per token with the input projection and the character CNN as computed,
        when the block ran ``passes`` times over the tokens of ``full`` (model_flops of them)."""
        every = passes * (full.recurrent + full.output)
        return (self.input + self.chars + every) / max(passes * full.tokens, 1)
