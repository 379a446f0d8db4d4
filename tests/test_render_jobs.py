"""`gqn render` as a job: determinism, parts, resume after SIGKILL, refusals and one-line CLI errors.

Every scene family runs the same checks: add a family with small arguments to FAMILIES (stored family
name -> the `gqn render` arguments that produce it).
"""
import signal

import numpy as np
import pytest

from gqn.errors import GqnError
from gqn.shards import Dataset
from tests.helpers import (assert_one_line_error, gqn, has_complete_and_tmp, listing, run_cli, shard_files,
                           signal_when)

FAMILIES = {
    "shepard-matzler": ["shepard-matzler", "--parts", "5"],
    "rooms-ring": ["rooms", "--camera", "ring"],
    "rooms-free": ["rooms", "--camera", "free", "--objects", "2-4", "--no-object-rotation"],
    "mnist-dice": ["mnist-dice"],
}


def render_args(family, out, *extra, scenes=10, per_shard=4, size=16, views=3):
    return ["render", *FAMILIES[family], "--scenes", scenes, "--scenes-per-shard", per_shard,
            "--size", size, "--views", views, "--seed", 3, "--out", out, "--no-progress", *extra]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def reference(request, tmp_path_factory):
    """One uninterrupted 1-worker render per family: (family, directory)."""
    out = tmp_path_factory.mktemp(request.param) / "ref"
    run_cli(*render_args(request.param, out, "--workers", 1), check=True)
    return request.param, out


def test_dataset_is_complete_and_valid(reference):
    family, out = reference
    with Dataset(out) as ds:
        assert ds.num_scenes == 10 and ds.views == 3 and ds.image_size == 16 and len(ds.shards) == 3
        assert ds.family == family
        data = ds.read(0, 10)
    assert data["images"].std(axis=(1, 2, 3, 4)).min() > 1  # every scene shows something
    assert len({d.tobytes() for d in data["images"]}) == 10  # and all scenes differ


def test_worker_count_does_not_change_the_bytes(reference, tmp_path):
    family, ref = reference
    run_cli(*render_args(family, tmp_path / "two", "--workers", 2), check=True)
    assert shard_files(tmp_path / "two") == shard_files(ref)


def test_parts_together_equal_the_whole(reference, tmp_path):
    family, ref = reference
    for k in (0, 1):
        run_cli(*render_args(family, tmp_path / "parts", "--shard", f"{k}/2", "--workers", 1), check=True)
        if k == 0:
            assert sorted(shard_files(tmp_path / "parts")) == ["000000.h5"]
    assert shard_files(tmp_path / "parts") == shard_files(ref)


def test_mpi_environment_selects_the_part(reference, tmp_path):
    family, ref = reference
    # a process of its own: the MPI environment makes the job report through mpi4py, which starts MPI
    gqn(*render_args(family, tmp_path / "mpi", "--workers", 1),
        env={"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, check=True)
    assert sorted(shard_files(tmp_path / "mpi")) == ["000001.h5", "000002.h5"]
    assert shard_files(tmp_path / "mpi")["000002.h5"] == shard_files(ref)["000002.h5"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_resume_after_sigkill_is_byte_identical(tmp_path, family):
    # scenes arrive in rendered chunks of 32; with 47 scenes per shard no chunk ends where a shard ends
    # (before the last), so a shard's temporary file exists at every moment the kill can land
    size = dict(scenes=960, per_shard=47, size=32, views=4)
    args = render_args(family, tmp_path / "killed", "--workers", 1, **size)
    signal_when(args, tmp_path / "killed", has_complete_and_tmp)  # kill -9 with a shard being written
    partial = shard_files(tmp_path / "killed")
    assert any(name.endswith(".tmp") for name in partial)
    run_cli(*args, check=True)
    run_cli(*render_args(family, tmp_path / "whole", "--workers", 2, **size), check=True)
    resumed = shard_files(tmp_path / "killed")
    assert resumed == shard_files(tmp_path / "whole") and len(resumed) == 21
    for name, data in partial.items():  # shards finished before the kill were kept, not redone
        if not name.endswith(".tmp"):
            assert resumed[name] == data


def test_ctrl_c_stops_cleanly(tmp_path):
    args = render_args("shepard-matzler", tmp_path / "c", "--workers", 2, scenes=2000, per_shard=8, size=32)
    result, _ = signal_when(args, tmp_path / "c", has_complete_and_tmp, sig=signal.SIGINT)
    assert result.code == 130
    assert result.err.strip().splitlines()[-1] == (
        "Interrupted; complete shards are kept: re-run the same command to resume.")
    assert "Traceback" not in result.err
    names = listing(tmp_path / "c")
    assert names and all(n.endswith(".h5") and not n.startswith(".") for n in names)


def test_rerun_is_a_no_op_and_other_parameters_are_refused(reference):
    family, ref = reference
    before = shard_files(ref)
    result = run_cli(*render_args(family, ref, "--workers", 1))
    assert result.code == 0 and "nothing to do" in result.err
    assert shard_files(ref) == before
    assert_one_line_error(run_cli(*render_args(family, ref, size=32)), "other parameters", "--out")
    assert shard_files(ref) == before


@pytest.mark.parametrize("args, message", [
    (["--scenes", "0"], "must be at least 1"),
    (["--scenes", "2x"], "not a count"),
    (["--size", "7"], "multiple of 4"),
    (["--shard", "3/2"], "0 <= K < N"),
    (["--shard", "a"], "of the form K/N"),
    (["--compression", "zip"], "'zip' is not one of"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, args, message):
    result = run_cli("render", "shepard-matzler", "--out", tmp_path / "x", *args)
    assert_one_line_error(result, message)
    assert not (tmp_path / "x").exists()


def test_unwritable_output_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = run_cli("render", "shepard-matzler", "--scenes", 2, "--out", tmp_path / "file" / "sub")
    assert_one_line_error(result, "cannot create output directory")


def test_missing_egl_is_reported_with_the_packages_to_install(tmp_path):
    # a process of its own: EGL reads its vendor files once, when a process first loads it
    result = gqn(*render_args("shepard-matzler", tmp_path / "x", "--workers", 1),
                 env={"__EGL_VENDOR_LIBRARY_FILENAMES": str(tmp_path / "none.json")})
    assert_one_line_error(result, "EGL", "libegl1 libgl1-mesa-dri")
    assert not list((tmp_path / "x").glob("*.h5"))


def test_scene_counts_accept_suffixes(tmp_path):
    from gqn.cli import Count

    assert [Count().convert(v, None, None) for v in ("2M", "500k", "1.5m", "12")] == [
        2_000_000, 500_000, 1_500_000, 12]


def test_info_and_preview(reference, tmp_path):
    family, ref = reference
    result = run_cli("info", ref, "--preview", tmp_path / "p.png", "--preview-scenes", 2, check=True)
    assert f"family      {family}" in result.out and "scenes      10" in result.out
    from PIL import Image

    preview = np.asarray(Image.open(tmp_path / "p.png"))
    assert preview.shape == (2 * 16 + 2, 3 * 16 + 2 * 2, 3)
    with Dataset(ref) as ds:
        np.testing.assert_array_equal(preview[:16, :16], ds.read(0, 1)["images"][0, 0])


def test_info_rejects_a_directory_without_shards(tmp_path):
    assert_one_line_error(run_cli("info", tmp_path), "no shards")


@pytest.mark.parametrize("part", ["0/1000", "6/8"])  # 3 shards in 8 parts: parts 0, 1, 3, 4 and 6 own none
def test_a_part_that_owns_no_shard_says_so(tmp_path, part):
    result = run_cli(*render_args("shepard-matzler", tmp_path / "p", "--shard", part, "--workers", 1))
    assert result.code == 0 and "Traceback" not in result.err
    n = int(part.split("/")[1])
    assert result.err.strip() == (f"{tmp_path / 'p'}: part {part} owns no shard: the job has 3 shards "
                                  f"(10 scenes, 4 per shard) for {n} parts, so {n - 3} of them own none; "
                                  "nothing to do")
    assert not list((tmp_path / "p").glob("*.h5"))


@pytest.mark.parametrize("args, largest", [(["--size", 4096, "--no-anti-aliasing"], 3276),
                                           (["--size", 1024, "--views", 300], 908)])
def test_size_too_large_for_the_views_is_refused_before_rendering(tmp_path, args, largest):
    size, views = args[1], args[3] if args[2] == "--views" else 15
    result = run_cli("render", "shepard-matzler", "--scenes", 1, "--out", tmp_path / "x", *args)
    assert_one_line_error(result, f"--size {size} with --views {views} does not fit the renderer's 16384x16384 "
                                  "px framebuffer", f"with --views {views}, --size can be at most {largest}")
    assert result.err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_largest_size_named_in_the_refusal_renders(tmp_path):
    from gqn.renderer.stream import RenderConfig, check_render_size
    from gqn.renderer.tiled import atlas_layout

    for views, largest in ((15, 3276), (300, 908), (1000, 496)):
        check_render_size(RenderConfig("shepard-matzler", {"parts": 5}, views, largest, 0))
        with pytest.raises(GqnError, match=f"can be at most {largest}$"):
            check_render_size(RenderConfig("shepard-matzler", {"parts": 5}, views, largest + 4, 0))
        cols, rows = atlas_layout(largest, views)
        assert cols * rows >= views and max(cols, rows) * largest <= 16384


def test_train_render_size_too_large_for_the_views_is_refused(tmp_path):
    result = run_cli("train", "--render", "shepard-matzler", "--render-size", 1024, "--render-views", 300,
                     "--out", tmp_path / "run", "--iterations", 1, "--no-progress")
    assert_one_line_error(result, "--render-size 1024 with --render-views 300 does not fit",
                          "--render-size can be at most 908")
