"""`gqn train`: the training step and the loop that logs, tests and snapshots on schedule.

The run directory (a new or a resumed run, its files) is ``run``; the batches come from a ``sources``
BatchSource; held-out metrics are ``measure``'s.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import chainer
import numpy as np
from tqdm import tqdm

from gqn.data import NOISE_STREAM, batch_rng
from gqn.errors import GqnError
from gqn.interrupt import Interrupted, deferred_interrupt
from gqn.model.config import TrainConfig
from gqn.model.images import model_inputs
from gqn.model.loss import bits_per_pixel, reported_nll
from gqn.model.objective import Objective
from gqn.runs.figures import plot_curves
from gqn.runs.measure import measure
from gqn.runs.run import (CURVES, LOG, SNAPSHOT, Run, RunLog, RunOptions, kept_snapshot, open_run, save_snapshot,
                          write_config)

logger = logging.getLogger(__name__)  # each held-out test's line (INFO): the CLI prints it
FIT_SHARE = 0.1   # --lr-steps auto: the share of the time limit whose speed fixes the annealing's length


def run_training(data, out, hyper: dict, explicit: set, options: RunOptions, resume: bool = False,
                 test=None) -> int:
    """Train on ``data`` (a shard directory, or a ``sources`` Source such as a RenderSource) into run
    directory ``out``; returns the iteration reached (below ``options.iterations`` when the time limit
    stopped the run).

    ``hyper`` holds every ModelConfig / TrainConfig field the user could set (the CLI defaults included);
    ``explicit`` names those given on the command line, which a resumed run checks against its own.
    """
    deadline = None if options.time_limit is None else time.monotonic() + options.time_limit
    run = open_run(data, out, hyper, explicit, options, resume, test)
    return train(run, options, deadline)


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
        r = model.represent(context, context_viewpoints, query_viewpoint)
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
        write_config(run)
    batches = run.source.batches(run.start, options.iterations)
    bar = tqdm(total=options.iterations, initial=run.start, unit="it", dynamic_ncols=True,
               disable=not (options.progress and run.lead))
    with deferred_interrupt() as stop:
        try:
            done = _loop(run, options, batches, bar, log, stop, deadline)
        finally:
            bar.close()
            batches.close()
    if run.lead and done < options.iterations:
        logger.info(f"Time limit reached after iteration {done} of {options.iterations}; "
                    f"{run.directory / SNAPSHOT} holds it: continue with the same command plus --resume")
    return done


def _loop(run: Run, options: RunOptions, batches, bar, log, stop, deadline) -> int:
    """The iterations; after a Ctrl-C (``stop``) or past the ``deadline`` the step in progress finishes and
    is snapshotted."""
    window, waited, window_start = [], 0.0, time.perf_counter()
    done = run.start
    fit = LrFit(run.start, deadline, time.monotonic()) if options.fit_lr_steps and deadline is not None else None
    for iteration in range(run.start, options.iterations):
        before = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - before
        try:
            window.append(train_step(run.model, run.optimizer, batch, run.config, iteration, run.device,
                                     run.comm, run.objective))
        except NonFiniteLoss as e:
            raise GqnError(f"{e}; stopped. {kept_snapshot(run.directory)}")
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
            _test(run, done, log)
        interrupted, out_of_time, fitted = _agreed(stop, deadline, fit, done, run.comm)
        if fitted is not None:
            fit = None
            _fix_lr_steps(run, fitted)
        if run.lead and (done % options.snapshot_every == 0 or done == options.iterations or interrupted
                         or out_of_time):
            save_snapshot(run, done)
        if interrupted and done < options.iterations:
            raise Interrupted(f"Interrupted after iteration {done}; {run.directory}/{SNAPSHOT} holds it: "
                              "continue with --resume")
        if out_of_time:
            break
    return done


class LrFit:
    """``--lr-steps auto``: how many iterations the deadline allows at the speed of the iterations so far
    (with any held-out tests and snapshots that fell among them), and when that estimate is due: after
    ``FIT_SHARE`` of the time between the first step and the deadline."""

    def __init__(self, start: int, deadline: float, begin: float):
        """``start``: the first iteration; ``deadline`` and ``begin`` (the time of the first step) in
        ``time.monotonic()`` seconds."""
        self.start, self.deadline, self.begin = start, deadline, begin
        self.due = begin + FIT_SHARE * (deadline - begin)

    def estimate(self, done: int, now: float) -> float:
        rate = (done - self.start) / max(now - self.begin, 1e-9)
        return done + rate * max(self.deadline - now, 0.0)


def _agreed(stop, deadline, fit: LrFit | None, done: int, comm) -> tuple[bool, bool, int | None]:
    """Whether Ctrl-C reached this process, whether the deadline passed and, once ``fit`` is due, the
    iterations the learning rate anneals over (else None). Under MPI the ranks agree (any rank's stop or due
    time counts, the estimate is their mean), so that all stop, and change the schedule, after the same step."""
    now = time.monotonic()
    flags = np.array([stop.is_set(), deadline is not None and now >= deadline,
                      fit is not None and now >= fit.due, fit.estimate(done, now) if fit else 0.0])
    if comm:
        flags = comm.allreduce_obj(flags)
        flags[3] /= comm.size
    return bool(flags[0]), bool(flags[1]), max(done + 1, round(flags[3])) if flags[2] else None


def _fix_lr_steps(run: Run, steps: int) -> None:
    """From now on the learning rate anneals to ``--lr-end`` at iteration ``steps`` (kept in the snapshot)."""
    run.config = dataclasses.replace(run.config, lr_steps=steps)
    if run.lead:
        write_config(run)
        logger.info(f"--lr-steps auto: the learning rate anneals to {run.config.lr_end:g} by iteration {steps}, "
                    "where the time limit is expected to end")


def _test(run: Run, done: int, log) -> None:
    metrics = measure(run.model, run.test_source, run.device, run.mean_image)
    log.write({"iteration": done, "split": "test", **metrics})
    plot_curves(run.directory / LOG, run.directory / CURVES)
    logger.info(f"test @ {done}: {_summary(metrics)}, prediction mse {metrics['prediction_mse']:.5f} "
                f"({metrics['prediction_ratio']:.3f} x the mean image's)")


def _summary(m: dict) -> str:
    return (f"-elbo {m['neg_elbo']:.1f} bpp {m['bits_per_pixel']:.3f} kl {m['kl']:.2f} "
            f"mse {m['mse']:.5f}")


def _mean(window: list[dict]) -> dict:
    return {key: sum(m[key] for m in window) / len(window) for key in window[0]}
