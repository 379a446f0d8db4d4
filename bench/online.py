"""Online training (`gqn train --render`) against training from shards on disk: same model, same machine.

Reports training iterations/s, the data rate and the fraction of time the trainer waited for data
(``data_wait``; 0 means it never starved), skipping the first log window (start-up).
Usage: python bench/online.py [--iterations N]    writes bench/results/online.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SIZE, VIEWS, BATCH = 32, 15, 16
MODEL = ["--hidden", "32", "--steps", "4", "--canvas", "32", "--r-channels", "64", "--representation", "pool"]


def gqn(*args):
    subprocess.run([sys.executable, "-m", "gqn", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def train(source_args: list, out: Path, iterations: int, every: int) -> dict:
    gqn("train", *source_args, "--out", out, "--iterations", iterations, "--batch-size", BATCH,
        "--log-every", every, "--no-progress", *MODEL)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][1:]  # skip start-up
    seconds_per_it = sum(BATCH * every / e["scenes_per_s"] for e in log) / (every * len(log))
    return {"iterations_per_s": 1 / seconds_per_it, "scenes_per_s": BATCH / seconds_per_it,
            "data_wait": sum(e["data_wait"] for e in log) / len(log),
            "max_data_wait": max(e["data_wait"] for e in log)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    every = max(1, args.iterations // 4)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gqn("render", "shepard-matzler", "--scenes", 2000, "--size", SIZE, "--out", tmp / "data", "--no-progress")
        shards = train([tmp / "data", "--workers", 1], tmp / "from-shards", args.iterations, every)
        online = train(["--render", "shepard-matzler", "--render-size", SIZE, "--render-views", VIEWS,
                        "--render-workers", 1], tmp / "online", args.iterations, every)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU training, Mesa llvmpipe rendering",
               "model": " ".join(MODEL), "size": SIZE, "views": VIEWS, "batch_size": BATCH,
               "from_shards": shards, "online": online,
               "online_vs_shards": online["iterations_per_s"] / shards["iterations_per_s"]}
    print(f"{'data source':14} {'it/s':>7} {'scenes/s':>9} {'data wait':>10} {'max wait':>9}")
    for name, r in (("shards", shards), ("online render", online)):
        print(f"{name:14} {r['iterations_per_s']:7.3f} {r['scenes_per_s']:9.1f} {r['data_wait']:10.1%} "
              f"{r['max_data_wait']:9.1%}")
    print(f"online / shards: {results['online_vs_shards']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "online.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
