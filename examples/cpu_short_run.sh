#!/usr/bin/env bash
# A GQN that learns Shepard-Matzler colours and shapes in about 30 minutes on a 2-core CPU (README:
# "What a short CPU run gives"). Renders 20,000 + 512 scenes at 32 px (~40 s), trains a small model with a
# low pixel sigma and a KL warm-up (against posterior collapse, which a paper-schedule run this short hits
# within 50 iterations), then evaluates. Set ITERATIONS to what your machine does in the time you have.
set -euo pipefail
OUT=${OUT:-runs/sm32-short}
ITERATIONS=${ITERATIONS:-2500}
GQN=${GQN:-.venv/bin/gqn}
$GQN render shepard-matzler --scenes 20k --size 32 --out "$OUT/data/train"
$GQN render shepard-matzler --scenes 512 --size 32 --seed 1 --out "$OUT/data/test"
$GQN train "$OUT/data/train" --test "$OUT/data/test" --test-every 500 --test-scenes 128 --out "$OUT/run" \
    --iterations "$ITERATIONS" --batch-size 16 --steps 6 --hidden 48 --canvas 48 --r-channels 96 \
    --lr-start 1e-3 --lr-end 1e-3 --sigma-start 0.25 --sigma-end 0.25 --kl-warmup 1000 \
    $([ -f "$OUT/run/snapshot.npz" ] && echo --resume)
$GQN evaluate "$OUT/run" --data "$OUT/data/test" --scenes 512 --context 5 --rows 8 --gifs 4
