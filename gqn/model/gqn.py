"""The Generative Query Network: representation, L generation steps, the ELBO and prediction.

Shapes (B scenes, K context views, images H x W, cores at h x w = H/4 x W/4):

* context images (B, K, 3, H, W) float in [-0.5, 0.5), context viewpoints (B, K, 7), in the world's frame
  (the model turns them into its ``frame``, ``gqn.model.frames``)
* representation r (B, r_channels, h, w) for the tower, (B, r_channels, 1, 1) for the pool
* query image (B, 3, H, W), query viewpoint (B, 7), step noise (L, B, latent, h, w)

The paper's canvas is u_L = sum over steps of a 4x4 stride-4 deconvolution of the generation core's hidden
state h_l (to ``canvas`` channels at full resolution), and a 1x1 convolution of u_L is the mean of the image
distribution. The deconvolution is linear and nothing reads the canvas before the last step, so the sum is
taken at 1/4 resolution and upsampled once: u_L = deconv(sum of h_l) with shared cores, and
deconv(concat of h_1 .. h_L) with per-step cores (their L deconvolutions stacked into one). Same model,
one upsampling instead of L.
"""
from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np

from gqn.model.config import ModelConfig
from gqn.model.conv import Convolution2D
from gqn.model.cores import SPACE_TO_DEPTH, ConvLSTM, GenerationCore, InferenceCore
from gqn.model.frames import context_in_query_frame, query_in_own_frame
from gqn.model.loss import gaussian_kl, squared_error
from gqn.model.representation import broadcast_map, make_representation


class GQN(chainer.Chain):
    """``lstm`` builds the ConvLSTMs (the benchmark swaps in unfused variants)."""

    def __init__(self, config: ModelConfig, lstm=ConvLSTM):
        super().__init__()
        self.config = config
        cores = 1 if config.shared_cores else config.steps
        with self.init_scope():
            self.representation = make_representation(config.representation, config.r_channels)
            self.generation = chainer.ChainList(*(GenerationCore(config, lstm) for _ in range(cores)))
            self.inference = chainer.ChainList(*(InferenceCore(config, lstm) for _ in range(cores)))
            self.upsample = L.Deconvolution2D(cores * config.hidden, config.canvas, 4, stride=4)
            self.observation = Convolution2D(config.canvas, 3, 1)

    def represent(self, images, viewpoints, query_viewpoint):
        """Scene representations: the sum over the K context views of each scene. In the ``query`` frame
        (``gqn.model.frames``) the context viewpoints are turned by the yaw of ``query_viewpoint`` (B, 7),
        and the representation serves that query only; the ``world`` frame ignores it."""
        if self.config.frame == "query":
            viewpoints = context_in_query_frame(viewpoints, query_viewpoint)
        b, k = images.shape[:2]
        r = self.representation(images.reshape((b * k,) + images.shape[2:]), viewpoints.reshape(b * k, -1))
        return F.sum(F.reshape(r, (b, k) + r.shape[1:]), axis=1)

    def elbo(self, r, viewpoint, image, noise):
        """Posterior pass over the query: the terms of its negative ELBO, per scene (B,): the squared error of
        the reconstruction summed over sub-pixels and the KL; and the reconstructed mean image."""
        size = self.config.core_size
        conditioning = self._conditioning(r, viewpoint)
        query = F.concat((F.space2depth(image, SPACE_TO_DEPTH), conditioning), axis=1)
        static = [core.lstm.precompute(query) for core in self.inference]
        h, c = self._zeros(len(image), size), self._zeros(len(image), size)
        kl = []

        def posterior(step, h_g, prior):
            nonlocal h, c
            core = self.inference[step % len(self.inference)]
            h, c = core.lstm(static[step % len(static)], (h, h_g), c)
            mean, ln_var = core.posterior(h)
            kl.append(F.sum(gaussian_kl(mean, ln_var, *prior), axis=(1, 2, 3)))
            return mean + F.exp(0.5 * ln_var) * noise[step]

        mean = self._generate(conditioning, posterior)
        return squared_error(image, mean), sum(kl), mean

    def predict(self, r, viewpoint, noise=None):
        """Image means generated from the prior: z sampled with ``noise``, or the prior means if None."""
        def prior_latent(step, h_g, prior):
            mean, ln_var = prior
            return mean if noise is None else mean + F.exp(0.5 * ln_var) * noise[step]

        return self._generate(self._conditioning(r, viewpoint), prior_latent)

    def _conditioning(self, r, viewpoint):
        """The static inputs of the cores: viewpoint and representation maps at core resolution."""
        size = self.config.core_size
        if r.shape[2:] != size:
            r = broadcast_map(r, size)
        if self.config.frame == "query":
            viewpoint = query_in_own_frame(viewpoint)
        return F.concat((broadcast_map(viewpoint, size), r), axis=1)

    def _generate(self, conditioning, latent):
        """The L generation steps; ``latent(step, h_g, prior)`` chooses each step's z."""
        batch, size = len(conditioning), self.config.core_size
        static = [core.lstm.precompute(conditioning) for core in self.generation]
        h, c = self._zeros(batch, size), self._zeros(batch, size)
        canvas = [0] * len(self.generation)
        for step in range(self.config.steps):
            core = self.generation[step % len(self.generation)]
            z = latent(step, h, core.prior(h))
            h, c = core.lstm(static[step % len(static)], (h, z), c)
            canvas[step % len(canvas)] = h + canvas[step % len(canvas)]
        return self.observation(self.upsample(F.concat(canvas, axis=1)))

    def _zeros(self, batch, size):
        return self.xp.zeros((batch, self.config.hidden) + tuple(size), dtype=np.float32)

    def noise(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """Standard normal noise for the L latent samples of a batch, drawn on the host from ``rng``."""
        c = self.config
        return rng.standard_normal((c.steps, batch, c.latent) + c.core_size, dtype=np.float32)


def build_model(config: ModelConfig, seed: int, lstm=ConvLSTM) -> GQN:
    """A freshly initialised model; the initial weights depend only on ``config`` and ``seed``."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return GQN(config, lstm)
    finally:
        np.random.set_state(state)
