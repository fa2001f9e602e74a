"""Kernels compiled for a fixed CPU target, so that a seed's model does not depend on the machine.

Numba compiles for the host CPU: its name (the tuning) and its features (AVX-512 or not). Both
change the code LLVM emits (vector width, the order of a reduction's sums, fused multiply-adds),
and so the low bits of a trained model: on one Zen 5 host, code compiled for skylake-avx512 or
x86-64-v3 trained a model 1e-6 away from the host's after two epochs. Pinning the name and the
feature list to x86-64-v3 (AVX2, FMA: every x86-64 CPU since 2013-2017) makes the compiled code
the same on every such machine, and that code must not use an instruction whose bits x86 leaves
to the vendor: the kernels' fast-math flags (seqtag.kernels.FASTMATH) leave out the two that let
LLVM use the vrcpps/vrsqrtps estimates, which made an Intel and an AMD host differ. What else
runs during training does not change the bits: NumPy's
dispatched loops and glibc's libm variants were masked down to AVX2 on that host
(NPY_DISABLE_CPU_FEATURES, GLIBC_TUNABLES) with the same model bytes (tests/test_portable.py).

Numba reads these settings when it is imported, so ``pin`` must run before anything imports it
(seqtag's CLI imports Numba lazily, after the options are parsed).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import MutableMapping

from seqtag.errors import SeqtagError

TARGET = "x86-64-v3"

# x86-64-v3 and everything below it (psABI levels v1-v3), in LLVM's names. LLVM derives the same
# set from the CPU name; listing it replaces the host's feature list, which Numba would
# otherwise pass (and with it AVX-512).
FEATURES = ("64bit", "cmov", "cx8", "fxsr", "mmx", "sse", "sse2",
            "cx16", "sahf", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3",
            "avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")


def environment() -> dict[str, str]:
    """The variables that make Numba compile for TARGET."""
    return {"NUMBA_CPU_NAME": TARGET,
            "NUMBA_CPU_FEATURES": ",".join("+" + f for f in FEATURES)}


def active() -> bool:
    """Whether this process's kernels are compiled for TARGET: Numba read pin's settings (or,
    before Numba is imported, the environment holds them)."""
    wanted = environment()
    if "numba" not in sys.modules:
        return all(os.environ.get(k) == v for k, v in wanted.items())
    from numba.core import config

    return (config.CPU_NAME == wanted["NUMBA_CPU_NAME"]
            and config.CPU_FEATURES == wanted["NUMBA_CPU_FEATURES"])


def missing_features() -> list[str]:
    """TARGET's features this CPU lacks (all of them off x86-64): code compiled for TARGET
    would stop on an illegal instruction here."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return list(FEATURES)
    import llvmlite.binding as llvm

    host = llvm.get_host_cpu_features()
    return [f for f in FEATURES if not host.get(f, False)]


def pin(environ: MutableMapping[str, str] = os.environ) -> None:
    """Make this process's kernels compile for TARGET; raise SeqtagError when they cannot."""
    if "numba" in sys.modules:
        # Numba has read its configuration already; setting the variables now would only
        # pretend.
        raise SeqtagError("the kernels' CPU target must be chosen before Numba is imported",
                          hint="pin it at the start of the process (seqtag.portable.pin), or "
                               "set the variables of seqtag.portable.environment() outside it")
    wanted = environment()
    for name, value in wanted.items():
        if environ.get(name, value) != value:
            raise SeqtagError(f"--portable compiles the kernels for {TARGET}, but {name} is "
                              f"set to {environ[name]!r}", hint=f"unset {name}")
    missing = missing_features()
    if missing:
        raise SeqtagError(f"--portable needs an x86-64 CPU with AVX2 and FMA ({TARGET}); this "
                          f"one lacks {', '.join(missing[:6])}"
                          + (" ..." if len(missing) > 6 else ""),
                          hint="train without --portable (the model's low bits then depend "
                               "on this CPU)")
    environ.update(wanted)
