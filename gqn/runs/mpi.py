"""Data-parallel training over MPI with ChainerMN (``mpiexec -n N gqn train ... --communicator NAME``).

Every rank trains on its own batches; rank 0 (the lead) logs, tests and writes snapshots. ChainerMN and
mpi4py are imported only when a communicator is asked for.
"""
from __future__ import annotations

import importlib

from gqn.errors import GqnError


def communicator(name: str | None):
    """A ChainerMN communicator over MPI, or None for one process (``name`` None)."""
    if name is None:
        return None
    try:
        import chainermn
        importlib.import_module("mpi4py.MPI")  # ChainerMN needs it: fail here with a clear message
    except ImportError as e:
        raise GqnError(f"--communicator {name} needs MPI ({e}); install the mpi extra: "
                       "pip install 'gqn-toolkit[mpi]'")
    try:
        return chainermn.create_communicator(name)
    except ValueError as e:
        raise GqnError(f"--communicator {name}: {e}")


def distribute(model, optimizer, comm):
    """Give every rank rank 0's parameters; returns the optimizer that averages gradients over the ranks."""
    import chainermn

    comm.bcast_data(model)
    return chainermn.create_multi_node_optimizer(optimizer, comm)


def unwrap(optimizer):
    """The optimizer inside ChainerMN's multi-node wrapper (itself when not wrapped): what a snapshot holds."""
    return getattr(optimizer, "actual_optimizer", optimizer)
