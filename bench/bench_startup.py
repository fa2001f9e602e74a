"""Start-up time of the seqtag command, in whole processes, against `python -c "import numpy"`.

    python bench/bench_startup.py [--runs 5] [--importtime]

Runs, with this interpreter, interleaved round after round: `python -c "import numpy"` (the
floor every seqtag command that touches a model pays), `seqtag --help` and
`seqtag tag "Sam Li and Tom date on Tuesday."` with the bundled model into a pipe; prints the
median wall time of each and its ratio to `import numpy`, with the machine's load before and
after (other processes make every figure noisy; the ratios much less so). A first round, not
counted, warms the disk cache and Numba's cache (on a fresh install it is where the kernels
compile, and its time is shown; it also writes the bytecode that an install would have
precompiled, even under PYTHONDONTWRITEBYTECODE). BLAS threads are limited to one: spinning OpenBLAS threads
would measure the machine's other jobs. `--importtime` adds the median `python -X importtime`
breakdown of the tag command: the µs of its imports charged to each package outside the
standard library (numpy, typer, ...: everything it imports) and to each seqtag module (with the
standard-library modules it imports itself).

Needs only seqtag and its dependencies (no PyTorch, no ../shared data); the seqtag measured is
the one of this checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Sam Li and Tom date on Tuesday."
# Targets of the start-up work (seconds, and the ratio to `import numpy`), on a quiet machine.
TARGETS = {"seqtag --help": (0.25, None), f'seqtag tag "{SENTENCE}"': (0.35, 3.0)}


def seqtag_command() -> list[str]:
    """The installed console script run by this interpreter, else `python -m seqtag`."""
    script = Path(sys.executable).parent / "seqtag"
    if script.is_file():
        with open(script, "rb") as f:
            if f.read(2) == b"#!":
                return [sys.executable, str(script)]
    return [sys.executable, "-m", "seqtag"]


def environment() -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}
    # Bytecode cached, as an install has it: without, every start compiles seqtag's sources
    # (the uncounted first round writes the .pyc files).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # This checkout's seqtag, whatever the interpreter has installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr.decode()}")
    return elapsed


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _owners(stderr: str) -> dict[str, int]:
    """Each import's own µs (-X importtime's self column) summed by who it is charged to: a
    package outside the standard library with everything it imports (its cumulative time), or
    a seqtag module with the standard-library modules it imports itself; what nothing imports
    (the interpreter's start-up, site) is "python"."""
    nodes, pending = [], {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        us, _, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        node = {"name": name.strip(), "self": int(us), "children": pending.pop(depth + 1, [])}
        pending.setdefault(depth, []).append(node)
        nodes.append(node)
    stdlib = set(sys.stdlib_module_names)
    totals: dict[str, int] = {}

    def charge(node, owner):
        name = node["name"]
        top = name.split(".")[0]
        if owner is None or owner.startswith("seqtag"):
            if top == "seqtag":
                owner = name
            elif top not in stdlib and top.lstrip("_") not in stdlib:
                owner = top
        totals[owner or "python"] = totals.get(owner or "python", 0) + node["self"]
        for child in node["children"]:
            charge(child, owner)

    for node in pending.get(0, []):
        charge(node, None)
    return totals


def importtime(cmd: list[str], env: dict[str, str], runs: int, top: int = 12) -> list[str]:
    """The main contributors to ``cmd``'s imports (see _owners), median µs of ``runs``."""
    samples: dict[str, list[int]] = {}
    for i in range(runs):
        err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, cwd=ROOT,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True).stderr
        for owner, us in _owners(err).items():
            samples.setdefault(owner, [0] * i).append(us)
        for v in samples.values():
            v.extend([0] * (i + 1 - len(v)))
    rows = sorted(((statistics.median(v), k) for k, v in samples.items()), reverse=True)
    total = sum(us for us, _ in rows)
    out = [f"  {us:10,.0f}  {name}" for us, name in rows[:top]]
    rest = sum(us for us, _ in rows[top:])
    return out + [f"  {rest:10,.0f}  (the {len(rows) - top} others)",
                  f"  {total:10,.0f}  all imports"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="counted rounds (default 5)")
    ap.add_argument("--importtime", action="store_true",
                    help="also show the -X importtime breakdown of the tag command")
    args = ap.parse_args(argv)
    env, seqtag = environment(), seqtag_command()
    commands = {'python -c "import numpy"': [sys.executable, "-c", "import numpy"],
                "seqtag --help": [*seqtag, "--help"],
                f'seqtag tag "{SENTENCE}"': [*seqtag, "tag", SENTENCE]}
    before = load()
    first = {name: run(cmd, env) for name, cmd in commands.items()}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(run(cmd, env))
    after = load()

    print(f"seqtag start-up: median of {args.runs} whole processes, interleaved "
          f"({sys.executable}, seqtag from {ROOT})")
    print(f"load average (1, 5, 15 min) before {before}, after {after}; "
          f"{os.cpu_count()} CPUs; BLAS threads 1; bytecode cached")
    numpy_s = statistics.median(times['python -c "import numpy"'])
    width = max(map(len, commands))
    print(f"  {'':{width}}  {'median':>7} {'min':>7} {'/ numpy':>8} {'1st run':>8}")
    for name in commands:
        med = statistics.median(times[name])
        print(f"  {name:{width}}  {med:6.3f}s {min(times[name]):6.3f}s {med / numpy_s:7.2f}x "
              f"{first[name]:7.3f}s")
    for name, (seconds, ratio) in TARGETS.items():
        med = statistics.median(times[name])
        ok = med <= seconds and (ratio is None or med <= ratio * numpy_s)
        want = f"<= {seconds:.2f}s" + (f" and <= {ratio:g}x import numpy" if ratio else "")
        print(f"target {name}: {want}: {'PASS' if ok else 'FAIL'} ({med:.3f}s, "
              f"{med / numpy_s:.2f}x)")
    if args.importtime:
        name = f'seqtag tag "{SENTENCE}"'
        print(f"\npython -X importtime {name}: µs by package or seqtag module "
              f"(median of {args.runs})")
        print("\n".join(importtime(commands[name], env, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
