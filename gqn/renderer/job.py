"""`gqn render`: render a dataset into shards, resumable, optionally as one part of a larger job.

The rendering and the writing are the door's (``gqn.renderer.stream.SceneStream`` with a ``ShardOutput``, the
code path `gqn train --render --save-rendered` takes too); this module decides which shards this process
renders (--shard K/N, mpiexec ranks) and returns what it did (``RenderSummary``, printed by the CLI).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass

from tqdm import tqdm

from gqn.encodings import DEFAULT_COMPRESSION
from gqn.interrupt import deferred_interrupt
from gqn.renderer.stream import SceneStream, ShardOutput, build_family, render_config

_MPI_ENV = (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
            ("PMIX_RANK", "PMIX_SIZE"))


def mpi_part() -> tuple[int, int] | None:
    """(rank, size) when started by mpiexec (Open MPI, MPICH, PMIx), read from the environment."""
    for rank, size in _MPI_ENV:
        if rank in os.environ and size in os.environ:
            return int(os.environ[rank]), int(os.environ[size])
    return None


def part_shards(total_shards: int, part: tuple[int, int]) -> range:
    """The contiguous block of shard indices that part K of N renders."""
    k, n = part
    return range(k * total_shards // n, (k + 1) * total_shards // n)


@dataclass(frozen=True)
class RenderSummary:
    """What a `gqn render` process did; ``str()`` is the line the command prints (on stderr) when
    ``reports``."""

    out: str
    rendered: int            # scenes rendered (under mpiexec: by all ranks)
    shards: int              # shards written (under mpiexec: by all ranks)
    seconds: float           # (under mpiexec: the slowest rank's)
    views: int
    scenes: int              # the whole job's scenes,
    scenes_per_shard: int
    total_shards: int        # and shards
    part: tuple[int, int]    # this process's part K of N
    from_mpi: bool = False   # the part is an mpiexec rank's (the totals are the whole job's)
    owns_none: bool = False  # an explicit --shard K/N part that owns no shard of the job

    @property
    def reports(self) -> bool:
        """Whether this process reports: rank 0 for the whole job, and a --shard part that owns no shard
        for itself."""
        return self.owns_none or self.part[0] == 0

    def __str__(self) -> str:
        k, n = self.part
        if self.owns_none:
            shards = f"{self.total_shards} shard" + "s" * (self.total_shards != 1)
            return (f"{self.out}: part {k}/{n} owns no shard: the job has {shards} ({self.scenes} scenes, "
                    f"{self.scenes_per_shard} per shard) for {n} parts, so {n - self.total_shards} of them "
                    "own none; nothing to do")
        if not self.shards:
            return f"{self.out}: all shards of this job are complete; nothing to do"
        scenes, seconds = self.rendered, max(self.seconds, 1e-9)
        return (f"rendered {scenes} scenes into {self.shards} shards in {self.out} "
                f"({seconds:.1f} s, {scenes / seconds:.1f} scenes/s, {scenes * self.views / seconds:.0f} frames/s)"
                + (f" on {n} ranks" if self.from_mpi else ""))


def render_dataset(family: str, family_params: dict, *, scenes: int, views: int, size: int, seed: int,
                   out: str, scenes_per_shard: int, workers: int | None = None,
                   part: tuple[int, int] | None = None, compression: str = DEFAULT_COMPRESSION,
                   anti_aliasing: bool = True, progress: bool = True) -> RenderSummary:
    """Render scenes ``0 .. scenes-1`` (or this part's shards of them) into ``out``; returns what was done.

    Under mpiexec (and no explicit ``part``) each rank renders its part and rank 0 reports the whole job.
    """
    # a size too large for the views and bad family parameters fail here, before the output directory is
    # touched or a worker starts
    config = render_config(family, family_params, views, size, seed, anti_aliasing)
    build_family(config)
    from_mpi = part is None and mpi_part() is not None
    part = part or mpi_part() or (0, 1)
    total_shards = math.ceil(scenes / scenes_per_shard)
    mine = part_shards(total_shards, part)
    output = ShardOutput(out, scenes_per_shard, compression, scenes=scenes)
    with SceneStream(config, workers, save=output, images=False) as stream:
        done = stream.claim(mine)
        todo = [k for k in mine if k not in done]
        started = time.perf_counter()
        rendered = _render_shards(stream, todo, scenes, scenes_per_shard, part, progress and part[0] == 0)
    summary = RenderSummary(out, rendered, len(todo), time.perf_counter() - started, views, scenes,
                            scenes_per_shard, total_shards, part, from_mpi, owns_none=not mine and not from_mpi)
    return _mpi_sum(summary) if from_mpi else summary


def _render_shards(stream: SceneStream, todo: list[int], scenes: int, scenes_per_shard: int,
                   part: tuple[int, int], progress: bool) -> int:
    """Render (and so write) the shards ``todo`` in order; returns the number of scenes rendered."""
    config = stream.config
    count = lambda k: min(scenes_per_shard, scenes - k * scenes_per_shard)  # noqa: E731
    total = sum(count(k) for k in todo)
    if not total:
        return 0
    bar = tqdm(total=total, unit="scene", disable=not progress, smoothing=0.05,
               desc=f"{config.family} part {part[0]}/{part[1]}" if part[1] > 1 else config.family)
    ranges = ((k * scenes_per_shard, k * scenes_per_shard + count(k)) for k in todo)
    with bar, deferred_interrupt() as stop:
        for chunk in stream.render(ranges, stop):
            bar.update(len(chunk.cameras))
            bar.set_postfix_str(f"{(bar.format_dict['rate'] or 0) * config.views:.0f} frames/s", refresh=False)
    return total


def _mpi_sum(summary: RenderSummary) -> RenderSummary:
    """The whole job's totals (scenes and shards summed, the slowest rank's time), when mpi4py is there."""
    try:
        from mpi4py import MPI
    except ImportError:
        return summary
    comm = MPI.COMM_WORLD
    return dataclasses.replace(summary, rendered=comm.allreduce(summary.rendered),
                               shards=comm.allreduce(summary.shards),
                               seconds=comm.allreduce(summary.seconds, op=MPI.MAX))
