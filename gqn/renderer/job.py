"""`gqn render`: render a dataset into shards, resumable, optionally as one part of a larger job."""
from __future__ import annotations

import dataclasses
import math
import os
import time

import click
from tqdm import tqdm

from gqn.errors import GqnError
from gqn.interrupt import deferred_interrupt
from gqn.ownership import release_output
from gqn.renderer.families import family_spec
from gqn.renderer.stream import RenderConfig, SceneStream, build_family, split
from gqn.renderer.tiled import MAX_ATLAS_SIDE, atlas_fits
from gqn.shards import DEFAULT_COMPRESSION, ShardSequence, claim_output

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


def _fits(config: RenderConfig, size: int) -> bool:
    """Whether one render pass of ``config`` at image size ``size`` fits the renderer's framebuffer."""
    config = dataclasses.replace(config, size=size)
    return atlas_fits(size, config.chunk_scenes * config.views)


def check_render_size(config: RenderConfig, size_option: str = "--size", views_option: str = "--views") -> None:
    """Refuse, before any worker starts, an image size and view count whose views do not fit side by side
    in the renderer's framebuffer (``tiled.MAX_ATLAS_SIDE`` px a side); the message names the largest size
    that works with those views. The options are named as the command calls them."""
    if _fits(config, config.size):
        return
    largest = next((s for s in range(config.size - 4, 7, -4) if _fits(config, s)), None)
    raise GqnError(f"{size_option} {config.size} with {views_option} {config.views} does not fit the renderer's "
                   f"{MAX_ATLAS_SIDE}x{MAX_ATLAS_SIDE} px framebuffer (a scene's views are drawn side by side): "
                   + (f"with {views_option} {config.views}, {size_option} can be at most {largest}"
                      if largest else f"use fewer {views_option}"))


def family_params(family: str, params: dict) -> dict:
    """``params`` completed with the family's defaults for the parameters not given (its declared ones,
    ``FamilySpec.defaults``), as `gqn render`, whose options carry those defaults, passes them."""
    return {**family_spec(family).defaults(), **params}


def dataset_params(config: RenderConfig, scenes: int, scenes_per_shard: int, compression: str) -> dict:
    """Every parameter that determines the dataset's content (stored in each shard; compared on resume): the
    family's own and ``stream.DATASET_KEYS``."""
    return {**config.params, "views": config.views, "size": config.size, "seed": config.seed,
            "anti_aliasing": config.anti_aliasing, "scenes": scenes, "scenes_per_shard": scenes_per_shard,
            "compression": compression}


def render_dataset(family: str, family_params: dict, *, scenes: int, views: int, size: int, seed: int,
                   out: str, scenes_per_shard: int, workers: int | None = None,
                   part: tuple[int, int] | None = None, compression: str = DEFAULT_COMPRESSION,
                   anti_aliasing: bool = True, progress: bool = True) -> dict:
    """Render scenes ``0 .. scenes-1`` (or this part's shards of them) into ``out``; returns a summary.

    Under mpiexec (and no explicit ``part``) each rank renders its part and rank 0 reports the whole job.
    """
    config = RenderConfig(family, dict(family_params), views, size, seed, anti_aliasing)
    # a size too large for the views and bad family parameters fail here, before the output directory is
    # touched or a worker starts
    check_render_size(config)
    build_family(config)
    from_mpi = part is None and mpi_part() is not None
    part = part or mpi_part() or (0, 1)
    lead = part[0] == 0  # one process reports for the whole job
    total_shards = math.ceil(scenes / scenes_per_shard)
    mine = part_shards(total_shards, part)
    params = dataset_params(config, scenes, scenes_per_shard, compression)
    done = claim_output(out, config.stored_family, params, mine)
    todo = [k for k in mine if k not in done]
    started = time.perf_counter()
    try:
        rendered = _render_shards(config, todo, scenes, scenes_per_shard, out, params, compression,
                                  workers, part, progress and lead)
    finally:
        release_output(out)
    seconds = time.perf_counter() - started
    summary = {"rendered": rendered, "shards": len(todo), "seconds": seconds}
    if from_mpi:
        summary = _mpi_sum(summary)
    if not mine and not from_mpi:  # an explicit --shard K/N: every part reports for itself
        shards = f"{total_shards} shard" + "s" * (total_shards != 1)
        click.echo(f"{out}: part {part[0]}/{part[1]} owns no shard: the job has {shards} ({scenes} scenes, "
                   f"{scenes_per_shard} per shard) for {part[1]} parts, so {part[1] - total_shards} of them "
                   "own none; nothing to do", err=True)
    elif not summary["shards"]:
        _echo(lead, f"{out}: all shards of this job are complete; nothing to do")
    else:
        n, seconds = summary["rendered"], max(summary["seconds"], 1e-9)
        _echo(lead, f"rendered {n} scenes into {summary['shards']} shards in {out} "
                    f"({seconds:.1f} s, {n / seconds:.1f} scenes/s, {n * views / seconds:.0f} frames/s)"
                    + (f" on {part[1]} ranks" if from_mpi else ""))
    return summary


def _render_shards(config: RenderConfig, todo: list[int], scenes: int, scenes_per_shard: int, out: str,
                   params: dict, compression: str, workers: int | None, part: tuple[int, int],
                   progress: bool) -> int:
    """Render and write the shards ``todo`` in order; returns the number of scenes rendered."""
    count = lambda k: min(scenes_per_shard, scenes - k * scenes_per_shard)  # noqa: E731
    total = sum(count(k) for k in todo)
    if not total:
        return 0
    bar = tqdm(total=total, unit="scene", disable=not progress, smoothing=0.05,
               desc=f"{config.family} part {part[0]}/{part[1]}" if part[1] > 1 else config.family)
    ranges = (r for k in todo for r in split(k * scenes_per_shard, k * scenes_per_shard + count(k),
                                              config.chunk_scenes))
    sequence = ShardSequence(out, scenes_per_shard, scenes, config.views, config.size,
                             family=config.stored_family, params=params, compression=compression,
                             seed=config.seed)
    with bar, SceneStream(config, workers, encode=compression) as stream, deferred_interrupt() as stop, sequence:
        for chunk in stream.render(ranges):
            if stop.is_set():
                raise KeyboardInterrupt
            sequence.write(chunk.start, chunk.images, chunk.cameras, chunk.encoded, **chunk.extras)
            bar.update(len(chunk.cameras))
            bar.set_postfix_str(f"{(bar.format_dict['rate'] or 0) * config.views:.0f} frames/s", refresh=False)
    return total


def _mpi_sum(summary: dict) -> dict:
    """The whole job's totals (scenes and shards summed, the slowest rank's time), when mpi4py is there."""
    try:
        from mpi4py import MPI
    except ImportError:
        return summary
    comm = MPI.COMM_WORLD
    return {"rendered": comm.allreduce(summary["rendered"]), "shards": comm.allreduce(summary["shards"]),
            "seconds": comm.allreduce(summary["seconds"], op=MPI.MAX)}


def _echo(lead: bool, message: str):
    if lead:
        click.echo(message, err=True)
