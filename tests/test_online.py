"""`gqn train --render`: training on freshly rendered scenes, saving them, resuming."""
import json

import numpy as np

from gqn.renderer.stream import RenderConfig
from gqn.runs.online import RenderedBatches
from gqn.shards import Dataset
from tests.helpers import assert_one_line_error, run_cli

MODEL = ["--hidden", 8, "--steps", 2, "--canvas", 8, "--r-channels", 8, "--representation", "pool"]
RENDER = ["--render", "shepard-matzler", "--render-size", 16, "--render-views", 4, "--render-workers", 2]


def train_online(out, saved, iterations, *extra):
    return run_cli("train", *RENDER, "--save-rendered", saved, "--out", out, "--iterations", iterations,
                   "--batch-size", 5, "--log-every", 3, "--no-progress", *MODEL, *extra, check=True)


def rendered(tmp_path, scenes):
    """The same scenes rendered by `gqn render` (one shard, so the arrays can be compared)."""
    out = tmp_path / f"render{scenes}"
    run_cli("render", "shepard-matzler", "--scenes", scenes, "--size", 16, "--views", 4, "--out", out,
            "--workers", 1, "--no-progress", check=True)
    with Dataset(out) as ds:
        return ds.read(0, scenes)


def test_online_training_saves_exactly_the_scenes_it_rendered_and_resumes(tmp_path):
    run, saved = tmp_path / "run", tmp_path / "saved"
    train_online(run, saved, 6)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in log] == [3, 6]
    assert all(e["scenes_per_s"] > 0 and 0 <= e["data_wait"] <= 1 for e in log)
    with Dataset(saved) as ds:
        assert ds.num_scenes == 30 and ds.family == "shepard-matzler"  # 6 batches of 5, in order
    # resuming continues with the next unseen scenes: 3 more batches are scenes 30..44
    train_online(run, saved, 9, "--resume")
    with Dataset(saved) as ds:
        got = ds.read(0, ds.num_scenes)
    reference = rendered(tmp_path, 45)
    np.testing.assert_array_equal(got["images"], reference["images"])
    np.testing.assert_array_equal(got["cameras"], reference["cameras"])


def test_ranks_take_disjoint_scenes_in_order():
    config = RenderConfig("shepard-matzler", {"parts": 5}, 4, 16, 0)
    ranks = [RenderedBatches(config, 3, (1, 3), 0, rank=r, ranks=2) for r in range(2)]
    scenes = [set(range(b.first_scene(i), b.first_scene(i) + 3)) for i in range(4) for b in ranks]
    assert set().union(*scenes) == set(range(24)) and sum(map(len, scenes)) == 24


def test_render_needs_data_or_family(tmp_path):
    result = run_cli("train", "--out", tmp_path / "run")
    assert result.code == 2 and "either DATA" in result.err


def test_bad_family_parameter_is_one_line(tmp_path):
    result = run_cli("train", *RENDER, "--render-param", "partz=3", "--out", tmp_path / "run", "--iterations", 1,
                     "--no-progress", *MODEL)
    assert result.code == 1 and "Traceback" not in result.err
    assert "bad parameters {'partz': 3}" in result.err


def test_saved_scenes_store_the_family_defaults_as_gqn_render_does(tmp_path):
    """`--save-rendered` stores every family parameter, defaults included, exactly as `gqn render` stores
    them; an explicit default then resumes, and a refusal names --save-rendered (not --out)."""
    saved, run = tmp_path / "saved", tmp_path / "run"
    args = ["train", "--render", "shepard-matzler", "--render-size", 16, "--render-views", 4, "--render-workers", 1,
            "--save-rendered", saved, "--batch-size", 2, "--log-every", 1, "--no-progress", *MODEL]
    run_cli(*args, "--out", run, "--iterations", 1, check=True)
    run_cli("render", "shepard-matzler", "--scenes", 2, "--size", 16, "--views", 4, "--out", tmp_path / "render",
            "--workers", 1, "--no-progress", check=True)
    with Dataset(saved) as ds, Dataset(tmp_path / "render") as reference:
        stored, expected = ds.params, reference.params
    del expected["scenes"]  # a training run decides how many as it goes
    assert stored == expected and stored["parts"] == 5
    result = run_cli(*args, "--out", run, "--iterations", 2, "--resume", "--render-param", "parts=5")
    assert result.code == 0, result.err
    with Dataset(saved) as ds:
        assert ds.num_scenes == 4 and ds.params == stored
    result = run_cli(*args, "--out", tmp_path / "run7", "--iterations", 1, "--render-param", "parts=7")
    assert_one_line_error(result, f"{saved} already holds a dataset written with other parameters",
                          "use a new --save-rendered directory")
    assert "--out" not in result.err
