"""The optimizer: gradient buffers, clipping by the global norm, and SGD or Adam steps.

Parameters are stepped in groups, each a matrix whose columns are stepped lazily — only those a
batch read (Wax's columns of the multi-hot input, or Ex's of the embedded one) — and dense
parameters stepped whole. Adam's moments of a lazily stepped column are left as they are in
batches that do not read it ("lazy Adam", as in sparse embedding updates elsewhere).
"""

from __future__ import annotations

import numpy as np

from typing import Callable

from seqtag.config import TrainConfig, plain
from seqtag.model import CRF_NAMES
from seqtag.threads import Pool

# Pieces an update is cut into, whatever the number of threads that run them.
PIECES = 2


class Optimizer:
    def __init__(self, cfg: TrainConfig, params: dict[str, np.ndarray]):
        self.cfg = cfg
        self.params = params
        self.grads = {k: np.zeros_like(v, order="K") for k, v in params.items()}
        if "Ex" in params:
            self.groups = [("Ex", tuple(k for k in params if k != "Ex"))]
        else:
            self.groups = [("Wax", ("Waa", "ba", "Wya", "by") +
                            tuple(k for k in CRF_NAMES if k in params))]
            if "Wax_b" in params:
                self.groups.append(("Wax_b", ("Waa_b", "ba_b")))
        self.lazy = [wax for wax, _ in self.groups]
        flat = lambda d, names: tuple(d[k].reshape(-1) for k in names)  # noqa: E731
        self.dense = [(flat(params, names), flat(self.grads, names)) for _, names in self.groups]
        self.adam = plain(cfg.optimizer) == "adam"
        if self.adam:
            self.moments = {k: (np.zeros_like(v, order="K"), np.zeros_like(v, order="K"))
                            for k, v in params.items()}
            self.dense_m = [tuple(flat({k: m[i] for k, m in self.moments.items()}, names)
                                  for i in (0, 1)) for _, names in self.groups]
        self.t = 0
        self.lr = cfg.lr
        self._seen = np.zeros(params[self.lazy[0]].shape[1], bool)   # a mark per column
        self.pool = Pool(1)       # the threads that run the pieces (the trainer's)
        # Each group's dense arrays (parameters, gradients, moments) cut into PIECES fixed
        # shares: views, made once.
        share = lambda arrays, i: tuple(a[len(a) * i // PIECES:  # noqa: E731
                                          len(a) * (i + 1) // PIECES] for a in arrays)
        self.pieces = [(gi, i, tuple(share(a, i) for a in (
            *self.dense[gi], *(self.dense_m[gi] if self.adam else ()))))
            for gi in range(len(self.groups)) for i in range(PIECES)]

    def step(self, cols: np.ndarray, n_tokens: int, alongside: Callable | None = None):
        """One update from the summed gradients of n_tokens tokens (``cols``: the lazily stepped
        columns the batch read); zeroes the gradients. ``alongside``: a job that reads none of
        the parameters, run meanwhile on the pool's other thread (the next batch's preparation);
        its result is returned."""
        from seqtag.kernels.optim import adam_step, sgd_step

        cfg, params, grads, f32 = self.cfg, self.params, self.grads, np.float32
        scale = 1.0 / n_tokens
        if cfg.clip > 0:
            norm = np.sqrt(self.sq_norm(cols)) * scale
            if norm > cfg.clip:
                scale *= cfg.clip / norm
        self.t += 1
        b1, b2 = 0.9, 0.999
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)

        def run(piece):
            """A fixed share of every dense array of a group and of its columns (each entry is
            stepped alone, so pieces can run on any thread)."""
            gi, i, arrays = piece
            wax = self.groups[gi][0]
            own = cols[len(cols) * i // PIECES:len(cols) * (i + 1) // PIECES]
            if self.adam:
                dense, dense_g, dense_m, dense_v = arrays
                m, v = self.moments[wax]
                adam_step(dense, dense_g, dense_m, dense_v, params[wax], grads[wax], m, v, own,
                          f32(scale), f32(lr_t), f32(b1), f32(b2), f32(1e-8))
            else:
                dense, dense_g = arrays
                sgd_step(dense, dense_g, params[wax], grads[wax], own, f32(self.lr * scale))

        if alongside is None:
            self.pool.map(run, self.pieces)
            return None
        # The pieces one after the other on one thread, the job on the other: on two threads
        # the pieces were no faster than on one (each read the data the other core wrote last),
        # and the job's serial time is saved (the same pieces: the same bits).
        return self.pool.map(lambda job: job(), [lambda: [run(p) for p in self.pieces],
                                                 alongside])[1]

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """The distinct entries of ``ids`` in increasing order (np.unique's result): the lazily
        stepped columns a batch read. Marking them in a table of the columns and reading back the
        marks is linear; np.unique sorts, on the trainer's one thread at every step."""
        seen = self._seen
        seen[ids] = True
        cols = np.flatnonzero(seen)
        seen[cols] = False
        return cols.astype(ids.dtype, copy=False)

    def sq_norm(self, cols: np.ndarray) -> float:
        """‖g‖² of all gradients, reading the lazily stepped ones only in the columns the batch
        touched."""
        from seqtag.kernels.optim import column_sum_squares, sums_of_squares

        dense = tuple(g.reshape(-1) for k, g in self.grads.items() if k not in self.lazy)
        sums = np.empty(len(dense))
        sums_of_squares(dense, sums)
        lazy = iter(column_sum_squares(self.grads[k], cols) for k in self.lazy)
        it = iter(sums)
        # added in the parameters' order
        return sum(next(lazy) if k in self.lazy else float(next(it)) for k in self.grads)

    # -- checkpoints ------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON) that ``restore`` takes back: the moments and the step count."""
        arrays = {}
        if self.adam:
            for k, (m, v) in self.moments.items():
                arrays[f"m.{k}"], arrays[f"v.{k}"] = m, v
        return arrays, {"t": self.t, "lr": self.lr}

    def restore(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        if self.adam:
            for k, (m, v) in self.moments.items():
                m[...] = arrays[f"m.{k}"]
                v[...] = arrays[f"v.{k}"]
        self.t, self.lr = int(info["t"]), float(info["lr"])
