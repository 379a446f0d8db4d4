"""The family registry drives the CLI: one `gqn render` command per registered family with its declared
parameters, `gqn train --render-param` parsed by the same declarations; the scene model and the family
declarations load no OpenGL; the example family of docs/adding-a-family.md works."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gqn.cli import cli
from gqn.errors import GqnError
from gqn.renderer.families import REGISTRY, families, family_of_stored, family_spec, stored_family
from gqn.renderer.families.base import FamilySpec, Param
from tests.helpers import Result, assert_one_line_error, family_renderer, foreground, run_cli

ROOT = Path(__file__).resolve().parent.parent
OPENGL = ("OpenGL", "pyrender", "trimesh")
# `gqn` with the example family added to the registry at run time (enough for options and help; rendering
# needs the line in the source, since render workers import the registry anew); a process of its own, since
# gqn.cli builds its commands from the registry when it is imported
WITH_SPHERE = ("import gqn.renderer.families as f; f.REGISTRY += ('tests.example_family:Sphere',); "
               "from gqn.cli import main; main()")


def gqn_with_sphere(*args) -> Result:
    done = subprocess.run([sys.executable, "-c", WITH_SPHERE, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    return Result(done.returncode, done.stdout, done.stderr)


def test_every_registered_family_has_a_render_command_with_its_parameters():
    assert len(families()) == len(REGISTRY)
    render = cli.commands["render"]
    assert sorted(render.commands) == sorted(families())
    train_render = next(p for p in cli.commands["train"].params if p.name == "render_family")
    assert sorted(train_render.type.choices) == sorted(families())
    for name, family in families().items():
        spec, command = family.spec, render.commands[name]
        options = {p.name: p for p in command.params}
        assert command.help == spec.help and spec.summary in command.get_short_help_str(200)
        assert options["views"].default == spec.views
        assert [p.name for p in command.params][:len(spec.params)] == list(spec.names)  # family's first
        for param in spec.params:
            option, flag = options[param.name], "--" + param.name.replace("_", "-")
            assert option.opts == [flag] and option.default == param.default and option.help == param.help
            assert option.secondary_opts == (["--no-" + flag[2:]] if param.is_flag else [])
        assert {"scenes", "size", "seed", "out", "workers", "compression"} <= set(options)


@pytest.mark.parametrize("name", sorted(families()))
def test_render_help_shows_the_declared_parameters(name):
    result = run_cli("render", name, "--help")
    assert result.code == 0, result.err
    for param in family_spec(name).params:
        assert "--" + param.name.replace("_", "-") in result.out


def test_render_param_rejects_an_unknown_key_naming_the_valid_ones(tmp_path):
    result = run_cli("train", "--render", "rooms", "--render-param", "colour=red", "--out", tmp_path / "run")
    assert_one_line_error(result, "no parameter 'colour'", "valid: camera, objects, object_rotation")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_render_params_are_parsed_as_the_render_options(tmp_path, monkeypatch):
    rooms = family_spec("rooms")
    assert rooms.parse({"camera": "free", "objects": "2-4", "object_rotation": "no"}) == \
        {"camera": "free", "objects": [2, 4], "object_rotation": False}
    assert rooms.parse({"objects": [1, 3], "object_rotation": False}) == {"objects": [1, 3], "object_rotation": False}
    with pytest.raises(GqnError, match="camera=sideways: camera must be one of ring, free"):
        rooms.parse({"camera": "sideways"})
    with pytest.raises(GqnError, match="objects=0-3: .*1 <= MIN <= MAX"):
        rooms.parse({"objects": "0-3"})
    with pytest.raises(GqnError, match=r"parts=25: 25 is not in the range 2<=x<=20"):
        family_spec("shepard-matzler").parse({"parts": 25})
    (tmp_path / "digits.npz").touch()
    monkeypatch.chdir(tmp_path)
    digits = family_spec("mnist-dice").parse({"digits": "digits.npz"})["digits"]
    assert Path(digits).is_absolute() and Path(digits).samefile(tmp_path / "digits.npz")


@pytest.mark.parametrize("name", sorted(families()))
def test_declared_parameters_are_the_family_constructor_keywords_with_its_defaults(name):
    family = families()[name]
    keywords = list(inspect.signature(family.__init__).parameters.values())[3:]  # after self, views, size
    assert [p.name for p in keywords] == list(family.spec.names)
    constructor = json.loads(json.dumps({p.name: p.default for p in keywords}))  # (1, 3) -> [1, 3]
    assert family.spec.defaults() == constructor


def test_stored_names_map_back_to_their_family():
    for name, family in families().items():
        assert family.spec.stored_names
        for stored in family.spec.stored_names:
            assert family_of_stored(stored) == name
    assert stored_family("rooms", {"camera": "free"}) == "rooms-free" and stored_family("rooms", {}) == "rooms-ring"
    assert stored_family("mnist-dice", {}) == "mnist-dice"
    assert family_of_stored("shepard_metzler_5_parts") is None


def test_a_declaration_refuses_clashing_or_unusable_parameters():
    with pytest.raises(ValueError, match="not views, size"):
        FamilySpec("x", 1, "x", params=(Param("size", int, 1, ""),))
    with pytest.raises(ValueError, match="unique"):
        FamilySpec("x", 1, "x", params=(Param("a", int, 1, ""), Param("a", int, 2, "")))
    with pytest.raises(ValueError, match="click.Choice"):
        FamilySpec("x", 1, "x", params=(Param("a", int, 1, ""),), stored_by="a")


@pytest.mark.parametrize("imports", ["import gqn.renderer.scene",
                                     "import gqn.cli; from gqn.renderer.families import families; families()"])
def test_the_scene_model_and_the_family_declarations_load_no_opengl(imports):
    """scene.py is backend-free; the CLI reads every family's declaration at start-up without OpenGL (the
    family modules import pyrender and trimesh only when a render worker builds its meshes)."""
    code = (f"import sys; {imports}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPENGL!r} or m == 'gqn.renderer.tiled'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_example_family_is_the_one_the_docs_show_and_it_renders():
    source = (ROOT / "tests" / "example_family.py").read_text()
    assert source[source.index("import click"):] in (ROOT / "docs" / "adding-a-family.md").read_text()
    from tests.example_family import Sphere

    family = Sphere(4, 32, radius=0.8)
    renderer = family_renderer(family, 32)
    try:
        images = renderer.render([family.scene(0, i) for i in range(3)])
    finally:
        renderer.close()
    mask = foreground(images)
    assert mask[:, :, 16, 16].all() and not mask[:, :, 0, 0].any()  # a ball in the middle of every view
    assert len({tuple(images[i, 0, 16, 16]) for i in range(3)}) == 3  # each scene its own colour


def test_one_registry_line_gives_a_family_its_command_and_render_params(tmp_path):
    result = gqn_with_sphere("render", "sphere", "--help")
    assert result.code == 0, result.err
    assert "One coloured sphere" in result.out and "--radius FLOAT RANGE" in result.out
    assert "[default: 8;" in result.out  # --views: the family's default views
    assert "sphere" in gqn_with_sphere("render", "--help").out
    result = gqn_with_sphere("train", "--render", "sphere", "--render-param", "radius=2", "--out", tmp_path / "r")
    assert_one_line_error(result, "--render-param radius=2", "0.1<=x<=1.0")
    result = gqn_with_sphere("train", "--render", "sphere", "--render-param", "size=2", "--out", tmp_path / "r")
    assert_one_line_error(result, "no parameter 'size'", "valid: radius")
