"""Scene families: each turns (parameters, seed, scene index) into a SceneSpec for the tiled renderer."""
from __future__ import annotations

import importlib

# family name -> "module:class"; modules are imported on demand so the CLI starts fast.
FAMILIES = {
    "shepard-matzler": "gqn.renderer.families.shepard_matzler:ShepardMatzler",
}

# views per scene when none are asked for (the GQN datasets' counts)
DEFAULT_VIEWS = {"shepard-matzler": 15, "rooms": 10, "mnist-dice": 10}


def get_family(name: str):
    """The family class registered under ``name``."""
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)
