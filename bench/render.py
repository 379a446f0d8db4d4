"""Render throughput: `gqn render` (whole process, start-up and shard writing included) against a bare
pyrender loop, worker scaling, compression choices, and peak RSS against dataset size.

Usage: python bench/render.py [--quick]     writes bench/results/render.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SIZE, VIEWS = 64, 15


def bare_pyrender_loop(frames: int, queue) -> None:
    """The naive use of the library: one scene of 5 cube nodes, only the camera moves, one render() and
    one 64 px readback per frame."""
    os.environ["PYOPENGL_PLATFORM"] = "egl"
    import numpy as np
    import pyrender
    import trimesh

    from gqn.renderer import camera

    scene = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[0.3] * 3)
    cube = trimesh.creation.box((0.35, 0.35, 0.35))
    for i in range(5):
        mesh = pyrender.Mesh.from_trimesh(cube, material=pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 0.2 * i, 0.0, 1.0]))
        pose = np.eye(4)
        pose[:3, 3] = [0.35 * i - 0.7, 0, 0]
        scene.add(mesh, pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=3.0))
    node = scene.add(pyrender.OrthographicCamera(xmag=1.0, ymag=1.0))
    renderer = pyrender.OffscreenRenderer(SIZE, SIZE)
    poses = camera.camera_to_world(camera.look_at(camera.random_sphere_positions(
        np.random.default_rng(0), frames, 2.0)))
    renderer.render(scene)
    start = time.perf_counter()
    for pose in poses:
        scene.set_pose(node, pose)
        renderer.render(scene)
    queue.put(frames / (time.perf_counter() - start))
    renderer.delete()


def measure_bare(frames: int = 1500) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=bare_pyrender_loop, args=(frames, queue))
    proc.start()
    rate = queue.get()
    proc.join()
    return rate


def tree_rss(pid: int) -> int:
    """Resident set size (bytes) of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
    return total


def mpiexec_prefix(ranks: int) -> list[str] | None:
    """``mpiexec -n ranks`` from the venv (the `mpi` extra), or None when MPI is not installed."""
    found = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return [found, "--oversubscribe", "-n", str(ranks)] if found else None


def run_render(family: str, family_args: list, scenes: int, workers: int, out: Path,
               compression: str = "none", views: int = VIEWS, launcher: list | None = None) -> dict:
    """Time a whole `gqn render` process and sample the peak RSS of its process tree."""
    cmd = [*(launcher or []), sys.executable, "-m", "gqn", "render", family, *family_args, "--scenes", str(scenes),
           "--views", str(views), "--size", str(SIZE), "--workers", str(workers), "--out", str(out),
           "--compression", compression, "--no-progress"]
    start = time.perf_counter()
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    sampler_done = threading.Event()

    def sample():
        nonlocal peak
        while not sampler_done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)

    thread = threading.Thread(target=sample)
    thread.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler_done.set()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"render failed: {err.decode()}")
    disk = sum(p.stat().st_size for p in out.glob("*.h5"))
    return {"family": family, "scenes": scenes, "workers": workers, "compression": compression,
            "launcher": "mpiexec -n " + launcher[-1] if launcher else "",
            "seconds": seconds, "scenes_per_s": scenes / seconds, "frames_per_s": scenes * views / seconds,
            "peak_rss_mb": peak / 2 ** 20, "disk_mb": disk / 1e6}


def profile_worker(scenes: int = 640) -> dict:
    """Where one worker's time goes: scene sampling vs. the render pass (draw + readback)."""
    from gqn.renderer.families import get_family
    from gqn.renderer.stream import RenderConfig
    from gqn.renderer.tiled import TiledRenderer

    config = RenderConfig("shepard-matzler", {"parts": 5}, VIEWS, SIZE, 0)
    family = get_family(config.family)(VIEWS, SIZE, parts=5)
    renderer = TiledRenderer(SIZE, family.meshes(), family.projection(), family.background,
                             max_tiles=config.chunk_scenes * VIEWS)
    sample = render = 0.0
    for start in range(0, scenes, config.chunk_scenes):
        t0 = time.perf_counter()
        specs = [family.scene(0, i) for i in range(start, start + config.chunk_scenes)]
        t1 = time.perf_counter()
        renderer.render(specs)
        t2 = time.perf_counter()
        sample, render = sample + t1 - t0, render + t2 - t1
    renderer.close()
    total = sample + render
    return {"scenes": scenes, "chunk_scenes": config.chunk_scenes, "sample_s": sample, "render_s": render,
            "in_process_frames_per_s": scenes * VIEWS / total}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke test)")
    args = parser.parse_args()
    n = 400 if args.quick else 4000
    cores = os.cpu_count()
    results = {"machine": f"{platform.processor() or platform.machine()}, {cores} cores, Mesa llvmpipe (CPU)",
               "size": SIZE, "views": VIEWS}
    results["bare_pyrender_frames_per_s"] = bare = measure_bare(300 if args.quick else 1500)
    print(f"bare pyrender loop: {bare:.0f} frames/s")
    results["profile"] = prof = profile_worker(160 if args.quick else 640)
    print(f"one worker in-process: {prof['in_process_frames_per_s']:.0f} frames/s "
          f"(scene sampling {prof['sample_s']:.2f} s, render pass {prof['render_s']:.2f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        for workers in sorted({1, cores}):
            runs.append(run_render("shepard-matzler", ["--parts", "5"], n, workers, tmp / f"w{workers}"))
        for compression in ("lzf", "gzip-1", "gzip-4"):
            runs.append(run_render("shepard-matzler", ["--parts", "5"], n, cores, tmp / compression,
                                   compression))
        mpi = mpiexec_prefix(2)
        if mpi:
            runs.append(run_render("shepard-matzler", ["--parts", "5"], n, 1, tmp / "mpi", launcher=mpi))
        for scenes in ((200, 2000) if args.quick else (2000, 20000)):
            runs.append(run_render("shepard-matzler", ["--parts", "5"], scenes, cores, tmp / f"s{scenes}",
                                   "gzip-1"))
    results["runs"] = runs
    print(f"\n{'family':16} {'launcher':>13} {'scenes':>7} {'workers':>7} {'compression':>11} {'scenes/s':>9} {'frames/s':>9} "
          f"{'x bare':>7} {'peak RSS MB':>11} {'disk MB':>8}")
    for r in runs:
        print(f"{r['family']:16} {r['launcher']:>13} {r['scenes']:7d} {r['workers']:7d} {r['compression']:>11} "
              f"{r['scenes_per_s']:9.1f} {r['frames_per_s']:9.0f} {r['frames_per_s'] / bare:7.2f} "
              f"{r['peak_rss_mb']:11.0f} {r['disk_mb']:8.1f}")
    one, many = runs[0], runs[1] if cores > 1 else runs[0]
    results["scaling"] = many["frames_per_s"] / one["frames_per_s"]
    print(f"\n{cores} workers / 1 worker: {results['scaling']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "render.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
