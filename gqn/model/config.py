"""Hyperparameters of a training run: the architecture (ModelConfig) and the optimisation (TrainConfig).

Both are plain dataclasses stored as JSON in every snapshot, so a run can be resumed or evaluated without
repeating its options. Defaults are the paper's (Eslami et al. 2018) and chainer-gqn's.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from gqn.errors import GqnError
from gqn.model.frames import FRAMES

REPRESENTATIONS = ("tower", "pool")
OBJECTIVES = ("paper", "fixed-sigma", "calibrated", "geco")


@dataclass(frozen=True)
class ModelConfig:
    height: int
    width: int
    steps: int = 12                 # L, generation steps
    hidden: int = 128               # h, ConvLSTM channels
    latent: int = 3                 # z channels
    canvas: int = 128               # u channels (full resolution)
    r_channels: int = 256           # representation channels
    representation: str = "tower"   # tower | pool
    shared_cores: bool = True       # one core (and head) for all steps, or one per step
    kernel: int = 5                 # kernel size of the cores' convolutions and their Gaussian heads
    frame: str = "world"            # world | query: the frame of the viewpoints (gqn.model.frames)

    def __post_init__(self):
        if self.height % 4 or self.width % 4:
            raise GqnError(f"image size {self.height}x{self.width} is not divisible by 4, "
                           "which the GQN architecture (1/4 resolution cores) needs")
        if self.kernel % 2 == 0:
            raise GqnError(f"core kernel size {self.kernel} is even; it must be odd to keep the maps' size")
        if self.representation not in REPRESENTATIONS:
            raise GqnError(f"unknown representation {self.representation!r}; choose tower or pool")
        if self.frame not in FRAMES:
            raise GqnError(f"unknown viewpoint frame {self.frame!r}; choose world or query")

    @property
    def core_size(self) -> tuple[int, int]:
        """Spatial size of the cores, the latent maps and the tower representation (1/4 resolution)."""
        return self.height // 4, self.width // 4


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 36
    context_min: int = 1
    context_max: int | None = None   # None: views - 1 of the data
    lr_start: float = 5e-4
    lr_end: float = 5e-5
    lr_steps: int = 1_600_000
    lr_warmup: int = 0               # iterations over which the learning rate rises linearly to its schedule
    sigma_start: float = 2.0
    sigma_end: float = 0.7
    sigma_steps: int = 200_000
    objective: str = "paper"         # paper | fixed-sigma | calibrated | geco (gqn.model.objective)
    sigma: float = 0.25              # fixed-sigma: the pixel sigma; geco: the sigma its multiplier starts at
    geco_kappa: float = 0.005        # geco: the target mean squared error of the reconstruction
    geco_rate: float = 0.01          # geco: step of log lambda per unit of relative constraint violation
    kl_warmup: int = 0               # iterations over which the KL weight rises 0 -> 1 (0: always 1)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    seed: int = 0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise GqnError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")

    def learning_rate(self, iteration: int) -> float:
        """The annealed rate, scaled by (iteration + 1) / ``lr_warmup`` during the warm-up."""
        rate = anneal(self.lr_start, self.lr_end, self.lr_steps, iteration)
        return rate * min(1.0, (iteration + 1) / self.lr_warmup) if self.lr_warmup else rate

    def pixel_sigma(self, iteration: int) -> float:
        """The paper objective's annealed pixel sigma."""
        return anneal(self.sigma_start, self.sigma_end, self.sigma_steps, iteration)

    def kl_weight(self, iteration: int) -> float:
        """Weight of the KL term in the training loss (the reported ELBO always weighs it 1)."""
        return anneal(0.0, 1.0, self.kl_warmup, iteration) if self.kl_warmup else 1.0


def anneal(start: float, end: float, steps: int, iteration: int) -> float:
    """Linear annealing from ``start`` (iteration 0) to ``end`` (iteration ``steps`` and later)."""
    return end + (start - end) * max(0.0, 1.0 - iteration / steps)


def from_dict(cls, values: dict):
    """Rebuild a config from stored JSON, ignoring keys a newer version might add."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})
