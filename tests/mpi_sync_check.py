"""Run under ``mpiexec -n 2``: a few ChainerMN updates; after each, every rank must hold the same
parameters while having trained on different data. Rank 0 prints SYNC OK."""
import sys

import numpy as np

from gqn.runs.run import RunOptions, open_run
from gqn.runs.train import train_step
from tests.model_data import TINY


def checksum(model) -> float:
    return float(sum(np.abs(p.array).sum() for p in model.params()))


def main(data, out):
    hyper = {**TINY, "batch_size": 4, "seed": 0, "context_min": 1, "context_max": None}
    options = RunOptions(iterations=3, workers=0, communicator="naive")
    run = open_run(data, out, hyper, set(), options, False, None)
    comm = run.comm.mpi_comm
    initial = checksum(run.model)
    batches = run.source.batches(0, 3)
    for iteration in range(3):
        batch = next(batches)
        train_step(run.model, run.optimizer, batch, run.config, iteration, run.device, run.comm)
        sums = comm.allgather(checksum(run.model))
        queries = comm.allgather(batch.query_image.tobytes())
        assert sums[0] == sums[1], (iteration, sums)
        assert queries[0] != queries[1], "both ranks trained on the same batch"
    assert checksum(run.model) != initial
    if comm.rank == 0:
        print("SYNC OK")


if __name__ == "__main__":
    main(*sys.argv[1:])
