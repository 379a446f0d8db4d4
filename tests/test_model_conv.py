"""gqn.model.conv: the same convolution as Chainer's, forward and backward, for every geometry the model uses."""
import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import gradient_check

from gqn.model import conv
from gqn.model.conv import Convolution2D, convolution_2d

rng = np.random.default_rng(0)

# (N, C, H, W, O, kernel, stride, pad): the tower's 2x2/2, 3x3 and 1x1 convolutions, the cores' 5x5
# convolutions, and an uneven geometry (rectangular, rows and columns the stride leaves out). The input gradient
# takes both paths: col2im (O >= C or stride > 1) and the flipped-kernel convolution (stride 1, O < C).
GEOMETRIES = [(2, 3, 8, 8, 4, 2, 2, 0), (2, 5, 6, 6, 4, 3, 1, 1), (3, 4, 4, 4, 6, 1, 1, 0),
              (2, 6, 5, 5, 8, 5, 1, 2), (1, 6, 4, 4, 2, 5, 1, 2), (2, 3, 7, 9, 5, (3, 2), (2, 3), (1, 0))]


def arrays(n, c, h, w, o, kernel, bias=True):
    kh, kw = conv._pair(kernel)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    W = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    return x, W, b


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_chainer_forward_and_backward(geometry, bias):
    *shape, kernel, stride, pad = geometry
    x, W, b = arrays(*shape, kernel, bias)
    gy = None
    results = []
    for function in (F.convolution_2d, convolution_2d):
        params = [chainer.Variable(a) for a in (x, W, b) if a is not None]
        y = function(*params[:2], params[2] if bias else None, stride=stride, pad=pad)
        gy = rng.standard_normal(y.shape).astype(np.float32) if gy is None else gy
        y.grad = gy
        y.backward()
        results.append([y.array] + [p.grad for p in params])
    for expected, actual in zip(*results):
        assert actual.shape == expected.shape and actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES[:1] + GEOMETRIES[3:])
def test_gradients_are_numerically_correct(geometry):
    *shape, kernel, stride, pad = geometry
    x, W, b = (a.astype(np.float64) for a in arrays(*shape, kernel))
    gy = rng.standard_normal(F.convolution_2d(x, W, b, stride, pad).shape)
    gradient_check.check_backward(lambda *a: convolution_2d(*a, stride=stride, pad=pad), (x, W, b), gy,
                                  eps=1e-3, atol=1e-6, rtol=1e-5)


def test_chunks_of_samples_give_the_same_result(monkeypatch):
    x, W, b = arrays(5, 4, 6, 6, 3, 3)
    gy = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)

    def run():
        xv, Wv = chainer.Variable(x), chainer.Variable(W)
        y = convolution_2d(xv, Wv, b, pad=1)
        y.grad = gy
        y.backward()
        return y.array, xv.grad, Wv.grad

    whole = run()
    monkeypatch.setattr(conv, "GEMM_WIDTH", 2 * 36)    # two samples of 6x6 output pixels per chunk: 2, 2, 1
    assert len(conv.Geometry(x.shape, W.shape, (1, 1), (1, 1)).chunks()) == 3
    for a, c in zip(whole, run()):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_only_the_needed_gradients_are_computed():
    x, W, _ = arrays(2, 3, 5, 5, 4, 3)
    Wv = chainer.Variable(W)
    F.sum(convolution_2d(x, Wv, pad=1)).backward()     # x is a constant array: no input gradient needed
    assert Wv.grad.shape == W.shape


def test_link_keeps_chainers_parameters_and_rejects_dilation():
    np.random.seed(3)
    ours = Convolution2D(3, 4, 3, pad=1)
    np.random.seed(3)
    theirs = chainer.links.Convolution2D(3, 4, 3, pad=1)
    assert [name for name, _ in ours.namedparams()] == [name for name, _ in theirs.namedparams()]
    assert np.array_equal(ours.W.array, theirs.W.array)
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(x).array, theirs(x).array, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dilation"):
        Convolution2D(3, 4, 3, dilate=2)


def test_mismatched_channels_are_a_type_error():
    x, W, _ = arrays(1, 3, 4, 4, 2, 3)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        convolution_2d(x[:, :2], W)


def test_double_backpropagation_is_refused():
    x, W, b = arrays(1, 2, 4, 4, 2, 3)
    xv = chainer.Variable(x)
    y = F.sum(convolution_2d(xv, W, b, pad=1) ** 2)
    gx, = chainer.grad([y], [xv], enable_double_backprop=True)
    with pytest.raises(NotImplementedError, match="double backpropagation"):
        F.sum(gx).backward()


def test_other_backends_use_chainers_convolution(monkeypatch):
    calls = []
    monkeypatch.setattr(conv.backend, "get_array_module", lambda x: "cupy")
    monkeypatch.setattr(conv.F, "convolution_2d", lambda *args: calls.append(args) or "chainer's")
    x, W, b = arrays(1, 2, 4, 4, 3, 3)
    assert convolution_2d(x, W, b, 1, (1, 1)) == "chainer's" and calls == [(x, W, b, 1, (1, 1))]


@pytest.mark.parametrize("pad", [0, 1])
def test_non_contiguous_inputs(pad):
    x, W, b = arrays(3, 8, 6, 6, 4, 3)
    x, W = x[:, ::2], W[:, ::2]          # channel views, as F.split_axis gives
    gy = rng.standard_normal((3, 4, 6 - 2 + 2 * pad, 6 - 2 + 2 * pad)).astype(np.float32)
    results = []
    for function in (F.convolution_2d, convolution_2d):
        xv = chainer.Variable(x)
        y = function(xv, W, b, pad=pad)
        y.grad = gy
        y.backward()
        results.append((y.array, xv.grad))
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
