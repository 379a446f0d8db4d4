"""Choosing where the model runs: the CPU (NumPy) by default, a CUDA GPU (CuPy) on request."""
from __future__ import annotations

import chainer

from gqn.errors import GqnError


def get_device(gpu: int | None):
    """The Chainer device for ``--gpu ID`` (None: CPU). CuPy is only touched when a GPU is asked for."""
    if gpu is None:
        return chainer.get_device("@numpy")
    from chainer.backends import cuda

    if not cuda.available:
        raise GqnError(f"--gpu {gpu}: CuPy with a CUDA GPU is not available "
                       "(install the gpu extra: pip install 'gqn-toolkit[gpu]')")
    try:
        device = chainer.get_device(f"@cupy:{gpu}")
        device.use()
    except Exception as e:  # CuPy raises several CUDA error types for a bad device id
        raise GqnError(f"--gpu {gpu}: cannot use this GPU ({e})")
    return device
