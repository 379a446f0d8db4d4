"""`gqn train`: start or resume a run, the training step, logging, test evaluation and snapshots.

A run directory holds ``snapshot.npz`` (see ``snapshot``), ``config.json`` (the run's configuration, for
reading) and ``log.jsonl`` (one JSON object per line: training averages every ``log_every`` iterations with
``"split": "train"``, test-set metrics with ``"split": "test"``).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import chainer
import numpy as np
from chainer import optimizers
from tqdm import tqdm

from gqn.errors import GqnError
from gqn.interrupt import Interrupted, deferred_ctrl_c
from gqn.model import snapshot
from gqn.model.baselines import mean_image
from gqn.model.config import ModelConfig, TrainConfig, from_dict
from gqn.model.device import get_device
from gqn.model.figures import plot_curves
from gqn.model.gqn import build_model
from gqn.model.images import model_inputs
from gqn.model.loader import NOISE_STREAM, ShardBatches, batch_rng, prefetch
from gqn.model.loss import bits_per_pixel, reported_nll
from gqn.model.objective import Objective
from gqn.model.online import RenderedBatches, SaveOptions
from gqn.renderer.stream import RenderConfig
from gqn.shards import Dataset

SNAPSHOT = "snapshot.npz"
CONFIG = "config.json"
LOG = "log.jsonl"
CURVES = "curves.png"


@dataclass(frozen=True)
class RunOptions:
    """How to run, as opposed to what to learn: free to change when a run is resumed."""
    iterations: int
    snapshot_every: int = 1000
    log_every: int = 10
    test_every: int = 1000
    test_scenes: int = 256
    gpu: int | None = None
    workers: int = 1
    progress: bool = True
    communicator: str | None = None   # ChainerMN communicator (under mpiexec), e.g. naive, flat, pure_nccl
    time_limit: float | None = None   # seconds from the start: then finish the step, snapshot and stop


@dataclass(frozen=True)
class RenderSource:
    """Train on freshly rendered scenes instead of shards (`gqn train --render FAMILY`)."""
    config: RenderConfig
    workers: int | None = None
    save: SaveOptions | None = None


@dataclass
class Run:
    """Everything a training loop needs."""
    directory: Path
    model: chainer.Chain
    optimizer: chainer.Optimizer
    config: TrainConfig
    source: ShardBatches | RenderedBatches
    test_source: ShardBatches | None
    device: object
    start: int
    data: str
    objective: Objective
    mean_image: np.ndarray | None     # the training data's mean image, for the test baselines
    comm: object = None               # ChainerMN communicator, or None for one process

    @property
    def rank(self) -> int:
        return self.comm.rank if self.comm else 0

    @property
    def ranks(self) -> int:
        return self.comm.size if self.comm else 1

    @property
    def lead(self) -> bool:
        """The one process that logs, tests and writes snapshots."""
        return self.rank == 0


def run_training(data, out, hyper: dict, explicit: set, options: RunOptions, resume: bool = False,
                 test=None) -> int:
    """Train on shard directory ``data`` (or a RenderSource) into run directory ``out``; returns the
    iteration reached (below ``options.iterations`` when the time limit stopped the run).

    ``hyper`` holds every ModelConfig / TrainConfig field the user could set (the CLI defaults included);
    ``explicit`` names those given on the command line, which a resumed run checks against its own.
    """
    deadline = None if options.time_limit is None else time.monotonic() + options.time_limit
    run = open_run(data, out, hyper, explicit, options, resume, test)
    return train(run, options, deadline)


def open_run(data, out, hyper, explicit, options, resume, test) -> Run:
    rendering = isinstance(data, RenderSource)
    dataset = _render_shape(data.config) if rendering else Dataset(data)
    directory = Path(out)
    comm = _communicator(options.communicator)
    if resume:
        meta = snapshot.load_meta(directory / SNAPSHOT)
        model_config, config = _resumed_configs(meta, hyper, explicit)
        start = meta["iteration"]
        objective_state = meta.get("objective_state") if meta["train"].get("objective") == config.objective else None
    else:
        if (directory / SNAPSHOT).exists():
            raise GqnError(f"{directory} already holds a training run: pass --resume to continue it, "
                           "or choose another --out")
        model_config, config = _new_configs(dataset, hyper)
        start, objective_state = 0, None
    check_image_size(dataset, model_config, "the model")
    context = (config.context_min, config.context_max)
    rank, ranks = (comm.rank, comm.size) if comm else (0, 1)
    if rendering:
        source = RenderedBatches(data.config, config.batch_size, context, config.seed, data.workers, rank, ranks,
                                 data.save)
    else:
        source = ShardBatches(dataset, config.batch_size, context, config.seed, rank=rank, ranks=ranks)
    test_source, mean = None, None
    if test is not None:
        test_data = Dataset(test)
        check_image_size(test_data, model_config, "the model")
        test_source = ShardBatches(test_data, config.batch_size, context, config.seed, sequential=True,
                                   scenes=options.test_scenes)
        mean = mean_image(test_data if rendering else dataset) if rank == 0 else None
    device = get_device(options.gpu)
    model = build_model(model_config, config.seed)
    optimizer = make_optimizer(model, config)
    if resume:
        snapshot.load_state(directory / SNAPSHOT, model, optimizer)
    model.to_device(device)
    if comm:
        import chainermn

        comm.bcast_data(model)
        optimizer = chainermn.create_multi_node_optimizer(optimizer, comm)
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    return Run(directory, model, optimizer, config, source, test_source, device, start,
               dataset.directory if rendering else str(data), Objective(config, objective_state), mean, comm)


def _render_shape(config: RenderConfig):
    """What the configs need to know of rendered data: image size and views."""
    return SimpleNamespace(height=config.size, width=config.size, views=config.views,
                           directory=f"--render {config.family}")


def _communicator(name: str | None):
    """A ChainerMN communicator over MPI (``mpiexec -n N gqn train ... --communicator NAME``)."""
    if name is None:
        return None
    try:
        import chainermn
        from mpi4py import MPI  # noqa: F401  (ChainerMN needs it; fail here with a clear message)
    except ImportError as e:
        raise GqnError(f"--communicator {name} needs MPI ({e}); install the mpi extra: "
                       "pip install 'gqn-toolkit[mpi]'")
    try:
        return chainermn.create_communicator(name)
    except ValueError as e:
        raise GqnError(f"--communicator {name}: {e}")


def _new_configs(dataset: Dataset, hyper: dict) -> tuple[ModelConfig, TrainConfig]:
    values = {**hyper, "height": dataset.height, "width": dataset.width}
    if values.get("context_max") is None:
        values["context_max"] = dataset.views - 1
    return from_dict(ModelConfig, values), from_dict(TrainConfig, values)


def _resumed_configs(meta: dict, hyper: dict, explicit: set) -> tuple[ModelConfig, TrainConfig]:
    """The stored configs; explicit training options override, explicit model options must agree."""
    model_config = from_dict(ModelConfig, meta["model"])
    for name in sorted(explicit & set(meta["model"])):
        if hyper[name] != meta["model"][name]:
            raise GqnError(f"--{name.replace('_', '-')} {hyper[name]} differs from the resumed run's "
                           f"{meta['model'][name]}; the architecture of a run cannot change")
    changes = {name: hyper[name] for name in explicit & set(meta["train"])}
    return model_config, from_dict(TrainConfig, {**meta["train"], **changes})


def check_image_size(dataset: Dataset, config: ModelConfig, what: str) -> None:
    if (dataset.height, dataset.width) != (config.height, config.width):
        raise GqnError(f"size mismatch: {what} works on {config.height}x{config.width} images, "
                       f"{dataset.directory} holds {dataset.height}x{dataset.width}")


def make_optimizer(model, config: TrainConfig) -> chainer.Optimizer:
    optimizer = optimizers.Adam(alpha=config.lr_start, beta1=config.adam_beta1, beta2=config.adam_beta2,
                                eps=config.adam_eps)
    optimizer.setup(model)
    return optimizer


def train_step(model, optimizer, batch, config: TrainConfig, iteration: int, device, comm=None,
               objective: Objective | None = None) -> dict:
    """One Adam step on ``objective``'s loss (default: ``config``'s, without carried state); returns the
    batch's metrics (floats), the reported negative ELBO at the batch's calibrated sigma among them.

    Raises GqnError before updating anything if the loss is not finite (on any rank, with ``comm``).
    """
    objective = objective or Objective(config)
    optimizer.hyperparam.alpha = config.learning_rate(iteration)
    context, context_viewpoints, query, query_viewpoint = model_inputs(batch, device)
    noise_index = iteration * comm.size + comm.rank if comm else iteration
    noise = device.send(model.noise(batch_rng(config.seed, noise_index, NOISE_STREAM), len(query)))
    with chainer.using_config("train", True):
        r = model.represent(context, context_viewpoints)
        sse, kl, _ = model.elbo(r, query_viewpoint, query, noise)
    sub_pixels = query[0].size
    values = chainer.backend.CpuDevice().send(device.xp.stack([sse.array.mean() / sub_pixels, kl.array.mean()]))
    checked = np.array([np.isfinite(values).all(), values[0]], np.float64)
    if comm:   # every rank needs the same verdict, and GECO's multiplier the same error
        checked = comm.allreduce_obj(checked) / comm.size
    mse, kl_mean = float(checked[1]), float(values[1])
    if checked[0] < 1:
        raise NonFiniteLoss(f"loss is {mse + kl_mean} at iteration {iteration + 1}")
    loss = objective.loss(sse, kl, sub_pixels, iteration, mse)
    model.cleargrads()
    loss.backward()
    optimizer.update()
    objective.update(mse)
    nll = reported_nll(mse, sub_pixels)
    return {"neg_elbo": nll + kl_mean, "nll": nll, "kl": kl_mean, "mse": mse,
            "bits_per_pixel": bits_per_pixel(nll + kl_mean, sub_pixels),
            "train_sigma": objective.training_sigma(iteration, mse)}


class NonFiniteLoss(GqnError):
    """The loss became NaN or infinite (the update is skipped; the run stops)."""


def train(run: Run, options: RunOptions, deadline: float | None = None) -> int:
    """Iterate from ``run.start`` to ``options.iterations`` or until ``time.monotonic()`` passes
    ``deadline``: log, test and snapshot on schedule; returns the iteration reached.

    Each log entry also says how fast the data came: ``scenes_per_s`` (training throughput) and
    ``data_wait`` (the fraction of the time the trainer waited for its next batch; 0 = never starved).
    """
    log = RunLog(run.directory / LOG, run.start) if run.lead else None
    if run.lead:
        _write_config(run)
    batches = _batches(run, options)
    bar = tqdm(total=options.iterations, initial=run.start, unit="it", dynamic_ncols=True,
               disable=not (options.progress and run.lead))
    with deferred_ctrl_c() as stop:
        try:
            return _loop(run, options, batches, bar, log, stop, deadline)
        finally:
            bar.close()
            batches.close()


def _loop(run: Run, options: RunOptions, batches, bar, log, stop, deadline) -> int:
    """The iterations; after a Ctrl-C (``stop``) or past the ``deadline`` the step in progress finishes and
    is snapshotted."""
    window, waited, window_start = [], 0.0, time.perf_counter()
    done = run.start
    for iteration in range(run.start, options.iterations):
        before = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - before
        try:
            window.append(train_step(run.model, run.optimizer, batch, run.config, iteration, run.device,
                                     run.comm, run.objective))
        except NonFiniteLoss as e:
            raise GqnError(f"{e}; stopped. {_kept(run.directory)}")
        done = iteration + 1
        bar.set_postfix_str(_summary(window[-1]), refresh=False)
        bar.update()
        if run.lead and (done % options.log_every == 0 or done == options.iterations):
            seconds = time.perf_counter() - window_start
            log.write({"iteration": done, "split": "train", **_mean(window),
                       "lr": run.config.learning_rate(iteration),
                       "scenes_per_s": len(window) * run.config.batch_size * run.ranks / seconds,
                       "data_wait": waited / seconds})
            window, waited, window_start = [], 0.0, time.perf_counter()
        if run.lead and run.test_source is not None and (
                done % options.test_every == 0 or done == options.iterations):
            _test(run, done, log, bar)
        interrupted, out_of_time = _stopping(stop, deadline, run.comm)
        if run.lead and (done % options.snapshot_every == 0 or done == options.iterations or interrupted
                         or out_of_time):
            save_snapshot(run, done)
        if interrupted and done < options.iterations:
            raise Interrupted(f"Interrupted after iteration {done}; {run.directory}/{SNAPSHOT} holds it: "
                              "continue with --resume")
        if out_of_time:
            break
    return done


def _stopping(stop, deadline, comm) -> tuple[bool, bool]:
    """Whether Ctrl-C reached this process, and whether the deadline passed (under MPI: on any rank, so that
    all ranks stop after the same step)."""
    flags = np.array([stop.is_set(), deadline is not None and time.monotonic() >= deadline], np.int64)
    if comm:
        flags = comm.allreduce_obj(flags)
    return bool(flags[0]), bool(flags[1])


def _batches(run: Run, options: RunOptions):
    """The run's batches from ``run.start``: rendered on the fly, or read from shards by loader workers."""
    if isinstance(run.source, RenderedBatches):
        return run.source.batches(run.start, options.iterations)
    return prefetch(run.source, run.start, options.iterations, workers=options.workers)


def _test(run: Run, done: int, log, bar) -> None:
    from gqn.model.evaluate import measure

    metrics = measure(run.model, run.test_source, run.device, run.mean_image)
    log.write({"iteration": done, "split": "test", **metrics})
    plot_curves(run.directory / LOG, run.directory / CURVES)
    bar.write(f"test @ {done}: {_summary(metrics)}, prediction mse {metrics['prediction_mse']:.5f} "
              f"({metrics['prediction_ratio']:.3f} x the mean image's)")


def save_snapshot(run: Run, done: int) -> None:
    optimizer = getattr(run.optimizer, "actual_optimizer", run.optimizer)  # unwrap ChainerMN's
    snapshot.save(run.directory / SNAPSHOT, run.model, optimizer, {
        "iteration": done, "model": dataclasses.asdict(run.model.config),
        "train": dataclasses.asdict(run.config), "data": run.data, "objective_state": run.objective.state()})


def _write_config(run: Run) -> None:
    text = json.dumps({"model": dataclasses.asdict(run.model.config), "train": dataclasses.asdict(run.config),
                       "data": run.data}, indent=2)
    (run.directory / CONFIG).write_text(text + "\n")


def _kept(directory: Path) -> str:
    path = directory / SNAPSHOT
    if not path.exists():
        return "No snapshot was written yet."
    iteration = snapshot.load_meta(path)["iteration"]
    return (f"The last good snapshot {path} (iteration {iteration}) is kept: resume it with --resume "
            "and a lower --lr-start.")


def _summary(m: dict) -> str:
    return (f"-elbo {m['neg_elbo']:.1f} bpp {m['bits_per_pixel']:.3f} kl {m['kl']:.2f} "
            f"mse {m['mse']:.5f}")


def _mean(window: list[dict]) -> dict:
    return {key: sum(m[key] for m in window) / len(window) for key in window[0]}


class RunLog:
    """Append-only JSON-lines log; on resume, entries after the resumed iteration are dropped (they are
    about to be repeated)."""

    def __init__(self, path: Path, start: int):
        self.path = path
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["iteration"] <= start]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, entry: dict) -> None:
        entry = {**entry, "time": round(time.time(), 3)}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
