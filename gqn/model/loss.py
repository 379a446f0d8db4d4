"""Terms of the negative ELBO and the reported metrics.

All per-image values are in nats summed over the image (NLL) or over steps and latent positions (KL). The
reported negative ELBO uses the calibrated pixel sigma of the data it is measured on (sigma^2 = MSE).
"""
from __future__ import annotations

import math

import chainer.functions as F

from gqn.model.images import LEVELS

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mean_q, ln_var_q, mean_p, ln_var_p):
    """Elementwise KL(N(mean_q, var_q) || N(mean_p, var_p)) of diagonal Gaussians."""
    return 0.5 * (ln_var_p - ln_var_q + (F.exp(ln_var_q) + (mean_q - mean_p) ** 2) * F.exp(-ln_var_p) - 1)


def gaussian_nll(sse, sub_pixels: int, sigma: float):
    """Per-image negative log-likelihood under N(mean, sigma^2) on each of ``sub_pixels`` values, from the
    per-image squared error ``sse`` (a Chainer variable or an array)."""
    return sse / (2 * sigma ** 2) + sub_pixels * (math.log(sigma) + 0.5 * LOG_2PI)


def squared_error(x, mean):
    """Per-image squared error summed over every sub-pixel, shape (B,)."""
    return F.sum((x - mean) ** 2, axis=tuple(range(1, x.ndim)))


def calibrated_sigma(mse: float) -> float:
    """The pixel sigma that maximises the Gaussian likelihood of reconstructions with this mean squared error
    (sigma^2 = MSE), floored at one 8-bit level."""
    return max(math.sqrt(max(mse, 0.0)), 1 / LEVELS)


def reported_nll(mse: float, sub_pixels: int) -> float:
    """Per-image NLL at the calibrated sigma of ``mse``: what logs and evaluation report for every objective,
    so that runs trained with different objectives stay comparable."""
    return gaussian_nll(mse * sub_pixels, sub_pixels, calibrated_sigma(mse))


def bits_per_pixel(neg_elbo: float, sub_pixels: int) -> float:
    """Negative ELBO per image as bits per sub-pixel (colour value) of the 8-bit data.

    The model's density lives on [-0.5, 0.5) where each 8-bit level is a bin of width 1/256, so the code
    length of the discrete data is the density's plus log2(256) = 8 bits per value: raw data costs 8.
    """
    return neg_elbo / (sub_pixels * math.log(2)) + math.log2(LEVELS)
