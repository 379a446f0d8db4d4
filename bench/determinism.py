"""Byte-determinism of rendered datasets under load: the same `gqn render` command run several times at once.

Issue F3: with ISA-L at gzip-1, 8 of 300 shards of three concurrent 20k-scene renders differed from an
earlier run by one byte of one compressed chunk (the data equal). Rare and load-dependent, so it is checked
here, at a size that caught it, rather than in the unit tests. Prints and writes the shards that differ.

Usage: python bench/determinism.py [--scenes 20000] [--runs 3] [--compression gzip-1]
writes bench/results/determinism.json
"""
from __future__ import annotations

import argparse
import filecmp
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", default="gzip-1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"run{i}" for i in range(args.runs)]
        started = time.perf_counter()
        jobs = [subprocess.Popen([sys.executable, "-m", "gqn", "render", "shepard-matzler", "--scenes",
                                  str(args.scenes), "--scenes-per-shard", "200", "--compression", args.compression,
                                  "--out", str(out), "--no-progress"], stderr=subprocess.DEVNULL) for out in outs]
        if any(job.wait() for job in jobs):
            sys.exit("a render failed")
        seconds = time.perf_counter() - started
        names = sorted(p.name for p in outs[0].glob("*.h5"))
        differing = {out.name: [n for n in names if not filecmp.cmp(outs[0] / n, out / n, shallow=False)]
                     for out in outs[1:]}
    result = {"machine": f"{platform.machine()}, concurrent runs on a shared machine", "scenes": args.scenes,
              "runs": args.runs, "compression": args.compression, "shards_per_run": len(names),
              "seconds": round(seconds, 1), "differing_shards": differing}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "determinism.json").write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(1 if any(differing.values()) else 0)


if __name__ == "__main__":
    main()
