"""Argument checking and convolution arithmetic for the PyTorch-semantics front.

Everything here is pure Python on shapes: it turns a user's ``(input, weight, bias, stride,
padding, dilation, groups, padding_mode)`` into one small problem description and raises
``ValueError`` (naming the argument) for every configuration PyTorch rejects, ``TypeError``
for arrays that are not numeric.

Dtype policy of ``fastconv.nn`` (PyTorch computes only in floating point):

=====================  ===============  ============
inputs (result_type)   computed in      returned as
=====================  ===============  ============
float32                float32          float32
float64                float64          float64
float16                float32          float16
complex64 / 128        itself           itself
bool / integer         float64          float64
longdouble             float64          float64
=====================  ===============  ============
"""
import operator

import math

import numpy as np

from .. import _config

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
ALGORITHMS = ("auto", "direct", "gemm", "fft", "winograd")


# ----------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------
def as_array(a, name, xp=np):
    """``xp.asarray`` (numpy, or cupy on the GPU path) plus the numeric-dtype check
    (TypeError otherwise)."""
    a = xp.asarray(a)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype, got dtype {a.dtype}")
    return a


def dtypes(*arrays):
    """(compute dtype, result dtype) for the arrays of one call (see module docstring)."""
    rt = np.result_type(*[a.dtype for a in arrays if a is not None])
    if rt.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if rt.kind == "f":
        if rt.itemsize <= 4:
            return np.dtype(np.float32), rt
        if rt.itemsize == 8:
            return rt, rt
        return np.dtype(np.float64), np.dtype(np.float64)
    if rt.itemsize > 16:
        return np.dtype(np.complex128), np.dtype(np.complex128)
    return rt, rt


# ----------------------------------------------------------------------------------------
# integer tuples
# ----------------------------------------------------------------------------------------
def _as_int(v, name):
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name} must be an int or a tuple of ints, got {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an int or a tuple of ints, got {v!r}") from None


def ntuple(v, nd, name):
    """``v`` (int or sequence of ``nd`` ints) as a tuple of ``nd`` Python ints."""
    if isinstance(v, (list, tuple, np.ndarray)):
        v = tuple(v)
        if len(v) == 1 and nd != 1:
            v = v * nd
        if len(v) != nd:
            raise ValueError(
                f"expected {name} to be a single integer value or a list of {nd} values "
                f"to match the convolution dimensions, but got {name}={list(v)}")
        return tuple(_as_int(e, name) for e in v)
    return (_as_int(v, name),) * nd


def positive(v, nd, name):
    t = ntuple(v, nd, name)
    if any(e <= 0 for e in t):
        raise ValueError(f"non-positive {name} is not supported, got {name}={t}")
    return t


def nonnegative(v, nd, name):
    t = ntuple(v, nd, name)
    if any(e < 0 for e in t):
        raise ValueError(f"negative {name} is not supported, got {name}={t}")
    return t


def check_groups(groups):
    g = _as_int(groups, "groups")
    if g <= 0:
        raise ValueError(f"non-positive groups is not supported, got groups={g}")
    return g


def check_algorithm(algorithm):
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


# ----------------------------------------------------------------------------------------
# output sizes
# ----------------------------------------------------------------------------------------
def conv_out_size(n, k, stride, pad_lo, pad_hi, dilation):
    """Output length of a strided, dilated correlation of length ``n`` with ``k`` taps."""
    return (n + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_out_size(n, k, stride, padding, output_padding, dilation):
    """Output length of a transposed convolution (PyTorch's formula)."""
    return (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def same_padding(kernel, dilation):
    """PyTorch's 'same' split: total ``d*(k-1)``, the smaller half before."""
    lo = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    hi = tuple(d * (k - 1) - a for k, d, a in zip(kernel, dilation, lo))
    return lo, hi


def padding_pair(padding, nd, kernel, stride, dilation):
    """(pad_lo, pad_hi) tuples for ``padding`` (int, tuple, 'valid' or 'same')."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
            return same_padding(kernel, dilation)
        raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                         "{'valid', 'same'} (padding)")
    p = nonnegative(padding, nd, "padding")
    return p, p


# ----------------------------------------------------------------------------------------
# input / weight / bias layout
# ----------------------------------------------------------------------------------------
def check_input(x, nd, fname):
    """Return (x with a batch axis, batched?) for an ``nd``-spatial-dim convolution."""
    if x.ndim == nd + 2:
        return x, True
    if x.ndim == nd + 1:
        return x[None], False
    raise ValueError(f"{fname}: expected input to be {nd + 1}-D (unbatched) or {nd + 2}-D "
                     f"(batched), but got input of shape {x.shape}")


def check_weight(w, nd, fname):
    if w.ndim != nd + 2:
        raise ValueError(f"{fname}: expected weight to be {nd + 2}-D, got weight of shape "
                         f"{w.shape}")
    if any(s == 0 for s in w.shape[2:]):
        raise ValueError(f"{fname}: weight has a zero-size kernel axis: {w.shape}")


def check_bias(bias, c_out, fname):
    if bias is None:
        return None
    if bias.shape != (c_out,):
        raise ValueError(f"{fname}: expected bias of shape ({c_out},), got {bias.shape}")
    return bias


def _frozen(v):
    """A hashable key that tells apart everything the validators tell apart (True from 1,
    1.0 from 1, numpy integers from ints); None when ``v`` is of another kind."""
    t = type(v)
    if t is int or t is str or t is bool or t is float or isinstance(v, np.integer):
        return (t, v)
    if t is tuple:
        parts = tuple(_frozen(e) for e in v)
        return None if None in parts else (t, parts)
    return None


#: Validated conv_params results by their arguments (a training loop validates the same few
#: layers at every step: the validation was ~4 of the ~19 us of a tiny conv2d call).
_PARAMS_MEMO = {}


def conv_params(x, w, stride, padding, dilation, groups, padding_mode, nd, fname):
    """Validate a forward convolution; return the normalised problem.

    Returns ``(stride, dilation, pad_lo, pad_hi, groups, out_spatial)`` where ``x`` is
    already batched and ``pad_lo``/``pad_hi`` are the paddings applied (by zeros or by the
    padding mode) before and after each spatial axis. Arguments that passed once are
    remembered (only a successful validation is; an invalid one raises every time).
    """
    args = (stride, padding, dilation, groups, padding_mode)
    fz = tuple(_frozen(a) for a in args)
    key = None if None in fz else (x.shape, w.shape, nd, fname) + fz
    if key is not None:
        hit = _PARAMS_MEMO.get(key)
        if hit is not None:
            return hit
    r = _conv_params(x, w, stride, padding, dilation, groups, padding_mode, nd, fname)
    if key is not None:
        if len(_PARAMS_MEMO) >= 4096:
            _PARAMS_MEMO.clear()
        _PARAMS_MEMO[key] = r
    return r


def _check_nonempty(x, w, fname, transposed=False):
    """torch's refusals of empty operands: an input with an empty spatial axis (zero batch
    or zero channels are accepted), a weight with no rows (dimension 0), and a transposed
    convolution's weight with no output channels (dimension 1)."""
    if any(s == 0 for s in x.shape[2:]):
        raise ValueError(f"{fname}: only zero batch or zero channel inputs are supported, "
                         f"got input of shape {tuple(x.shape)} (input)")
    if w.shape[0] == 0:
        raise ValueError(f"{fname}: expected weight to be at least 1 at dimension 0, got "
                         f"weight of shape {tuple(w.shape)} (weight)")
    if transposed and w.shape[1] == 0:
        raise ValueError(f"{fname}: expected a non-empty weight, got weight of shape "
                         f"{tuple(w.shape)} (weight.shape[1], output channels per group, "
                         "is 0)")


def _conv_params(x, w, stride, padding, dilation, groups, padding_mode, nd, fname):
    check_weight(w, nd, fname)
    _check_nonempty(x, w, fname)
    stride = positive(stride, nd, "stride")
    dilation = positive(dilation, nd, "dilation")
    groups = check_groups(groups)
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    c_in = x.shape[1]
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    if c_in % groups:
        raise ValueError(f"{fname}: input channels ({c_in}) must be divisible by groups "
                         f"({groups})")
    if c_out % groups:
        raise ValueError(f"{fname}: output channels (weight.shape[0] = {c_out}) must be "
                         f"divisible by groups ({groups})")
    if cg * groups != c_in:
        raise ValueError(f"{fname}: weight of shape {w.shape} expects {cg * groups} input "
                         f"channels (weight.shape[1] * groups), but input has {c_in} "
                         "channels (input/weight)")
    lo, hi = padding_pair(padding, nd, kernel, stride, dilation)
    spatial = x.shape[2:]
    if padding_mode != "zeros":
        for n, a, b in zip(spatial, lo, hi):
            if padding_mode == "reflect" and (a >= n or b >= n):
                raise ValueError(f"padding ({a}, {b}) must be smaller than the input size "
                                 f"({n}) for padding_mode='reflect'")
            if padding_mode == "circular" and (a > n or b > n):
                raise ValueError(f"padding ({a}, {b}) must not exceed the input size ({n}) "
                                 "for padding_mode='circular'")
            if padding_mode == "replicate" and n == 0 and (a or b):
                raise ValueError("padding_mode='replicate' needs a non-empty input axis")
    out = []
    for n, k, s, a, b, d in zip(spatial, kernel, stride, lo, hi, dilation):
        if n + a + b < d * (k - 1) + 1:
            raise ValueError(
                f"{fname}: kernel size (dilated: {d * (k - 1) + 1}) can't be greater than "
                f"the padded input size ({n + a + b}) (weight/padding)")
        out.append(conv_out_size(n, k, s, a, b, d))
    return stride, dilation, lo, hi, groups, tuple(out)


def transpose_params(x, w, stride, padding, output_padding, groups, dilation, nd, fname):
    """Validate a transposed convolution; return
    ``(stride, dilation, padding, groups, c_out, out_spatial)``."""
    check_weight(w, nd, fname)
    _check_nonempty(x, w, fname, transposed=True)
    stride = positive(stride, nd, "stride")
    dilation = positive(dilation, nd, "dilation")
    groups = check_groups(groups)
    if isinstance(padding, str):
        raise ValueError(f"{fname}: padding must be an int or a tuple of ints for transposed "
                         f"convolutions, got {padding!r}")
    padding = nonnegative(padding, nd, "padding")
    output_padding = nonnegative(output_padding, nd, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if not (op < s or op < d):
            raise ValueError(f"output_padding ({output_padding}) must be smaller than either "
                             f"stride ({stride}) or dilation ({dilation})")
    c_in = x.shape[1]
    if w.shape[0] != c_in:
        raise ValueError(f"{fname}: weight of shape {w.shape} expects {w.shape[0]} input "
                         f"channels (weight.shape[0]), but input has {c_in} (input/weight)")
    if c_in % groups:
        raise ValueError(f"{fname}: input channels ({c_in}) must be divisible by groups "
                         f"({groups})")
    out = tuple(conv_transpose_out_size(n, k, s, p, op, d) for n, k, s, p, op, d in
                zip(x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation))
    if any(o <= 0 for o in out):
        raise ValueError(f"{fname}: computed output size {out} is non-positive "
                         "(padding too large for this input)")
    return stride, dilation, padding, groups, w.shape[1] * groups, out


def check_result_memory(xp, result_shape, operand, dtype, fname):
    """MemoryError naming the size, before anything is allocated, when a NumPy result of
    ``result_shape`` and a working copy of ``operand`` (the zero-padded input or the
    converted operands every engine makes), both in ``dtype``, cannot fit in memory."""
    if xp is not np:
        return       # device memory: CuPy's allocator reports it
    n = (float(math.prod(result_shape)) + float(operand.size)) * np.dtype(dtype).itemsize
    if n < _config.CHECK_ALLOC_FROM:
        return       # (the message below took 2 of a tiny call's ~35 us to format)
    _config.check_alloc(n, f"{fname}: a result of shape {tuple(result_shape)} "
                           f"and a copy of the {tuple(operand.shape)} operand")

