"""Benchmark `gqn convert tfrecord` against merely decoding the same JPEG frames.

Makes DeepMind-format files of rendered Shepard-Matzler scenes (64 px, 15 views; `gqn render` and
`gqn export tfrecord`, JPEG quality 95), then times, each the best of --repeats runs:

* decoding every frame in one process with simplejpeg (libjpeg-turbo) and with Pillow,
* the whole conversion with 1 and 2 worker processes: ``--images raw`` (read, CRC, parse, decode, HDF5
  write), uncompressed and gzip-1, and ``--images jpeg`` (read, CRC, parse, JPEG header checks, HDF5 write of
  the frames as they are), with the output's bytes per input byte,

* with ``--tf-python PATH`` (a Python with TensorFlow; TensorFlow is never a dependency of the toolkit),
  TensorFlow's own reader on the same files: ``tf.data.TFRecordDataset``, ``parse_single_example`` and
  ``decode_jpeg`` of every frame (as DeepMind's data reader does), ``num_parallel_calls=AUTOTUNE``, timed
  from the first record to the last in a process of its own,

with the cases interleaved so that load from other jobs on the machine hits them alike. The conversions
write shards of ``--scenes-per-shard`` records (default 250): workers convert whole shards, so a split
needs at least as many shards as there are workers (DeepMind's datasets have hundreds).

Prints a table and writes bench/results/convert.json.
Usage: .venv/bin/python bench/convert.py [--tf-python /path/to/venv-with-tensorflow/bin/python]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gqn import __version__  # noqa: E402
from gqn.converters.convert import convert_tfrecord  # noqa: E402
from gqn.converters.example import parse_scene  # noqa: E402
from gqn.converters.tfrecord import RecordReader  # noqa: E402
from gqn.encodings import DEFAULT_COMPRESSION  # noqa: E402
from gqn.shards import disk_size  # noqa: E402

# TensorFlow's reader, run by --tf-python: argv = views, files...; prints the seconds of one pass
TF_READER = """
import sys, time
import tensorflow as tf
views, files = int(sys.argv[1]), sys.argv[2:]
features = {"frames": tf.io.FixedLenFeature([views], tf.string),
            "cameras": tf.io.FixedLenFeature([views * 5], tf.float32)}
def parse(record):
    example = tf.io.parse_single_example(record, features)
    frames = tf.map_fn(tf.image.decode_jpeg, example["frames"], fn_output_signature=tf.uint8)
    return frames, tf.reshape(example["cameras"], (views, 5))
data = (tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
        .prefetch(tf.data.AUTOTUNE))
start = time.perf_counter()
records = sum(len(cameras) for _, cameras in data)
print(records, time.perf_counter() - start)
"""

TF_CASE = "TensorFlow tf.data reader (AUTOTUNE)"  # its CPU time includes importing TensorFlow
SM5_RECORDS = 1000 * 2000  # 900 + 100 files; ~2000 scenes per file is our assumption (docs/converting.md)


def make_records(work: Path, out: Path, records: int, per_file: int) -> None:
    """DeepMind-format records of rendered Shepard-Matzler scenes (64 px, 15 views), made with the toolkit
    itself: `gqn render` then `gqn export tfrecord` (JPEG quality 95, 4:4:4)."""
    rendered = work / "rendered"
    for args in (["render", "shepard-matzler", "--scenes", records, "--out", rendered],
                 ["export", "tfrecord", rendered, out, "--records-per-file", per_file]):
        subprocess.run([sys.executable, "-m", "gqn", *map(str, args), "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(who) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(run, prepare) -> dict:
    """Wall seconds of one run (or the seconds it returns: a process timing itself after its start-up), with
    CPU seconds of this process and of the processes it reaped."""
    prepare()
    own, children = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    seconds = run()
    return {"seconds": seconds if isinstance(seconds, float) else time.perf_counter() - start,
            "main_cpu_s": cpu_seconds(resource.RUSAGE_SELF) - own,
            "worker_cpu_s": cpu_seconds(resource.RUSAGE_CHILDREN) - children}


def summarise(runs: list[dict], records: int, megabytes: float) -> dict:
    """Rates of the fastest run, its CPU time per record, and every run."""
    best = min(runs, key=lambda r: r["seconds"])
    return {"records_per_s": records / best["seconds"], "mb_per_s": megabytes / best["seconds"],
            "best_seconds": best["seconds"], "median_seconds": statistics.median(r["seconds"] for r in runs),
            "main_cpu_us_per_record": best["main_cpu_s"] / records * 1e6,
            "worker_cpu_us_per_record": best["worker_cpu_s"] / records * 1e6, "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes-per-shard", type=int, default=250)
    parser.add_argument("--tf-python", help="a Python with TensorFlow: time TensorFlow's own reader too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gqn-bench-convert-"))
    try:
        src = work / "shepard_metzler_5_parts"
        make_records(work, src / "train", args.records // args.files * args.files, args.records // args.files)
        paths = sorted((src / "train").glob("*.tfrecord"))
        records = args.records // args.files * args.files
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        frames = [f for p in paths for _, data in RecordReader(p) for f in parse_scene(data)[0]]

        def simplejpeg_decode():
            for f in frames:
                simplejpeg.decode_jpeg(f)

        def pillow_decode():
            for f in frames:
                np.asarray(Image.open(io.BytesIO(f)).convert("RGB"))

        def tensorflow_reader():
            done = subprocess.run([args.tf_python, "-c", TF_READER, "15", *map(str, paths)], check=True,
                                  capture_output=True, text=True).stdout.split()
            if int(done[0]) != records:
                raise SystemExit(f"TensorFlow's reader read {done[0]} of {records} records")
            return float(done[1])

        shards = work / "out"
        cases = [("decode only, simplejpeg (1 process)", simplejpeg_decode),
                 ("decode only, Pillow (1 process)", pillow_decode)]
        if args.tf_python:
            cases.append((TF_CASE, tensorflow_reader))
        outputs = [("raw", "none"), ("raw", DEFAULT_COMPRESSION), ("jpeg", "none")]
        cases += [(f"gqn convert, {w} worker{'s' * (w > 1)}, {i}" + f" {c}" * (c != "none"),
                   lambda w=w, i=i, c=c: convert_tfrecord([src], shards, workers=w, images=i, compression=c,
                                                          scenes_per_shard=args.scenes_per_shard,
                                                          progress=False))
                  for i, c in outputs for w in (1, 2)]
        runs = {name: [] for name, _ in cases}
        out_bytes = {}
        for _ in range(args.repeats):  # interleaved, so a burst of load from other jobs hits every case alike
            for name, run in cases:
                runs[name].append(measure(run, lambda: shutil.rmtree(shards, ignore_errors=True)))
                if name.startswith("gqn convert"):
                    out_bytes[name] = disk_size(shards / "train")
        results = {name: summarise(r, records, megabytes) for name, r in runs.items()}
        for name, nbytes in out_bytes.items():
            results[name].update(bytes_out=nbytes, bytes_out_per_in=nbytes / (megabytes * 1e6))
        rate = {name: r["records_per_s"] for name, r in results.items()}
        simplejpeg_rate = rate["decode only, simplejpeg (1 process)"]
        pillow_rate = rate["decode only, Pillow (1 process)"]
        one, two = rate["gqn convert, 1 worker, raw"], rate["gqn convert, 2 workers, raw"]
        jpeg_one, jpeg_two = rate["gqn convert, 1 worker, jpeg"], rate["gqn convert, 2 workers, jpeg"]
        ratios = {"convert_1_worker_vs_simplejpeg_decode": one / simplejpeg_rate,
                  "convert_2_workers_vs_1_worker": two / one,
                  "convert_1_worker_vs_pillow_decode": one / pillow_rate,
                  "simplejpeg_vs_pillow_decode": simplejpeg_rate / pillow_rate,
                  f"convert_1_worker_{DEFAULT_COMPRESSION}_vs_none":
                      rate[f"gqn convert, 1 worker, raw {DEFAULT_COMPRESSION}"] / one,
                  "convert_jpeg_vs_raw_1_worker": jpeg_one / one,
                  "convert_jpeg_vs_raw_2_workers": jpeg_two / two,
                  "convert_jpeg_2_workers_vs_1_worker": jpeg_two / jpeg_one}
        if args.tf_python:
            ratios.update({f"convert_{i}_{w.replace(' ', '_')}_vs_tensorflow_reader":
                           rate[f"gqn convert, {w}, {i}"] / rate[TF_CASE]
                           for i in ("jpeg", "raw") for w in ("1 worker", "2 workers")})
        projection_h = SM5_RECORDS / two / 3600
        per_record = {name: out_bytes[f"gqn convert, 2 workers, {name}"] / records
                      for name in ("raw", f"raw {DEFAULT_COMPRESSION}", "jpeg")}
        report = {
            "benchmark": "convert", "gqn_toolkit": __version__,
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                        "load_average_at_end": os.getloadavg()},
            "data": {"records": records, "files": args.files, "views": 15, "size": 64,
                     "scenes_per_shard": args.scenes_per_shard,
                     "mean_jpeg_bytes": sum(map(len, frames)) / len(frames), "input_mb": megabytes},
            "repeats": args.repeats, "results": results, "ratios": ratios,
            "projection": {"dataset": "shepard_metzler_5_parts", "assumed_records": SM5_RECORDS,
                           "hours_at_2_workers": projection_h,
                           "jpeg_hours_at_2_workers": SM5_RECORDS / jpeg_two / 3600,
                           "output_gb": {name: SM5_RECORDS * b / 1e9 for name, b in per_record.items()}},
        }
        print(f"{records} records ({args.files} files, {megabytes:.1f} MB, 15 views of 64 px, "
              f"{report['data']['mean_jpeg_bytes']:.0f} B per JPEG); best of {args.repeats}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'':38s} {'records/s':>10s} {'MB/s':>7s} {'out/in':>7s}   CPU us/record (main + workers)")
        for name, r in results.items():
            ratio = f"{r['bytes_out_per_in']:6.2f}x" if "bytes_out_per_in" in r else ""
            print(f"{name:38s} {r['records_per_s']:10.0f} {r['mb_per_s']:7.1f} {ratio:>7s}   "
                  f"{r['main_cpu_us_per_record']:.0f}" + (f" + {r['worker_cpu_us_per_record']:.0f}"
                                                          if r["worker_cpu_us_per_record"] else ""))
        for name, value in ratios.items():
            print(f"{name:44s} {value:6.2f}x")
        print(f"projected shepard_metzler_5_parts ({SM5_RECORDS:,} records, assumed) with 2 workers: "
              f"{projection_h:.1f} h raw, {report['projection']['jpeg_hours_at_2_workers']:.1f} h jpeg; output "
              + ", ".join(f"{gb:.0f} GB {name}" for name, gb in report["projection"]["output_gb"].items()))
        path = ROOT / "bench" / "results" / "convert.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {path.relative_to(ROOT)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
