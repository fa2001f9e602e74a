"""Whether `seqtag train --portable` writes the same model bytes on this machine as on the
machines recorded before it (issue 8: `make model` must not depend on the machine).

    python bench/bench_portable.py [--record]

Trains the default model for 3 epochs (seed 1) on samples/btc.dev with --portable, a fixed
SOURCE_DATE_EPOCH and 1 thread, in a child process run from the repository's root (the model's
metadata names the corpus by the path given), and prints the sha256 of the file. The same
bytes are expected only for the same versions of what compiles and runs the kernels (Python,
NumPy, Numba, llvmlite) and the same seqtag sources (their checksum): the key of
bench/portable_models.json, whose records also name the commit they were made at). Against the hashes recorded
there for this key, on other CPUs, it prints SAME or DIFFERENT; `--record` adds this machine's.
One machine cannot test this alone: tests/test_portable.py hides its AVX-512 from NumPy and
glibc, which is the part a single host can check.

Needs only seqtag and its dependencies (no ../shared data).
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

    return (f"seqtag sources {sources_checksum()}, python {platform.python_version()}, "
            f"numpy {numpy.__version__}, numba {numba.__version__}, "
            f"llvmlite {llvmlite.__version__}, {platform.machine()}")


def sources_checksum() -> str:
    """Of seqtag's Python sources: a change to training changes the bytes everywhere."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "seqtag").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


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


def train_hash() -> str:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "portable.npz"
        proc = subprocess.run([sys.executable, "-m", "seqtag", "train", CORPUS, *FLAGS,
                               "-o", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(f"seqtag train failed:\n{proc.stderr}")
        return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true",
                    help="add this machine's hash to bench/portable_models.json")
    args = ap.parse_args()
    key, cpu = versions_key(), cpu_name()
    digest = train_hash()
    print(f"portable model (seqtag train {CORPUS} {' '.join(FLAGS)}): sha256 {digest}")
    print(f"  this machine: {cpu}; {key}")
    records = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    seen = records.get(key, [])
    others = [r for r in seen if r["cpu"] != cpu]
    if not seen:
        print("  no hash recorded for these sources and versions: nothing to compare (--record "
              "adds one)")
        for other, rs in sorted(records.items()):
            for r in rs:
                print(f"  recorded: {r['cpu']} ({r['date']}, commit {r['commit']}; {other}): "
                      f"run this script in a checkout of that commit with those versions to "
                      f"compare")
    for r in seen:
        verdict = "SAME" if r["sha256"] == digest else "DIFFERENT"
        print(f"  {verdict} as on {r['cpu']} ({r['date']}): {r['sha256'][:16]}")
    if seen and not others:
        print("  (recorded on this CPU model only: another machine's run is the test)")
    if args.record and not any(r["cpu"] == cpu and r["sha256"] == digest for r in seen):
        seen.append({"sha256": digest, "cpu": cpu, "commit": commit(),
                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")})
        records[key] = seen
        RECORD.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
        print(f"  recorded in {RECORD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
