"""Whether `seqtag train --portable` writes the same model bytes on this machine as on the
machines recorded before it (issue 8: `make model` must not depend on the machine).

    python bench/bench_portable.py [--record]

Trains the default model for 3 epochs (seed 1) on samples/btc.dev with --portable, a fixed
SOURCE_DATE_EPOCH and 1 thread, in a child process run from the repository's root (the model's
metadata names the corpus by the path given), and prints the sha256 of the file.

The same bytes are expected only from the same seqtag sources run by the same Python, NumPy,
Numba and llvmlite. bench/portable_models.json keeps, per set of versions, the hashes recorded
on other CPUs with the commit and the sources' checksum they were made at. A record of these
sources is compared at once; for a record of other sources, its commit is checked out in a
temporary git worktree and the model trained there (its kernels compile afresh: about a minute),
so that a later checkout still compares like with like. Each comparison prints SAME or
DIFFERENT; `--record` adds this machine's hash. One machine cannot test this alone:
tests/test_portable.py hides its AVX-512 from NumPy and glibc, which is the part a single host
can check.

Needs only seqtag and its dependencies, and git for the older records (no ../shared data).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("portable_models.json")
CORPUS = "samples/btc.dev"
FLAGS = ["--portable", "--seed", "1", "--epochs", "3", "--patience", "0", "--threads", "1"]


def versions_key() -> str:
    import llvmlite
    import numba
    import numpy

    return (f"python {platform.python_version()}, numpy {numpy.__version__}, "
            f"numba {numba.__version__}, llvmlite {llvmlite.__version__}, {platform.machine()}")


def sources_checksum(root: Path = ROOT) -> str:
    """Of seqtag's Python sources under ``root``."""
    digest = hashlib.sha256()
    for path in sorted((root / "seqtag").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    fields = {}
    for line in info.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')})")


def train_hash(root: Path = ROOT) -> str:
    """sha256 of the portable model trained by the seqtag under ``root``."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "portable.npz"
        proc = subprocess.run([sys.executable, "-m", "seqtag", "train", CORPUS, *FLAGS,
                               "-o", str(out)], cwd=root, env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(f"seqtag train failed:\n{proc.stderr}")
        return hashlib.sha256(out.read_bytes()).hexdigest()


def hash_at(commit: str, sources: str) -> str | None:
    """The portable model's sha256 trained by the seqtag of ``commit`` (a temporary worktree);
    None when the commit is not in this clone or its sources are not ``sources``."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        if git("worktree", "add", "--detach", str(tree), commit).returncode != 0:
            return None
        try:
            if sources_checksum(tree) != sources:
                return None
            return train_hash(tree)
        finally:
            git("worktree", "remove", "--force", str(tree))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true",
                    help="add this machine's hash to bench/portable_models.json")
    args = ap.parse_args()
    key, cpu, sources = versions_key(), cpu_name(), sources_checksum()
    digest = train_hash()
    print(f"portable model (seqtag train {CORPUS} {' '.join(FLAGS)}): sha256 {digest}")
    print(f"  this machine: {cpu}; {key}; seqtag sources {sources}")
    records = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    seen = records.get(key, [])
    if not seen:
        print("  no hash recorded for these versions: nothing to compare (--record adds one)")
    elsewhere = 0
    for r in seen:
        where = f"{r['cpu']} ({r['date']}, commit {r['commit']}, sources {r['sources']})"
        if r["sources"] == sources:
            mine = digest
        else:
            mine = hash_at(r["commit"], r["sources"])
            if mine is None:
                print(f"  cannot compare with {where}: that commit is not in this clone, or "
                      f"its sources differ")
                continue
        elsewhere += r["cpu"] != cpu
        verdict = "SAME" if r["sha256"] == mine else "DIFFERENT"
        print(f"  {verdict} as on {where}: {r['sha256'][:16]} there, {mine[:16]} here")
    if seen and not elsewhere:
        print("  (compared with this CPU model only: another machine's run is the test)")
    if args.record and not any(r["cpu"] == cpu and r["sources"] == sources for r in seen):
        head = git("rev-parse", "--short", "HEAD").stdout.strip() or "?"
        dirty = bool(git("status", "--porcelain", "--", "seqtag").stdout.strip())
        if dirty:
            sys.exit("  not recorded: seqtag/ has uncommitted changes (commit them first)")
        seen.append({"sha256": digest, "cpu": cpu, "commit": head, "sources": sources,
                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")})
        records[key] = seen
        RECORD.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
        print(f"  recorded in {RECORD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
