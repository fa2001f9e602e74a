"""Benchmark: `seqtag tag` on Dask workers (a LocalCluster of worker processes on this machine).

big.txt is the raw-text corpus of bench_whole.py: every distinct sentence of the shared corpora
(CoNLL-2003, CoNLL-2000, UD EWT, BTC; all splits), one per line, about 0.96M tokens (--lines N:
its first N lines). It is tagged with the bundled model by

  one     `seqtag tag --threads 1` (the peer: one process, one thread),
  W=1,2   `seqtag tag --workers W` (a LocalCluster of W processes of one thread each),

each a whole process (cluster start-up, model shipping and Numba loading on the workers
included), the same engine for all (--engine, default numba: the workers' kernels come from
Numba's cache, filled by a warm-up run first). Then the steady state, in this process: on a
LocalCluster of W workers already started and warmed up (2,000 lines tagged), the time to tag
the input through seqtag.distributed.tag_batches, start-up excluded. Printed: wall time and
tokens/s of each, the scaling (tokens/s of W=2 over W=1, and over the one-process peer),
whether every output is the bytes of the peer's, and the load average, with the machine called
busy when the 1-minute load at the start was 1 or more: figures from a busy machine are not
the tool's.

    .venv/bin/python bench/bench_dask.py --data ../shared/data [--lines 20000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_whole import big_text, log, run, seqtag_cmd, tagged_tokens  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--lines", type=int, default=0, help="tag only big.txt's first N lines")
    ap.add_argument("--workers", default="1,2", help="worker counts to run")
    ap.add_argument("--engine", default="numba")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each: the fastest counts")
    args = ap.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        sys.exit("bench_dask needs dask.distributed: pip install 'seqtag[dask]'")
    load = os.getloadavg()
    busy = load[0] >= 1.0
    with tempfile.TemporaryDirectory(prefix="seqtag-dask-") as tmp:
        folder = Path(tmp)
        big, counts = big_text(Path(args.data), folder)
        if args.lines:
            with open(big, encoding="utf-8") as f:
                head = [line for _, line in zip(range(args.lines), f)]
            big = folder / "part.txt"
            big.write_text("".join(head), encoding="utf-8")
            counts = counts[:len(head)]
        base = [*seqtag_cmd(), "tag", "--engine", args.engine, "--batch-size",
                str(args.batch_size), "-f", "conll"]
        with open(big, encoding="utf-8") as f:
            warm = folder / "warm.txt"
            warm.write_text("".join(line for _, line in zip(range(2000), f)), encoding="utf-8")
        log("warm-up runs (Numba's cache)")
        run([*base, "--threads", "1"], warm, folder / "warm.conll")
        run([*base, "--workers", "1"], warm, folder / "warm.conll")
        runs = {"one process": [*base, "--threads", "1"]}
        for w in (int(x) for x in args.workers.split(",")):
            runs[f"--workers {w}"] = [*base, "--workers", str(w)]
        results, same = {}, True
        for name, cmd in runs.items():
            out = folder / f"{name.replace(' ', '_')}.conll"
            walls = []
            for i in range(args.repeats):
                log(f"{name}: run {i + 1}/{args.repeats}")
                walls.append(run(cmd, big, out)[0])
            results[name] = min(walls)
            if name == "one process":
                peer, tokens = out, tagged_tokens(out)
            else:
                same = same and filecmp.cmp(out, peer, shallow=False)
        steady = {w: _steady(w, big, args, peer) for w in
                  (int(x) for x in args.workers.split(","))}
    end = os.getloadavg()
    print(f"Dask benchmark; {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start, "
          f"{end[0]:.2f} at the end: {'BUSY machine' if busy else 'quiet machine'}")
    print(f"input: {len(counts):,} lines, {tokens:,} tokens; engine {args.engine}, batches of "
          f"{args.batch_size}; whole processes, the fastest of {args.repeats}")
    tps = {}
    for name, wall in results.items():
        tps[name] = tokens / wall
        print(f"  {name:14s} {wall:8.2f} s  {tps[name]:10,.0f} tokens/s")
    if "--workers 1" in tps and "--workers 2" in tps:
        print(f"scaling: --workers 2 / --workers 1 = "
              f"{tps['--workers 2'] / tps['--workers 1']:.2f}x; --workers 2 / one process = "
              f"{tps['--workers 2'] / tps['one process']:.2f}x")
    print("steady state (cluster started and warm; in-process client, whose CPU time counts "
          "its reading, writing and the scheduler):")
    for w, (wall, cpu, ok) in steady.items():
        tps[w] = tokens / wall
        same = same and ok
        print(f"  {w} worker{'s' if w > 1 else ' '}      {wall:8.2f} s  {tps[w]:10,.0f} tokens/s"
              f"  (client CPU {cpu:.2f} s)")
    if 1 in tps and 2 in tps:
        print(f"scaling: 2 workers / 1 worker = {tps[2] / tps[1]:.2f}x; 2 workers / one process "
              f"= {tps[2] / tps['one process']:.2f}x")
    print(f"outputs identical to the one-process run: {'yes' if same else 'NO'}")


def _steady(workers: int, big: Path, args, peer: Path) -> tuple[float, float, bool]:
    """(seconds, CPU seconds of this process: client and scheduler, output identical) of
    tagging ``big`` on a started, warmed-up LocalCluster."""
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from seqtag.distributed import ShippedModel, batches, connect, tag_batches
    from seqtag.tagging import read_texts

    log(f"steady state, {workers} worker(s)")
    shipped = ShippedModel.read(None)
    options = dict(scores=False, nbest=1, probs=False)

    def tag(path):
        jobs = batches([("text", read_texts(str(path)), str(path))], args.batch_size)
        return "".join(tag_batches(client, shipped, jobs, engine=args.engine,
                                   options=options, fmt="conll"))

    with connect(workers) as client:
        with open(big, encoding="utf-8") as f:
            warm = big.with_name("warm-steady.txt")
            warm.write_text("".join(line for _, line in zip(range(2000), f)), encoding="utf-8")
        tag(warm)
        t0, c0 = time.perf_counter(), time.process_time()
        out = tag(big)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, out.encode("utf-8") == peer.read_bytes()


if __name__ == "__main__":
    main()
