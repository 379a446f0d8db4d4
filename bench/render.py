"""Render throughput: `gqn render` (whole process, start-up and shard writing included) for every scene
family at 1 worker and all cores, against a bare pyrender loop; where a worker's time goes (in-process
profile per family); compression choices, MPI, and peak RSS against dataset size (Shepard-Matzler).

Usage: python bench/render.py [--quick] [--cprofile]     writes bench/results/render.json
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
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SIZE, VIEWS = 64, 15


@dataclass(frozen=True)
class FamilyRow:
    name: str       # the family as stored in the shards
    command: str    # gqn render COMMAND
    args: tuple     # its options
    params: dict    # the same as family parameters (for the in-process profile)

    @property
    def views(self) -> int:
        """The family's default views (its declaration in the registry)."""
        from gqn.renderer.families import family_spec

        return family_spec(self.command).views


FAMILY_ROWS = (
    FamilyRow("shepard-matzler", "shepard-matzler", ("--parts", "5"), {"parts": 5}),
    FamilyRow("rooms-ring", "rooms", ("--camera", "ring"), {"camera": "ring"}),
    FamilyRow("rooms-free", "rooms", ("--camera", "free"), {"camera": "free"}),
    FamilyRow("mnist-dice", "mnist-dice", (), {}),
)
SM = FAMILY_ROWS[0]


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


def run_render(row: FamilyRow, scenes: int, workers: int, out: Path, compression: str = "none",
               launcher: list | None = None) -> dict:
    """Time a whole `gqn render` process and sample the peak RSS of its process tree."""
    cmd = [*(launcher or []), sys.executable, "-m", "gqn", "render", row.command, *row.args, "--scenes", str(scenes),
           "--views", str(row.views), "--size", str(SIZE), "--workers", str(workers), "--out", str(out),
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
    return {"family": row.name, "views": row.views, "scenes": scenes, "workers": workers, "compression": compression,
            "launcher": "mpiexec -n " + launcher[-1] if launcher else "",
            "seconds": seconds, "scenes_per_s": scenes / seconds, "frames_per_s": scenes * row.views / seconds,
            "peak_rss_mb": peak / 2 ** 20, "disk_mb": disk / 1e6}


def profile_worker(row: FamilyRow, scenes: int = 640, cprofile: bool = False) -> dict:
    """Where one worker's time goes: scene sampling vs. the render pass (draw + readback), after the
    per-worker set-up (meshes, textures, framebuffers), which is timed apart. With ``cprofile``, also the
    top functions of the per-scene path (set-up excluded)."""
    import cProfile
    import io
    import pstats

    from gqn.renderer.families import get_family
    from gqn.renderer.stream import RenderConfig
    from gqn.renderer.tiled import TiledRenderer

    views = row.views
    config = RenderConfig(row.command, row.params, views, SIZE, 0)
    t0 = time.perf_counter()
    fam = get_family(row.command)(views, SIZE, **row.params)
    renderer = TiledRenderer(SIZE, fam.meshes(), fam.projection(), fam.background, fam.textures(),
                             max_tiles=config.chunk_scenes * views)
    setup = time.perf_counter() - t0
    chunks = [range(start, start + config.chunk_scenes) for start in range(0, scenes, config.chunk_scenes)]
    sample = render = 0.0
    for chunk in chunks:
        t0 = time.perf_counter()
        specs = [fam.scene(0, i) for i in chunk]
        t1 = time.perf_counter()
        renderer.render(specs)
        sample, render = sample + t1 - t0, render + time.perf_counter() - t1
    result = {"family": row.name, "scenes": scenes, "views": views, "chunk_scenes": config.chunk_scenes,
              "setup_s": setup, "sample_s": sample, "render_s": render,
              "in_process_frames_per_s": scenes * views / (sample + render)}
    if cprofile:  # a second pass under the profiler (its overhead would distort the timings above)
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [renderer.render([fam.scene(1, i) for i in chunk]) for chunk in chunks])
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        result["cprofile_top"] = text.getvalue()
    renderer.close()
    return result


def print_profiles(profiles: list) -> None:
    print(f"{'family':16} {'in-process frames/s':>19} {'set-up s':>8} {'sampling ms/scene':>17} "
          f"{'render ms/scene':>15} {'sampling share':>14}")
    for p in profiles:
        print(f"{p['family']:16} {p['in_process_frames_per_s']:19.0f} {p['setup_s']:8.2f} "
              f"{1e3 * p['sample_s'] / p['scenes']:17.2f} {1e3 * p['render_s'] / p['scenes']:15.2f} "
              f"{p['sample_s'] / (p['sample_s'] + p['render_s']):14.0%}")
    for p in profiles:
        if "cprofile_top" in p:
            print(f"\n--- {p['family']}: per-scene path, cProfile by own time ---\n{p['cprofile_top']}")


def print_runs(runs: list, bare: float) -> None:
    print(f"\n{'family':16} {'launcher':>13} {'scenes':>7} {'workers':>7} {'compression':>11} {'scenes/s':>9} "
          f"{'frames/s':>9} {'x bare':>7} {'peak RSS MB':>11} {'disk MB':>8}")
    for r in runs:
        print(f"{r['family']:16} {r['launcher']:>13} {r['scenes']:7d} {r['workers']:7d} {r['compression']:>11} "
              f"{r['scenes_per_s']:9.1f} {r['frames_per_s']:9.0f} {r['frames_per_s'] / bare:7.2f} "
              f"{r['peak_rss_mb']:11.0f} {r['disk_mb']:8.1f}")


def family_summary(runs: list, cores: int) -> dict:
    """frames/s of each family at 1 worker and all cores, and as a fraction of Shepard-Matzler's."""
    rate = {(r["family"], r["workers"]): r["frames_per_s"] for r in runs if r["compression"] == "none"
            and not r["launcher"]}
    summary = {}
    print(f"\n{'family':16} {'frames/s, 1 worker':>18} {f'frames/s, {cores} workers':>19} {'vs SM (1 / all)':>16}")
    for row in FAMILY_ROWS:
        one, many = rate[row.name, 1], rate[row.name, cores]
        summary[row.name] = {"frames_per_s_1": one, "frames_per_s_all": many,
                             "vs_shepard_matzler_1": one / rate[SM.name, 1],
                             "vs_shepard_matzler_all": many / rate[SM.name, cores]}
        s = summary[row.name]
        print(f"{row.name:16} {one:18.0f} {many:19.0f} "
              f"{s['vs_shepard_matzler_1']:8.2f} / {s['vs_shepard_matzler_all']:.2f}")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke test)")
    parser.add_argument("--cprofile", action="store_true", help="print each family's per-scene cProfile")
    args = parser.parse_args()
    n = 400 if args.quick else 4000
    cores = os.cpu_count()
    results = {"machine": f"{platform.processor() or platform.machine()}, {cores} cores, Mesa llvmpipe (CPU)",
               "size": SIZE, "views": {row.name: row.views for row in FAMILY_ROWS}}
    results["bare_pyrender_frames_per_s"] = bare = measure_bare(300 if args.quick else 1500)
    print(f"bare pyrender loop (Shepard-Matzler-like, {VIEWS} views): {bare:.0f} frames/s\n")
    results["profiles"] = [profile_worker(row, 160 if args.quick else 640, args.cprofile) for row in FAMILY_ROWS]
    print_profiles(results["profiles"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        for row in FAMILY_ROWS:
            for workers in sorted({1, cores}):
                runs.append(run_render(row, n, workers, tmp / f"{row.name}-w{workers}"))
        for compression in ("lzf", "gzip-1", "gzip-4"):
            runs.append(run_render(SM, n, cores, tmp / compression, compression))
        mpi = mpiexec_prefix(2)
        if mpi:
            runs.append(run_render(SM, n, 1, tmp / "mpi", launcher=mpi))
        for scenes in ((200, 2000) if args.quick else (2000, 20000)):
            runs.append(run_render(SM, scenes, cores, tmp / f"s{scenes}", "gzip-1"))
    results["runs"] = runs
    print_runs(runs, bare)
    results["families"] = family_summary(runs, cores)
    one, many = runs[0], runs[1] if cores > 1 else runs[0]
    results["scaling"] = many["frames_per_s"] / one["frames_per_s"]
    print(f"\nShepard-Matzler, {cores} workers / 1 worker: {results['scaling']:.2f}x")
    for p in results["profiles"]:
        p.pop("cprofile_top", None)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "render.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
