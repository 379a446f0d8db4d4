"""Shapes, dtypes and mathematics of the GQN networks and losses."""
import chainer
import chainer.functions as F
import numpy as np
import pytest

from gqn.errors import GqnError
from gqn.model.config import ModelConfig, TrainConfig, anneal
from gqn.model.cores import ConvLSTM, GaussianHead
from gqn.model.gqn import build_model
from gqn.model.images import to_model, to_uint8
from gqn.model.loss import (bits_per_pixel, calibrated_sigma, gaussian_kl, gaussian_nll, reported_nll,
                            squared_error)
from gqn.model.representation import Pool, Tower, broadcast_map
from tests.model_data import TINY

rng = np.random.default_rng(0)


def normal(*shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("size", [(16, 16), (20, 28)])
def test_representations(size):
    x, v = normal(2, 3, *size), normal(2, 7)
    tower = Tower(16)(x, v)
    assert tower.shape == (2, 16, size[0] // 4, size[1] // 4) and tower.dtype == np.float32
    assert Pool(16)(x, v).shape == (2, 16, 1, 1)


def test_broadcast_map_tiles_without_deconvolution():
    v = chainer.Variable(normal(2, 7))
    m = broadcast_map(v, (3, 5))
    assert m.shape == (2, 7, 3, 5) and np.array_equal(m.array[:, :, 2, 4], v.array)
    F.sum(m).backward()
    assert np.allclose(v.grad, 15)


def test_convlstm_split_convolution_equals_one_fused_convolution():
    lstm = ConvLSTM(static_channels=5, recurrent_channels=4, hidden=3)
    s, rec, c = normal(2, 5, 4, 4), normal(2, 4, 4, 4), normal(2, 3, 4, 4)
    h, c_next = lstm(lstm.precompute(s), (rec[:, :3], rec[:, 3:]), c)
    assert h.shape == c_next.shape == (2, 3, 4, 4)
    weight = np.concatenate([lstm.static.W.array, lstm.recurrent.W.array], axis=1)
    gates = F.convolution_2d(np.concatenate([s, rec], 1), weight, lstm.static.b.array, pad=2)
    expected_c, expected_h = F.lstm(c, gates)
    assert np.allclose(h.array, expected_h.array, atol=1e-5)
    assert np.allclose(c_next.array, expected_c.array, atol=1e-5)


def test_gaussian_head_gives_mean_and_log_variance():
    mean, ln_var = GaussianHead(hidden=8, latent=3)(normal(2, 8, 4, 4))
    assert mean.shape == ln_var.shape == (2, 3, 4, 4)


@pytest.mark.parametrize("representation,shared,kernel",
                         [("tower", True, 5), ("pool", False, 5), ("tower", True, 3)])
def test_gqn_shapes(representation, shared, kernel):
    config = ModelConfig(16, 24, representation=representation, shared_cores=shared, kernel=kernel, **TINY)
    model = build_model(config, seed=0)
    context, viewpoints = normal(2, 3, 3, 16, 24), normal(2, 3, 7)
    query, query_viewpoint = normal(2, 3, 16, 24), normal(2, 7)
    r = model.represent(context, viewpoints, query_viewpoint)
    assert r.shape == ((2, 16, 4, 6) if representation == "tower" else (2, 16, 1, 1))
    noise = model.noise(np.random.default_rng(0), 2)
    assert noise.shape == (2, 2, 3, 4, 6) and noise.dtype == np.float32
    sse, kl, mean = model.elbo(r, query_viewpoint, query, noise)
    assert sse.shape == kl.shape == (2,) and mean.shape == query.shape and mean.dtype == np.float32
    assert np.allclose(sse.array, ((query - mean.array) ** 2).sum(axis=(1, 2, 3)), rtol=1e-5)
    assert (kl.array >= 0).all()
    F.mean(sse + kl).backward()
    assert all(p.grad is not None for p in model.params())
    assert model.predict(r, query_viewpoint).shape == model.predict(r, query_viewpoint, noise).shape == query.shape
    assert len(model.generation) == (1 if shared else 2)
    assert model.generation[0].lstm.recurrent.W.shape[2:] == model.inference[0].posterior.conv.W.shape[2:] == (
        kernel, kernel)


def test_even_core_kernel_is_refused():
    with pytest.raises(GqnError, match="kernel size 4 is even"):
        ModelConfig(16, 16, kernel=4)


def test_build_model_is_seeded():
    config = ModelConfig(16, 16, **TINY)
    a, b, c = build_model(config, 1), build_model(config, 1), build_model(config, 2)
    wa, wb, wc = (m.observation.W.array for m in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_image_size_must_be_divisible_by_4():
    with pytest.raises(GqnError, match="divisible by 4"):
        ModelConfig(18, 16)


def test_kl_of_identical_gaussians_is_zero():
    mean, ln_var = normal(4, 3), normal(4, 3)
    assert np.allclose(gaussian_kl(mean, ln_var, mean, ln_var).array, 0, atol=1e-6)


def test_kl_matches_closed_form():
    # KL(N(1, 2^2) || N(0, 1)) = log(1/2) + (4 + 1) / 2 - 1/2 = 2 - log 2
    kl = gaussian_kl(np.float32([1]), np.float32([np.log(4)]), np.float32([0]), np.float32([0]))
    assert np.allclose(kl.array, 2 - np.log(2), atol=1e-6)


def test_nll_matches_closed_form():
    x, mean = np.zeros((1, 3, 2, 2), np.float32), np.full((1, 3, 2, 2), 0.5, np.float32)
    sigma = 0.7
    per_value = 0.5 * (0.5 / sigma) ** 2 + np.log(sigma) + 0.5 * np.log(2 * np.pi)
    sse = squared_error(x, mean).array
    assert np.allclose(gaussian_nll(sse, 12, sigma), 12 * per_value, rtol=1e-6)


def test_reported_nll_is_the_nll_at_the_calibrated_sigma():
    # sigma^2 = MSE maximises the likelihood: the reported NLL is below the NLL at any other sigma
    mse, d = 0.01, 12
    assert calibrated_sigma(mse) == pytest.approx(0.1)
    assert reported_nll(mse, d) == pytest.approx(gaussian_nll(mse * d, d, 0.1))
    assert all(reported_nll(mse, d) < gaussian_nll(mse * d, d, s) for s in (0.05, 0.09, 0.11, 0.7))
    assert calibrated_sigma(0.0) == 1 / 256


def test_bits_per_pixel_of_a_uniform_density_is_8():
    # the uniform density on [-0.5, 0.5) has log density 0 everywhere: 8 bits per 8-bit value
    assert bits_per_pixel(0.0, 12) == pytest.approx(8.0)


def test_image_convention_round_trip():
    images = rng.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    x = to_model(images)
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    assert x.min() >= -0.5 and x.max() < 0.5
    assert np.array_equal(to_uint8(x), images)


def test_annealing_schedules():
    config = TrainConfig()
    assert config.pixel_sigma(0) == 2.0 and config.pixel_sigma(200_000) == pytest.approx(0.7)
    assert config.pixel_sigma(10**7) == pytest.approx(0.7)
    assert config.learning_rate(800_000) == pytest.approx((5e-4 + 5e-5) / 2)
    assert anneal(1.0, 0.0, 10, 5) == 0.5
    assert config.kl_weight(0) == 1.0
    warm = TrainConfig(kl_warmup=100)
    assert [warm.kl_weight(i) for i in (0, 50, 100, 10**6)] == [0.0, 0.5, 1.0, 1.0]
    lr_warm = TrainConfig(lr_start=1e-3, lr_end=1e-4, lr_steps=1000, lr_warmup=4)
    assert [lr_warm.learning_rate(i) for i in (0, 1, 3)] == pytest.approx([0.25e-3, 0.5 * 0.9991e-3, 0.9973e-3])
    assert lr_warm.learning_rate(500) == TrainConfig(lr_start=1e-3, lr_end=1e-4, lr_steps=1000).learning_rate(500)
