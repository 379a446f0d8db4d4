"""What every scene family provides: its declaration (``FamilySpec``, read by the CLI and the registry) and
the scene code the render loop calls (``Family``).

Family modules stay importable without OpenGL: they build scenes from numpy (``gqn.renderer.scene``) and
import pyrender or trimesh only inside ``meshes()``, which runs once per render worker. The command line
reads every family's ``spec`` when it starts, so a module-level ``import pyrender`` would slow down every
`gqn` command (tests/test_family_registry.py checks this).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import click
import numpy as np

from gqn.errors import GqnError
from gqn.renderer.scene import SceneSpec

# keyword arguments of every family's __init__ besides its parameters
RESERVED = ("views", "size")


def _same(value):
    return value


@dataclass(frozen=True)
class Param:
    """A family parameter: the option ``--NAME`` of `gqn render FAMILY` (underscores become dashes) and the
    key ``NAME`` of `gqn train --render FAMILY --render-param NAME=VALUE`, both parsed by ``type``.

    ``type`` is a click type (``click.IntRange(2, 20)``, ``click.Choice([...])``, ``gqn.paramtypes.MinMax()``)
    or a Python type; ``bool`` makes an on/off flag ``--NAME/--no-NAME``. ``default`` is written as on the
    command line (``"1-3"``) and shown by ``--help``. ``store`` turns the parsed value into what the family's
    ``__init__`` gets and the shards' ``params`` attribute stores (e.g. a relative path into an absolute one).
    """

    name: str
    type: Any
    default: Any
    help: str
    store: Callable[[Any], Any] = _same

    @property
    def is_flag(self) -> bool:
        return self.type is bool or self.type is click.BOOL

    @property
    def click_type(self) -> click.ParamType:
        return click.BOOL if self.is_flag else click.types.convert_type(self.type, self.default)

    def parse(self, value) -> Any:
        """The family value of ``value`` (the CLI default, or a ``--render-param`` value: JSON-decoded when it
        was JSON, else text); a value the type refuses is a one-line GqnError."""
        if value is None and self.default is None:  # "not given" where that is the default
            return self.store(None)
        if isinstance(value, list):  # a JSON list, e.g. objects=[1,3]
            value = tuple(value)
        try:
            return self.store(self.click_type.convert(value, None, None))
        except click.BadParameter as e:
            shown = value if isinstance(value, str) else repr(value)
            if isinstance(self.click_type, click.Choice):
                choices = ", ".join(map(str, self.click_type.choices))
                raise GqnError(f"{self.name}={shown}: {self.name} must be one of {choices}") from None
            raise GqnError(f"{self.name}={shown}: {e.message}") from None
        except (TypeError, ValueError) as e:
            raise GqnError(f"{self.name}={value!r}: {e}") from None

    @property
    def family_default(self) -> Any:
        """The default as the family gets it (``"1-3"`` -> ``[1, 3]``)."""
        return self.parse(self.default)


@dataclass(frozen=True)
class FamilySpec:
    """Everything about a family besides its scenes: the `gqn render NAME` command, its options and help,
    the default views, and the name its shards are stored under."""

    name: str                         # `gqn render NAME`, `gqn train --render NAME`
    views: int                        # views per scene when none are asked for
    summary: str                      # one line: `gqn render --help` and the first line of the command's help
    params: tuple[Param, ...] = ()
    examples: tuple[str, ...] = ()    # command lines shown by `gqn render NAME --help`
    details: str = ""                 # more help text, between the summary and the examples
    stored_by: str | None = None      # a choice parameter whose value the stored family name carries
    # (rooms with camera=free are stored as family rooms-free); None: stored as NAME
    names: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self):
        names = tuple(p.name for p in self.params)
        object.__setattr__(self, "names", names)
        if len(set(names)) != len(names) or set(names) & set(RESERVED):
            raise ValueError(f"family {self.name}: parameter names must be unique and not {', '.join(RESERVED)}")
        if self.stored_by is not None and not isinstance(self.param(self.stored_by).type, click.Choice):
            raise ValueError(f"family {self.name}: stored_by must name a click.Choice parameter")

    def param(self, name: str) -> Param:
        return self.params[self.names.index(name)]

    @property
    def help(self) -> str:
        """The help text of `gqn render NAME`."""
        paragraphs = [self.summary, *([self.details] if self.details else [])]
        if len(self.examples) == 1:
            paragraphs.append(f"Example: {self.examples[0]}")
        elif self.examples:
            paragraphs += ["Examples:", *(f"  {example}" for example in self.examples)]
        return "\n\n".join(paragraphs)

    def defaults(self) -> dict:
        """Every parameter's default, as the family gets it and the shards store it."""
        return {p.name: p.family_default for p in self.params}

    def parse(self, values: dict, option: str = "--render-param") -> dict:
        """``values`` (name -> JSON-decoded value or text, as ``option`` gives them) checked and converted as
        `gqn render NAME` converts its options; an unknown name or a bad value is a one-line GqnError."""
        for key in values:
            if key not in self.names:
                raise GqnError(f"{option}: {self.name}: bad parameters {values}: no parameter {key!r} (valid: "
                               f"{', '.join(self.names) or f'none, {self.name} takes no parameters'})")
        try:
            return {key: self.param(key).parse(value) for key, value in values.items()}
        except GqnError as e:
            raise GqnError(f"{option} {e}") from None

    def stored_name(self, params: dict) -> str:
        """The ``family`` attribute of the shards of these parameters (``rooms-free``)."""
        if self.stored_by is None:
            return self.name
        return f"{self.name}-{params.get(self.stored_by, self.param(self.stored_by).default)}"

    @property
    def stored_names(self) -> tuple[str, ...]:
        """Every ``family`` attribute this family's shards can carry."""
        if self.stored_by is None:
            return (self.name,)
        return tuple(f"{self.name}-{choice}" for choice in self.param(self.stored_by).type.choices)


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of scene ``index``: a pure function of (seed, index), independent of workers."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def import_pyrender():
    """pyrender, imported where a family builds its meshes (not at module level, see above), for an EGL
    context unless PYOPENGL_PLATFORM says otherwise (as ``gqn.renderer.tiled`` does)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    return pyrender


class Family:
    """Base class. Subclasses set ``spec`` and implement ``meshes``, ``projection`` and ``sample``; the
    keyword arguments of ``__init__`` are the parameters ``spec`` declares, with the same defaults.

    ``params`` are the family's own generation parameters (e.g. ``parts``); ``views`` and ``size`` are common.
    """

    spec: FamilySpec | None = None  # None: an abstract base (e.g. RoomFamily)
    background: tuple = (0.0, 0.0, 0.0)
    extras: dict = {}  # name -> (per-scene shape, dtype): extra shard datasets this family fills

    def __init__(self, views: int, size: int, **params):
        self.views = views
        self.size = size
        self.params = params

    @property
    def name(self) -> str:
        return self.spec.name

    def meshes(self) -> dict:
        """Mesh kinds (name -> pyrender.Mesh), built once per worker."""
        raise NotImplementedError

    def textures(self) -> np.ndarray | None:
        """Texture layers (L, T, T, 3) uint8 uploaded once per worker, or None."""
        return None

    def projection(self) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> SceneSpec:
        raise NotImplementedError

    def scene(self, seed: int, index: int) -> SceneSpec:
        return self.sample(scene_rng(seed, index))
