"""Central differences, the reference every analytic gradient of the suite is checked against."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np


def central_difference(loss: Callable[[], float], param: np.ndarray, index, eps: float) -> float:
    """(loss(p + eps) - loss(p - eps)) / 2 eps for the entry ``index`` of ``param`` (changed in
    place and restored)."""
    old = param[index]
    param[index] = old + eps
    up = loss()
    param[index] = old - eps
    down = loss()
    param[index] = old
    return (up - down) / (2 * eps)


def numeric_gradient(loss: Callable[[], float], param: np.ndarray, eps: float,
                     indices: Iterable | None = None) -> np.ndarray:
    """The central-difference gradient of ``param`` at ``indices`` (every entry by default; the
    others stay 0)."""
    numeric = np.zeros_like(param)
    for index in np.ndindex(param.shape) if indices is None else indices:
        numeric[index] = central_difference(loss, param, index, eps)
    return numeric
