#!/usr/bin/env bash
# Data-parallel GQN training with ChainerMN: one process per GPU, gradients all-reduced over NCCL.
# Launch as many ranks as GPUs in total; each rank uses its node-local GPU. --batch-size is per rank, so the
# global batch is NODES x GPUS_PER_NODE x BATCH_PER_GPU (the paper's 36 = 4 GPUs x 9 by default).
# Snapshots and logs are written by rank 0 only; re-running with --resume continues on any number of ranks.
set -euo pipefail
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
NODES=${NODES:-1}
BATCH_PER_GPU=${BATCH_PER_GPU:-9}
export BATCH_PER_GPU
mpiexec -n $((NODES * GPUS_PER_NODE)) --map-by ppr:${GPUS_PER_NODE}:node \
    bash -c 'exec .venv/bin/gqn train /shared/gqn/sm5/train --test /shared/gqn/sm5/test \
        --out /shared/runs/sm5 --communicator pure_nccl --gpu ${OMPI_COMM_WORLD_LOCAL_RANK} \
        --batch-size ${BATCH_PER_GPU} --iterations 2M --workers 4 --no-progress'
