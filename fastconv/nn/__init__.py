"""``fastconv.nn``: the convolutions of modern CNNs on NumPy arrays, with PyTorch semantics.

Layout ``(N, C, [D,] H, W)``; weights ``(C_out, C_in/groups, *k)`` for convolutions and
``(C_in, C_out/groups, *k)`` for transposed convolutions; float32 and float64 (float16 is
computed in float32 and returned as float16); unbatched inputs (no ``N`` axis) as PyTorch.
Gradients live in :mod:`fastconv.nn.grad`. See docs/nn.md.

CuPy arrays in, CuPy arrays out: every function except :func:`conv_matrix` (a host
``scipy.sparse`` matrix: TypeError) also takes ``cupy.ndarray`` arguments and computes on
their GPU with the engines of ``fastconv._cupy`` (see :mod:`fastconv.nn._gpu` for the
engine choice), with the same dtype rules and no copy to the host. Mixing NumPy and CuPy
arrays in one call raises TypeError naming which argument is where. CuPy is never imported
for NumPy input.

=================================  ==========================================================
convolutions                       :func:`conv1d`, :func:`conv2d`, :func:`conv3d`
transposed                         :func:`conv_transpose1d`, :func:`conv_transpose2d`,
                                   :func:`conv_transpose3d`
variants                           :func:`pointwise_conv2d`, :func:`dilated_conv2d`,
                                   :func:`grouped_conv2d`, :func:`depthwise_conv2d`,
                                   :func:`depthwise_separable_conv2d`,
                                   :func:`spatially_separable_conv2d`,
                                   :func:`flattened_conv2d`, :func:`channel_shuffle`,
                                   :func:`shuffled_group_conv2d`,
                                   :func:`grouped_pointwise_conv2d`
helpers                            :func:`conv_output_shape`,
                                   :func:`conv_transpose_output_shape`, :func:`conv_matrix`
=================================  ==========================================================
"""
from . import grad
from ._functional import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                          conv_transpose3d)
from ._matrix import conv_matrix
from ._variants import (channel_shuffle, conv_output_shape, conv_transpose_output_shape,
                        depthwise_conv2d, depthwise_separable_conv2d, dilated_conv2d,
                        flattened_conv2d, grouped_conv2d, grouped_pointwise_conv2d,
                        pointwise_conv2d, shuffled_group_conv2d, spatially_separable_conv2d)

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "pointwise_conv2d", "dilated_conv2d", "grouped_conv2d", "depthwise_conv2d",
    "depthwise_separable_conv2d", "spatially_separable_conv2d", "flattened_conv2d",
    "channel_shuffle", "shuffled_group_conv2d", "grouped_pointwise_conv2d",
    "conv_output_shape", "conv_transpose_output_shape", "conv_matrix", "grad",
]

for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj):
        _obj.__module__ = __name__
del _name, _obj
