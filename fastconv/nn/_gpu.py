"""The engines of ``fastconv.nn`` on CuPy arrays (the GPU counterpart of ``_algorithms``).

Same contracts as :mod:`fastconv.nn._algorithms` and :mod:`fastconv.nn._gemm` (docs/
internals.md), every array a CuPy array of one float/complex dtype and every step written
against the array module ``xp`` the front detected (``fastconv._cupy.get_array_module``):

direct
    ``fastconv._cupy.correlate`` (CUDA kernels: depthwise, shared-memory tiles, N-D).
gemm
    ``fastconv._cupy.gemm_conv`` (im2col kernel + cuBLAS); transposed convolutions are
    ``fastconv._cupy.gemm_conv_adjoint`` (cuBLAS ``W_g^T @ y`` + one col2im kernel).
fft
    ``xp``-side port of the CPU FFT path: ``rfftn`` by cuFFT (``cupyx.scipy.fft``), a
    per-frequency channel ``matmul``, ``irfftn``.

Choice for ``algorithm='auto'`` (deliberately simple, no GPU cost model yet -- the GPU
constants in ``fastconv._plan.gpu_constants()`` are unmeasured estimates):

* forward: **direct** for depthwise layers (``C_in/groups == 1``) and thin layers (fewer
  than 4 output channels per group, or a reduction ``C_in/groups * prod(kernel)`` shorter
  than 16), where a GEMM would be a memory-bound matrix-vector product behind an im2col
  copy ``prod(kernel)`` times the input; **gemm** otherwise. FFT only when asked for.
* transposed / input gradient: **direct** on the same thin layers at stride 1, **gemm**
  (GEMM + col2im, no zero stuffing) otherwise.
* weight gradient: ``'direct'`` asks for the direct kernels with batch and channels
  swapped; everything else is **gemm** (``gemm_conv`` with the same role swap).

Nothing here copies to the host: all arrays stay on the device; shapes and the geometry
are Python ints.
"""
import math

from .. import _cupy

#: bytes of GEMM scratch (col2im columns) per batch chunk, as ``_cupy._GEMM_WORKSPACE``
WORKSPACE_BYTES = 256 << 20


def _nonneg_pad(x, pad):
    """Contract pad >= 0: a negative pad skips leading samples instead."""
    if any(p < 0 for p in pad):
        x = x[(Ellipsis, *[slice(-p, None) if p < 0 else slice(None) for p in pad])]
        pad = tuple(max(p, 0) for p in pad)
    return x, tuple(pad)


def _thin(cg, cog, kk):
    return cg == 1 or cog < 4 or cg * kk < 16


def choose(w_shape, groups):
    """'direct' or 'gemm' for a forward problem with weight ``w_shape`` (see module doc)."""
    cg, cog, kk = w_shape[1], w_shape[0] // groups, math.prod(w_shape[2:])
    return "direct" if _thin(cg, cog, kk) else "gemm"


# ----------------------------------------------------------------------------------------
# forward engines (contract of fastconv._core.correlate)
# ----------------------------------------------------------------------------------------
def direct(xp, x, w, out_spatial, stride, dilation, pad, groups):
    x, pad = _nonneg_pad(x, pad)
    x = xp.ascontiguousarray(x)
    w = xp.ascontiguousarray(w)
    out = xp.empty(x.shape[:1] + w.shape[:1] + tuple(out_spatial), dtype=x.dtype)
    _cupy.correlate(x, w, out, tuple(stride), tuple(dilation), pad, groups)
    return out


def gemm(xp, x, w, out_spatial, stride, dilation, pad, groups):
    # with ``out`` given, gemm_conv's pad is the zeros *before* each axis, as correlate's
    x, pad = _nonneg_pad(x, pad)
    out = xp.empty(x.shape[:1] + w.shape[:1] + tuple(out_spatial), dtype=x.dtype)
    return _cupy.gemm_conv(xp.ascontiguousarray(x), xp.ascontiguousarray(w), tuple(stride),
                           tuple(dilation), pad, groups, out=out)


def pad_input(xp, x, out_spatial, kernel, stride, dilation, pad):
    """``_gemm.pad_input`` on ``xp``: zero-pad so every tap of every output is inside."""
    x, pad = _nonneg_pad(x, pad)
    hi = [max(0, (o - 1) * s + d * (k - 1) + 1 - p - n)
          for o, s, d, k, p, n in zip(out_spatial, stride, dilation, kernel, pad, x.shape[2:])]
    if not any(pad) and not any(hi):
        return xp.ascontiguousarray(x)
    xpad = xp.zeros(x.shape[:2] + tuple(n + a + b for n, a, b in zip(x.shape[2:], pad, hi)),
                    dtype=x.dtype)
    xpad[(Ellipsis, *[slice(a, a + n) for a, n in zip(pad, x.shape[2:])])] = x
    return xpad


def fft(xp, x, w, out_spatial, stride, dilation, pad, groups):
    """Correlation by FFT: cuFFT transforms and a per-frequency channel GEMM (cuBLAS)."""
    fmod = _cupy._backend(xp).fft   # cupyx.scipy.fft on the GPU
    nd = x.ndim - 2
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = tuple(w.shape[2:])
    g = groups
    cg, cog = c // g, c_out // g
    if n == 0 or math.prod(out_spatial) == 0 or c_out == 0:
        return xp.zeros((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    o1 = tuple((o - 1) * s + 1 for o, s in zip(out_spatial, stride))
    xpad = pad_input(xp, x, o1, kernel, (1,) * nd, dilation, pad)
    kd = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    need = tuple(o + k - 1 for o, k in zip(o1, kd))
    xpad = xpad[(Ellipsis, *[slice(0, e) for e in need])]
    cplx = x.dtype.kind == "c"
    fshape = [int(fmod.next_fast_len(e, real=not cplx)) for e in need]
    wd = xp.zeros((c_out, cg) + kd, dtype=w.dtype)
    wd[(Ellipsis, *[slice(None, None, d) for d in dilation])] = w
    wd = wd[(Ellipsis, *[slice(None, None, -1)] * nd)]
    axes = tuple(range(2, 2 + nd))
    fwd = fmod.fftn if cplx else fmod.rfftn
    inv = fmod.ifftn if cplx else fmod.irfftn
    xf = fwd(xp.ascontiguousarray(xpad), s=fshape, axes=axes)      # (n, c, *F)
    wf = fwd(xp.ascontiguousarray(wd), s=fshape, axes=axes)        # (c_out, cg, *F)
    fsz = math.prod(xf.shape[2:])
    xt = xf.reshape(n, g, cg, fsz).transpose(1, 3, 2, 0)            # (g, F, cg, n)
    wt = wf.reshape(g, cog, cg, fsz).transpose(0, 3, 1, 2)          # (g, F, cog, cg)
    yf = xp.matmul(wt, xt)                                          # (g, F, cog, n)
    yf = xp.ascontiguousarray(yf.transpose(3, 0, 2, 1)).reshape((n, c_out) + xf.shape[2:])
    y = inv(yf, s=fshape, axes=axes)
    sl = tuple(slice(k - 1, k - 1 + (o - 1) * s + 1, s)
               for k, o, s in zip(kd, out_spatial, stride))
    return xp.ascontiguousarray(y[(Ellipsis, *sl)]).astype(x.dtype, copy=False)


_ENGINES = {"direct": direct, "gemm": gemm, "fft": fft}


def _no_winograd(algorithm):
    if algorithm == "winograd":
        raise ValueError("algorithm='winograd' is a CPU engine (fastconv/src/fc_winograd.h); "
                         "CuPy arrays take 'auto', 'direct', 'gemm' or 'fft'")


def correlate(xp, x, w, out_spatial, stride, dilation, pad, groups, algorithm="auto"):
    """Forward correlation on the GPU (contract of ``fastconv._core.correlate``)."""
    _no_winograd(algorithm)
    if algorithm == "auto":
        algorithm = choose(w.shape, groups)
    return _ENGINES[algorithm](xp, x, w, tuple(out_spatial), tuple(stride), tuple(dilation),
                               tuple(pad), groups)


# ----------------------------------------------------------------------------------------
# transposed convolution (adjoint in x)
# ----------------------------------------------------------------------------------------
def transposed_weight(xp, w, groups):
    """Weight of the correlation equal to the adjoint: swap in/out per group, flip taps."""
    c_out, cg = w.shape[:2]
    kernel = tuple(w.shape[2:])
    cog = c_out // groups
    wt = w.reshape((groups, cog, cg) + kernel).swapaxes(1, 2)
    wt = wt.reshape((groups * cg, cog) + kernel)
    return xp.ascontiguousarray(wt[(Ellipsis, *[slice(None, None, -1)] * len(kernel))])


def adjoint_gemm(xp, y, w, x_spatial, stride, dilation, pad, groups):
    """Transposed convolution by ``_cupy.gemm_conv_adjoint``: one batched cuBLAS GEMM
    (``W_g^T @ y``) and one col2im kernel that gathers every output element from its taps
    (before: a strided add per tap, prod(kernel) launches, plus a padded buffer and a
    crop)."""
    return _cupy.gemm_conv_adjoint(y, w, tuple(x_spatial), tuple(stride), tuple(dilation),
                                   tuple(pad), groups)


def correlate_adjoint(xp, y, w, x_spatial, stride, dilation, pad, groups, algorithm="auto"):
    """Adjoint of :func:`correlate` in ``x`` (transposed convolution) on the GPU."""
    _no_winograd(algorithm)
    nd = y.ndim - 2
    kernel = tuple(w.shape[2:])
    if algorithm == "auto":
        thin = _thin(w.shape[0] // groups, w.shape[1], math.prod(kernel))
        algorithm = "direct" if thin and all(s == 1 for s in stride) else "gemm"
    if algorithm == "gemm":
        return adjoint_gemm(xp, y, w, x_spatial, stride, dilation, pad, groups)
    n, c_out = y.shape[:2]
    if any(s > 1 for s in stride):
        ys = xp.zeros((n, c_out) + tuple((o - 1) * s + 1 for o, s in zip(y.shape[2:], stride)),
                      dtype=y.dtype)
        ys[(Ellipsis, *[slice(None, None, s) for s in stride])] = y
    else:
        ys = y
    wt = transposed_weight(xp, w, groups)
    pad2 = tuple(d * (k - 1) - p for d, k, p in zip(dilation, kernel, pad))
    return _ENGINES[algorithm](xp, ys, wt, tuple(x_spatial), (1,) * nd, tuple(dilation),
                               pad2, groups)


# ----------------------------------------------------------------------------------------
# weight gradient
# ----------------------------------------------------------------------------------------
def correlate_weight(xp, x, gy, kernel, stride, dilation, pad, groups, algorithm="auto"):
    """Weight gradient: ``gw[co, ci, k] = sum_{n,o} x[n, ci, k*d + o*s - p] gy[n, co, o]``.

    A correlation with batch and channels swapped (stride and dilation swap too), one per
    group: ``_cupy.correlate`` for ``algorithm='direct'``, ``_cupy.gemm_conv`` otherwise.
    """
    c = x.shape[1]
    c_out = gy.shape[1]
    cg, cog = c // groups, c_out // groups
    kernel = tuple(kernel)
    gw = xp.empty((c_out, cg) + kernel, dtype=x.dtype)
    x, pad = _nonneg_pad(x, tuple(pad))
    for g in range(groups):
        xs = xp.ascontiguousarray(x[:, g * cg:(g + 1) * cg].swapaxes(0, 1))    # (cg, N, S)
        ws = xp.ascontiguousarray(gy[:, g * cog:(g + 1) * cog].swapaxes(0, 1))  # (cog, N, O)
        r = xp.empty((cg, cog) + kernel, dtype=x.dtype)
        if algorithm == "direct":
            _cupy.correlate(xs, ws, r, tuple(dilation), tuple(stride), pad, 1)
        else:
            _cupy.gemm_conv(xs, ws, tuple(dilation), tuple(stride), pad, 1, out=r)
        gw[g * cog:(g + 1) * cog] = r.swapaxes(0, 1)
    return gw


# ----------------------------------------------------------------------------------------
# pointwise (1x1)
# ----------------------------------------------------------------------------------------
def pointwise(xp, x, w, out_spatial, stride, groups, shuffle=False):
    """1x1 convolution by ``_cupy.gemm_conv`` (a batched cuBLAS GEMM, no im2col at stride
    1); ``shuffle`` then channel-shuffles the result (one extra copy on the GPU)."""
    n = x.shape[0]
    c_out = w.shape[0]
    nd = x.ndim - 2
    out = xp.empty((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    _cupy.gemm_conv(xp.ascontiguousarray(x), xp.ascontiguousarray(w), tuple(stride),
                    (1,) * nd, (0,) * nd, groups, out=out)
    if shuffle:
        r = out.reshape((n, groups, c_out // groups) + tuple(out_spatial)).swapaxes(1, 2)
        out = xp.ascontiguousarray(r).reshape(out.shape)
    return out
