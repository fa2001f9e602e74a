"""Benchmark: how much of this machine's float32 arithmetic the default model's kernels use.

  1. The machine's single-thread float32 peak, as a matrix product reaches it: a 2048×2048 NumPy
     matmul with one BLAS thread (threadpoolctl), best of 5: 2·n³ / seconds, in a child process
     with OPENBLAS_CORETYPE unset (a CORETYPE in the environment picks slower kernels).
  2. The default model's FLOPs per token (bench/flops.py: 2 × the multiply-adds of its dense
     products for each real token, ×3 for training), from the model's own shapes.
  3. Training and tagging speed of the default model on CoNLL-2003, one thread: training tokens/s
     over the epochs after the first (which holds the kernels' cache load), tagging in-process
     (eng.testb in batches of 256, best of 3; the network alone, and with encoding and Viterbi).
     GFLOP/s = tokens/s × FLOPs per token; against the peak. Targets: ≥ 50% in training,
     ≥ 60% in tagging. Then the same under the stricter count (flops.Computed): a repeated
     input earns nothing, so the input projection and the character CNN count as computed, once
     per distinct input row of a batch (training's rows are nearly all distinct: feature and
     word dropout draw per token; tagging's are not).
  4. The vector registers the hot kernels compile to (numba's inspect_asm, in a child process
     with an empty cache, since cached code cannot be inspected): zmm (512-bit), ymm (256-bit)
     and xmm uses per kernel.
  5. With --compare-features: the same speeds with NUMBA_CPU_FEATURES = the host's features plus
     -prefer-256-bit (LLVM's own vectoriser then uses 512-bit vectors on AVX-512 machines),
     against the default, in child processes interleaved, each with its own warm cache; medians.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/bench_efficiency.py --data ../shared/data
    .venv/bin/python bench/bench_efficiency.py --quick --compare-features --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from flops import Computed, model_flops  # noqa: E402

TRAIN_TARGET, TAG_TARGET = 0.50, 0.60
TAG_BATCH = 256
HOT_MODULES = ("lstm", "matmul", "stepping", "charcnn", "embed", "crf", "optim")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n×n float32 matmul on one BLAS thread, best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    limit = one_blas_thread()
    if limit is None and os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        sys.exit("threadpoolctl is missing: install it, or run with OPENBLAS_NUM_THREADS=1")
    try:
        a @ b   # warm-up
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return 2.0 * n ** 3 / best / 1e9


def peak_probe() -> dict:
    """The peak in this process, with the OpenBLAS kernel set it chose (threadpoolctl's info)."""
    gflops = matmul_peak()
    arch = "?"
    try:
        from threadpoolctl import threadpool_info

        arch = next((i.get("architecture") or "?" for i in threadpool_info()
                     if i.get("internal_api") == "openblas"), "?")
    except ImportError:
        pass
    return {"gflops": gflops, "architecture": arch}


def machine_peak() -> tuple[float, str]:
    """The machine's peak, in a child process with OPENBLAS_CORETYPE unset (for that command
    only): a CORETYPE set in the environment (Haswell on these hosts) makes OpenBLAS use its
    AVX2 kernels on an AVX-512 machine, about 131 against 200 GFLOP/s, and every fraction of
    that peak would read too high. With none set this is the in-process figure."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    r = child(["--probe", "peak"], env)
    return r["gflops"], r["architecture"]


def load_corpus(data: str, quick: bool):
    """(train, test) sentences of CoNLL-2003, or of samples/btc when it is not there."""
    from seqtag.corpus import read_corpus

    folder = Path(data) / "conll2003"
    if (folder / "eng.train").exists():
        name = "CoNLL-2003 (eng.train, eng.testb)"
        train, test = (read_corpus(str(folder / f))[0] for f in ("eng.train", "eng.testb"))
    else:
        name = "samples/btc (../shared/data not found)"
        train, test = (read_corpus(str(REPO / "samples" / f))[0] for f in ("btc.train", "btc.test"))
    if quick:
        train, test, name = train[:3000], test[:1000], name + ", quick subset"
    return name, train, test


def speed(data: str, quick: bool, epochs: int) -> dict:
    """Train the default model (one thread where the CLI has --threads) for ``epochs`` epochs
    without dev, then time tagging; tokens/s and FLOPs per token."""
    from seqtag.config import TrainConfig
    from seqtag.training import Trainer

    name, train, test = load_corpus(data, quick)
    cfg = dataclasses.replace(TrainConfig(), epochs=epochs, patience=0, seed=1)
    if "threads" in {f.name for f in dataclasses.fields(TrainConfig)}:
        cfg = dataclasses.replace(cfg, threads=1)
    seconds = []

    def progress(event, info):
        if event == "epoch":
            seconds.append(info["seconds"])
            log(f"    epoch {info['epoch']}: {info['seconds']:.2f}s "
                f"{info['tokens_per_second']:,.0f} tok/s")

    limit = one_blas_thread()
    with Computed() as train_computed:
        trainer = Trainer(cfg, progress=progress).fit(train, None)
    model = trainer.model_
    n_train = sum(len(s.tokens) for s in train)
    later = seconds[1:] or seconds
    tokens = [s.tokens for s in test]
    n_test = sum(map(len, tokens))
    batches = [tokens[i:i + TAG_BATCH] for i in range(0, len(tokens), TAG_BATCH)]

    def predict():
        for b in batches:
            model.predict(b)

    def network_only():
        for b in encoded:
            model.network.forward(*b)

    from seqtag.encoding import pack

    encoded = []
    for b in batches:
        ids, offsets = pack([model.encoder.encode(s) for s in b])
        encoded.append((ids.reshape(len(ids), model.encoder.n_columns), offsets))
    with Computed() as tag_computed:
        predict()
    best_tag = best_net = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        predict()
        best_tag = min(best_tag, time.perf_counter() - t0)
        t0 = time.perf_counter()
        network_only()
        best_net = min(best_net, time.perf_counter() - t0)
    if limit is not None:
        limit.restore_original_limits()
    f_train = model_flops(model.params, (t for s in train for t in s.tokens))
    f_test = model_flops(model.params, (t for s in tokens for t in s))
    return {"corpus": name, "train_tokens": n_train, "test_tokens": n_test,
            "train_tps": n_train * len(later) / sum(later), "epoch_seconds": seconds,
            "tag_tps": n_test / best_tag, "net_tps": n_test / best_net,
            "flops_forward": f_test.forward, "flops_training": f_train.training,
            "flops_forward_train": f_train.forward, "parts": f_test.per_token(),
            "computed_forward": tag_computed.forward(f_test),
            "computed_training": 3 * train_computed.forward(f_train, len(seconds)),
            "threads": getattr(cfg, "threads", 1)}


def asm_probe() -> dict:
    """Compile the training and tagging kernels afresh (the caller gives an empty cache) on a
    small run of the default model; count the vector registers in each kernel's assembly."""
    import importlib

    from seqtag.config import TrainConfig
    from seqtag.corpus import read_corpus
    from seqtag.training import Trainer

    sents = read_corpus(str(REPO / "samples" / "tiny.tsv"))[0]
    cfg = dataclasses.replace(TrainConfig(), epochs=1, patience=0)
    Trainer(cfg).fit(sents, sents[:4]).model_.predict([s.tokens for s in sents])
    out = {}
    for mod in HOT_MODULES:
        m = importlib.import_module(f"seqtag.kernels.{mod}")
        for name in sorted(vars(m)):
            k = getattr(m, name)
            if not hasattr(k, "inspect_asm") or not getattr(k, "signatures", None) \
                    or k.__module__ != m.__name__:
                continue
            counts = {"zmm": 0, "ymm": 0, "xmm": 0}
            for sig in k.signatures:
                asm = k.inspect_asm(sig)
                for reg in counts:
                    counts[reg] += len(re.findall(rf"%{reg}\d+", asm))
            out[f"{mod}.{name}"] = counts
    return out


def host_features() -> str:
    from llvmlite.binding import get_host_cpu_features

    return get_host_cpu_features().flatten()


def child(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"child {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_env(cache: str | None = None, features: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    env.pop("NUMBA_CPU_FEATURES", None)
    if cache:
        env["NUMBA_CACHE_DIR"] = cache
    if features:
        env["NUMBA_CPU_FEATURES"] = features
    return env


def asm_table(counts: dict) -> list[str]:
    lines = [f"  {'kernel':<40}{'zmm':>7}{'ymm':>7}{'xmm':>7}"]
    total = {"zmm": 0, "ymm": 0, "xmm": 0}
    for name, c in counts.items():
        if sum(c.values()):
            lines.append(f"  {name:<40}{c['zmm']:>7}{c['ymm']:>7}{c['xmm']:>7}")
        for k in total:
            total[k] += c[k]
    lines.append(f"  {'sum (callers include their callees)':<40}{total['zmm']:>7}{total['ymm']:>7}"
                 f"{total['xmm']:>7}")
    lines.append("  zmm: the hand-written products (simd._acc_block, 16-lane vectors on AVX-512); "
                 "ymm: loops LLVM\n  vectorises itself (gates, tanh, exp), which it keeps at "
                 "256 bits on AVX-512 (its prefer-256-bit tuning)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--quick", action="store_true", help="a subset of CoNLL-2003: a smoke test")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs (the first is not timed)")
    ap.add_argument("--no-asm", action="store_true", help="skip the assembly inspection")
    ap.add_argument("--compare-features", action="store_true",
                    help="also time NUMBA_CPU_FEATURES=host,-prefer-256-bit against the default")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the comparison")
    ap.add_argument("--probe", choices=("speed", "asm", "peak"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe == "speed":
        print(json.dumps(speed(args.data, args.quick, args.epochs)))
        return
    if args.probe == "asm":
        print(json.dumps(asm_probe()))
        return
    if args.probe == "peak":
        print(json.dumps(peak_probe()))
        return

    import numba

    load = os.getloadavg()
    log(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; measuring the matmul peak")
    peak, arch = machine_peak()
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    inherited = matmul_peak() if coretype else None
    log("training and tagging the default model, one thread:")
    r = speed(args.data, args.quick, args.epochs)
    peak_after, _ = machine_peak()
    train_gf = r["train_tps"] * r["flops_training"] / 1e9
    tag_gf = r["tag_tps"] * r["flops_forward"] / 1e9
    net_gf = r["net_tps"] * r["flops_forward"] / 1e9
    out = [f"kernel efficiency of the default model; numba {numba.__version__}, numpy "
           f"{np.__version__}; {os.cpu_count()} CPUs; load average at start "
           f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
           + " ".join(f"{x:.2f}" for x in os.getloadavg()),
           f"peak: 2048x2048 float32 matmul, 1 BLAS thread, best of 5, OPENBLAS_CORETYPE unset "
           f"(OpenBLAS kernels: {arch}): {peak:.1f} GFLOP/s (again after the runs: "
           f"{peak_after:.1f}); the larger is used"
           + (f"\n  (with this environment's OPENBLAS_CORETYPE={coretype}: {inherited:.1f} "
              "GFLOP/s; not used: it is not the machine's peak)" if coretype else ""),
           f"corpus: {r['corpus']}; {r['train_tokens']:,} training, {r['test_tokens']:,} "
           f"test tokens; seqtag threads: {r['threads']}",
           "FLOPs per token (2 x multiply-adds of the dense products, per real token):"]
    peak = max(peak, peak_after)
    for part, v in r["parts"].items():
        out.append(f"  {part:<20}{v:>12,.0f}")
    out += [f"  {'forward':<20}{r['flops_forward']:>12,.0f}   (test tokens; "
            f"{r['flops_forward_train']:,.0f} over the training tokens)",
            f"  {'training (x3)':<20}{r['flops_training']:>12,.0f}",
            "",
            f"{'':<34}{'tok/s':>10}{'GFLOP/s':>9}{'of peak':>9}{'target':>8}",
            f"{'training (epochs after the 1st)':<34}{r['train_tps']:>10,.0f}{train_gf:>9.2f}"
            f"{train_gf / peak:>9.1%}{TRAIN_TARGET:>8.0%}  "
            f"{'PASS' if train_gf / peak >= TRAIN_TARGET else 'NOT MET'}",
            f"{'tagging (encode+network+Viterbi)':<34}{r['tag_tps']:>10,.0f}{tag_gf:>9.2f}"
            f"{tag_gf / peak:>9.1%}{TAG_TARGET:>8.0%}  "
            f"{'PASS' if tag_gf / peak >= TAG_TARGET else 'NOT MET'}",
            f"{'tagging, network forward only':<34}{r['net_tps']:>10,.0f}{net_gf:>9.2f}"
            f"{net_gf / peak:>9.1%}"]
    # The stricter reading of the count: a repeated input earns nothing, so the input
    # projection and the character CNN count once per distinct row of a batch, as computed.
    strict_train_gf = r["train_tps"] * r["computed_training"] / 1e9
    strict_tag_gf = r["tag_tps"] * r["computed_forward"] / 1e9
    out += ["",
            "stricter count: the input projection and the character CNN as the kernels compute "
            "them (once per distinct input row of a batch), the rest per token:",
            f"  {'forward':<20}{r['computed_forward']:>12,.0f}   (test tokens, batches of "
            f"{TAG_BATCH})",
            f"  {'training (x3)':<20}{r['computed_training']:>12,.0f}",
            f"{'training (epochs after the 1st)':<34}{r['train_tps']:>10,.0f}"
            f"{strict_train_gf:>9.2f}{strict_train_gf / peak:>9.1%}{TRAIN_TARGET:>8.0%}  "
            f"{'PASS' if strict_train_gf / peak >= TRAIN_TARGET else 'NOT MET'}",
            f"{'tagging (encode+network+Viterbi)':<34}{r['tag_tps']:>10,.0f}"
            f"{strict_tag_gf:>9.2f}{strict_tag_gf / peak:>9.1%}{TAG_TARGET:>8.0%}  "
            f"{'PASS' if strict_tag_gf / peak >= TAG_TARGET else 'NOT MET'}"]
    print("\n".join(out), flush=True)

    if not args.no_asm:
        log("compiling the kernels afresh to read their assembly (about a minute)")
        with tempfile.TemporaryDirectory(prefix="seqtag-asm-") as cache:
            counts = child(["--probe", "asm"], child_env(cache))
        print("\nvector registers in the compiled kernels (inspect_asm; operands counted; "
              "kernels without any left out):")
        print("\n".join(asm_table(counts)), flush=True)

    if args.compare_features:
        compare(args)


def compare(args) -> None:
    """Default code generation against host features + -prefer-256-bit, interleaved rounds."""
    variants = {"default": None, "512-bit (host,-prefer-256-bit)": host_features()
                + ",-prefer-256-bit"}
    common = ["--probe", "speed", "--data", args.data, "--epochs", str(args.epochs)] \
        + (["--quick"] if args.quick else [])
    results = {k: [] for k in variants}
    with tempfile.TemporaryDirectory(prefix="seqtag-cmp-") as root:
        caches = {k: os.path.join(root, str(i)) for i, k in enumerate(variants)}
        for k, feats in variants.items():       # compile once each: not timed
            log(f"warming the cache of {k}")
            child(["--probe", "speed", "--data", args.data, "--epochs", "1", "--quick"],
                  child_env(caches[k], feats))
            log(f"asm of {k}")
        asm = {}
        for k, feats in variants.items():
            with tempfile.TemporaryDirectory(prefix="seqtag-asm-") as cache:
                asm[k] = child(["--probe", "asm"], child_env(cache, feats))
        for i in range(args.rounds):
            order = list(variants) if i % 2 == 0 else list(variants)[::-1]
            for k in order:
                log(f"round {i + 1}: {k}")
                results[k].append(child(common, child_env(caches[k], variants[k])))
    print("\nvector width: LLVM's default against NUMBA_CPU_FEATURES=<host>,-prefer-256-bit "
          f"({args.rounds} interleaved rounds, medians; load at end "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ")")
    print(f"  {'':<34}{'train tok/s':>12}{'tag tok/s':>11}{'net tok/s':>11}{'zmm':>7}{'ymm':>7}")
    med = {}
    for k, rs in results.items():
        med[k] = {m: statistics.median(r[m] for r in rs) for m in ("train_tps", "tag_tps", "net_tps")}
        z = sum(c["zmm"] for c in asm[k].values())
        y = sum(c["ymm"] for c in asm[k].values())
        print(f"  {k:<34}{med[k]['train_tps']:>12,.0f}{med[k]['tag_tps']:>11,.0f}"
              f"{med[k]['net_tps']:>11,.0f}{z:>7}{y:>7}")
        print("    per round: train " + " ".join(f"{r['train_tps']:,.0f}" for r in rs)
              + "; tag " + " ".join(f"{r['tag_tps']:,.0f}" for r in rs))
    a, b = med.values()
    print(f"  512-bit / default: train {b['train_tps'] / a['train_tps']:.3f}x, tag "
          f"{b['tag_tps'] / a['tag_tps']:.3f}x, network {b['net_tps'] / a['net_tps']:.3f}x")


if __name__ == "__main__":
    main()
