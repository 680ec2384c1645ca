"""Gradients of the convolutions, as ``torch.nn.grad``.

``convNd_input`` is the gradient with respect to the input: a transposed convolution of
``grad_output`` (the adjoint of the forward map). ``convNd_weight`` is the gradient with
respect to the weight: the correlation of the input with ``grad_output``, summed over the
batch (one batched GEMM over im2col patches, or ``fastconv._core`` with the roles of
batch and channels swapped).
"""
import math

import numpy as np

from . import _algorithms, _gemm, _shapes
from ._functional import array_module

__all__ = ["conv1d_input", "conv2d_input", "conv3d_input",
           "conv1d_weight", "conv2d_weight", "conv3d_weight"]


def _size(size, name):
    try:
        return tuple(_shapes._as_int(s, name) for s in size)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of ints, got {size!r}") from None


def _common(gy, weight_shape, stride, padding, dilation, groups, nd, fname):
    if len(weight_shape) != nd + 2:
        raise ValueError(f"{fname}: expected weight to be {nd + 2}-D, got shape "
                         f"{weight_shape}")
    kernel = tuple(weight_shape[2:])
    stride = _shapes.positive(stride, nd, "stride")
    dilation = _shapes.positive(dilation, nd, "dilation")
    groups = _shapes.check_groups(groups)
    lo, _ = _shapes.padding_pair(padding, nd, kernel, stride, dilation)
    return kernel, stride, dilation, lo, groups


def _check_out(x_shape, w_shape, gy, stride, dilation, padding, groups, nd, fname):
    """Validate the forward problem ``x_shape * w_shape -> gy`` (batched shapes)."""
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1), x_shape, (0,) * len(x_shape))
    wdummy = np.lib.stride_tricks.as_strided(np.zeros(1), w_shape, (0,) * len(w_shape))
    _, _, lo, _, _, out = _shapes.conv_params(dummy, wdummy, stride, padding, dilation,
                                              groups, "zeros", nd, fname)
    want = (x_shape[0], w_shape[0]) + tuple(out)
    if tuple(gy.shape) != want:
        raise ValueError(f"{fname}: grad_output has shape {gy.shape}, but the convolution "
                         f"of input {x_shape} with weight {w_shape} gives {want} "
                         "(grad_output)")
    return lo


def _input(input_size, weight, grad_output, stride, padding, dilation, groups, algorithm, nd):
    fname = f"conv{nd}d_input"
    xp = array_module(weight, grad_output, names=("weight", "grad_output"))
    w = _shapes.as_array(weight, "weight", xp)
    gy = _shapes.as_array(grad_output, "grad_output", xp)
    _shapes.check_algorithm(algorithm)
    cdt, rdt = _shapes.dtypes(w, gy)
    size = _size(input_size, "input_size")
    if len(size) not in (nd + 1, nd + 2):
        raise ValueError(f"{fname}: input_size must have {nd + 1} or {nd + 2} entries, got "
                         f"{size}")
    batched = len(size) == nd + 2
    if gy.ndim != nd + 1 + batched:
        raise ValueError(f"{fname}: grad_output has {gy.ndim} dimensions, expected "
                         f"{nd + 1 + batched} (grad_output)")
    if not batched:
        size = (1,) + size
        gy = gy[None]
    _shapes.check_weight(w, nd, fname)
    _common(gy, w.shape, stride, padding, dilation, groups, nd, fname)
    lo = _check_out(size, w.shape, gy, stride, dilation, padding, groups, nd, fname)
    stride = _shapes.positive(stride, nd, "stride")
    dilation = _shapes.positive(dilation, nd, "dilation")
    _shapes.check_result_memory(xp, size, gy, cdt, fname)
    gy = xp.ascontiguousarray(gy, dtype=cdt)
    w = xp.ascontiguousarray(w, dtype=cdt)
    gx = _algorithms.correlate_adjoint(gy, w, size[2:], stride, dilation, lo, groups,
                                       algorithm, xp=xp)
    with np.errstate(over="ignore"):   # float16 past 65504: +-inf, as torch's
        gx = gx.astype(rdt, copy=False)
    return gx if batched else gx[0]


def _weight(input, weight_size, grad_output, stride, padding, dilation, groups, algorithm, nd):
    fname = f"conv{nd}d_weight"
    xp = array_module(input, grad_output, names=("input", "grad_output"))
    x = _shapes.as_array(input, "input", xp)
    gy = _shapes.as_array(grad_output, "grad_output", xp)
    _shapes.check_algorithm(algorithm)
    if algorithm == "winograd":   # no Winograd form of the weight gradient
        algorithm = "auto"
    cdt, rdt = _shapes.dtypes(x, gy)
    wsize = _size(weight_size, "weight_size")
    x, batched = _shapes.check_input(x, nd, fname)
    if not batched:
        gy = gy[None]
    if gy.ndim != nd + 2:
        raise ValueError(f"{fname}: grad_output has {gy.ndim - 1 + batched} dimensions, "
                         f"expected {nd + 1 + batched} (grad_output)")
    kernel, stride, dilation, lo, groups = _common(gy, wsize, stride, padding, dilation,
                                                   groups, nd, fname)
    _check_out(x.shape, wsize, gy, stride, dilation, padding, groups, nd, fname)
    if math.prod(wsize) == 0:   # an empty weight (no input or output channels)
        return xp.zeros(tuple(wsize), dtype=rdt)
    x = xp.ascontiguousarray(x, dtype=cdt)
    gy = xp.ascontiguousarray(gy, dtype=cdt)
    if xp is not np:
        from . import _gpu
        gw = _gpu.correlate_weight(xp, x, gy, kernel, stride, dilation, lo, groups, algorithm)
    elif (algorithm in ("auto", "direct") and cdt == np.float32 and nd in (1, 2, 3)
          and groups == x.shape[1] and groups > 1 and wsize[1] == 1
          and all(p >= 0 for p in lo)
          and hasattr(_algorithms._core, "depthwise2d_wgrad_f32")
          and (nd < 3 or hasattr(_algorithms._core, "depthwise3d_wgrad_f32"))
          and math.prod(kernel) <= 1024):
        gw = _weight_depthwise(x, gy, kernel, stride, dilation, lo)
    elif (algorithm in ("auto", "gemm") and _gemm.have_fused(cdt, nd)
          and hasattr(_gemm._cgemm, "conv_wgrad_f32")
          and (_gemm._cgemm.conv_gemm_avx2()
               or not _pointwise_unit(x, gy, kernel, stride, lo))):
        gw = _gemm.correlate_weight_fused(x, gy, kernel, stride, dilation, lo, groups)
    elif (_algorithms._HAVE_CORE and cdt.kind == "f"
          and (algorithm == "direct" or (algorithm == "auto" and _direct_weight_pays(
              wsize[1], kernel)))):
        gw = _weight_direct(x, gy, kernel, stride, dilation, lo, groups)
    else:
        gw = _gemm.correlate_weight(x, gy, kernel, stride, dilation, lo, groups)
    with np.errstate(over="ignore"):
        return gw.astype(rdt, copy=False)


def _pointwise_unit(x, gy, kernel, stride, pad):
    """1x1, unit stride, no padding: the BLAS route needs no patch matrix at all (one GEMM
    per image and group on x itself), faster than the fused engine's explicit form, which
    packs one (measured 3.8 vs 5.5 ms on MobileNetV2's 144 -> 24 layer); the implicit form
    (AVX2 CPUs) packs nothing and took 2.4 ms."""
    return (math.prod(kernel) == 1 and all(s == 1 for s in stride) and not any(pad)
            and tuple(x.shape[2:]) == tuple(gy.shape[2:]))


def _direct_weight_pays(cg, kernel):
    """'auto' for the weight gradient: the direct engine (roles swapped) for short
    reductions, where the GEMM route's im2col copy outweighs its arithmetic (measured on a
    2-core AVX2 machine, float32: LeNet conv1 1.3 vs 5.4 ms, 16 -> 32 5x5 on 28x28 x8
    3.7 vs 5.6 ms; AlexNet conv2 (48 x 5x5 per group) 94 vs 60 ms the other way)."""
    kk = math.prod(kernel)
    return kk > 1 and cg * kk <= 512


def _weight_depthwise(x, gy, kernel, stride, dilation, pad):
    """Depthwise (groups = C_in) float32 weight gradient on the dedicated kernel
    (``fastconv._core.depthwise2d_wgrad_f32`` / ``depthwise3d_wgrad_f32``: one task per
    channel)."""
    from .. import _config
    nt = max(1, min(_config.get_num_threads(), (gy.size * math.prod(kernel)) >> 18))
    c_out = gy.shape[1]
    if x.ndim == 5:
        gw = np.empty((c_out,) + tuple(kernel), dtype=np.float32)
        _algorithms._core.depthwise3d_wgrad_f32(
            np.ascontiguousarray(x), np.ascontiguousarray(gy), gw, tuple(stride),
            tuple(dilation), tuple(pad), nt)
        return gw.reshape((c_out, 1) + tuple(kernel))
    one = x.ndim == 3  # 1-D: planes of one row
    ext = (1,) if one else ()
    x4 = x[:, :, None] if one else x
    g4 = gy[:, :, None] if one else gy
    gw = np.empty((c_out,) + ext + tuple(kernel), dtype=np.float32)
    _algorithms._core.depthwise2d_wgrad_f32(
        np.ascontiguousarray(x4), np.ascontiguousarray(g4), gw, ext + tuple(stride),
        ext + tuple(dilation), (0,) * len(ext) + tuple(pad), nt)
    return gw.reshape((c_out, 1) + tuple(kernel))


def _weight_direct(x, gy, kernel, stride, dilation, pad, groups):
    """Weight gradient on ``fastconv._core``: batch and channels swap roles, and stride and
    dilation swap too: ``gw[co, ci, k] = sum_{n,o} x[n, ci, k*d + o*s - p] gy[n, co, o]``."""
    c = x.shape[1]
    c_out = gy.shape[1]
    cg, cog = c // groups, c_out // groups
    gw = np.empty((c_out, cg) + tuple(kernel), dtype=x.dtype)
    for g in range(groups):
        xs = np.ascontiguousarray(x[:, g * cg:(g + 1) * cg].swapaxes(0, 1))
        ws = np.ascontiguousarray(gy[:, g * cog:(g + 1) * cog].swapaxes(0, 1))
        r = _algorithms.direct(xs, ws, kernel, dilation, stride, pad, 1)  # (cg, cog, *K)
        gw[g * cog:(g + 1) * cog] = r.swapaxes(0, 1)
    return gw


_IN_DOC = """Gradient of ``conv{d}d`` with respect to its input (``torch.nn.grad.conv{d}d_input``).

    Parameters
    ----------
    input_size : sequence of ints
        Shape of the forward input, ``(N, C_in, {sp})`` (or unbatched ``(C_in, {sp})``).
    weight : array_like, shape (C_out, C_in / groups, {ks})
    grad_output : array_like, shape (N, C_out, {osp})
        Gradient of the loss with respect to the forward output.
    stride, padding, dilation, groups
        As in the forward ``conv{d}d`` (``padding`` may be 'valid' or 'same').
    algorithm : {{'auto', 'direct', 'gemm', 'fft', 'winograd'}}, default 'auto'
        As for ``conv_transpose{d}d`` (the input gradient is that transposed convolution).

    Returns
    -------
    ndarray of shape ``input_size``

    See Also
    --------
    torch.nn.grad.conv{d}d_input, fastconv.nn.conv_transpose{d}d

    Notes
    -----
    A transposed convolution: the same multiply-adds as the forward pass.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn.grad import conv{d}d_input
    >>> w = np.ones((2, 3) + (3,) * {d})
    >>> gy = np.ones((1, 2) + (2,) * {d})
    >>> conv{d}d_input((1, 3) + (4,) * {d}, w, gy).shape == (1, 3) + (4,) * {d}
    True
"""

_W_DOC = """Gradient of ``conv{d}d`` with respect to its weight (``torch.nn.grad.conv{d}d_weight``).

    Parameters
    ----------
    input : array_like, shape (N, C_in, {sp})
        The forward input.
    weight_size : sequence of ints
        ``(C_out, C_in / groups, {ks})``.
    grad_output : array_like, shape (N, C_out, {osp})
    stride, padding, dilation, groups
        As in the forward ``conv{d}d``.
    algorithm : {{'auto', 'direct', 'gemm', 'fft', 'winograd'}}, default 'auto'
        'direct' uses ``fastconv._core`` (batch and channel roles swapped) when built;
        the others use im2col + one GEMM per group and tile ('winograd' has no weight
        gradient form: it runs as 'auto').

    Returns
    -------
    ndarray of shape ``weight_size``

    See Also
    --------
    torch.nn.grad.conv{d}d_weight

    Notes
    -----
    Cost: the forward multiply-adds, plus the im2col copy of the input.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn.grad import conv{d}d_weight
    >>> x = np.ones((1, 3) + (4,) * {d})
    >>> gy = np.ones((1, 2) + (2,) * {d})
    >>> conv{d}d_weight(x, (2, 3) + (3,) * {d}, gy)[0, 0].ravel()[:3]
    array([{v}, {v}, {v}])
"""

_SP = {1: "L", 2: "H, W", 3: "D, H, W"}
_KS = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}
_OSP = {1: "L_out", 2: "H_out, W_out", 3: "D_out, H_out, W_out"}


def _make(nd):
    def gin(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
            algorithm="auto"):
        return _input(input_size, weight, grad_output, stride, padding, dilation, groups,
                      algorithm, nd)

    def gw(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1,
           algorithm="auto"):
        return _weight(input, weight_size, grad_output, stride, padding, dilation, groups,
                       algorithm, nd)

    fmt = dict(d=nd, sp=_SP[nd], ks=_KS[nd], osp=_OSP[nd], v=f"{2 ** nd}.")
    gin.__name__ = gin.__qualname__ = f"conv{nd}d_input"
    gw.__name__ = gw.__qualname__ = f"conv{nd}d_weight"
    gin.__doc__ = _IN_DOC.format(**fmt)
    gw.__doc__ = _W_DOC.format(**fmt)
    gin.__module__ = gw.__module__ = __name__
    return gin, gw


conv1d_input, conv1d_weight = _make(1)
conv2d_input, conv2d_weight = _make(2)
conv3d_input, conv3d_weight = _make(3)
