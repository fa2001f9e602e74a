"""What the PyTorch benchmarks share: timing, the machine's name, and CoNLL-2003 loading."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from seqtag.corpus import read_corpus


def best_time(fn, repeats: int):
    """(fastest wall time of `repeats` calls, the last result)."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu_name() -> str:
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def conll2003(args, have_torch: bool, quick_sizes: tuple[int, int, int]):
    """(train, dev, test) of CoNLL-2003 from --data, cut to quick_sizes with --quick (which also
    sets 2 epochs and 1 repeat); None, after saying why, when the corpus is not there. Exits
    when PyTorch is missing."""
    folder = Path(args.data) / "conll2003"
    if not (folder / "eng.train").exists():
        print(f"{folder}/eng.train not found: nothing to benchmark (give --data DIR)")
        return None
    if not have_torch:
        sys.exit("PyTorch is not installed: make bench-deps (pip install torch==2.13.0)")
    train, dev, test = (read_corpus(folder / f)[0] for f in ("eng.train", "eng.testa", "eng.testb"))
    if args.quick:
        args.epochs, args.repeats = 2, 1
        n_train, n_dev, n_test = quick_sizes
        train, dev, test = train[:n_train], dev[:n_dev], test[:n_test]
    return train, dev, test
