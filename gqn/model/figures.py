"""Pictures of predictions: PNG panel grids and GIF animations (Pillow)."""
from __future__ import annotations

import numpy as np
from PIL import Image

GAP = 2             # pixels between grid panels
GAP_COLOUR = 128    # grey, visible against black and white backgrounds


def panel_grid(panels: np.ndarray) -> Image.Image:
    """uint8 panels (R, C, H, W, 3) -> one image of R rows and C columns, GAP pixels apart:
    (C * W + (C - 1) * GAP) wide and (R * H + (R - 1) * GAP) high."""
    rows, cols, h, w, _ = panels.shape
    canvas = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, 3), GAP_COLOUR, np.uint8)
    for i in range(rows):
        for j in range(cols):
            canvas[i * (h + GAP):i * (h + GAP) + h, j * (w + GAP):j * (w + GAP) + w] = panels[i, j]
    return Image.fromarray(canvas)


def save_gif(frames: np.ndarray, path, duration_ms: int = 100) -> None:
    """uint8 frames (N, H, W, 3) as a looping GIF (Pillow merges identical consecutive frames)."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
