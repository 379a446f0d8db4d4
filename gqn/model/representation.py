"""Representation networks: one context view (image, viewpoint) -> a representation map.

A scene's representation is the sum over its context views (done in ``gqn.GQN.represent``).
"""
from __future__ import annotations

import chainer
import chainer.functions as F

from gqn.model.conv import Convolution2D

VIEWPOINT = 7


def broadcast_map(x, size):
    """Tile (N, C) or (N, C, 1, 1) values over a (N, C, *size) map.

    Broadcasting, not a deconvolution of a constant: Chainer 7.8.1's deconvolution backward fails when its
    input needs no gradient (SPEC section 5).
    """
    n, c = x.shape[:2]
    return F.broadcast_to(F.reshape(x, (n, c, 1, 1)), (n, c) + tuple(size))


class Tower(chainer.Chain):
    """The paper's "tower": image (N, 3, H, W) and viewpoint (N, 7) -> (N, channels, H/4, W/4)."""

    def __init__(self, channels: int = 256):
        super().__init__()
        half = channels // 2
        self.channels = channels
        with self.init_scope():
            self.conv1 = Convolution2D(3, channels, 2, stride=2)
            self.conv2 = Convolution2D(channels, channels, 2, stride=2)
            self.conv3 = Convolution2D(channels, half, 3, pad=1)
            self.conv4 = Convolution2D(half, channels, 2, stride=2)
            # the paper's two 3x3 convolutions of the viewpoint-augmented map, as one (one im2col, one GEMM)
            self.conv5_6 = Convolution2D(channels + VIEWPOINT, channels + half, 3, pad=1)
            self.conv7 = Convolution2D(half, channels, 3, pad=1)
            self.conv8 = Convolution2D(channels, channels, 1)

    def forward(self, x, v):
        skip_in = F.relu(self.conv1(x))
        skip_out = F.relu(self.conv2(skip_in))
        h = F.relu(self.conv3(skip_in))
        h = F.relu(self.conv4(h)) + skip_out
        h = F.concat((h, broadcast_map(v, h.shape[2:])), axis=1)
        skip_out, h = F.split_axis(F.relu(self.conv5_6(h)), [self.channels], axis=1)
        h = F.relu(self.conv7(h)) + skip_out
        return F.relu(self.conv8(h))


class Pool(Tower):
    """The paper's "pool": the tower averaged over space to (N, channels, 1, 1)."""

    def forward(self, x, v):
        return F.mean(super().forward(x, v), axis=(2, 3), keepdims=True)


def make_representation(kind: str, channels: int) -> Tower:
    return {"tower": Tower, "pool": Pool}[kind](channels)
