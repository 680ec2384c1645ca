"""``fastconv.nn``: the convolutions of modern CNNs on NumPy arrays, with PyTorch semantics.

Layout ``(N, C, [D,] H, W)``; weights ``(C_out, C_in/groups, *k)`` for convolutions and
``(C_in, C_out/groups, *k)`` for transposed convolutions; float32 and float64 (float16 is
computed in float32 and returned as float16); unbatched inputs (no ``N`` axis) as PyTorch.
Gradients live in :mod:`fastconv.nn.grad`. See docs/nn.md.
"""
from ._functional import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                          conv_transpose3d)

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
]
