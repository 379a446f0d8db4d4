"""`gqn evaluate`: metrics on held-out scenes, a PNG grid of predictions and orbit GIFs.

Outputs in the evaluation directory:

* ``metrics.json``: negative ELBO (nats per image), its NLL and KL terms, bits per pixel, the posterior
  reconstruction MSE (``mse``) and the MSE of the prior's prediction of the unseen query (``prediction_mse``)
* ``predictions.png``: one row per scene; columns are the K context views, the ground-truth query view,
  the model's mean prediction (every z at its prior mean) and ``samples`` predictions with z sampled
* ``orbit_SCENE.gif``: the model rendering the scene from a camera circling it; each frame shows the mean
  prediction (left) and one sample (right) whose noise is drawn once per scene and reused in every frame, so
  the sample is one consistent guess seen from all around rather than a new guess per frame
"""
from __future__ import annotations

import json
from pathlib import Path

import chainer
import numpy as np

from gqn.model import snapshot
from gqn.model.config import ModelConfig, TrainConfig, from_dict
from gqn.model.device import get_device
from gqn.model.figures import panel_grid, save_gif
from gqn.model.gqn import build_model
from gqn.model.images import model_inputs, to_uint8
from gqn.model.loader import NOISE_STREAM, ShardBatches, batch_rng
from gqn.model.loss import bits_per_pixel
from gqn.model.orbit import orbit_viewpoints
from gqn.model.train import SNAPSHOT, check_image_size
from gqn.shards import Dataset

METRICS = "metrics.json"
GRID = "predictions.png"


def measure(model, source: ShardBatches, sigma: float, device) -> dict:
    """Mean metrics per scene over every batch of a sequential ``source``."""
    totals, scenes = 0, 0
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for index in range(source.num_batches):
            context, context_viewpoints, query, viewpoint = model_inputs(source.batch(index), device)
            noise = device.send(model.noise(batch_rng(source.seed, index, NOISE_STREAM), len(query)))
            r = model.represent(context, context_viewpoints)
            nll, kl, mean = model.elbo(r, viewpoint, query, sigma, noise)
            prediction = model.predict(r, viewpoint)
            xp = device.xp
            values = xp.stack([nll.array.sum(), kl.array.sum(), _mse(query, mean.array).sum(),
                               _mse(query, prediction.array).sum()])
            totals = totals + chainer.backend.CpuDevice().send(values).astype(np.float64)
            scenes += len(query)
    nll, kl, mse, prediction_mse = (float(v) for v in totals / scenes)
    return {"neg_elbo": nll + kl, "nll": nll, "kl": kl,
            "bits_per_pixel": bits_per_pixel(nll + kl, 3 * source.height * source.width),
            "mse": mse, "prediction_mse": prediction_mse, "scenes": scenes, "sigma": sigma}


def _mse(x, y):
    return ((x - y) ** 2).mean(axis=(1, 2, 3))


def run_evaluation(run, data, out=None, scenes: int = 256, batch_size: int = 16, context=None,
                   samples: int = 4, rows: int = 8, gifs: int = 4, frames: int = 36, gpu=None,
                   seed: int = 0) -> dict:
    """Evaluate the snapshot of run directory ``run`` on shard directory ``data``; returns the metrics."""
    run = Path(run)
    out = Path(out) if out else run / "eval"
    meta = snapshot.load_meta(run / SNAPSHOT)
    model_config, config = from_dict(ModelConfig, meta["model"]), from_dict(TrainConfig, meta["train"])
    dataset = Dataset(data)
    check_image_size(dataset, model_config, f"the run {run}")
    context = context or (config.context_min, min(config.context_max, dataset.views - 1))
    device = get_device(gpu)
    model = build_model(model_config, config.seed)
    snapshot.load_state(run / SNAPSHOT, model)
    model.to_device(device)
    sigma = config.pixel_sigma(meta["iteration"] - 1)
    source = ShardBatches(dataset, batch_size, context, seed, sequential=True, scenes=scenes)
    metrics = {"run": str(run), "iteration": meta["iteration"], "data": str(data),
               **measure(model, source, sigma, device)}
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figure_source = ShardBatches(dataset, min(rows, source.scenes), context, seed, sequential=True)
    write_figures(model, figure_source, out, samples, gifs, frames, device)
    return metrics


def write_figures(model, source: ShardBatches, out: Path, samples: int, gifs: int, frames: int,
                  device) -> None:
    """``predictions.png`` for the scenes of ``source.batch(0)``, and orbit GIFs of the first ``gifs``."""
    batch = source.batch(0)
    scenes = source.plan(0)[0]
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        context, context_viewpoints, _, viewpoint = model_inputs(batch, device)
        r = model.represent(context, context_viewpoints).array
        rng = batch_rng(source.seed, 0, NOISE_STREAM)
        mean, sampled = _predictions(model, r, viewpoint, samples, rng, device)
        panels = np.concatenate([batch.context_images, batch.query_image[:, None], mean[:, None], sampled], 1)
        panel_grid(panels).save(out / GRID)
        for row, scene in enumerate(scenes[:gifs]):
            cameras = source.dataset.read_views(int(scene), np.arange(source.views), ("cameras",))["cameras"]
            viewpoints = device.send(orbit_viewpoints(cameras, frames))
            save_gif(_orbit_frames(model, r[row], viewpoints, rng, device), out / f"orbit_{scene:06d}.gif")


def _predictions(model, r, viewpoint, samples: int, rng, device):
    """uint8 mean predictions (B, H, W, 3) and ``samples`` sampled ones (B, samples, H, W, 3)."""
    xp = device.xp
    repeated_r, repeated_v = xp.repeat(r, samples, axis=0), xp.repeat(viewpoint, samples, axis=0)
    noise = device.send(model.noise(rng, len(repeated_r)))
    sampled = _images(model, repeated_r, repeated_v, noise)
    return _images(model, r, viewpoint), sampled.reshape((len(r), samples) + sampled.shape[1:])


def _orbit_frames(model, r, viewpoints, rng, device) -> np.ndarray:
    """uint8 frames (F, H, 2W + GAP, 3): the mean prediction and one fixed-noise sample from each viewpoint."""
    xp, frames = device.xp, len(viewpoints)
    r = xp.broadcast_to(r, (frames,) + r.shape)
    noise = device.send(model.noise(rng, 1))
    noise = xp.broadcast_to(noise, noise.shape[:1] + (frames,) + noise.shape[2:])
    pair = np.stack([_images(model, r, viewpoints, z) for z in (None, noise)], 1)
    return np.stack([np.asarray(panel_grid(pair[i:i + 1])) for i in range(frames)])


def _images(model, r, viewpoint, noise=None) -> np.ndarray:
    """``model.predict`` as uint8 images (B, H, W, 3) on the host."""
    return to_uint8(chainer.backend.CpuDevice().send(model.predict(r, viewpoint, noise).array))


def format_table(metrics: dict) -> str:
    rows = [("negative ELBO", f"{metrics['neg_elbo']:.2f} nats/image"),
            ("  NLL", f"{metrics['nll']:.2f} nats/image (pixel sigma {metrics['sigma']:.3f})"),
            ("  KL", f"{metrics['kl']:.2f} nats/image"),
            ("bits/pixel", f"{metrics['bits_per_pixel']:.4f}"),
            ("MSE (reconstruction)", f"{metrics['mse']:.6f}"),
            ("MSE (prediction)", f"{metrics['prediction_mse']:.6f}"),
            ("scenes", str(metrics["scenes"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
