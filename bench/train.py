"""Training seconds per iteration and peak memory of the SPEC model at 64 px, next to the loader's rate.

Rows, each measured in a process of its own (so that its peak RSS is its own), one warm-up iteration and then
--iterations timed ones of ``gqn.runs.train.train_step`` with --context context views per scene:

* ``fused``: the shipped model (fused ConvLSTM cores with the static inputs convolved once per pass,
  ``gqn.model.conv`` on the CPU) at batch 1 and 8;
* ``per-gate``: the same model with a straightforward ConvLSTM, defined here only: four convolutions, one per
  gate, of the concatenated inputs at every step (with the same ``gqn.model.conv`` convolution);
* with --chainer-conv: the shipped cores with Chainer's own CPU convolution everywhere (the model as it was
  before ``gqn.model.conv``);
* with --gpu ID (CuPy present): fused and per-gate cores on that GPU.

The rows are interleaved over --rounds rounds so that load from other jobs hits them alike; the table shows
the best and the median timed iteration (wall clock) and the median CPU time of the row's process per
iteration. The loader rows time ``ShardBatches.batch`` (the work of one loader worker) on a rendered 15-view,
64 px Shepard-Matzler dataset (gzip-1, as `gqn render` writes it) at the same batch sizes, and the training
loader with its default workers on converted jpeg and raw shards at batch 36 with 5 context views
(``bench/loader.py``'s data and measurement).

Usage: .venv/bin/python bench/train.py [--gpu ID] [--rounds N] [--chainer-conv]   writes bench/results/train.json
       (about 5 minutes on 2 CPU cores, most of it the per-gate cores at batch 8)
       .venv/bin/python bench/train.py --quick    a smoke run (batch 1, one timed iteration), prints only
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chainer
import chainer.functions as F
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from loader import make_data, measure as measure_prefetch  # noqa: E402  (bench/loader.py)

from gqn.data import Batch, ShardBatches  # noqa: E402
from gqn.model import conv  # noqa: E402
from gqn.model.config import ModelConfig, TrainConfig  # noqa: E402
from gqn.model.cores import KERNEL, ConvLSTM  # noqa: E402
from gqn.model.gqn import build_model  # noqa: E402
from gqn.runs.device import get_device  # noqa: E402
from gqn.runs.run import make_optimizer  # noqa: E402
from gqn.runs.train import train_step  # noqa: E402
from gqn.shards import Dataset  # noqa: E402

SIZE, VIEWS = 64, 15
REFERENCE = {"implementation": "chainer-gqn (public), h=128, L=12, 64 px, CPU, batch 1, same machine",
             "seconds_per_iteration": 6.1, "peak_rss_gb": 2.97}


class PerGateConvLSTM(chainer.Chain):
    """The ConvLSTM written plainly: at every step, one convolution per gate of all inputs concatenated.

    Same interface and mathematics as ``gqn.model.cores.ConvLSTM`` (gate k of this one is channels k::4 of
    the fused gates), without its fusion and without convolving the static inputs once per pass.
    """

    def __init__(self, static_channels: int, recurrent_channels: int, hidden: int, kernel: int = KERNEL):
        super().__init__()
        with self.init_scope():
            self.gates = chainer.ChainList(*(
                conv.Convolution2D(static_channels + recurrent_channels, hidden, kernel, pad=kernel // 2)
                for _ in range(4)))

    def precompute(self, static):
        return static

    def forward(self, static, recurrent, c):
        x = F.concat((static,) + tuple(recurrent), axis=1)
        a, i, f, o = (conv(x) for conv in self.gates)
        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(a)
        return F.sigmoid(o) * F.tanh(c), c


def check_same_cores() -> None:
    """The per-gate ConvLSTM given the fused one's weights computes the same step (or the bench is void)."""
    rng = np.random.default_rng(0)
    fused, plain = ConvLSTM(5, 4, 3), PerGateConvLSTM(5, 4, 3)
    weights = np.concatenate([fused.static.W.array, fused.recurrent.W.array], axis=1)
    for k, gate in enumerate(plain.gates):
        gate.W.array[...], gate.b.array[...] = weights[k::4], fused.static.b.array[k::4]
    static, rec, c = (rng.standard_normal((2, n, 6, 6)).astype(np.float32) for n in (5, 4, 3))
    for a, b in zip(fused(fused.precompute(static), (rec,), c), plain(plain.precompute(static), (rec,), c)):
        np.testing.assert_allclose(a.array, b.array, rtol=1e-4, atol=1e-5)


def synthetic_batch(batch: int, context: int) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(rng.integers(0, 256, (batch, context, SIZE, SIZE, 3), dtype=np.uint8),
                 rng.standard_normal((batch, context, 7), dtype=np.float32),
                 rng.integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8),
                 rng.standard_normal((batch, 7), dtype=np.float32))


def measure_training(row: dict) -> dict:
    """Run in a worker process: time ``row["iterations"]`` training steps after one warm-up step."""
    if row["cores"] == "chainer-conv":
        conv.convolution_2d = lambda x, W, b=None, stride=1, pad=0: F.convolution_2d(x, W, b, stride, pad)
    device = get_device(row["gpu"])
    config = TrainConfig(batch_size=row["batch"])
    lstm = PerGateConvLSTM if row["cores"] == "per-gate" else ConvLSTM
    model = build_model(ModelConfig(SIZE, SIZE), config.seed, lstm)
    model.to_device(device)
    optimizer = make_optimizer(model, config)
    batch = synthetic_batch(row["batch"], row["context"])
    seconds, cpu_seconds = [], []
    for iteration in range(row["iterations"] + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        train_step(model, optimizer, batch, config, iteration, device)
        if row["gpu"] is not None:
            device.device.synchronize()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    result = {"seconds": seconds[1:], "cpu_seconds": cpu_seconds[1:],
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if row["gpu"] is not None:
        import cupy

        result["gpu_pool_gb"] = cupy.get_default_memory_pool().total_bytes() / 2**30
    return result


def run_row(row: dict) -> dict:
    """``measure_training`` in a fresh Python process."""
    out = subprocess.run([sys.executable, __file__, "--row", json.dumps(row)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.splitlines()[-1])


def measure_loader(directory: Path, batch: int, context: int, seconds: float = 2.0) -> float:
    """Batches per second that ``ShardBatches.batch`` makes in this one process."""
    source = ShardBatches(Dataset(directory), batch, (context, context), seed=0)
    source.batch(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        count += 1
        source.batch(count)
    return count / (time.perf_counter() - start)


def rows_for(args) -> list[dict]:
    cores = ["fused", "per-gate"] + (["chainer-conv"] if args.chainer_conv else [])
    rows = [{"device": "cpu", "gpu": None, "cores": c, "batch": b} for b in args.batch for c in cores]
    if args.gpu is not None:
        rows += [{"device": f"gpu {args.gpu}", "gpu": args.gpu, "cores": c, "batch": b}
                 for b in args.batch for c in ("fused", "per-gate")]
    return [{**row, "context": args.context, "iterations": args.iterations} for row in rows]


def summarise(row: dict, runs: list[dict]) -> dict:
    seconds = [s for run in runs for s in run["seconds"]]
    cpu_seconds = [s for run in runs for s in run["cpu_seconds"]]
    summary = {**row, "best_s": min(seconds), "median_s": statistics.median(seconds),
               "median_cpu_s": statistics.median(cpu_seconds), "seconds": seconds, "cpu_seconds": cpu_seconds,
               "peak_rss_gb": max(run["peak_rss_gb"] for run in runs)}
    if "gpu_pool_gb" in runs[0]:
        summary["gpu_pool_gb"] = max(run["gpu_pool_gb"] for run in runs)
    return summary


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{platform.machine()}, {cpu}, {os.cpu_count()} cores, numpy {np.__version__}, Chainer {chainer.__version__}"


def print_table(results: dict) -> None:
    print(f"machine: {results['machine']}; 1-minute load average before/after: "
          f"{results['load_average'][0]:.1f}/{results['load_average'][1]:.1f}")
    print(f"{'device':8} {'cores':13} {'batch':>5} {'best s/it':>10} {'median s/it':>12} {'CPU s/it':>9} "
          f"{'peak RSS GB':>12}")
    for r in results["training"]:
        print(f"{r['device']:8} {r['cores']:13} {r['batch']:5d} {r['best_s']:10.2f} {r['median_s']:12.2f} "
              f"{r['median_cpu_s']:9.2f} {r['peak_rss_gb']:12.2f}"
              + (f"  (GPU pool {r['gpu_pool_gb']:.2f} GB)" if "gpu_pool_gb" in r else ""))
    for where, s in results["fused_vs_per_gate"].items():
        print(f"fused cores vs per-gate cores, {where}: {s:.2f}x faster (median)")
    ref = results["reference"]
    if "vs_reference" in results:
        print(f"batch 1 vs {ref['implementation']} ({ref['seconds_per_iteration']} s/it, {ref['peak_rss_gb']} GB): "
              f"{results['vs_reference']['speed']:.2f}x faster, {results['vs_reference']['memory']:.2f}x less memory")
    for r in results["loader"]:
        print(f"loader batch {r['batch']}: {r['batches_per_s']:.1f} batches/s in one process, "
              f"{r['ratio_to_training']:.0f}x the CPU training rate")
    for r in results["loader_formats"]:
        print(f"loader, {r['data']} shards, batch {r['batch']}, {r['context_views']} context views, "
              f"{r['loader_workers']} workers: {r['batches_per_s']:.1f} batches/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 1 timed iteration")
    parser.add_argument("--chainer-conv", action="store_true",
                        help="add rows for the shipped cores on Chainer's own CPU convolution")
    parser.add_argument("--gpu", type=int, default=None, help="also measure on this GPU (needs CuPy)")
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default: 1 8)")
    parser.add_argument("--context", type=int, default=VIEWS - 1,
                        help="context views per scene (default 14: every view of a 15-view scene but the query)")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per row (default 2)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(measure_training(json.loads(args.row))))
        return
    args.batch = args.batch or ([1] if args.quick else [1, 8])
    args.iterations = args.iterations or (1 if args.quick else 2)
    check_same_cores()
    load_before = os.getloadavg()[0]
    rows = rows_for(args)
    runs = [[] for _ in rows]
    for _ in range(args.rounds):
        for row, row_runs in zip(rows, runs):
            row_runs.append(run_row(row))
    training = [summarise(row, row_runs) for row, row_runs in zip(rows, runs)]
    by_row = {(r["device"], r["cores"], r["batch"]): r for r in training}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "gqn", "render", "shepard-matzler", "--scenes", "100", "--views",
                        str(VIEWS), "--size", str(SIZE), "--scenes-per-shard", "50", "--out", str(data),
                        "--no-progress"], check=True, stderr=subprocess.DEVNULL)
        loader = [{"batch": b, "batches_per_s": measure_loader(data, b, args.context)} for b in args.batch]
        formats = {kind: path for kind, path in make_data(Path(tmp) / "formats").items() if "converted" in kind}
        workers = os.cpu_count() or 1
        loader_formats = [{"data": kind, "batch": 36, "context_views": 5, "loader_workers": workers,
                           "batches_per_s": measure_prefetch(path, 36, 5, workers)} for kind, path in formats.items()]
    for r in loader:
        r["ratio_to_training"] = r["batches_per_s"] * by_row["cpu", "fused", r["batch"]]["median_s"]
    results = {"machine": machine(), "model": "SPEC defaults: tower r=256, h=128, L=12, z=3, u=128, shared cores",
               "size": SIZE, "context_views": args.context, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
               "load_average": [load_before, os.getloadavg()[0]],   # 1-minute, before and after: others' jobs
               "training": training, "loader": loader, "loader_formats": loader_formats, "reference": REFERENCE,
               "fused_vs_per_gate": {f"{device} batch {b}": r["median_s"] / by_row[device, "fused", b]["median_s"]
                                     for (device, cores, b), r in by_row.items() if cores == "per-gate"}}
    if 1 in args.batch:
        fused = by_row["cpu", "fused", 1]
        results["vs_reference"] = {"speed": REFERENCE["seconds_per_iteration"] / fused["median_s"],
                                   "memory": REFERENCE["peak_rss_gb"] / fused["peak_rss_gb"]}
    print_table(results)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "train.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
