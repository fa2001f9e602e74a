"""Inverted dropout: training sees x ⊙ m / (1 - p) with m ~ Bernoulli(1 - p), tagging sees x."""

from __future__ import annotations

import numpy as np


class Dropout:
    """Drops entries of its input with probability ``rate`` while training; the identity (no
    draw from the generator) when rate is 0 or outside training."""

    def __init__(self, rate: float = 0.0):
        self.rate = float(rate)

    def mask(self, shape, dtype, rng: np.random.Generator | None,
             out: np.ndarray | None = None) -> np.ndarray | None:
        """The mask m / (1 - p) for an input of ``shape`` (None: nothing dropped), written into
        ``out`` (float32, C-contiguous, of that shape) when given."""
        if rng is None or self.rate <= 0:
            return None
        scale = np.float32(1 / (1 - self.rate))
        if out is not None and dtype == np.float32:
            # The same draws and values, in the caller's buffer: allocating a new mask (and its
            # temporaries) for each chunk took longer than drawing it.
            rng.random(dtype=np.float32, out=out)
            keep = out >= np.float32(self.rate)
            return np.multiply(keep, scale, out=out)
        # Drawn in float32 whatever the dtype, so a float64 gradient check sees the masks a
        # float32 training run draws.
        mask = (rng.random(shape, dtype=np.float32) >= self.rate) * scale
        return mask.astype(dtype, copy=False)

    def seeds(self, n: int, rng: np.random.Generator | None) -> list:
        """One generator for each of n pieces of an input (a training batch's chunks), seeded
        from ``rng`` in piece order: each piece's mask is then the same whichever thread draws
        it, and when. Nones (and no draw) when nothing is dropped."""
        if rng is None or self.rate <= 0:
            return [None] * n
        return [np.random.default_rng(s) for s in rng.integers(2 ** 63, size=n)]

    def forward(self, X: np.ndarray, rng: np.random.Generator | None):
        mask = self.mask(X.shape, X.dtype, rng)
        if mask is None:
            return X, _identity

        def backprop(dY: np.ndarray) -> np.ndarray:
            dY *= mask
            return dY

        return X * mask, backprop


def _identity(dY):
    return dY
