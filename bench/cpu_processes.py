"""Training throughput on the CPU: one process against one MPI process per core (ChainerMN, `naive`).

A single CPU process leaves much of a second core idle at the small model's sizes: its BLAS products are
too small to split well over threads, and the column copies, element-wise work and Python around them run
on one core. `mpiexec -n 2 gqn train ... --communicator naive` trains data-parallel instead. Each row runs
`gqn train` (the small model of bench/quality.py: paper objective, 1-5 context views, 32 px
Shepard-Matzler) for --seconds and reports the median of its logged training scenes/s (all processes
together, held-out tests off), so the rows compare like for like; a row's batch is per process.

Usage: .venv/bin/python bench/cpu_processes.py [--seconds 75]   writes bench/results/cpu_processes.json
       (about 8 minutes; run it alone)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cpu_processes.json"
sys.path.insert(0, str(ROOT / "bench"))

from quality import MODEL, gqn  # noqa: E402  (bench/quality.py)

ROWS = [   # (processes, batch per process, BLAS threads per process: None = OpenBLAS's default)
    (1, 8, None), (1, 8, 1), (2, 4, 1), (2, 4, None), (2, 8, 1), (1, 16, None)]


def measure(data: Path, out: Path, processes: int, batch: int, threads: int | None, seconds: int) -> float:
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    gqn("train", data, "--out", out, "--iterations", "1M", "--time-limit", f"{seconds}s", "--log-every", 25,
        "--no-progress", *MODEL, "--objective", "paper", "--context", "1-5", "--batch-size", batch,
        processes=processes, env=env)
    rates = [json.loads(line)["scenes_per_s"] for line in (out / "log.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:])   # the first window holds the warm-up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=75)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        gqn("render", "shepard-matzler", "--parts", 5, "--scenes", 2000, "--size", 32, "--out", data,
            "--no-progress")
        for i, (processes, batch, threads) in enumerate(ROWS):
            rate = measure(data, Path(tmp) / f"run{i}", processes, batch, threads, args.seconds)
            rows.append({"processes": processes, "batch_per_process": batch, "batch": processes * batch,
                         "blas_threads": threads or "default", "scenes_per_s": round(rate, 1)})
            print(f"{processes} process(es) x batch {batch:2d}, BLAS threads {threads or 'default':>7}: "
                  f"{rate:6.1f} scenes/s, {rate / (processes * batch):5.2f} iterations/s", flush=True)
    RESULTS.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                   "seconds_per_row": args.seconds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
