"""What each training objective learns in the same wall-clock budget, against the baselines.

Shepard-Matzler, 5 parts, 32 px: 20k training scenes (seed 0) and 512 held-out scenes (seed 1). Every objective
trains the same small model with `gqn train --time-limit` for ``--minutes`` of wall-clock time in total (a
budget raised in a later call resumes the run: 10 minutes to screen, then 30; a recipe fitted to its budget
with ``--lr-steps auto`` trains afresh for each budget; a recipe named ``-2xB-`` trains over 2 MPI processes
of batch B), then `gqn evaluate` scores the held-out scenes at 5 context views. Reported per objective and
budget: the prior-mean prediction MSE, the baselines on the same queries (training-set mean image, nearest
context view), prediction / mean-image, bits/pixel, KL and iterations done. Run it alone on a quiet machine:
the budget is wall-clock time.

Usage: python bench/quality.py [--minutes 10] [--objectives paper,geco] [--root DIR]
writes bench/results/quality.json (merged with earlier budgets), docs/quality-OBJECTIVE-Nmin.png (the
prediction grid) and docs/quality-OBJECTIVE-Nmin-orbit.gif (the first held-out scene's orbit)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "quality.json"
DOCS = HERE.parent / "docs"
SIZE, TRAIN_SCENES, TEST_SCENES, CONTEXT = 32, 20_000, 512, 5
MODEL = ["--steps", "4", "--hidden", "32", "--canvas", "32", "--r-channels", "64", "--representation", "tower"]
OPTIMISER = ["--batch-size", "16", "--lr-start", "1e-3", "--lr-end", "1e-3"]


def auto(start: str = "1e-3") -> list[str]:
    """Learning rate ``start`` -> 1e-5, annealed over the iterations the budget allows (``--lr-steps auto``)."""
    return ["--lr-start", start, "--lr-end", "1e-5", "--lr-steps", "auto"]


def paper(batch: int, *more: str, context: str = "1-5") -> list[str]:
    """Options of a recipe with the paper objective: ``batch`` scenes (per process), ``context`` views."""
    return ["--objective", "paper", "--context", context, "--batch-size", str(batch), *more]


def warmed_l2(start: str = "1e-3", *more: str) -> list[str]:
    """The 2x4 5-view recipe with L = 2, its rate warmed up over 500 iterations from 0 to ``start``."""
    return paper(4, *auto(start), "--steps", "2", "--lr-warmup", "500", *more, context="5-5")


OBJECTIVES = {   # objective -> its own options (the paper schedule and its sigmas are the CLI defaults)
    "paper": ["--objective", "paper"],
    "paper-context5": ["--objective", "paper", "--context", "1-5"],   # trained on at most the 5 views it is tested on
    # the best recipe with half the batch: about twice the updates in the same time
    "paper-context5-batch8": paper(8),
    # the same with the learning rate annealed 1e-3 -> 1e-4 over about what 30 minutes give
    "paper-context5-batch8-anneal": paper(8, "--lr-start", "1e-3", "--lr-end", "1e-4", "--lr-steps", "5000"),
    # on a machine that does about 10,000 iterations in 30 minutes: the annealing fitted to them, down to 1e-5
    "paper-context5-batch8-anneal10k": paper(8, "--lr-start", "1e-3", "--lr-end", "1e-5", "--lr-steps", "10000"),
    # the same, fitted to any machine: annealed 1e-3 -> 1e-5 over the iterations the budget allows
    "paper-context5-batch8-auto": paper(8, *auto()),
    # the same from twice the starting rate
    "paper-context5-batch8-auto-2e-3": paper(8, *auto("2e-3")),
    # twice the channels (h 64, canvas 64, r 128): about 2.4 times the seconds per iteration
    "wide-context5-batch8-anneal": paper(8, "--hidden", "64", "--canvas", "64", "--r-channels", "128",
                                         "--lr-start", "1e-3", "--lr-end", "1e-5", "--lr-steps", "4200"),
    # the auto recipe data-parallel over 2 single-threaded processes (MPI), 4 scenes each: the same batch of
    # 8, 1.35 times the iterations in 30 minutes on 2 cores (one process leaves the second core mostly idle)
    "paper-context5-2x4-auto": paper(4, *auto()),
    # the 2x4 recipe trained on exactly the 5 context views it is tested on
    "paper-5views-2x4-auto": paper(4, *auto(), context="5-5"),
    "paper-5views-2x8-auto": paper(8, *auto(), context="5-5"),   # the same with batch 16
    "paper-5views-2x2-auto": paper(2, *auto(), context="5-5"),   # and with batch 4
    # the 2x4 5-view recipe with L = 2 or 1 generation steps instead of 4: fewer seconds per iteration
    **{f"paper-5views-2x4-auto-L{steps}": paper(4, *auto(), "--steps", str(steps), context="5-5")
       for steps in (2, 1)},
    # L = 2 with a core of its own for each step (the first one starts from a zero state)
    "paper-5views-2x4-auto-L2-unshared": paper(4, *auto(), "--steps", "2", "--no-shared-cores", context="5-5"),
    # the 2x4 5-view recipe from lower starting rates (-> 1e-5)
    **{f"paper-5views-2x4-auto-{lr}": paper(4, *auto(lr), context="5-5") for lr in ("5e-4", "7e-4")},
    # L = 2 with the learning rate warmed up over the first 500 iterations (from 1e-3 or 2e-3): the first
    # full-rate Adam steps otherwise saturate the cores' gates (docs/training.md)
    "paper-5views-2x4-auto-L2-warm500": warmed_l2(),
    "paper-5views-2x4-auto-2e-3-L2-warm500": warmed_l2("2e-3"),
    # the same with 3x3 instead of 5x5 kernels in the cores: cheaper steps
    "paper-5views-2x4-auto-L2-warm500-k3": warmed_l2("1e-3", "--kernel", "3"),
    # and with a narrower tower (r = 48 instead of 64): cheaper steps again
    "paper-5views-2x4-auto-L2-warm500-k3-r48": warmed_l2("1e-3", "--kernel", "3", "--r-channels", "48"),
    # the 3x3 recipe with the viewpoints in the query camera's yaw frame (gqn.model.frames)
    "paper-5views-2x4-auto-L2-warm500-k3-query": warmed_l2("1e-3", "--kernel", "3", "--frame", "query"),
    "fixed-sigma": ["--objective", "fixed-sigma", "--sigma", "0.25", "--kl-warmup", "1000"],
    "calibrated": ["--objective", "calibrated"],
    "geco": ["--objective", "geco"],
    "geco-kappa015": ["--objective", "geco", "--geco-kappa", "0.015"],  # κ above the regression's error
}
PROCESSES = {name: 2 for name in OBJECTIVES if "-2x" in name}   # data-parallel MPI processes (default 1)
REPORTED = ("prediction_mse", "mean_image_mse", "nearest_view_mse", "prediction_ratio", "bits_per_pixel", "kl",
            "mse", "sigma", "neg_elbo")


def gqn(*args, processes: int = 1, env: dict | None = None, **kwargs):
    """``gqn ARGS``; with ``processes`` > 1, that many of it under ``mpiexec`` (the `mpi` extra's), data-parallel,
    each with one BLAS thread unless ``env`` sets OPENBLAS_NUM_THREADS (or leaves it out: OpenBLAS's default)."""
    command = [sys.executable, "-m", "gqn", *map(str, args)]
    if processes > 1:
        mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        command = [mpiexec, "-n", str(processes), *command, "--communicator", "naive"]
        env = {"OPENBLAS_NUM_THREADS": "1", **os.environ} if env is None else dict(env)
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")   # harmless when not root
    subprocess.run(command, check=True, env=env, **kwargs)


def render_data(root: Path) -> tuple[Path, Path]:
    """The benchmark's datasets (rendering resumes, so a complete directory costs nothing)."""
    train, test = root / "data" / "train", root / "data" / "test"
    for out, scenes, seed in ((train, TRAIN_SCENES, 0), (test, TEST_SCENES, 1)):
        gqn("render", "shepard-matzler", "--parts", 5, "--scenes", scenes, "--size", SIZE, "--seed", seed,
            "--out", out, "--no-progress")
    return train, test


def train(run: Path, objective: str, minutes: float, data: Path, test: Path) -> float:
    """Train ``objective`` until it has had ``minutes`` of wall-clock time in all; returns the seconds used."""
    ledger = run / "bench-seconds.json"
    used = json.loads(ledger.read_text())["seconds"] if ledger.exists() else 0.0
    remaining = minutes * 60 - used
    if remaining > 1:
        resume = ["--resume"] if (run / "snapshot.npz").exists() else []
        start = time.monotonic()
        gqn("train", data, "--out", run, "--test", test, "--test-every", 250, "--test-scenes", 128,
            "--iterations", "1M", "--time-limit", f"{remaining:.0f}s", "--log-every", 50, "--no-progress",
            *MODEL, *OPTIMISER, *OBJECTIVES[objective], *resume, processes=PROCESSES.get(objective, 1))
        used += time.monotonic() - start
        ledger.write_text(json.dumps({"seconds": used}))
    return used


def evaluate(run: Path, test: Path, out: Path) -> dict:
    gqn("evaluate", run, "--data", test, "--scenes", TEST_SCENES, "--context", f"{CONTEXT}-{CONTEXT}",
        "--rows", 8, "--gifs", 2, "--out", out, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--root", type=Path, default=Path("bench-quality"),
                        help="Data, runs and evaluations (reused: a larger --minutes resumes each run).")
    args = parser.parse_args()
    objectives = args.objectives.split(",")
    unknown = set(objectives) - set(OBJECTIVES)
    if unknown:
        parser.error(f"unknown objectives {sorted(unknown)}; choose from {', '.join(OBJECTIVES)}")
    data, test = render_data(args.root)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, CPU training",
                   data=f"shepard-matzler 5 parts, {SIZE} px, {TRAIN_SCENES} training / {TEST_SCENES} held-out "
                        f"scenes, {CONTEXT} context views",
                   model=" ".join(MODEL + OPTIMISER))
    budget = f"{args.minutes:g}min"
    for objective in objectives:
        # a run fitted to its budget (--lr-steps auto) starts afresh for each budget instead of resuming
        fitted = "auto" in OBJECTIVES[objective]
        run = args.root / "runs" / (f"{objective}-{budget}" if fitted else objective)
        seconds = train(run, objective, args.minutes, data, test)
        metrics = evaluate(run, test, args.root / "eval" / f"{objective}-{budget}")
        entry = {"options": " ".join(OBJECTIVES[objective]), "train_seconds": round(seconds, 1),
                 "iterations": metrics["iteration"], **{k: metrics[k] for k in REPORTED}}
        results.setdefault("runs", {}).setdefault(objective, {})[budget] = entry
        evaluated = args.root / "eval" / f"{objective}-{budget}"
        shutil.copy(evaluated / "predictions.png", DOCS / f"quality-{objective}-{budget}.png")
        shutil.copy(evaluated / "orbit_000000.gif", DOCS / f"quality-{objective}-{budget}-orbit.gif")
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'objective':12} {'budget':>7} {'iters':>6} {'pred MSE':>9} {'mean img':>9} {'nearest':>9} "
          f"{'ratio':>6} {'bits/px':>8} {'KL':>7}")
    for objective, budgets in results["runs"].items():
        for name, r in budgets.items():
            print(f"{objective:12} {name:>7} {r['iterations']:6d} {r['prediction_mse']:9.5f} "
                  f"{r['mean_image_mse']:9.5f} {r['nearest_view_mse']:9.5f} {r['prediction_ratio']:6.3f} "
                  f"{r['bits_per_pixel']:8.4f} {r['kl']:7.2f}")


if __name__ == "__main__":
    main()
