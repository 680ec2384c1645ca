"""The PyTorch-semantics convolutions: ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d``.

Each public function validates (:mod:`fastconv.nn._shapes`), applies a non-zero padding
mode explicitly, hands one correlation problem to an engine
(:mod:`fastconv.nn._algorithms`), adds the bias and casts to the result dtype.
"""
import numpy as np

from .. import _cupy
from . import _algorithms, _shapes

_NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def array_module(*arrays, names):
    """numpy, or cupy when the arrays are CuPy arrays (TypeError when they are mixed,
    naming which argument is where); never imports CuPy for NumPy input."""
    return _cupy.get_array_module(*arrays, names=names)


def _prepare(input, weight, bias, nd, fname):
    xp = array_module(input, weight, bias, names=("input", "weight", "bias"))
    x = _shapes.as_array(input, "input", xp)
    w = _shapes.as_array(weight, "weight", xp)
    b = None if bias is None else _shapes.as_array(bias, "bias", xp)
    cdt, rdt = _shapes.dtypes(x, w, b)
    x, batched = _shapes.check_input(x, nd, fname)
    return xp, x, w, b, cdt, rdt, batched


def _finish(out, b, cdt, rdt, batched):
    if b is not None:
        out += b.astype(cdt, copy=False).reshape((-1,) + (1,) * (out.ndim - 2))
    if out.dtype != rdt:
        with np.errstate(over="ignore"):   # float16 results past 65504 become +-inf, as torch's
            out = out.astype(rdt)
    return out if batched else out[0]


def convnd(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
           nd, fname):
    """Shared body of conv1d/conv2d/conv3d."""
    xp, x, w, b, cdt, rdt, batched = _prepare(input, weight, bias, nd, fname)
    _shapes.check_algorithm(algorithm)
    stride, dilation, lo, hi, groups, out_spatial = _shapes.conv_params(
        x, w, stride, padding, dilation, groups, padding_mode, nd, fname)
    _shapes.check_bias(b, w.shape[0], fname)
    _shapes.check_result_memory(xp, x.shape[:1] + w.shape[:1] + tuple(out_spatial), x, cdt,
                                fname)
    x = x.astype(cdt, copy=False)
    w = xp.ascontiguousarray(w, dtype=cdt)
    if padding_mode != "zeros" and (any(lo) or any(hi)):
        x = xp.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)), mode=_NP_PAD[padding_mode])
        lo = (0,) * nd
    x = xp.ascontiguousarray(x)
    if b is not None:
        b = xp.ascontiguousarray(b, dtype=cdt)
    out = _algorithms.correlate(x, w, out_spatial, stride, dilation, lo, groups, algorithm,
                                xp=xp, bias=b)
    return _finish(out, None, cdt, rdt, batched)


def conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation,
                     algorithm, nd, fname):
    """Shared body of conv_transpose1d/2d/3d."""
    xp, x, w, b, cdt, rdt, batched = _prepare(input, weight, bias, nd, fname)
    _shapes.check_algorithm(algorithm)
    stride, dilation, padding, groups, c_out, out_spatial = _shapes.transpose_params(
        x, w, stride, padding, output_padding, groups, dilation, nd, fname)
    _shapes.check_bias(b, c_out, fname)
    _shapes.check_result_memory(xp, x.shape[:1] + (c_out,) + tuple(out_spatial), x, cdt,
                                fname)
    x = xp.ascontiguousarray(x, dtype=cdt)
    w = xp.ascontiguousarray(w, dtype=cdt)
    out = _algorithms.correlate_adjoint(x, w, out_spatial, stride, dilation, padding, groups,
                                        algorithm, xp=xp)
    return _finish(out, b, cdt, rdt, batched)


_CONV_DOC = """{d}-D convolution (cross-correlation) with PyTorch semantics.

    Same as ``torch.nn.functional.conv{d}d`` (plus ``padding_mode`` as in
    ``torch.nn.Conv{d}d``) on NumPy arrays, or on CuPy arrays (computed on their GPU,
    CuPy result).

    Parameters
    ----------
    input : array_like, shape (N, C_in, {sp}) or (C_in, {sp})
        Input batch (or one unbatched sample).
    weight : array_like, shape (C_out, C_in / groups, {ks})
        Filters.
    bias : array_like, shape (C_out,), optional
        Added to every output position of its channel.
    stride : int or tuple of {d} ints, default 1
    padding : int, tuple of {d} ints, 'valid' or 'same', default 0
        Implicit padding on both sides; 'same' (stride 1 only) pads ``dilation*(k-1)`` in
        total, the smaller half first, as PyTorch.
    dilation : int or tuple of {d} ints, default 1
        Spacing between kernel taps (atrous convolution).
    groups : int, default 1
        Input and output channels are split into ``groups`` independent convolutions;
        ``groups == C_in`` is a depthwise convolution.
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        How the padding is filled (``torch.nn.Conv{d}d`` semantics).
    algorithm : {{'auto', 'direct', 'gemm', 'fft', 'winograd'}}, default 'auto'
        Engine: direct loops (``fastconv._core``), im2col + BLAS GEMM, FFT, or Winograd's
        F(2x2, 3x3) / F(2x2, 5x5) (float32/float16 3x3 and 5x5 kernels -- 1x3x3, 3x3x3,
        1x5x5 in 3-D -- at stride 1 on AVX2+FMA CPUs: 2.25x / 2.8x fewer multiplies;
        ValueError for any other problem). All give the
        same answer to rounding; 'auto' picks the cheapest by the calibrated cost model
        (on CuPy arrays: direct CUDA kernels for depthwise and thin layers, im2col + cuBLAS
        otherwise; see ``fastconv.nn._gpu``; 'winograd' is CPU-only).

    Returns
    -------
    ndarray, shape (N, C_out, {osp}) or (C_out, {osp})
        ``float32`` for float32/float16 arithmetic (float16 inputs give float16 back),
        ``float64`` for float64 and integer inputs.

    Raises
    ------
    ValueError
        For every configuration PyTorch rejects (naming the argument).
    TypeError
        For non-numeric arrays, or NumPy and CuPy arrays mixed in one call.

    See Also
    --------
    torch.nn.functional.conv{d}d, conv_transpose{d}d, fastconv.nn.grad.conv{d}d_input

    Notes
    -----
    Cost: ``N * C_out * prod(out) * (C_in / groups) * prod(kernel)`` multiply-adds (direct
    and GEMM), plus an im2col copy of ``C_in * prod(kernel) * prod(out)`` elements per image
    for GEMM (tiled; none for 1x1 kernels); FFT costs ``O(N (C_in + C_out) F log F +
    N C_out C_in F / groups)`` for ``F`` padded spatial points.

    Examples
    --------
{example}
"""

_T_DOC = """{d}-D transposed convolution ("deconvolution") with PyTorch semantics.

    Same as ``torch.nn.functional.conv_transpose{d}d``: the adjoint (gradient with respect
    to the input) of ``conv{d}d`` with the same ``stride``, ``padding``, ``dilation`` and
    ``groups``; ``output_padding`` adds that many samples at the end of each axis to pick
    one of the ``stride`` input sizes that give the same forward output size.

    Parameters
    ----------
    input : array_like, shape (N, C_in, {sp}) or (C_in, {sp})
    weight : array_like, shape (C_in, C_out / groups, {ks})
    bias : array_like, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of {d} ints
        ``output_padding`` must be smaller than ``stride`` or ``dilation``.
    groups : int, default 1
    algorithm : {{'auto', 'direct', 'gemm', 'fft', 'winograd'}}, default 'auto'
        'gemm' is GEMM + col2im (no zero stuffing); 'direct' computes each of the
        ``prod(stride)`` output phases as a stride-1 direct correlation with that phase's
        taps (sub-pixel decomposition); 'fft' correlates the zero-stuffed input with the
        flipped, transposed weight. 'auto' also considers the phases with each phase's
        cheapest engine (it takes them for depthwise transposed layers). 'winograd' (3x3
        and 5x5 kernels, float32): at stride 1 the forward correlation with the flipped
        weight by Winograd's F(2x2, 3x3) / F(2x2, 5x5); strided, that correlation of the
        zero-stuffed input.

    Returns
    -------
    ndarray, shape (N, C_out, {osp}) or (C_out, {osp})
        ``out = (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    See Also
    --------
    torch.nn.functional.conv_transpose{d}d, conv{d}d, conv_transpose_output_shape

    Notes
    -----
    Cost: the same multiply-adds as the forward convolution it is the adjoint of,
    ``N * C_in * prod(in) * (C_out / groups) * prod(kernel)``, plus a col2im scatter-add.

    Examples
    --------
{example}
"""

_SP = {1: "L", 2: "H, W", 3: "D, H, W"}
_KS = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}
_OSP = {1: "L_out", 2: "H_out, W_out", 3: "D_out, H_out, W_out"}

_CONV_EX = {
    1: """    >>> import numpy as np
    >>> from fastconv.nn import conv1d
    >>> x = np.arange(5.0).reshape(1, 1, 5)
    >>> conv1d(x, np.ones((1, 1, 3)), padding=1)
    array([[[1., 3., 6., 9., 7.]]])""",
    2: """    >>> import numpy as np
    >>> from fastconv.nn import conv2d
    >>> x = np.ones((1, 1, 4, 4))
    >>> conv2d(x, np.ones((2, 1, 3, 3)), padding='same')[0, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]])""",
    3: """    >>> import numpy as np
    >>> from fastconv.nn import conv3d
    >>> x = np.ones((2, 3, 4, 4, 4), dtype=np.float32)
    >>> conv3d(x, np.ones((5, 3, 3, 3, 3), dtype=np.float32), stride=2).shape
    (2, 5, 1, 1, 1)""",
}
_T_EX = {
    1: """    >>> import numpy as np
    >>> from fastconv.nn import conv_transpose1d
    >>> conv_transpose1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2)
    array([[[1., 1., 1., 1., 1., 1.]]])""",
    2: """    >>> import numpy as np
    >>> from fastconv.nn import conv_transpose2d
    >>> y = np.ones((1, 4, 8, 8), dtype=np.float32)
    >>> conv_transpose2d(y, np.ones((4, 2, 4, 4), dtype=np.float32), stride=2,
    ...                  padding=1).shape
    (1, 2, 16, 16)""",
    3: """    >>> import numpy as np
    >>> from fastconv.nn import conv_transpose3d
    >>> y = np.ones((2, 3, 2, 2, 2))
    >>> conv_transpose3d(y, np.ones((3, 1, 2, 2, 2)), stride=2, output_padding=1).shape
    (2, 1, 5, 5, 5)""",
}


def _make(nd):
    fname = f"conv{nd}d"

    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros", algorithm="auto"):
        return convnd(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                      algorithm, nd, fname)

    conv.__name__ = conv.__qualname__ = fname
    conv.__doc__ = _CONV_DOC.format(d=nd, sp=_SP[nd], ks=_KS[nd], osp=_OSP[nd],
                                    example=_CONV_EX[nd])
    tname = f"conv_transpose{nd}d"

    def conv_t(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
               dilation=1, algorithm="auto"):
        return conv_transposend(input, weight, bias, stride, padding, output_padding, groups,
                                dilation, algorithm, nd, tname)

    conv_t.__name__ = conv_t.__qualname__ = tname
    conv_t.__doc__ = _T_DOC.format(d=nd, sp=_SP[nd], ks=_KS[nd], osp=_OSP[nd],
                                   example=_T_EX[nd])
    return conv, conv_t


conv1d, conv_transpose1d = _make(1)
conv2d, conv_transpose2d = _make(2)
conv3d, conv_transpose3d = _make(3)
for _f in (conv1d, conv_transpose1d, conv2d, conv_transpose2d, conv3d, conv_transpose3d):
    _f.__module__ = "fastconv.nn"
