"""`gqn evaluate`: metrics on held-out scenes (``measure``), a PNG grid of predictions and orbit GIFs.

Outputs in the evaluation directory:

* ``metrics.json``: negative ELBO (nats per image) at the calibrated pixel sigma (sigma^2 = the reconstruction
  MSE, ``sigma``), its NLL and KL terms, bits per pixel, the posterior reconstruction MSE (``mse``), the MSE
  of the prior's mean prediction of the unseen query (``prediction_mse``), the baselines' MSE on the same
  queries (``mean_image_mse``: the training set's mean image; ``nearest_view_mse``: the context view whose
  camera looks most nearly the query's way) and ``prediction_ratio`` = prediction / mean-image MSE
* ``predictions.png``: one row per scene; columns are the K context views, the ground-truth query view,
  the model's mean prediction (every z at its prior mean) and ``samples`` predictions with z sampled
* ``predictions.png`` has a heading over each column and enlarges images narrower than 64 px
* ``orbit_SCENE.gif``: the model rendering the scene from a camera circling it; each frame shows, for rendered
  datasets, the true scene rendered from that camera (left), then the mean prediction and one sample whose
  noise is drawn once per scene and reused in every frame, so the sample is one consistent guess seen from
  all around rather than a new guess per frame
* ``curves.png``: the run's training and held-out curves (``log.jsonl``)
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import chainer
import numpy as np

from gqn.data import NOISE_STREAM, ShardBatches, batch_rng
from gqn.errors import GqnError
from gqn.model.config import ModelConfig, TrainConfig, from_dict
from gqn.model.gqn import build_model
from gqn.model.images import model_inputs, to_uint8
from gqn.pictures import panel_grid, panel_scale, save_gif
from gqn.renderer.stream import SceneStream, dataset_render_config
from gqn.runs import snapshot
from gqn.runs.baselines import mean_image
from gqn.runs.device import get_device
from gqn.runs.figures import plot_curves
from gqn.runs.measure import measure
from gqn.runs.orbit import orbit_cameras
from gqn.runs.run import CURVES, LOG, SNAPSHOT, check_image_size
from gqn.shards import Dataset, viewpoints_from_cameras

logger = logging.getLogger(__name__)

METRICS = "metrics.json"
GRID = "predictions.png"


def run_evaluation(run, data, out=None, scenes: int = 256, batch_size: int = 16, context=None,
                   samples: int = 4, rows: int = 8, gifs: int = 4, frames: int = 36, gpu=None,
                   seed: int = 0) -> dict:
    """Evaluate the snapshot of run directory ``run`` on shard directory ``data``; returns the metrics."""
    run = Path(run)
    out = Path(out) if out else run / "eval"
    meta = snapshot.load_meta(run / SNAPSHOT)
    model_config, config = from_dict(ModelConfig, meta["model"]), from_dict(TrainConfig, meta["train"])
    dataset = Dataset(data)
    check_image_size(dataset, dataset.directory, model_config, f"the run {run}")
    context = context or (config.context_min, min(config.context_max, dataset.views - 1))
    device = get_device(gpu)
    model = build_model(model_config, config.seed)
    snapshot.load_state(run / SNAPSHOT, model)
    model.to_device(device)
    source = ShardBatches(dataset, batch_size, context, seed, sequential=True, scenes=scenes)
    mean, mean_source = _mean_image(meta["data"], dataset)
    metrics = {"run": str(run), "iteration": meta["iteration"], "data": str(data),
               **measure(model, source, device, mean), "mean_image_of": mean_source}
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figure_source = ShardBatches(dataset, min(rows, source.scenes), context, seed, sequential=True)
    write_figures(model, figure_source, out, samples, gifs, frames, device)
    if (run / LOG).exists():
        plot_curves(run / LOG, out / CURVES)
    return metrics


def _mean_image(train_data: str, evaluated: Dataset):
    """The training set's mean image, or the evaluated set's when the training shards cannot be read (a run
    trained on scenes rendered on the fly, or whose data moved); and the directory it came from."""
    try:
        dataset = Dataset(train_data)
    except GqnError:
        dataset = evaluated
    if (dataset.height, dataset.width) != (evaluated.height, evaluated.width):
        dataset = evaluated
    return mean_image(dataset), str(dataset.directory)


def write_figures(model, source: ShardBatches, out: Path, samples: int, gifs: int, frames: int,
                  device) -> None:
    """``predictions.png`` for the scenes of ``source.batch(0)``, and orbit GIFs of the first ``gifs``."""
    batch = source.batch(0)
    scenes = source.plan(0)[0]
    scale = panel_scale(source.width)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        context, context_viewpoints, _, viewpoint = model_inputs(batch, device)
        r = model.represent(context, context_viewpoints, viewpoint).array
        rng = batch_rng(source.seed, 0, NOISE_STREAM)
        mean, sampled = _predictions(model, r, viewpoint, samples, rng, device)
        panels = np.concatenate([batch.context_images, batch.query_image[:, None], mean[:, None], sampled], 1)
        headings = ([f"context {i + 1}" for i in range(batch.context_images.shape[1])] + ["truth", "mean"]
                    + [f"sample {i + 1}" for i in range(samples)])
        panel_grid(panels, headings, scale).save(out / GRID)
        orbits = {int(s): orbit_cameras(source.dataset.read_views(int(s), np.arange(source.views),
                                                                  ("cameras",))["cameras"], frames)
                  for s in scenes[:gifs]}
        truth = true_orbits(source.dataset, orbits, frames)
        for row, scene in enumerate(orbits):
            model_frames = _orbit_frames(model, context[row], context_viewpoints[row],
                                         device.send(viewpoints_from_cameras(orbits[scene])), rng, device)
            headings = ["mean", "sample"]
            if truth:
                model_frames = np.concatenate([truth[scene][:, None], model_frames], 1)
                headings = ["truth", *headings]
            gif = [np.asarray(panel_grid(model_frames[i:i + 1], headings, scale)) for i in range(frames)]
            save_gif(np.stack(gif), out / f"orbit_{scene:06d}.gif")


def true_orbits(dataset: Dataset, orbits: dict, frames: int) -> dict | None:
    """The true frames of rendered scenes along their orbits, {scene: (F, H, W, 3)}, rendered through the
    renderer's stream (its worker process owns the GL context); None for data the renderer did not make, or
    when rendering is not possible here (a warning, logged, says why)."""
    config = dataset_render_config(dataset.attrs, frames)
    if config is None or not orbits:
        return None
    first = int(dataset.attrs.get("first_scene", 0))
    try:
        with SceneStream(config, workers=1) as stream:
            images = stream.render_posed((first + scene, poses) for scene, poses in orbits.items())
            return dict(zip(orbits, images))
    except GqnError as e:
        logger.warning(f"orbit GIFs without the true scene ({e})")
        return None


def _predictions(model, r, viewpoint, samples: int, rng, device):
    """uint8 mean predictions (B, H, W, 3) and ``samples`` sampled ones (B, samples, H, W, 3)."""
    xp = device.xp
    repeated_r, repeated_v = xp.repeat(r, samples, axis=0), xp.repeat(viewpoint, samples, axis=0)
    noise = device.send(model.noise(rng, len(repeated_r)))
    sampled = _images(model, repeated_r, repeated_v, noise)
    return _images(model, r, viewpoint), sampled.reshape((len(r), samples) + sampled.shape[1:])


def _orbit_frames(model, context, context_viewpoints, viewpoints, rng, device) -> np.ndarray:
    """uint8 panels (F, 2, H, W, 3) of one scene's context (K, 3, H, W) and (K, 7): the mean prediction and
    one fixed-noise sample from each viewpoint (F, 7). In the query frame the representation depends on the
    query, so it is taken per frame; in the world frame once."""
    xp, frames = device.xp, len(viewpoints)
    n = frames if model.config.frame == "query" else 1
    r = model.represent(xp.broadcast_to(context, (n,) + context.shape),
                        xp.broadcast_to(context_viewpoints, (n,) + context_viewpoints.shape), viewpoints[:n]).array
    r = xp.repeat(r, frames // n, axis=0)
    noise = device.send(model.noise(rng, 1))
    noise = xp.broadcast_to(noise, noise.shape[:1] + (frames,) + noise.shape[2:])
    return np.stack([_images(model, r, viewpoints, z) for z in (None, noise)], 1)


def _images(model, r, viewpoint, noise=None) -> np.ndarray:
    """``model.predict`` as uint8 images (B, H, W, 3) on the host."""
    return to_uint8(chainer.backend.CpuDevice().send(model.predict(r, viewpoint, noise).array))


def format_table(metrics: dict) -> str:
    rows = [("negative ELBO", f"{metrics['neg_elbo']:.2f} nats/image"),
            ("  NLL", f"{metrics['nll']:.2f} nats/image (calibrated pixel sigma {metrics['sigma']:.4f})"),
            ("  KL", f"{metrics['kl']:.2f} nats/image"),
            ("bits/pixel", f"{metrics['bits_per_pixel']:.4f}"),
            ("MSE (reconstruction)", f"{metrics['mse']:.6f}"),
            ("MSE (prediction)", f"{metrics['prediction_mse']:.6f}"),
            ("MSE (mean image)", f"{metrics['mean_image_mse']:.6f}"),
            ("MSE (nearest context view)", f"{metrics['nearest_view_mse']:.6f}"),
            ("prediction / mean image", f"{metrics['prediction_ratio']:.3f}"),
            ("scenes", str(metrics["scenes"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
