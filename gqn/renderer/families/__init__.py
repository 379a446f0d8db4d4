"""Scene families and their registry: each family turns (parameters, seed, scene index) into a SceneSpec
(``gqn.renderer.scene``) for the renderer, and declares its name, default views, parameters and help in its
class attribute ``spec`` (``base.FamilySpec``). The `gqn render FAMILY` commands, `gqn train --render FAMILY
--render-param` and the shards' family names all come from here: adding a family is one module and one line
in REGISTRY (docs/adding-a-family.md).
"""
from __future__ import annotations

import functools
import importlib

from gqn.renderer.families.base import Family, FamilySpec, Param

__all__ = ["REGISTRY", "Family", "FamilySpec", "Param", "families", "family_of_stored", "family_spec",
           "get_family", "stored_family"]

# "module:Class", one line per family (the order of `gqn render --help` is alphabetical anyway)
REGISTRY = (
    "gqn.renderer.families.shepard_matzler:ShepardMatzler",
    "gqn.renderer.families.rooms:Rooms",
    "gqn.renderer.families.mnist_dice:MnistDice",
)


@functools.lru_cache(maxsize=None)
def families() -> dict[str, type[Family]]:
    """Family name -> class, for every family in REGISTRY (their modules import no OpenGL: see base.py)."""
    found, stored = {}, {}
    for entry in REGISTRY:
        module, name = entry.split(":")
        cls = getattr(importlib.import_module(module), name)
        spec = cls.spec
        if not isinstance(spec, FamilySpec) or spec.name in found:
            raise ValueError(f"{entry}: a family needs its own `spec = FamilySpec(...)` (name {spec and spec.name})")
        for stored_name in spec.stored_names:
            if stored_name in stored:
                raise ValueError(f"{entry}: stored family name {stored_name} is taken by {stored[stored_name]}")
            stored[stored_name] = spec.name
        found[spec.name] = cls
    return found


def get_family(name: str) -> type[Family]:
    """The family class registered under ``name``."""
    return families()[name]


def family_spec(name: str) -> FamilySpec:
    """The declaration of the family registered under ``name``."""
    return families()[name].spec


def stored_family(name: str, params: dict) -> str:
    """The ``family`` attribute of the shards a family writes: its name, or for a family with ``stored_by``
    the name and that parameter's value: rooms are stored by camera as ``rooms-ring`` / ``rooms-free``
    (SPEC section 2)."""
    return family_spec(name).stored_name(params)


def family_of_stored(stored: str) -> str | None:
    """The family name behind a shard ``family`` attribute (``rooms-free`` -> ``rooms``), or None when no
    family of the renderer wrote it."""
    return next((name for name, cls in families().items() if stored in cls.spec.stored_names), None)
