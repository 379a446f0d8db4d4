"""A run directory: opening a new run or resuming one, and the files it holds.

* ``snapshot.npz`` (``SNAPSHOT``, see ``snapshot``): the model, the optimizer state and the run's metadata
* ``config.json`` (``CONFIG``): the run's configuration, for reading
* ``log.jsonl`` (``LOG``): one JSON object per line: training averages every ``log_every`` iterations with
  ``"split": "train"``, test-set metrics with ``"split": "test"``
* ``curves.png`` (``CURVES``): the curves of ``log.jsonl`` (``figures``)
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import chainer
import numpy as np
from chainer import optimizers

from gqn.data import ShardBatches
from gqn.errors import GqnError
from gqn.model.config import ModelConfig, TrainConfig, from_dict
from gqn.model.gqn import build_model
from gqn.model.objective import Objective
from gqn.renderer.stream import family_of_stored
from gqn.runs import snapshot
from gqn.runs.baselines import mean_image
from gqn.runs.device import get_device
from gqn.runs.mpi import communicator, distribute, unwrap
from gqn.runs.sources import BatchSource, Source, training_source
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
    fit_lr_steps: bool = False        # --lr-steps auto: anneal over the iterations the time limit allows


@dataclass
class Run:
    """Everything a training loop needs."""
    directory: Path
    model: chainer.Chain
    optimizer: chainer.Optimizer
    config: TrainConfig
    source: BatchSource
    test_source: ShardBatches | None
    device: object
    start: int
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


def open_run(data, out, hyper: dict, explicit: set, options: RunOptions, resume: bool, test) -> Run:
    """A new run in ``out`` on ``data`` (a shard directory or a ``sources`` Source), or the resumed one
    (``resume``); ``test``: a held-out shard directory or None. See ``train.run_training``."""
    source = training_source(data, options.workers)
    directory = Path(out)
    comm = communicator(options.communicator)
    if resume:
        meta = snapshot.load_meta(directory / SNAPSHOT)
        model_config, config = _resumed_configs(meta, hyper, explicit)
        start = meta["iteration"]
        objective_state = meta.get("objective_state") if meta["train"].get("objective") == config.objective else None
    else:
        if (directory / SNAPSHOT).exists():
            raise GqnError(f"{directory} already holds a training run: pass --resume to continue it, "
                           "or choose another --out")
        model_config, config = _new_configs(source, hyper)
        start, objective_state = 0, None
    check_image_size(source, source.describe(), model_config, "the model")
    context = (config.context_min, config.context_max)
    rank, ranks = (comm.rank, comm.size) if comm else (0, 1)
    batches = source.open(config.batch_size, context, config.seed, rank, ranks)
    test_source, mean = None, None
    if test is not None:
        test_data = Dataset(test)
        check_image_size(test_data, test_data.directory, model_config, "the model")
        test_source = ShardBatches(test_data, config.batch_size, context, config.seed, sequential=True,
                                   scenes=options.test_scenes)
        averaged = test_data if source.dataset is None else source.dataset
        mean = mean_image(averaged) if rank == 0 else None
    device = get_device(options.gpu)
    model = build_model(model_config, config.seed)
    optimizer = make_optimizer(model, config)
    if resume:
        snapshot.load_state(directory / SNAPSHOT, model, optimizer)
    model.to_device(device)
    if comm:
        optimizer = distribute(model, optimizer, comm)
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    return Run(directory, model, optimizer, config, batches, test_source, device, start,
               Objective(config, objective_state), mean, comm)


def _new_configs(source: Source, hyper: dict) -> tuple[ModelConfig, TrainConfig]:
    values = {**hyper, "height": source.height, "width": source.width}
    if values.get("context_max") is None:
        values["context_max"] = source.views - 1
    model_config = from_dict(ModelConfig, values)
    if model_config.frame == "query" and source.dataset is not None:
        _check_y_up(source.dataset, source.describe())
    return model_config, from_dict(TrainConfig, values)


def _check_y_up(dataset: Dataset, where: str) -> None:
    """The query frame turns viewpoints about y: refuse data whose vertical axis is not known to be y."""
    family = dataset.attrs.get("family", "")
    if family_of_stored(family) is None:
        raise GqnError(f"--frame query turns the viewpoints about the y axis, the vertical of the scenes gqn "
                       f"render writes; {where} holds {family!r} scenes, which it did not render: use --frame world")


def _resumed_configs(meta: dict, hyper: dict, explicit: set) -> tuple[ModelConfig, TrainConfig]:
    """The stored configs; explicit training options override, explicit model options must agree."""
    model_config = from_dict(ModelConfig, meta["model"])
    for name in sorted(explicit & set(meta["model"])):
        if hyper[name] != meta["model"][name]:
            raise GqnError(f"--{name.replace('_', '-')} {hyper[name]} differs from the resumed run's "
                           f"{meta['model'][name]}; the architecture of a run cannot change")
    changes = {name: hyper[name] for name in explicit & set(meta["train"])}
    return model_config, from_dict(TrainConfig, {**meta["train"], **changes})


def check_image_size(data, where, config: ModelConfig, what: str) -> None:
    """Refuse images of ``data`` (anything with ``height`` and ``width``; found in ``where``) that are not the
    size ``config`` works on (``what``: the model, or a run)."""
    if (data.height, data.width) != (config.height, config.width):
        raise GqnError(f"size mismatch: {what} works on {config.height}x{config.width} images, "
                       f"{where} holds {data.height}x{data.width}")


def make_optimizer(model, config: TrainConfig) -> chainer.Optimizer:
    optimizer = optimizers.Adam(alpha=config.lr_start, beta1=config.adam_beta1, beta2=config.adam_beta2,
                                eps=config.adam_eps)
    optimizer.setup(model)
    return optimizer


def save_snapshot(run: Run, done: int) -> None:
    """``snapshot.npz`` after iteration ``done``."""
    snapshot.save(run.directory / SNAPSHOT, run.model, unwrap(run.optimizer), {
        "iteration": done, "model": dataclasses.asdict(run.model.config),
        "train": dataclasses.asdict(run.config), "data": run.source.describe(),
        "objective_state": run.objective.state()})


def write_config(run: Run) -> None:
    """``config.json``: the run's configuration, for reading (the snapshot holds the one resuming uses)."""
    text = json.dumps({"model": dataclasses.asdict(run.model.config), "train": dataclasses.asdict(run.config),
                       "data": run.source.describe()}, indent=2)
    (run.directory / CONFIG).write_text(text + "\n")


def kept_snapshot(directory: Path) -> str:
    """What a failed run leaves to resume from, in words."""
    path = directory / SNAPSHOT
    if not path.exists():
        return "No snapshot was written yet."
    iteration = snapshot.load_meta(path)["iteration"]
    return (f"The last good snapshot {path} (iteration {iteration}) is kept: resume it with --resume "
            "and a lower --lr-start.")


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
