"""`gqn render`: render a dataset into shards, resumable, optionally as one part of a larger job."""
from __future__ import annotations

import math
import os
import time

import click
from tqdm import tqdm

from gqn.errors import GqnError
from gqn.renderer.families import get_family
from gqn.renderer.stream import RenderConfig, SceneStream, split
from gqn.shards import ShardWriter, prepare_output

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


def dataset_params(config: RenderConfig, scenes: int, scenes_per_shard: int, compression: str) -> dict:
    """Every parameter that determines the dataset's content (stored in each shard; compared on resume)."""
    return {**config.params, "views": config.views, "size": config.size, "seed": config.seed,
            "anti_aliasing": config.anti_aliasing, "scenes": scenes, "scenes_per_shard": scenes_per_shard,
            "compression": compression}


def render_dataset(family: str, family_params: dict, *, scenes: int, views: int, size: int, seed: int,
                   out: str, scenes_per_shard: int, workers: int | None = None,
                   part: tuple[int, int] | None = None, compression: str = "none",
                   anti_aliasing: bool = True, progress: bool = True) -> dict:
    """Render scenes ``0 .. scenes-1`` (or this part's shards of them) into ``out``; returns a summary."""
    config = RenderConfig(family, dict(family_params), views, size, seed, anti_aliasing)
    part = part or mpi_part() or (0, 1)
    total_shards = math.ceil(scenes / scenes_per_shard)
    mine = part_shards(total_shards, part)
    params = dataset_params(config, scenes, scenes_per_shard, compression)
    done = prepare_output(out, family, params, mine)
    todo = [k for k in mine if k not in done]
    count = lambda k: min(scenes_per_shard, scenes - k * scenes_per_shard)  # noqa: E731
    n_todo = sum(count(k) for k in todo)
    lead = part[0] == 0  # one process reports for the whole job
    if not todo:
        _echo(lead, f"{out}: all {len(mine)} shards of this part are complete; nothing to do")
        return {"rendered": 0, "shards": 0, "seconds": 0.0}
    extras = get_family(family).extras
    started = time.perf_counter()
    bar = tqdm(total=n_todo, unit="scene", disable=not (progress and lead), smoothing=0.05,
               desc=f"{family} part {part[0]}/{part[1]}" if part[1] > 1 else family)
    with bar, SceneStream(config, workers) as stream:
        chunks = stream.render(r for k in todo for r in split(k * scenes_per_shard,
                                                               k * scenes_per_shard + count(k),
                                                               config.chunk_scenes))
        for k in todo:
            with ShardWriter(out, k, count(k), views, size, family=family, scenes_per_shard=scenes_per_shard,
                             params=params, compression=compression, seed=seed, extras=extras) as writer:
                while writer.written < count(k):
                    chunk = next(chunks)
                    writer.write(chunk.images, chunk.cameras, **chunk.extras)
                    bar.update(len(chunk.images))
                    bar.set_postfix_str(f"{(bar.format_dict['rate'] or 0) * views:.0f} frames/s", refresh=False)
                writer.commit()
    seconds = time.perf_counter() - started
    _echo(lead, f"rendered {n_todo} scenes into {len(todo)} shards in {out} "
                f"({seconds:.1f} s, {n_todo / seconds:.1f} scenes/s, {n_todo * views / seconds:.0f} frames/s)")
    return {"rendered": n_todo, "shards": len(todo), "seconds": seconds}


def _echo(lead: bool, message: str):
    if lead:
        click.echo(message, err=True)
