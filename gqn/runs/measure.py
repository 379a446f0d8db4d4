"""Metrics of a model on held-out scenes: the test entries of a training log and `gqn evaluate`'s numbers."""
from __future__ import annotations

import chainer
import numpy as np

from gqn.data import NOISE_STREAM, ShardBatches, batch_rng
from gqn.model.images import model_inputs
from gqn.model.loss import bits_per_pixel, calibrated_sigma, reported_nll
from gqn.runs.baselines import baseline_errors


def measure(model, source: ShardBatches, device, mean_image=None) -> dict:
    """Mean metrics per scene over every batch of a sequential ``source``, and the baselines' errors on the
    same query views (the mean-image one when ``mean_image`` is given; ``gqn.runs.baselines``)."""
    totals, scenes = {}, 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for index in range(source.num_batches):
            batch = source.batch(index)
            context, context_viewpoints, query, viewpoint = model_inputs(batch, device)
            noise = device.send(model.noise(batch_rng(source.seed, index, NOISE_STREAM), len(query)))
            r = model.represent(context, context_viewpoints, viewpoint)
            _, kl, mean = model.elbo(r, viewpoint, query, noise)
            prediction = model.predict(r, viewpoint)
            values = chainer.backend.CpuDevice().send(device.xp.stack(
                [kl.array, _mse(query, mean.array), _mse(query, prediction.array)]))
            errors = {"kl": values[0], "mse": values[1], "prediction_mse": values[2],
                      **baseline_errors(batch, mean_image)}
            for name, value in errors.items():
                totals[name] = totals.get(name, 0.0) + float(np.sum(value, dtype=np.float64))
            scenes += len(query)
    m = {name: total / scenes for name, total in totals.items()}
    sub_pixels = 3 * source.height * source.width
    nll = reported_nll(m["mse"], sub_pixels)
    metrics = {"neg_elbo": nll + m["kl"], "nll": nll, "kl": m["kl"],
               "bits_per_pixel": bits_per_pixel(nll + m["kl"], sub_pixels), "sigma": calibrated_sigma(m["mse"]),
               **{name: m[name] for name in m if name != "kl"}, "scenes": scenes}
    if "mean_image_mse" in metrics:
        metrics["prediction_ratio"] = metrics["prediction_mse"] / metrics["mean_image_mse"]
    return metrics


def _mse(x, y):
    return ((x - y) ** 2).mean(axis=(1, 2, 3))
