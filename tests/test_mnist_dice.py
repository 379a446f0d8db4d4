"""The mnist-dice family: digit sources (IDX, npz, scikit-learn's bundled digits), the digit bank, the die's
faces in pixels, and the `labels` dataset."""
import gzip
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from gqn.errors import GqnError
from gqn.renderer.digits import INK_BOX, DigitBank, load_digits, load_idx, load_npz, load_sklearn_digits
from gqn.renderer.families.mnist_dice import FACE_ORDER, MnistDice
from gqn.renderer.families.shared_room import FOV_Y, GRID, GRID_JITTER
from gqn.renderer.scene import Instances
from gqn.shards import Dataset
from tests.helpers import assert_one_line_error, family_renderer, run_cli, unlit

SIZE = 64
ROOM_QUADS = 5  # the floor and four walls come first among the quad instances; the die's faces follow


def mnist_like(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Real handwritten digits at MNIST's 28 x 28 (scikit-learn's, upsampled) and their labels."""
    source = load_sklearn_digits()
    images = np.stack([np.asarray(Image.fromarray(d).resize((28, 28), Image.BILINEAR)) for d in source.images[:n]])
    return images, source.labels[:n]


def write_idx(path, array: np.ndarray, gz: bool = False):
    data = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="module")
def family():
    return MnistDice(5, SIZE)


def test_sklearn_digits_are_read_without_importing_sklearn():
    source = load_digits()
    assert source.images.shape == (1797, 8, 8) and source.images.dtype == np.uint8
    assert source.images.max() == 255 and set(source.labels) == set(range(10))
    assert "sklearn" not in sys.modules


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_with_and_without_labels(tmp_path, gz):
    images, labels = mnist_like()
    suffix = ".gz" if gz else ""
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    unlabelled = load_idx(path)
    np.testing.assert_array_equal(unlabelled.images, images)
    assert np.all(unlabelled.labels == -1)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    np.testing.assert_array_equal(load_idx(path).labels, labels)


def test_npz_files(tmp_path):
    images, labels = mnist_like()
    np.savez(tmp_path / "a.npz", x_train=images, y_train=labels)
    source = load_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(source.images, images)
    np.testing.assert_array_equal(source.labels, labels)
    np.savez(tmp_path / "b.npz", x_train=images[..., None] / 255.0)  # floats in [0, 1], no labels
    source = load_digits(tmp_path / "b.npz")
    assert np.abs(source.images.astype(int) - images).max() <= 1 and np.all(source.labels == -1)


def bad_files(tmp_path) -> dict:
    images, _ = mnist_like()
    good = write_idx(tmp_path / "good-images-idx3-ubyte", images).read_bytes()
    (tmp_path / "truncated-images-idx3-ubyte").write_bytes(good[:-100])
    (tmp_path / "garbage-images-idx3-ubyte").write_bytes(b"this is not an IDX file")
    (tmp_path / "cut-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:500])
    np.savez(tmp_path / "no-x.npz", y_train=np.arange(3))
    (tmp_path / "not-zip.npz").write_bytes(b"garbage")
    return {"truncated-images-idx3-ubyte": "truncated or damaged IDX file",
            "garbage-images-idx3-ubyte": "not an MNIST IDX image file",
            "cut-images-idx3-ubyte.gz": "damaged gzip file",
            "no-x.npz": "no x_train array",
            "not-zip.npz": "not a readable .npz file"}


def test_bad_digit_files_raise_clear_errors(tmp_path):
    for name, message in bad_files(tmp_path).items():
        with pytest.raises(GqnError, match=message):
            load_digits(tmp_path / name)


def test_a_source_needs_six_classes(tmp_path):
    images, labels = mnist_like()
    keep = labels < 5
    np.savez(tmp_path / "five.npz", x_train=images[keep], y_train=labels[keep])
    with pytest.raises(GqnError, match="at least 6 different classes"):
        DigitBank.from_path(tmp_path / "five.npz")


def test_bad_digit_file_is_a_one_line_cli_error(tmp_path):
    bad_files(tmp_path)
    (tmp_path / "empty.npz").write_bytes(b"")
    for name, message in [("truncated-images-idx3-ubyte", "truncated"), ("not-zip.npz", "not a readable"),
                          ("empty.npz", "not a readable")]:
        result = run_cli("render", "mnist-dice", "--digits", tmp_path / name, "--out", tmp_path / "x")
        assert_one_line_error(result, message, name)
        assert not (tmp_path / "x").exists()
    assert_one_line_error(run_cli("render", "mnist-dice", "--digits", tmp_path / "missing", "--out", tmp_path / "x"),
                          "does not exist")


def test_bank_and_faces(family):
    bank = family.bank
    assert len(bank.textures) == 320 and np.all(np.bincount(bank.labels) == 32)
    rng = np.random.default_rng(0)
    for _ in range(50):
        layers, labels = bank.faces(rng)
        assert len(set(labels)) == 6 and np.array_equal(bank.labels[layers], labels)


def test_die_stands_on_the_floor_with_its_labels(family):
    for i in range(20):
        spec = family.scene(0, i)
        faces = spec.objects["quad"].poses[ROOM_QUADS:]
        assert len(faces) == 6
        centres = faces[:, :3, 3]
        centre = centres.mean(axis=0)
        assert abs(centre[1] - 0.5) < 1e-9 and np.abs(GRID - centre[[0, 2]]).max(-1).min() <= GRID_JITTER
        assert np.allclose(np.linalg.norm(centres - centre, axis=1), 0.5)  # a closed unit cube
        layers = spec.objects["quad"].texture[ROOM_QUADS:, 0].astype(int) - family.first_digit_layer
        np.testing.assert_array_equal(spec.extras["labels"], family.bank.labels[layers])
        assert spec.extras["labels"].dtype == np.int8


def face_cameras(faces: np.ndarray) -> np.ndarray:
    """Raw poses of cameras straight in front of each face, at the distance where the face exactly fills
    the view, image up along the face's texture up (for the top face: a camera looking down)."""
    distance = 0.5 / np.tan(FOV_Y / 2)
    cameras = []
    for pose in faces:
        normal, up = pose[:3, 2], pose[:3, 1]
        position = pose[:3, 3] + distance * normal
        if abs(normal[1]) > 0.5:  # top or bottom face: look down/up with the forward direction along up
            yaw, pitch = np.arctan2(up[0], up[2]), -np.sign(normal[1]) * (np.pi / 2 - 1e-7)
        else:
            yaw, pitch = np.arctan2(-normal[0], -normal[2]), 0.0
        cameras.append([*position, yaw, pitch])
    return np.array(cameras)


def expected_face(image: np.ndarray) -> np.ndarray:
    """A source digit as it should appear on a face filling a SIZE-pixel view: dark ink on a light face."""
    box = round(SIZE * INK_BOX)
    face = np.zeros((SIZE, SIZE))
    start = (SIZE - box) // 2
    face[start:start + box, start:start + box] = np.asarray(Image.fromarray(image).resize((box, box),
                                                                                        Image.BILINEAR))
    return 255 - face


def test_a_face_seen_straight_on_shows_its_digit(family):
    """Every face but the bottom (on the floor) shows its own source digit upright: it correlates with it
    strongly and better than with any other face's digit. (The room is left out: some cameras are behind
    a wall.)"""
    visible = [FACE_ORDER.index(f) for f in ("+x", "-x", "+y", "+z", "-z")]
    specs = []
    for i in range(4):
        spec = family.scene(1, i)
        quads = spec.objects["quad"]
        die = Instances(quads.poses[ROOM_QUADS:], quads.colors[ROOM_QUADS:], quads.texture[ROOM_QUADS:])
        specs.append(unlit(replace(spec, objects={"quad": die}), face_cameras(die.poses[visible])))
    renderer = family_renderer(family, SIZE, max_tiles=len(specs) * len(visible))
    try:
        images = renderer.render(specs).astype(float).mean(axis=-1)
    finally:
        renderer.close()
    for spec, views in zip(specs, images):
        layers = spec.objects["quad"].texture[:, 0].astype(int) - family.first_digit_layer
        digits = [expected_face(family.bank.images[layer]).ravel() for layer in layers]
        for k, view in zip(visible, views):
            corr = [np.corrcoef(view.ravel(), digit)[0, 1] for digit in digits]
            assert corr[k] > 0.95 and int(np.argmax(corr)) == k, (FACE_ORDER[k], np.round(corr, 2))


def test_labels_dataset_in_shards(tmp_path):
    images, labels = mnist_like()
    (tmp_path / "digits").mkdir()
    path = write_idx(tmp_path / "digits" / "train-images-idx3-ubyte", images)
    args = ["--scenes", 3, "--views", 2, "--size", 16, "--workers", 1, "--no-progress"]
    run_cli("render", "mnist-dice", "--digits", path, "--out", tmp_path / "unlabelled", *args, check=True)
    write_idx(tmp_path / "digits" / "train-labels-idx1-ubyte", labels)
    run_cli("render", "mnist-dice", "--digits", path, "--out", tmp_path / "labelled", *args, check=True)
    with Dataset(tmp_path / "unlabelled") as ds:
        assert ds.params["digits"] == str(path)
        assert np.all(ds.read(0, 3, names=("labels",))["labels"] == -1)
    with Dataset(tmp_path / "labelled") as ds:
        got = ds.read(0, 3, names=("labels",))["labels"]
    assert got.dtype == np.int8 and got.shape == (3, 6)
    assert all(len(set(row)) == 6 and row.min() >= 0 and row.max() <= 9 for row in got)
