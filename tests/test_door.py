"""The renderer's one door (``gqn.renderer.stream``): ranges cut at chunk boundaries, open-ended ranges, and
saving as shards from where an open-ended output stopped, also in the middle of a chunk."""
import itertools

import numpy as np
import pytest

from gqn.errors import GqnError
from gqn.renderer.stream import SceneStream, ShardOutput, _pieces, render_config
from gqn.shards import Dataset, list_shards

CONFIG = dict(family="shepard-matzler", params={"parts": 5}, views=3, size=16, seed=3)


def test_ranges_are_cut_at_chunk_boundaries_also_without_end():
    assert list(_pieces([(5, 70), (70, 70), (96, 100)], 32)) == [(5, 32), (32, 64), (64, 70), (96, 100)]
    assert list(itertools.islice(_pieces([(0, 3), (5, None)], 32), 4)) == [(0, 3), (5, 32), (32, 64), (64, 96)]


def test_render_config_refuses_a_size_that_does_not_fit_naming_the_options():
    with pytest.raises(GqnError, match="^--render-size 1024 with --render-views 300 does not fit"):
        render_config("shepard-matzler", {}, 300, 1024, 0, size_option="--render-size",
                      views_option="--render-views")


def test_an_open_ended_output_is_written_from_its_first_missing_shard(tmp_path):
    config = render_config(**CONFIG)
    output = ShardOutput(str(tmp_path / "saved"), scenes_per_shard=4)
    with SceneStream(config, 1, save=output) as stream:   # scenes 0-5: shard 0, and a partial shard dropped
        assert len(list(stream.render([(0, 6)]))) == 1
    assert [p.name for p in list_shards(tmp_path / "saved")] == ["000000.h5"]
    stream = SceneStream(config, 1, save=output)
    try:
        assert stream.claim() == {0} and stream.resume_from == 4
        # a range that starts before the resume point and ends after it: only scenes 4.. are written
        chunks = list(stream.render([(0, 5), (5, 10)]))
    finally:
        stream.close(keep_partial=True)  # the last, partial shard (scenes 8, 9) is kept
    assert [c.start for c in chunks] == [0, 5] and all(c.images is not None for c in chunks)
    with SceneStream(config, 1) as plain:
        reference = np.concatenate([c.images for c in plain.render([(0, 10)])])
    np.testing.assert_array_equal(np.concatenate([c.images for c in chunks]), reference)
    with Dataset(tmp_path / "saved") as ds:
        assert ds.num_scenes == 10 and len(ds.shards) == 3 and "scenes" not in ds.params
        np.testing.assert_array_equal(ds.read(0, 10)["images"], reference)
