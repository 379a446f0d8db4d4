#!/usr/bin/env bash
# Render 2M Shepard-Matzler scenes on N nodes with MPI: each rank renders its block of shards
# (rank and size come from the MPI environment; mpi4py, when installed, lets rank 0 print job totals).
# On GPU nodes, give each rank its own GPU with EGL_DEVICE_ID (here: the node-local rank).
set -euo pipefail
NODES=${NODES:-4}
mpiexec -n "$NODES" --map-by ppr:1:node \
    bash -c 'EGL_DEVICE_ID=${OMPI_COMM_WORLD_LOCAL_RANK:-0} exec .venv/bin/gqn render shepard-matzler \
        --scenes 2M --parts 5 --out /shared/gqn/sm5/train --workers 16'
