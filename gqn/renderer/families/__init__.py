"""Scene families: each turns (parameters, seed, scene index) into a SceneSpec for the tiled renderer."""
from __future__ import annotations

import importlib

# family name -> "module:class"; modules are imported on demand so the CLI starts fast.
FAMILIES = {
    "shepard-matzler": "gqn.renderer.families.shepard_matzler:ShepardMatzler",
    "rooms": "gqn.renderer.families.rooms:Rooms",
    "mnist-dice": "gqn.renderer.families.mnist_dice:MnistDice",
}

# views per scene when none are asked for (the GQN datasets' counts)
DEFAULT_VIEWS = {"shepard-matzler": 15, "rooms": 10, "mnist-dice": 10}


def get_family(name: str):
    """The family class registered under ``name``."""
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def stored_family(name: str, params: dict) -> str:
    """The ``family`` attribute of the shards a family writes: its name, except that rooms are stored by
    camera as ``rooms-ring`` / ``rooms-free`` (SPEC section 2). Needs no family module."""
    if name == "rooms":
        return f"rooms-{params.get('camera', 'ring')}"
    return name


def family_of_stored(stored: str) -> str | None:
    """The family name behind a shard ``family`` attribute (``rooms-free`` -> ``rooms``), or None when no
    family of the renderer wrote it."""
    name = "rooms" if stored in ("rooms-ring", "rooms-free") else stored
    return name if name in FAMILIES else None
