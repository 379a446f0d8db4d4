"""Terms of the negative ELBO and the reported metrics.

All per-image values are in nats summed over the image (NLL) or over steps and latent positions (KL).
"""
from __future__ import annotations

import math

import chainer.functions as F

from gqn.model.images import LEVELS

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mean_q, ln_var_q, mean_p, ln_var_p):
    """Elementwise KL(N(mean_q, var_q) || N(mean_p, var_p)) of diagonal Gaussians."""
    return 0.5 * (ln_var_p - ln_var_q + (F.exp(ln_var_q) + (mean_q - mean_p) ** 2) * F.exp(-ln_var_p) - 1)


def gaussian_nll(x, mean, sigma: float):
    """Per-image negative log-likelihood of ``x`` under N(mean, sigma^2) on every sub-pixel, shape (B,)."""
    sub_pixels = x[0].size
    squared = F.sum((x - mean) ** 2, axis=tuple(range(1, x.ndim)))
    return squared / (2 * sigma ** 2) + sub_pixels * (math.log(sigma) + 0.5 * LOG_2PI)


def bits_per_pixel(neg_elbo: float, sub_pixels: int) -> float:
    """Negative ELBO per image as bits per sub-pixel (colour value) of the 8-bit data.

    The model's density lives on [-0.5, 0.5) where each 8-bit level is a bin of width 1/256, so the code
    length of the discrete data is the density's plus log2(256) = 8 bits per value: raw data costs 8.
    """
    return neg_elbo / (sub_pixels * math.log(2)) + math.log2(LEVELS)
