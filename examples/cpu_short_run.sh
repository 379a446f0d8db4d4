#!/usr/bin/env bash
# What a GQN learns of Shepard-Matzler in a fixed wall-clock budget on the CPU (docs/training.md).
# Renders 20,000 + 512 scenes at 32 px (about 30 s on 2 cores; skipped when already there), trains the
# small model of bench/quality.py with the recipe that learned most in that benchmark (paper objective,
# L = 2 generation steps with 3x3 core kernels, viewpoints in the query camera's yaw frame, the 5 context
# views it is evaluated with, batch 8, learning rate warmed up over 500 iterations, then annealed 1e-3 -> 1e-5
# over the iterations the budget allows)
# for MINUTES of wall-clock time (--time-limit with --lr-steps auto; running the script again continues the
# run for another MINUTES, the annealing stretched to the new end), then evaluates on the 512 held-out scenes
# with 5 context views. The batch is split over PROCESSES data-parallel MPI processes (default 2, one per
# core of a 2-core machine; 1: a single process), each with one BLAS thread
# (docs/performance.md#on-a-cpu-one-process-per-core).
#   MINUTES=30 OUT=runs/sm32-short examples/cpu_short_run.sh
set -euo pipefail
MINUTES=${MINUTES:-30}
OUT=${OUT:-runs/sm32-short}
GQN=${GQN:-.venv/bin/gqn}
PROCESSES=${PROCESSES:-2}
MPIEXEC=${MPIEXEC:-$(dirname "$(command -v "$GQN")")/mpiexec}   # the mpi extra's, beside gqn
TRAIN=("$GQN" train)
if [ "$PROCESSES" -gt 1 ]; then
    TRAIN=(env OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
           "$MPIEXEC" -n "$PROCESSES" --oversubscribe "$GQN" train --communicator naive)
fi
$GQN render shepard-matzler --scenes 20k --size 32 --out "$OUT/data/train"
$GQN render shepard-matzler --scenes 512 --size 32 --seed 1 --out "$OUT/data/test"
"${TRAIN[@]}" "$OUT/data/train" --test "$OUT/data/test" --test-every 250 --test-scenes 128 --out "$OUT/run" \
    --iterations 1M --time-limit "${MINUTES}m" --batch-size $((8 / PROCESSES)) --steps 2 --kernel 3 --hidden 32 \
    --canvas 32 --r-channels 64 --lr-start 1e-3 --lr-end 1e-5 --lr-steps auto --lr-warmup 500 --objective paper \
    --context 5-5 --frame query \
    $([ -f "$OUT/run/snapshot.npz" ] && echo --resume)
$GQN evaluate "$OUT/run" --data "$OUT/data/test" --scenes 512 --context 5-5 --rows 8 --gifs 4
