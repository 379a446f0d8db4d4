"""The recurrent cores of the GQN: a fused ConvLSTM, Gaussian heads, and the generation/inference cores."""
from __future__ import annotations

import chainer
import chainer.functions as F

from gqn.model.config import ModelConfig
from gqn.model.conv import Convolution2D
from gqn.model.representation import VIEWPOINT

KERNEL = ModelConfig.kernel   # the default core kernel size (the paper's 5; --kernel)
SPACE_TO_DEPTH = 4      # the query image enters the inference core at 1/4 resolution, 3 * 4 * 4 channels


class ConvLSTM(chainer.Chain):
    """ConvLSTM whose four gates come from one convolution (``kernel`` x ``kernel``) of all its inputs.

    The inputs are split into *static* ones, the same at every generation step (viewpoint, representation,
    query image), and *recurrent* ones (hidden states, latent). The gate convolution of their concatenation
    equals the sum of a convolution of each part, so the static part is computed once per pass
    (``precompute``) and each step convolves only the recurrent inputs: the same model, fewer FLOPs.
    """

    def __init__(self, static_channels: int, recurrent_channels: int, hidden: int, kernel: int = KERNEL):
        super().__init__()
        with self.init_scope():
            self.static = Convolution2D(static_channels, 4 * hidden, kernel, pad=kernel // 2)
            self.recurrent = Convolution2D(recurrent_channels, 4 * hidden, kernel, pad=kernel // 2, nobias=True)

    def precompute(self, static):
        return self.static(static)

    def forward(self, precomputed, recurrent, c):
        """One step: ``recurrent`` is a tuple of maps; returns the new (h, c)."""
        gates = precomputed + self.recurrent(F.concat(recurrent, axis=1))
        c, h = F.lstm(c, gates)
        return h, c


class GaussianHead(chainer.Chain):
    """A convolution of a hidden state to a diagonal Gaussian over z: (mean, log variance)."""

    def __init__(self, hidden: int, latent: int, kernel: int = KERNEL):
        super().__init__()
        with self.init_scope():
            self.conv = Convolution2D(hidden, 2 * latent, kernel, pad=kernel // 2)

    def forward(self, h):
        return F.split_axis(self.conv(h), 2, axis=1)


class GenerationCore(chainer.Chain):
    """Generation ConvLSTM (inputs v, r | h_g, z) and its prior head."""

    def __init__(self, config: ModelConfig, lstm=ConvLSTM):
        super().__init__()
        with self.init_scope():
            self.lstm = lstm(VIEWPOINT + config.r_channels, config.hidden + config.latent, config.hidden,
                             config.kernel)
            self.prior = GaussianHead(config.hidden, config.latent, config.kernel)


class InferenceCore(chainer.Chain):
    """Inference ConvLSTM (inputs x_q, v, r | h_e, h_g) and its posterior head."""

    def __init__(self, config: ModelConfig, lstm=ConvLSTM):
        super().__init__()
        static = 3 * SPACE_TO_DEPTH ** 2 + VIEWPOINT + config.r_channels
        with self.init_scope():
            self.lstm = lstm(static, 2 * config.hidden, config.hidden, config.kernel)
            self.posterior = GaussianHead(config.hidden, config.latent, config.kernel)
