"""The ShardWriter features the converter relies on: open-ended shards, late `source`, direct chunk writes."""
import h5py
import numpy as np
import pytest

from gqn.shards import Dataset, ShardError, ShardWriter


def write(directory, compression, images, cameras, num_scenes, **kwargs):
    directory.mkdir()
    with ShardWriter(directory, 0, num_scenes, images.shape[1], images.shape[2], family="f", scenes_per_shard=9,
                     params={}, compression=compression, **kwargs) as writer:
        writer.write(images[:2], cameras[:2])
        writer.write(images[2:], cameras[2:])
        writer.set_source('["a.tfrecord"]')
        writer.commit()


@pytest.mark.parametrize("compression", ["none", "gzip-1"])
def test_open_ended_shard_keeps_written_scenes(tmp_path, compression):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 8, 8, 3), dtype=np.uint8)
    cameras = rng.normal(size=(5, 3, 5)).astype(np.float32)
    write(tmp_path / "d", compression, images, cameras, 9, open_ended=True)
    with Dataset(tmp_path / "d") as dataset:
        data = dataset.read(0, len(dataset))
        assert len(dataset) == 5 and dataset.attrs["source"] == '["a.tfrecord"]'
    assert np.array_equal(data["images"], images) and np.array_equal(data["cameras"], cameras)
    with h5py.File(tmp_path / "d" / "000000.h5") as f:
        assert f["images"].chunks == (1, 3, 8, 8, 3)
    with pytest.raises(ShardError, match="5 of 9 scenes written"):
        write(tmp_path / "e", compression, images, cameras, 9)
    with pytest.raises(ShardError, match="do not fit"):
        write(tmp_path / "f", compression, images[:, :, :4], cameras, 5)
