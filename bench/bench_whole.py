"""Benchmark: seqtag as whole processes, as a user runs it.

  (a) `seqtag tag < big.txt > out` with the bundled model: wall time of the whole process
      (start-up included), tokens/s. big.txt is every sentence of the shared corpora
      (CoNLL-2003, CoNLL-2000, UD English-EWT, BTC; all splits) as raw text, one sentence per
      line, tokens joined by spaces, each distinct sentence once: about 0.97M tokens, written
      into a temporary folder. Target: ≥ 200,000 tokens/s.
  (b) the peak memory (max RSS of the child, from os.wait4) of that process on the first 100k
      tokens' lines and on the whole file. Target: ≤ 300 MB.
  (c) with --train: the default training on CoNLL-2003 (`seqtag train eng.train --dev
      eng.testa`, no options), its wall time. Target: ≤ 150 s. This takes minutes.
  (d) with more than one thread: (a)'s big.txt again with `--threads 1`, interleaved with the
      other runs; the speed-up of N threads over 1 (wall times' medians). Target: ≥ 1.7×.

The runs pass `--threads N` (N = the CPUs, or --threads) and `--engine E` when `seqtag tag
--help` / `seqtag train --help` list those options, and work without them.

    .venv/bin/python bench/bench_whole.py --data ../shared/data [--train] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAG_TARGET, RSS_TARGET, TRAIN_TARGET = 200_000, 300, 150
SCALING_TARGET = 1.7     # tag --threads 2 against --threads 1, on big.txt
SOURCES = {
    "conll2003": ("eng.train", "eng.testa", "eng.testb"),
    "conll2000": ("train.txt", "test.txt"),
    "ud_english_ewt": ("en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu"),
    "btc": ("btc.train", "btc.dev", "btc.test"),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seqtag_cmd() -> list[str]:
    return [sys.executable, "-m", "seqtag"]


def child_env() -> dict:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def options_of(command: str) -> str:
    proc = subprocess.run([*seqtag_cmd(), command, "--help"], capture_output=True, text=True,
                          env={**child_env(), "COLUMNS": "200"}, cwd=REPO)
    return proc.stdout


def extra_flags(command: str, threads: int, engine: str | None) -> list[str]:
    """--threads / --engine when this seqtag's `command` has them."""
    help_text = options_of(command)
    flags = []
    if "--threads" in help_text:
        flags += ["--threads", str(threads)]
    if engine and "--engine" in help_text:
        flags += ["--engine", engine]
    return flags


def big_text(data: Path, folder: Path) -> tuple[Path, list[int]]:
    """big.txt in ``folder``: every distinct sentence of SOURCES, one per line; the token count
    of each line."""
    sys.path.insert(0, str(REPO))
    from seqtag.corpus import read_corpus

    seen, lines, counts = set(), [], []
    for name, files in SOURCES.items():
        for f in files:
            path = data / name / f
            if not path.exists():
                sys.exit(f"{path} not found (give --data DIR)")
            for s in read_corpus(str(path))[0]:
                line = " ".join(s.tokens)
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
                    counts.append(len(s.tokens))
    out = folder / "big.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, counts


_IS_WARM = """
import sys
try:
    from seqtag.engines import warm
except ImportError:
    sys.exit(2)
sys.exit(0 if warm.is_warm() else 1)
"""


def wait_for_warm_kernels(timeout: float = 600) -> float:
    """Seconds spent waiting for the background warm-up that a fresh checkout's first `seqtag
    tag` starts (its marker: seqtag.engines.warm), so that no timed run shares the machine with
    the compiler or stays on NumPy for want of it. No wait for a seqtag without the warm-up, or
    with SEQTAG_WARMUP=0."""
    if os.environ.get("SEQTAG_WARMUP") == "0":
        return 0.0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        code = subprocess.run([sys.executable, "-c", _IS_WARM], env=child_env(), cwd=REPO,
                              capture_output=True).returncode
        if code != 1:
            break
        time.sleep(2)
    return time.perf_counter() - t0


def run(args: list[str], stdin: Path | None, stdout: Path) -> tuple[float, float, int]:
    """(wall seconds, max RSS in MB, exit code) of one child process."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    with open(stdout, "wb") as fout:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                env=child_env(), cwd=REPO)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if stdin:
        fin.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def tagged_tokens(out: Path) -> int:
    with open(out, "rb") as f:
        return sum(1 for line in f if line.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--repeats", type=int, default=3, help="tag runs of the whole file: median")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="passed as --threads when seqtag has it")
    ap.add_argument("--engine", default="auto", help="passed as --engine when seqtag has it")
    ap.add_argument("--train", action="store_true",
                    help="also time the default training on CoNLL-2003 (minutes)")
    args = ap.parse_args()
    data = Path(args.data)
    load = os.getloadavg()
    lines = [f"whole-process benchmark; {os.cpu_count()} CPUs, load average at start "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"]
    with tempfile.TemporaryDirectory(prefix="seqtag-whole-") as tmp:
        folder = Path(tmp)
        big, counts = big_text(data, folder)
        n_tokens = sum(counts)
        # the first lines holding 100k tokens
        total, cut = 0, 0
        while cut < len(counts) and total < 100_000:
            total += counts[cut]
            cut += 1
        with open(big, encoding="utf-8") as f:
            head = [next(f) for _ in range(cut)]
        small = folder / "100k.txt"
        small.write_text("".join(head), encoding="utf-8")
        lines.append(f"big.txt: {len(counts):,} distinct sentences, {n_tokens:,} tokens "
                     f"(CoNLL-2003, CoNLL-2000, UD EWT, BTC; all splits); 100k.txt: its first "
                     f"{cut:,} lines, {total:,} tokens")
        flags = extra_flags("tag", args.threads, args.engine)
        tag = [*seqtag_cmd(), "tag", *flags]
        lines.append(f"command: seqtag tag {' '.join(flags)} < FILE > out (bundled model)")
        out = folder / "out.conll"
        log("warm-up run (Numba cache)")
        run(tag, small, out)
        waited = wait_for_warm_kernels()
        if waited:
            log(f"waited {waited:.0f}s for the background warm-up to compile the kernels")
        # the same on one thread, interleaved, for the threads' speed-up (when there are more)
        one = [*seqtag_cmd(), "tag", *extra_flags("tag", 1, args.engine)] \
            if args.threads > 1 and "--threads" in flags else None
        small_runs, big_runs, one_runs = [], [], []
        for i in range(args.repeats):
            log(f"round {i + 1}/{args.repeats}")
            small_runs.append(run(tag, small, out))
            big_runs.append(run(tag, big, out))
            if one is not None:
                one_runs.append(run(one, big, folder / "out1.conll"))
        tagged = tagged_tokens(out)
        wall = sorted(w for w, _, _ in big_runs)[len(big_runs) // 2]
        tps = tagged / wall
        rss_small = max(r for _, r, _ in small_runs)
        rss_big = max(r for _, r, _ in big_runs)
        small_wall = sorted(w for w, _, _ in small_runs)[len(small_runs) // 2]
        lines += [
            f"(a) tag big.txt: {tagged:,} tokens tagged (seqtag's tokenizer) in {wall:.2f}s "
            f"(median of {args.repeats}; runs " + ", ".join(f"{w:.2f}" for w, _, _ in big_runs)
            + f"s): {tps:,.0f} tokens/s; target >= {TAG_TARGET:,}: "
            + ("PASS" if tps >= TAG_TARGET else "NOT MET"),
            f"    100k.txt: {small_wall:.2f}s, {total / small_wall:,.0f} tokens/s (start-up "
            f"included)",
            f"(b) peak RSS: {rss_small:.0f} MB at {total / 1e3:.0f}k tokens, {rss_big:.0f} MB at "
            f"{n_tokens / 1e6:.2f}M tokens; target <= {RSS_TARGET} MB: "
            + ("PASS" if max(rss_small, rss_big) <= RSS_TARGET else "NOT MET")]
        if one_runs:
            wall1 = sorted(w for w, _, _ in one_runs)[len(one_runs) // 2]
            lines.append(
                f"(d) tag big.txt on {args.threads} threads / 1 thread (whole processes, "
                f"interleaved): {wall1:.2f}s / {wall:.2f}s = {wall1 / wall:.2f}x (1 thread's runs "
                + ", ".join(f"{w:.2f}" for w, _, _ in one_runs) + f"s); target >= "
                f"{SCALING_TARGET:.1f}x: " + ("PASS" if wall1 / wall >= SCALING_TARGET else
                                             "NOT MET"))
        print("\n".join(lines), flush=True)
        lines = []
        if args.train:
            conll = data / "conll2003"
            tflags = extra_flags("train", args.threads, None)
            model = folder / "model.npz"
            cmd = [*seqtag_cmd(), "train", str(conll / "eng.train"), "--dev",
                   str(conll / "eng.testa"), "-o", str(model), *tflags]
            log("default training on CoNLL-2003 (minutes)")
            wall, rss, _ = run(cmd, None, folder / "train.out")
            lines.append(f"(c) seqtag train eng.train --dev eng.testa {' '.join(tflags)}: "
                         f"{wall:.1f}s wall, peak RSS {rss:.0f} MB; target <= {TRAIN_TARGET} s: "
                         + ("PASS" if wall <= TRAIN_TARGET else "NOT MET"))
    load = os.getloadavg()
    lines.append(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
