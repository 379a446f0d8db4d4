"""The procedural texture bank: enough visibly different, seamless, deterministic patterns in several colours."""
import numpy as np

from gqn.renderer import textures
from gqn.renderer.textures import PATTERNS, VARIANTS, layer, texture_bank


def grey(image: np.ndarray) -> np.ndarray:
    return image.astype(float).mean(axis=-1)


def test_bank_shape_and_determinism():
    bank = texture_bank()
    assert len(PATTERNS) >= 8
    assert bank.shape == (len(PATTERNS) * VARIANTS, textures.TEXTURE_SIZE, textures.TEXTURE_SIZE, 3)
    assert bank.dtype == np.uint8 and not bank.flags.writeable
    texture_bank.cache_clear()
    assert texture_bank().tobytes() == bank.tobytes()  # rebuilt from scratch: the same bytes
    assert texture_bank(32).shape[1:3] == (32, 32)


def test_every_layer_has_a_pattern():
    for image in texture_bank():
        assert grey(image).std() > 8


def test_patterns_are_visibly_different():
    """No two patterns are (anti-)correlated in their grey levels, in any of the colour pairs."""
    bank = texture_bank()
    for variant in range(VARIANTS):
        shades = np.stack([grey(bank[layer(p, variant)]).ravel() for p in range(len(PATTERNS))])
        corr = np.corrcoef(shades)
        off_diagonal = np.abs(corr[~np.eye(len(PATTERNS), dtype=bool)])
        assert off_diagonal.max() < 0.6, np.round(corr, 2)


def test_colour_variants_differ():
    bank = texture_bank().astype(float)
    for p in range(len(PATTERNS)):
        means = np.stack([bank[layer(p, v)].mean(axis=(0, 1)) for v in range(VARIANTS)])
        gaps = np.abs(means[:, None] - means[None]).sum(-1)[~np.eye(VARIANTS, dtype=bool)]
        assert gaps.min() > 10, (list(PATTERNS)[p], means)


def test_layers_tile_seamlessly():
    """Across the wrap-around edge (last texel to first) a layer changes no more than between any two
    neighbouring texel columns or rows inside it."""
    for name, image in zip(np.repeat(list(PATTERNS), VARIANTS), texture_bank()):
        g = grey(image)
        for axis in (0, 1):
            steps = np.abs(np.diff(g, axis=axis, append=np.take(g, [0], axis=axis))).mean(axis=1 - axis)
            assert steps[-1] <= steps[:-1].max() + 1e-9, name


def test_value_noise_is_periodic_and_in_range():
    noise = textures.value_noise(np.random.default_rng(0), 64, 8)
    assert 0 <= noise.min() and noise.max() <= 1
    edge = np.abs(noise[:, -1] - noise[:, 0]).mean()
    assert edge <= np.abs(np.diff(noise, axis=1)).mean(axis=0).max()
