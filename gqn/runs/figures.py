"""Training curves (matplotlib); the panel grids and GIFs of predictions are ``gqn.pictures``."""
from __future__ import annotations

import json
from pathlib import Path


CURVES = (("bits_per_pixel", "bits/pixel (calibrated sigma)"), ("kl", "KL (nats/image)"),
          ("mse", "MSE"))


def plot_curves(log_path, out_path) -> None:
    """``curves.png`` from a run's ``log.jsonl``: training and held-out bits/pixel, KL and MSE against
    iterations; the MSE panel adds the held-out prediction and its baselines when they were measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    splits = {split: [e for e in entries if e["split"] == split] for split in ("train", "test")}
    figure, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4), constrained_layout=True)
    for axis, (key, title) in zip(axes, CURVES):
        for split, style in (("train", "-"), ("test", "o-")):
            points = splits[split]
            if points:
                axis.plot([e["iteration"] for e in points], [e[key] for e in points], style,
                          label=f"{split} (posterior)" if key == "mse" else split, markersize=3)
        axis.set_title(title)
        axis.set_xlabel("iteration")
    test = splits["test"]
    for key, label in (("prediction_mse", "test prediction (prior mean)"), ("mean_image_mse", "mean image"),
                       ("nearest_view_mse", "nearest context view")):
        if test and key in test[0]:
            axes[-1].plot([e["iteration"] for e in test], [e[key] for e in test], "s--" if "prediction" in key
                          else ":", label=label, markersize=3)
    axes[-1].set_yscale("log")
    for axis in axes:
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
