#!/usr/bin/env bash
# Render 2M Shepard-Matzler scenes as a SLURM job array of 100 tasks (one shard block each).
# Every task writes disjoint shard files into the same shared directory; re-submitting the array resumes.
#SBATCH --job-name=gqn-render
#SBATCH --array=0-99
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
set -euo pipefail
.venv/bin/gqn render shepard-matzler --scenes 2M --parts 5 --out /shared/gqn/sm5/train \
    --workers "$SLURM_CPUS_PER_TASK" --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" --no-progress
