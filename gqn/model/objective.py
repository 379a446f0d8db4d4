"""Training objectives: how the loss weighs the reconstruction of the query against the KL.

Every objective trains on the same two terms of a posterior pass (``GQN.elbo``): the squared error of the
reconstructed query summed over its D sub-pixels (``sse``) and the KL of the posterior from the prior.

* ``paper``: negative ELBO with pixel sigma annealed ``sigma_start`` -> ``sigma_end`` over ``sigma_steps``
  (Eslami et al. 2018).
* ``fixed-sigma``: negative ELBO at a constant ``sigma``.
* ``calibrated``: negative ELBO with sigma^2 set analytically to the batch's mean squared error, the decoder
  variance that maximises the likelihood (Rybkin, Daniilidis & Levine 2021, "optimal sigma"). The weight of
  the reconstruction grows as the error falls, so no sigma needs tuning.
* ``geco``: minimise the KL subject to mean squared error <= ``geco_kappa`` (Rezende & Viola 2018, "Taming
  VAEs"): loss = KL + lambda * (sse - D * kappa) / 2, the multiplier lambda (an inverse variance, starting at
  1 / ``sigma``^2) follows the moving average C_ma of the constraint C = MSE - kappa:
  lambda <- lambda * exp(rate * clip(C_ma / kappa, -1, 1)). The clip bounds the change to a factor e^rate per
  step: early in training the error is many times kappa, and an unclipped multiplier would explode within
  tens of steps and load the latents with hundreds of nats.

All of them also take the KL warm-up (``kl_warmup``). What a run *reports* does not depend on the objective:
the negative ELBO at the calibrated sigma of the data it is measured on (``reported_nll``), so runs trained
with different objectives stay comparable.
"""
from __future__ import annotations

import math

import chainer.functions as F
import numpy as np

from gqn.model.loss import calibrated_sigma, gaussian_nll

GECO_ALPHA = 0.99               # moving average of the constraint
GECO_LOG_LAMBDA = (math.log(1e-2), math.log(1e6))   # bounds of log lambda


class Objective:
    """The loss of one training step and the state it carries between steps (GECO's multiplier)."""

    def __init__(self, config, state: dict | None = None):
        self.config = config
        self.name = config.objective
        state = state or {}
        self.log_lambda = state.get("log_lambda", -2 * math.log(config.sigma))
        self.constraint_ma = state.get("constraint_ma")

    def state(self) -> dict:
        """What a snapshot keeps so that a resumed run continues exactly."""
        if self.name != "geco":
            return {}
        return {"log_lambda": self.log_lambda, "constraint_ma": self.constraint_ma}

    def training_sigma(self, iteration: int, mse: float) -> float:
        """The pixel sigma of this step's likelihood (GECO: the sigma its multiplier amounts to)."""
        c = self.config
        if self.name == "paper":
            return c.pixel_sigma(iteration)
        if self.name == "fixed-sigma":
            return c.sigma
        if self.name == "calibrated":
            return calibrated_sigma(mse)
        return math.exp(-0.5 * self.log_lambda)

    def loss(self, sse, kl, sub_pixels: int, iteration: int, mse: float):
        """The batch's scalar training loss from per-image ``sse`` and ``kl`` (Chainer variables)."""
        weight = self.config.kl_weight(iteration)
        if self.name == "geco":
            reconstruction = math.exp(self.log_lambda) * (sse - sub_pixels * self.config.geco_kappa) / 2
        else:
            reconstruction = gaussian_nll(sse, sub_pixels, self.training_sigma(iteration, mse))
        return F.mean(reconstruction + weight * kl)

    def update(self, mse: float) -> None:
        """After a step: GECO moves its multiplier by the moving average of the relative constraint."""
        if self.name != "geco":
            return
        kappa = self.config.geco_kappa
        constraint = mse - kappa
        self.constraint_ma = constraint if self.constraint_ma is None else (
            GECO_ALPHA * self.constraint_ma + (1 - GECO_ALPHA) * constraint)
        step = self.config.geco_rate * float(np.clip(self.constraint_ma / kappa, -1.0, 1.0))
        self.log_lambda = float(np.clip(self.log_lambda + step, *GECO_LOG_LAMBDA))
