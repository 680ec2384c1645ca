"""The convolution variants of modern CNNs, each built on one engine call or a composition.

Every function takes NCHW arrays (or unbatched CHW) and follows PyTorch semantics; each
docstring states what the variant is and what it costs in multiply-adds (MACs) for an
output of ``N x C_out x H_out x W_out``.
"""
import numpy as np

from . import _gemm, _shapes
from ._functional import _finish, _prepare, array_module, conv2d


# ----------------------------------------------------------------------------------------
# shape helpers
# ----------------------------------------------------------------------------------------
def conv_output_shape(input_size, kernel_size, stride=1, padding=0, dilation=1):
    """Spatial output size of a convolution (PyTorch's formula).

    ``out = floor((in + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1``.

    Parameters
    ----------
    input_size : int or tuple of ints
        Spatial size(s) of the input (no batch or channel axis).
    kernel_size : int or tuple of ints
    stride, dilation : int or tuple of ints, default 1
    padding : int, tuple of ints, 'valid' or 'same', default 0

    Returns
    -------
    tuple of ints
        Cost: O(ndim) arithmetic.

    Examples
    --------
    >>> from fastconv.nn import conv_output_shape
    >>> conv_output_shape((227, 227), 11, stride=4)
    (55, 55)
    >>> conv_output_shape(56, 3, padding='same', dilation=2)
    (56,)
    """
    size = (input_size,) if np.ndim(input_size) == 0 else tuple(input_size)
    nd = len(size)
    size = _shapes.positive(size, nd, "input_size")
    kernel = _shapes.positive(kernel_size, nd, "kernel_size")
    stride = _shapes.positive(stride, nd, "stride")
    dilation = _shapes.positive(dilation, nd, "dilation")
    lo, hi = _shapes.padding_pair(padding, nd, kernel, stride, dilation)
    out = tuple(_shapes.conv_out_size(n, k, s, a, b, d)
                for n, k, s, a, b, d in zip(size, kernel, stride, lo, hi, dilation))
    if any(o <= 0 for o in out):
        raise ValueError(f"kernel_size {kernel} (dilation {dilation}) is larger than the "
                         f"padded input {size}")
    return out


def conv_transpose_output_shape(input_size, kernel_size, stride=1, padding=0,
                                output_padding=0, dilation=1):
    """Spatial output size of a transposed convolution (PyTorch's formula).

    ``out = (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    Returns
    -------
    tuple of ints
        Cost: O(ndim) arithmetic.

    Examples
    --------
    >>> from fastconv.nn import conv_transpose_output_shape
    >>> conv_transpose_output_shape((16, 16), 4, stride=2, padding=1)
    (32, 32)
    """
    size = (input_size,) if np.ndim(input_size) == 0 else tuple(input_size)
    nd = len(size)
    size = _shapes.positive(size, nd, "input_size")
    kernel = _shapes.positive(kernel_size, nd, "kernel_size")
    stride = _shapes.positive(stride, nd, "stride")
    dilation = _shapes.positive(dilation, nd, "dilation")
    padding = _shapes.nonnegative(padding, nd, "padding")
    op = _shapes.nonnegative(output_padding, nd, "output_padding")
    for o, s, d in zip(op, stride, dilation):
        if not (o < s or o < d):
            raise ValueError(f"output_padding ({op}) must be smaller than either stride "
                             f"({stride}) or dilation ({dilation})")
    out = tuple(_shapes.conv_transpose_out_size(n, k, s, p, o, d)
                for n, k, s, p, o, d in zip(size, kernel, stride, padding, op, dilation))
    if any(o <= 0 for o in out):
        raise ValueError(f"computed output size {out} is non-positive (padding)")
    return out


# ----------------------------------------------------------------------------------------
# pointwise, grouped, shuffled
# ----------------------------------------------------------------------------------------
def _as4(w, name, xp=np):
    w = _shapes.as_array(w, name, xp)
    if w.ndim == 2:
        w = w[:, :, None, None]
    if w.ndim != 4 or w.shape[2:] != (1, 1):
        raise ValueError(f"{name} must have shape (C_out, C_in/groups) or "
                         f"(C_out, C_in/groups, 1, 1), got {w.shape}")
    return w


def _pointwise(input, weight, bias, stride, groups, shuffle, fname):
    xp = array_module(input, weight, bias, names=("input", "weight", "bias"))
    w = _as4(weight, "weight", xp)
    xp, x, w, b, cdt, rdt, batched = _prepare(input, w, bias, 2, fname)
    stride, _, _, _, groups, out_spatial = _shapes.conv_params(
        x, w, stride, 0, 1, groups, "zeros", 2, fname)
    _shapes.check_bias(b, w.shape[0], fname)
    if xp is not np:
        from . import _gpu
        if b is not None and shuffle:
            b = b.reshape(groups, -1).T.ravel()  # bias follows its channel through the shuffle
        out = _gpu.pointwise(xp, x.astype(cdt, copy=False), w.astype(cdt, copy=False),
                             out_spatial, stride, groups, shuffle=shuffle)
        return _finish(out, b, cdt, rdt, batched)
    x = np.ascontiguousarray(x, dtype=cdt)
    w2 = np.ascontiguousarray(w.reshape(w.shape[:2]), dtype=cdt)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=cdt)
    out = _gemm.pointwise(x, w2, out_spatial, stride, (0, 0), groups, shuffle=shuffle, bias=b)
    return _finish(out, None, cdt, rdt, batched)


def pointwise_conv2d(input, weight, bias=None, stride=1, groups=1):
    """1x1 (pointwise) convolution: a channel-mixing matrix product at every pixel.

    Computed as one GEMM ``W[C_out, C_in] @ X[n][C_in, H*W]`` per image (and group), with
    no im2col copy.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups) or (C_out, C_in / groups, 1, 1)
    bias : array_like, shape (C_out,), optional
    stride : int or (int, int), default 1
        Subsampling of the input before the product.
    groups : int, default 1

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * H_out * W_out * C_out * C_in / groups`` MACs; no scratch memory.

    See Also
    --------
    conv2d, grouped_pointwise_conv2d

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import pointwise_conv2d
    >>> x = np.ones((1, 3, 2, 2))
    >>> pointwise_conv2d(x, np.array([[1.0, 2.0, 3.0]]))[0, 0]
    array([[6., 6.],
           [6., 6.]])
    """
    return _pointwise(input, weight, bias, stride, groups, False, "pointwise_conv2d")


def grouped_pointwise_conv2d(input, weight, groups, bias=None, stride=1, shuffle=False):
    """Grouped 1x1 convolution (ShuffleNet's pointwise group convolution).

    ``groups`` independent channel-mixing products; with ``shuffle=True`` the result is
    channel-shuffled (:func:`channel_shuffle` with ``groups``) for free: each group's GEMM
    writes straight into its shuffled channel positions.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups[, 1, 1])
    groups : int
    bias : array_like, shape (C_out,), optional
        Applied before the shuffle (it follows its channel).
    stride : int or (int, int), default 1
    shuffle : bool, default False

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * H_out * W_out * C_out * C_in / groups`` MACs (``groups`` times fewer than a
    dense 1x1); the shuffle costs nothing extra.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import grouped_pointwise_conv2d
    >>> x = np.arange(4.0).reshape(1, 4, 1, 1)
    >>> grouped_pointwise_conv2d(x, np.ones((4, 2)), groups=2, shuffle=True).ravel()
    array([1., 5., 1., 5.])
    """
    return _pointwise(input, weight, bias, stride, groups, shuffle,
                      "grouped_pointwise_conv2d")


def channel_shuffle(input, groups):
    """Channel shuffle (ShuffleNet): view channels as ``(groups, C/groups)``, transpose.

    Same as ``torch.nn.functional.channel_shuffle``: output channel ``j*groups + g`` is input
    channel ``g*(C/groups) + j``.

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial)
    groups : int
        Must divide ``C``.

    Returns
    -------
    ndarray, same shape and dtype as ``input``

    Notes
    -----
    Cost: one copy of the input (memory bound).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import channel_shuffle
    >>> channel_shuffle(np.arange(6).reshape(1, 6, 1), 2).ravel()
    array([0, 3, 1, 4, 2, 5])
    """
    xp = array_module(input, names=("input",))
    x = _shapes.as_array(input, "input", xp)
    groups = _shapes.check_groups(groups)
    if x.ndim < 3:
        raise ValueError(f"channel_shuffle: expected input with at least 3 dimensions "
                         f"(N, C, *spatial), got shape {x.shape}")
    n, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"channel_shuffle: number of channels ({c}) must be divisible by "
                         f"groups ({groups})")
    r = x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2)
    # a copy always (groups 1 or C: the swapped view is already contiguous, and
    # ascontiguousarray would hand back the input itself)
    return r.copy(order="C").reshape(x.shape)


def _all_int(v, value):
    """Whether ``v`` normalises (:func:`fastconv.nn._shapes.ntuple`, as conv2d's own
    arguments) to ``(value, value)``; False for anything else, which conv2d then validates."""
    if isinstance(v, str):
        return False
    try:
        return _shapes.ntuple(v, 2, "argument") == (value, value)
    except (TypeError, ValueError):
        return False


def grouped_conv2d(input, weight, groups, bias=None, stride=1, padding=0, dilation=1,
                   padding_mode="zeros", algorithm="auto"):
    """Grouped convolution (AlexNet, ResNeXt): ``groups`` independent convolutions.

    Input channels are split into ``groups`` blocks of ``C_in/groups``; output block ``g``
    sees only input block ``g``. Same as ``conv2d(..., groups=groups)``.

    Notes
    -----
    Cost: ``N * H_out * W_out * C_out * (C_in / groups) * kH * kW`` MACs, ``groups`` times
    fewer than the dense convolution.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import grouped_conv2d
    >>> grouped_conv2d(np.ones((1, 4, 5, 5)), np.ones((6, 2, 3, 3)), groups=2).shape
    (1, 6, 3, 3)
    """
    return conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                  algorithm)


def shuffled_group_conv2d(input, weight, groups, bias=None, stride=1, padding=0, dilation=1,
                          algorithm="auto"):
    """ShuffleNet group convolution: grouped convolution, then :func:`channel_shuffle`.

    For 1x1 kernels (ShuffleNet's pointwise group convolutions) each group's GEMM writes
    directly into the shuffled channel order, so the shuffle costs nothing.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    groups : int
        Groups of the convolution and of the shuffle.
    bias : array_like, shape (C_out,), optional
        Added before the shuffle (it follows its channel).
    stride, padding, dilation, algorithm
        As in :func:`conv2d`.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * H_out * W_out * C_out * (C_in / groups) * kH * kW`` MACs, plus one copy of
    the output when the kernel is not 1x1.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import shuffled_group_conv2d, conv2d, channel_shuffle
    >>> x = np.random.default_rng(0).standard_normal((2, 6, 5, 5))
    >>> w = np.random.default_rng(1).standard_normal((6, 2, 3, 3))
    >>> np.allclose(shuffled_group_conv2d(x, w, 3, padding=1),
    ...             channel_shuffle(conv2d(x, w, padding=1, groups=3), 3))
    True
    """
    xp = array_module(input, weight, bias, names=("input", "weight", "bias"))
    w = _shapes.as_array(weight, "weight", xp)
    # 1x1 shortcut; 'same' only at stride 1 (strided 'same' is an error, as in conv2d)
    no_pad = (isinstance(padding, str) and (padding == "valid"
                                            or (padding == "same" and _all_int(stride, 1)))
              or _all_int(padding, 0))
    if (w.ndim == 4 and w.shape[2:] == (1, 1) and no_pad
            and _all_int(dilation, 1) and algorithm in ("auto", "gemm")):
        return grouped_pointwise_conv2d(input, w, groups, bias, stride, shuffle=True)
    out = conv2d(input, w, bias, stride, padding, dilation, groups, "zeros", algorithm)
    if out.ndim == 3:
        return channel_shuffle(out[None], groups)[0]
    return channel_shuffle(out, groups)


# ----------------------------------------------------------------------------------------
# depthwise and separable
# ----------------------------------------------------------------------------------------
def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1,
                     padding_mode="zeros", algorithm="auto"):
    """Depthwise convolution: every input channel filtered on its own (``groups = C_in``).

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_in * multiplier, 1, kH, kW)
        ``multiplier`` output channels per input channel (channel multiplier).
    bias : array_like, shape (C_in * multiplier,), optional
    stride, padding, dilation, padding_mode, algorithm
        As in :func:`conv2d`.

    Returns
    -------
    ndarray, shape (N, C_in * multiplier, H_out, W_out)

    Notes
    -----
    Cost: ``N * H_out * W_out * C_out * kH * kW`` MACs -- ``C_in`` times fewer than a dense
    convolution; memory bound, so served by the direct engine.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import depthwise_conv2d
    >>> x = np.ones((1, 3, 4, 4))
    >>> depthwise_conv2d(x, np.ones((6, 1, 3, 3)), padding=1).shape
    (1, 6, 4, 4)
    """
    xp = array_module(input, weight, bias, names=("input", "weight", "bias"))
    x = _shapes.as_array(input, "input", xp)
    w = _shapes.as_array(weight, "weight", xp)
    if w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"depthwise_conv2d: weight must have shape (C_in * multiplier, 1, "
                         f"kH, kW), got {w.shape}")
    if x.ndim not in (3, 4):
        raise ValueError(f"depthwise_conv2d: expected a 3-D or 4-D input, got {x.shape}")
    return conv2d(x, w, bias, stride, padding, dilation, x.shape[-3], padding_mode,
                  algorithm)


def depthwise_separable_conv2d(input, depthwise_weight, pointwise_weight,
                               depthwise_bias=None, pointwise_bias=None, stride=1, padding=0,
                               dilation=1, padding_mode="zeros", algorithm="auto"):
    """Depthwise separable convolution (Xception, MobileNet): depthwise, then pointwise.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
    depthwise_weight : array_like, shape (C_mid, 1, kH, kW)
        ``C_mid = C_in * multiplier``.
    pointwise_weight : array_like, shape (C_out, C_mid[, 1, 1])
    depthwise_bias, pointwise_bias : array_like, optional
    stride, padding, dilation, padding_mode, algorithm
        Of the depthwise step.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * H_out * W_out * (C_mid * kH * kW + C_out * C_mid)`` MACs, against
    ``N * H_out * W_out * C_out * C_in * kH * kW`` for the dense convolution it factorises.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import depthwise_separable_conv2d
    >>> x = np.ones((1, 3, 5, 5))
    >>> depthwise_separable_conv2d(x, np.ones((3, 1, 3, 3)), np.ones((8, 3))).shape
    (1, 8, 3, 3)
    """
    array_module(input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias,
                 names=("input", "depthwise_weight", "pointwise_weight", "depthwise_bias",
                        "pointwise_bias"))  # mixed NumPy/CuPy: TypeError naming them
    mid = depthwise_conv2d(input, depthwise_weight, depthwise_bias, stride, padding, dilation,
                           padding_mode, algorithm)
    return pointwise_conv2d(mid, pointwise_weight, pointwise_bias)


def _as_axis_weight(w, axis, name, xp=np):
    """(C, Cg, k) or (C, Cg, kH, 1)/(C, Cg, 1, kW) -> 4-D weight along ``axis``."""
    w = _shapes.as_array(w, name, xp)
    if w.ndim == 3:
        w = w[:, :, :, None] if axis == 0 else w[:, :, None, :]
    if w.ndim != 4 or w.shape[3 - axis] != 1:
        shape = "(C_out, C_in/groups, k, 1)" if axis == 0 else "(C_out, C_in/groups, 1, k)"
        raise ValueError(f"{name} must have shape {shape} (or 3-D), got {w.shape}")
    return w


def spatially_separable_conv2d(input, column_weight, row_weight, bias=None, stride=1,
                               padding=0, dilation=1, groups=1, padding_mode="zeros",
                               algorithm="auto"):
    """Spatially separable convolution: a ``k x 1`` convolution, then a ``1 x k`` one.

    The factorisation of Inception-v3 (and of classic separable filters): a column filter
    along H, then a row filter along W. With ``groups = C_in`` and one channel per group it
    is exactly the separable 2-D filter ``column (x) row`` applied to each channel.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
    column_weight : array_like, shape (C_mid, C_in / groups, kH, 1) or (C_mid, C_in/groups, kH)
    row_weight : array_like, shape (C_out, C_mid / groups, 1, kW) or (C_out, C_mid/groups, kW)
    bias : array_like, shape (C_out,), optional
        Added after the row pass.
    stride, padding, dilation : int or (int, int)
        The H components apply to the column pass, the W components to the row pass.
    groups : int, default 1
        Groups of both passes.
    padding_mode, algorithm
        As in :func:`conv2d`.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * (H_out * W * C_mid * C_in * kH + H_out * W_out * C_out * C_mid * kW) / groups``
    MACs, against ``N * H_out * W_out * C_out * C_in * kH * kW / groups`` for the full kernel.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import spatially_separable_conv2d, conv2d
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    >>> col, row = np.array([1.0, 2.0, 1.0]), np.array([1.0, 0.0, -1.0])
    >>> wc = np.tile(col, (2, 1, 1))          # (2, 1, 3): per-channel column filter
    >>> wr = np.tile(row, (2, 1, 1))          # (2, 1, 3): per-channel row filter
    >>> full = np.tile(np.outer(col, row), (2, 1, 1, 1))
    >>> np.allclose(spatially_separable_conv2d(x, wc, wr, padding=1, groups=2),
    ...             conv2d(x, full, padding=1, groups=2))
    True
    """
    xp = array_module(input, column_weight, row_weight, bias,
                      names=("input", "column_weight", "row_weight", "bias"))
    wc = _as_axis_weight(column_weight, 0, "column_weight", xp)
    wr = _as_axis_weight(row_weight, 1, "row_weight", xp)
    stride = _shapes.positive(stride, 2, "stride")
    dilation = _shapes.positive(dilation, 2, "dilation")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r} (padding)")
        pc = pr = padding
    else:
        p = _shapes.nonnegative(padding, 2, "padding")
        pc, pr = (p[0], 0), (0, p[1])
    mid = conv2d(input, wc, None, (stride[0], 1), pc, (dilation[0], 1), groups, padding_mode,
                 algorithm)
    return conv2d(mid, wr, bias, (1, stride[1]), pr, (1, dilation[1]), groups, padding_mode,
                  algorithm)


def flattened_conv2d(input, channel_weight, vertical_weight, horizontal_weight, bias=None,
                     stride=1, padding=0, dilation=1, padding_mode="zeros", algorithm="auto"):
    """Flattened convolution (Jin, Dundar & Culurciello 2014): three consecutive 1-D filters.

    A rank-1 3-D filter ``channel (x) vertical (x) horizontal`` per output channel applied as
    a 1-D filter across channels (a 1x1 convolution ``C_in -> C_out``), a vertical ``kH x 1``
    depthwise filter and a horizontal ``1 x kW`` depthwise filter.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W)
    channel_weight : array_like, shape (C_out, C_in[, 1, 1])
    vertical_weight : array_like, shape (C_out, kH) or (C_out, 1, kH, 1)
    horizontal_weight : array_like, shape (C_out, kW) or (C_out, 1, 1, kW)
    bias : array_like, shape (C_out,), optional
    stride, padding, dilation, padding_mode, algorithm
        Of the spatial (vertical: H components, horizontal: W components) passes.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Cost: ``N * (H * W * C_out * C_in + H_out * W * C_out * kH + H_out * W_out * C_out * kW)``
    MACs, against ``N * H_out * W_out * C_out * C_in * kH * kW`` for the full 3-D filter it
    equals (with zero padding).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import flattened_conv2d, conv2d
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((1, 3, 6, 6))
    >>> a, v, h = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), \\
    ...     rng.standard_normal((4, 2))
    >>> full = np.einsum('oc,oh,ow->ochw', a, v, h)
    >>> np.allclose(flattened_conv2d(x, a, v, h), conv2d(x, full))
    True
    """
    xp = array_module(input, channel_weight, vertical_weight, horizontal_weight, bias,
                      names=("input", "channel_weight", "vertical_weight",
                             "horizontal_weight", "bias"))
    wv = _shapes.as_array(vertical_weight, "vertical_weight", xp)
    wh = _shapes.as_array(horizontal_weight, "horizontal_weight", xp)
    if wv.ndim == 2:
        wv = wv[:, None]
    if wh.ndim == 2:
        wh = wh[:, None]
    wv = _as_axis_weight(wv, 0, "vertical_weight", xp)
    wh = _as_axis_weight(wh, 1, "horizontal_weight", xp)
    if wv.shape[1] != 1 or wh.shape[1] != 1:
        raise ValueError("vertical_weight and horizontal_weight must be per-channel (C_out, k)")
    mid = pointwise_conv2d(input, channel_weight)
    c = mid.shape[-3]
    return spatially_separable_conv2d(mid, wv, wh, bias, stride, padding, dilation, groups=c,
                                      padding_mode=padding_mode, algorithm=algorithm)


def dilated_conv2d(input, weight, bias=None, dilation=2, padding="same", stride=1, groups=1,
                   padding_mode="zeros", algorithm="auto"):
    """Dilated (atrous) convolution: taps spaced ``dilation`` apart (DeepLab, WaveNet).

    Same as ``conv2d(..., dilation=dilation)``, with 'same' padding by default so the
    resolution is kept, as in atrous spatial pyramids.

    Notes
    -----
    Cost: the MACs of the undilated kernel, ``N * H_out * W_out * C_out * C_in/groups * kH *
    kW``: the receptive field grows to ``dilation * (k - 1) + 1`` for free.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import dilated_conv2d
    >>> dilated_conv2d(np.ones((1, 2, 9, 9)), np.ones((4, 2, 3, 3)), dilation=3).shape
    (1, 4, 9, 9)
    """
    return conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                  algorithm)
