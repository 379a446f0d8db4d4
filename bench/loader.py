"""How fast the training loader makes batches from each kind of shard: rendered (raw, gzip-1), converted raw
and converted jpeg (format version 2, decoded on read).

The data: Shepard-Matzler scenes rendered at 64 px with 15 views (`gqn render`), exported to DeepMind's TFRecord
format (`gqn export tfrecord`, JPEG quality 95) and converted back with `--images raw` and `--images jpeg`.
Rows: batches per second of ``ShardBatches.batch`` (training's sampling, --context views plus the query) in
one process, and through ``prefetch`` with the default loader workers (2 on 2 cores), at --batch scenes.
The kinds are interleaved over --rounds rounds; the best round is reported.

Usage: .venv/bin/python bench/loader.py [--batch 36] [--context 5]    writes bench/results/loader.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gqn.data import ShardBatches  # noqa: E402
from gqn.runs.loader import prefetch  # noqa: E402
from gqn.shards import Dataset, disk_size  # noqa: E402

SCENES, SIZE, VIEWS = 400, 64, 15


def gqn(*args):
    subprocess.run([sys.executable, "-m", "gqn", *map(str, args), "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_data(work: Path) -> dict[str, Path]:
    rendered, records = work / "rendered", work / "shepard_metzler_5_parts"
    gqn("render", "shepard-matzler", "--scenes", SCENES, "--size", SIZE, "--views", VIEWS, "--out", rendered)
    gqn("export", "tfrecord", rendered, records / "train", "--records-per-file", SCENES)
    kinds = {"rendered raw gzip-1": rendered}
    for images in ("raw", "jpeg"):
        gqn("convert", "tfrecord", records, work / images, "--images", images)
        kinds[f"converted {images}"] = work / images / "train"
    return kinds


def rate(batches, seconds: float) -> float:
    """Batches per second drawn from the iterator ``batches`` for about ``seconds`` (after one warm-up)."""
    next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        next(batches)
        count += 1
    return count / (time.perf_counter() - start)


def measure(directory: Path, batch: int, context: int, workers: int, seconds: float = 3.0) -> float:
    source = ShardBatches(Dataset(directory), batch, (context, context), seed=0)
    if workers == 0:
        return rate(map(source.batch, itertools.count()), seconds)
    batches = prefetch(source, workers=workers, depth=2 * workers)
    try:
        return rate(batches, seconds)
    finally:
        batches.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=36)
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        kinds = make_data(Path(tmp))
        sizes = {kind: disk_size(path) / SCENES for kind, path in kinds.items()}
        best: dict[tuple[str, int], float] = {}
        for _ in range(args.rounds):
            for kind, path in kinds.items():
                for w in (0, workers):
                    r = measure(path, args.batch, args.context, w)
                    best[kind, w] = max(best.get((kind, w), 0.0), r)
    rows = [{"data": kind, "bytes_per_scene": round(sizes[kind]), "loader_workers": w,
             "batches_per_s": round(r, 1), "scenes_per_s": round(r * args.batch)} for (kind, w), r in best.items()]
    print(f"{'data':22} {'KB/scene':>9} {'workers':>8} {'batches/s':>10}")
    for row in rows:
        print(f"{row['data']:22} {row['bytes_per_scene'] / 1e3:9.1f} {row['loader_workers']:8d} "
              f"{row['batches_per_s']:10.1f}")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "size": SIZE, "views": VIEWS,
              "batch": args.batch, "context_views": args.context, "rows": rows}
    out = ROOT / "bench" / "results" / "loader.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
