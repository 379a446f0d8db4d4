#!/usr/bin/env bash
# Data-parallel GQN training with ChainerMN: one process per GPU, gradients all-reduced over NCCL.
# Launch with as many ranks as GPUs in total (here 4 nodes x 8 GPUs); each rank uses its node-local GPU.
# Snapshots and logs are written by rank 0 only; re-running with --resume continues on any number of ranks.
set -euo pipefail
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NODES=${NODES:-4}
mpiexec -n $((NODES * GPUS_PER_NODE)) --map-by ppr:${GPUS_PER_NODE}:node \
    bash -c 'exec .venv/bin/gqn train /shared/gqn/sm5/train --test /shared/gqn/sm5/test \
        --out /shared/runs/sm5 --communicator pure_nccl --gpu ${OMPI_COMM_WORLD_LOCAL_RANK} \
        --batch-size 36 --iterations 2M --workers 4 --no-progress'
