"""Pictures made of images (Pillow, numpy): labelled panel grids (prediction grids, dataset previews) and
GIF animations (orbits)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GAP = 2             # pixels between grid panels
GAP_COLOUR = 128    # grey, visible against black and white backgrounds
MIN_PANEL = 64      # small images are enlarged (nearest neighbour, whole multiples) to at least this width
HEADING = 16        # height of the heading band above the columns
HEADING_FONT = 11


def panel_scale(width: int) -> int:
    """The whole enlargement that makes a panel ``width`` pixels wide at least MIN_PANEL wide."""
    return max(1, math.ceil(MIN_PANEL / width))


def panel_grid(panels: np.ndarray, headings: list[str] | None = None, scale: int = 1) -> Image.Image:
    """uint8 panels (R, C, H, W, 3) -> one image of R rows and C columns, each panel enlarged ``scale``
    times and GAP pixels apart: (C * W' + (C - 1) * GAP) wide and (R * H' + (R - 1) * GAP) high for
    H', W' = scale * (H, W), plus a HEADING band with the C ``headings`` on top when they are given."""
    if scale > 1:
        panels = panels.repeat(scale, axis=2).repeat(scale, axis=3)
    rows, cols, h, w, _ = panels.shape
    top = HEADING if headings else 0
    canvas = np.full((top + rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, 3), GAP_COLOUR, np.uint8)
    for i in range(rows):
        for j in range(cols):
            y, x = top + i * (h + GAP), j * (w + GAP)
            canvas[y:y + h, x:x + w] = panels[i, j]
    image = Image.fromarray(canvas)
    if headings:
        _draw_headings(image, headings, w)
    return image


def _draw_headings(image: Image.Image, headings: list[str], width: int) -> None:
    """Black band on top with each column's heading centred over it in white."""
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, HEADING - 1), fill=(0, 0, 0))
    font = ImageFont.load_default(size=HEADING_FONT)
    for j, text in enumerate(headings):
        centre = j * (width + GAP) + width / 2
        draw.text((centre, HEADING / 2), text, fill=(255, 255, 255), font=font, anchor="mm")


def save_gif(frames: np.ndarray, path, duration_ms: int = 100) -> None:
    """uint8 frames (N, H, W, 3) as a looping GIF (Pillow merges identical consecutive frames)."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
