"""2-D convolution whose CPU path is one column copy and one BLAS GEMM per product.

Chainer 7.8.1's CPU convolution builds its columns as (N, C, kh, kw, oh, ow), multiplies them with
``numpy.tensordot`` (which first copies them into a transposed layout), builds them again for the weight
gradient and computes the input gradient through a generic deconvolution. At the GQN's sizes those copies
cost as much as the arithmetic, and for the tower, which sees every context view of the batch at once, the
columns reach gigabytes. Here the columns are laid out (C*kh*kw, n*oh*ow), so that the output, the weight
gradient and the input gradient are each a single GEMM on C-contiguous (or transposed C-contiguous) float32
operands, and they are built for a few samples at a time (``GEMM_WIDTH``) so that they stay small and
cache-warm. Same mathematics; on a GPU, Chainer's own convolution (cuDNN) is used unchanged.
"""
from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
from chainer import backend
from chainer.utils import type_check
from numpy.lib.stride_tricks import as_strided

GEMM_WIDTH = 1024   # output pixels per chunk of samples: wide enough for BLAS, columns of a few MB


def convolution_2d(x, W, b=None, stride=1, pad=0):
    """``chainer.functions.convolution_2d(x, W, b, stride, pad)``, faster on the CPU."""
    if backend.get_array_module(x) is not np:
        return F.convolution_2d(x, W, b, stride, pad)
    inputs = (x, W) if b is None else (x, W, b)
    return Convolution2DFunction(_pair(stride), _pair(pad)).apply(inputs)[0]


class Convolution2D(L.Convolution2D):
    """``chainer.links.Convolution2D`` (same parameters, initialisation and snapshots) computed with
    ``convolution_2d``; dilation and groups are not supported."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.dilate != (1, 1) or self.groups != 1:
            raise ValueError("gqn.model.conv.Convolution2D supports neither dilation nor groups")

    def forward(self, x):
        return convolution_2d(x, self.W, self.b, self.stride, self.pad)


class Convolution2DFunction(chainer.FunctionNode):
    """y = W * x (+ b) on NumPy arrays: x (N, C, H, W), W (O, C, kh, kw), b (O,)."""

    def __init__(self, stride: tuple[int, int], pad: tuple[int, int]):
        self.stride, self.pad = stride, pad

    def check_type_forward(self, in_types):
        x, W = in_types[:2]
        type_check.expect(x.dtype.kind == "f", W.dtype == x.dtype, x.ndim == 4, W.ndim == 4, x.shape[1] == W.shape[1])
        if len(in_types) == 3:
            type_check.expect(in_types[2].dtype == x.dtype, in_types[2].ndim == 1, in_types[2].shape[0] == W.shape[0])

    def forward_cpu(self, inputs):
        x, W = inputs[:2]
        self.retain_inputs((0, 1))
        y = convolve(x, W, self.stride, self.pad)
        if len(inputs) == 3:
            y += inputs[2][:, None, None]
        return y,

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        return Convolution2DGrad(self.stride, self.pad, indexes).apply((x, W, grad_outputs[0]))


class Convolution2DGrad(chainer.FunctionNode):
    """The gradients of a ``Convolution2DFunction`` from x, W and gy: those in ``indexes`` (0 x, 1 W, 2 b, in
    increasing order, as Chainer asks for them). Not differentiable itself."""

    def __init__(self, stride, pad, indexes):
        self.stride, self.pad, self.indexes = stride, pad, tuple(indexes)

    def forward_cpu(self, inputs):
        x, W, gy = inputs
        geometry = Geometry(x.shape, W.shape, self.stride, self.pad)
        grads = {0: lambda: input_gradient(geometry, W, gy), 1: lambda: weight_gradient(geometry, x, gy),
                 2: lambda: gy.sum(axis=(0, 2, 3))}
        return tuple(grads[i]() for i in self.indexes)

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError("double backpropagation through gqn.model.conv is not supported")


def convolve(x: np.ndarray, W: np.ndarray, stride, pad) -> np.ndarray:
    """W * x without bias: one GEMM per chunk of samples."""
    geometry = Geometry(x.shape, W.shape, stride, pad)
    weights = W.reshape(len(W), -1)
    y = np.empty((len(x), len(W), geometry.oh, geometry.ow), x.dtype)
    for part in geometry.chunks():
        geometry.from_rows(weights @ geometry.im2col(x[part]), out=y[part])
    return y


def input_gradient(geometry: Geometry, W: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gx from gy: W^T gy summed back by ``col2im``; or, for a stride-1 convolution with fewer outputs than
    inputs, the equal convolution of gy with the flipped, transposed kernel, which unfolds fewer channels."""
    o, c, kh, kw = W.shape
    py, px = geometry.pad
    if geometry.stride == (1, 1) and o < c and py < kh and px < kw:
        flipped = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return convolve(gy, flipped, (1, 1), (kh - 1 - py, kw - 1 - px))
    weights = W.reshape(o, -1)
    gx = np.empty((geometry.n, c, geometry.h, geometry.w), gy.dtype)
    for part in geometry.chunks():
        geometry.col2im(weights.T @ geometry.to_rows(gy[part]), out=gx[part])
    return gx


def weight_gradient(geometry: Geometry, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gW = gy x^T, summed over the chunks of samples."""
    gW = None
    for part in geometry.chunks():
        part_gW = geometry.to_rows(gy[part]) @ geometry.im2col(x[part]).T
        gW = part_gW if gW is None else np.add(gW, part_gW, out=gW)
    return gW.reshape(geometry.o, geometry.c, geometry.kh, geometry.kw)


class Geometry:
    """Shapes of one convolution and the column transforms between its arrays and its GEMM operands."""

    def __init__(self, x_shape, w_shape, stride, pad):
        self.n, self.c, self.h, self.w = x_shape
        self.o, _, self.kh, self.kw = w_shape
        self.stride, self.pad = stride, pad
        (self.sy, self.sx), (self.py, self.px) = stride, pad
        self.oh = (self.h + 2 * self.py - self.kh) // self.sy + 1
        self.ow = (self.w + 2 * self.px - self.kw) // self.sx + 1

    def chunks(self) -> list[slice]:
        """Slices of the samples with about ``GEMM_WIDTH`` output pixels each (at least one sample)."""
        step = max(1, GEMM_WIDTH // (self.oh * self.ow))
        return [slice(i, min(i + step, self.n)) for i in range(0, self.n, step)]

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """Columns (C*kh*kw, n*oh*ow) of x (n, C, H, W): row (c, i, j), column (m, y, x) holds
        x[m, c, y*sy + i - py, x*sx + j - px], 0 outside x."""
        n = len(x)
        if self.py or self.px:
            padded = np.zeros((n, self.c, self.h + 2 * self.py, self.w + 2 * self.px), x.dtype)
            padded[:, :, self.py:self.py + self.h, self.px:self.px + self.w] = x
            x = padded
        bn, bc, bh, bw = x.strides
        windows = as_strided(x, (self.c, self.kh, self.kw, n, self.oh, self.ow),
                             (bc, bh, bw, bn, bh * self.sy, bw * self.sx), writeable=False)
        return np.ascontiguousarray(windows).reshape(self.c * self.kh * self.kw, n * self.oh * self.ow)

    def col2im(self, columns: np.ndarray, out: np.ndarray) -> None:
        """The adjoint of ``im2col`` into ``out`` (n, C, H, W): each column entry summed onto its pixel."""
        n = columns.shape[1] // (self.oh * self.ow)
        columns = columns.reshape(self.c, self.kh, self.kw, n, self.oh, self.ow)
        padded = np.zeros((self.c, n, self.h + 2 * self.py, self.w + 2 * self.px), columns.dtype)
        for i in range(self.kh):
            for j in range(self.kw):
                padded[:, :, i:i + self.sy * self.oh:self.sy, j:j + self.sx * self.ow:self.sx] += columns[:, i, j]
        np.copyto(out, padded[:, :, self.py:self.py + self.h, self.px:self.px + self.w].transpose(1, 0, 2, 3))

    def to_rows(self, y: np.ndarray) -> np.ndarray:
        """(n, O, oh, ow) -> (O, n*oh*ow), the layout of the GEMM products."""
        return np.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(self.o, -1)

    def from_rows(self, rows: np.ndarray, out: np.ndarray) -> None:
        """(O, n*oh*ow) -> ``out`` (n, O, oh, ow)."""
        np.copyto(out, rows.reshape(self.o, -1, self.oh, self.ow).transpose(1, 0, 2, 3))


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)
