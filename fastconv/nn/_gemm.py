"""GEMM engines: float32 on the fused im2col+GEMM engine (``fastconv._gemm.conv_gemm_f32`` /
``conv_wgrad_f32``, fastconv/src/fc_cgemm.h: no patch matrix at all), other dtypes on
im2col / col2im + BLAS (``numpy.matmul`` on OpenBLAS releases the GIL).

Contracts (the same as ``fastconv._core.correlate``, see docs/internals.md), on C-contiguous
arrays of one float/complex dtype, any number of spatial axes:

``correlate(x, w, out_spatial, stride, dilation, pad, groups)``
    ``out[n, co, o] = sum_{ci, k} x[n, g*Cg + ci, o*stride + k*dilation - pad] * w[co, ci, k]``
    with ``x`` read as zero outside ``[0, S)``.
``correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups)``
    the adjoint (transpose) of ``correlate`` with respect to ``x``: a transposed convolution.
``correlate_weight(x, gy, kernel, stride, dilation, pad, groups)``
    the adjoint of ``correlate`` with respect to ``w``: the weight gradient.

Scratch (the im2col matrix) is tiled over images and, when one image alone is larger, over
the first output axis, so it never exceeds ``SCRATCH_BYTES`` (256 MiB) beyond the input,
weight and output (and the zero-padded copy of the input, when padding is asked for); the
fused engine's own copies (padded / phase-split input, packed grad_output) are bounded the
same way by processing blocks of images.
"""
import math
import threading

import numpy as np

from .. import _config

SCRATCH_BYTES = 256 << 20
# the tile size aimed at: big enough for BLAS to run at full speed, small enough to stay
# in the last-level cache between the im2col copy and the GEMM that reads it
TILE_BYTES = 8 << 20

from .._pool import empty as result_empty   # large results: reused, page-aligned buffers

try:  # optional compiled helpers (fastconv/_gemm.pyx)
    from .. import _gemm as _cgemm
except ImportError:  # pragma: no cover - pure NumPy fallback
    _cgemm = None


def _prod(t):
    return math.prod(t)


# ----------------------------------------------------------------------------------------
# threads: work split into chunks run by a pool whose workers make single-threaded BLAS
# calls (OpenBLAS ``openblas_set_num_threads_local``), scheduled dynamically, so that the
# im2col copies run in parallel too and one slow core does not stall a whole GEMM
# ----------------------------------------------------------------------------------------
_pools = {}
_pool_lock = threading.Lock()
_blas_local = False  # unknown yet; None: not available


def _find_blas_local():
    global _blas_local
    if _blas_local is not False:
        return _blas_local
    _blas_local = None
    try:
        import ctypes
        import glob
        import os
        libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
        for path in glob.glob(os.path.join(libdir, "*openblas*")):
            f = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
            if f is not None:
                f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
                _blas_local = f
                break
    except Exception:  # noqa: BLE001 - no thread-local BLAS control: no pool
        _blas_local = None
    return _blas_local


def _pool(nthreads):
    """A pool of ``nthreads`` workers with single-threaded BLAS (None if not possible)."""
    if nthreads < 2 or _find_blas_local() is None:
        return None
    with _pool_lock:
        pool = _pools.get(nthreads)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(nthreads, thread_name_prefix="fastconv-gemm",
                                      initializer=_blas_local, initargs=(1,))
            _pools[nthreads] = pool
    return pool


def _nthreads(work_macs):
    from .._config import get_num_threads
    nt = get_num_threads()
    return 1 if work_macs < (4 << 20) else nt


def _run_chunks(fn, chunks, nthreads):
    """Run ``fn(chunk)`` for every chunk, on the pool when it pays off.

    The calling thread takes chunks too (with single-threaded BLAS for the while), beside
    ``nthreads - 1`` pool workers, all pulling from one shared list: only the helpers need
    waking, and the caller is not left waiting to be woken at the end. (Measured, quiet
    2-core machine: a sleeping-caller pool lost 1.5-6 ms per call right after another
    runtime's spinning threads, e.g. torch's OpenMP team.)"""
    pool = _pool(nthreads) if len(chunks) > 1 else None
    if pool is None:
        for ch in chunks:
            fn(ch)
        return
    it = iter(chunks)
    lock = threading.Lock()
    end = object()

    err_state = np.geterr()   # numpy's error handling is per thread: the caller's for all

    def drain():
        with np.errstate(**err_state):
            while True:
                with lock:
                    ch = next(it, end)
                if ch is end:
                    return
                fn(ch)
    futs = [pool.submit(drain) for _ in range(min(nthreads, len(chunks)) - 1)]
    set_local = _find_blas_local()
    prev = set_local(1)
    try:
        drain()
    finally:
        set_local(prev)
        for f in futs:
            f.exception()  # wait for the helpers whatever happened here
    for f in futs:
        f.result()


def pad_input(x, out_spatial, kernel, stride, dilation, pad):
    """Zero-pad ``x`` so every tap of every output position lies inside it.

    Returns the padded array (``x`` itself, made contiguous, when no padding is needed):
    tap ``o*stride + k*dilation`` of the result is tap ``o*stride + k*dilation - pad`` of
    ``x``. A negative ``pad`` skips leading samples.
    """
    nd = len(kernel)
    if any(p < 0 for p in pad):
        x = x[(Ellipsis, *[slice(-p, None) if p < 0 else slice(None) for p in pad])]
        pad = tuple(max(p, 0) for p in pad)
    lo, hi = [], []
    for i in range(nd):
        n = x.shape[2 + i]
        need = (out_spatial[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        lo.append(pad[i])
        hi.append(max(0, need - pad[i] - n))
    if not any(lo) and not any(hi):
        return np.ascontiguousarray(x)
    xp = np.zeros(x.shape[:2] + tuple(s + a + b for s, a, b in zip(x.shape[2:], lo, hi)),
                  dtype=x.dtype)
    xp[(Ellipsis, *[slice(a, a + s) for a, s in zip(lo, x.shape[2:])])] = x
    return xp


def _patch_view(xp, groups, kernel, out_spatial, stride, dilation):
    """Strided view ``(N, G, Cg, *K, *O)`` of the padded input: the im2col matrix."""
    n, c = xp.shape[:2]
    nd = len(kernel)
    cg = c // groups
    st = xp.strides
    sp = st[2:]
    shape = (n, groups, cg) + tuple(kernel) + tuple(out_spatial)
    strides = ((st[0], cg * st[1], st[1]) + tuple(d * s for d, s in zip(dilation, sp))
               + tuple(t * s for t, s in zip(stride, sp)))
    assert len(shape) == 3 + 2 * nd
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def _tiles(n, per_image, out0, budget=None, min_tiles=1):
    """Yield (image slice, first-output-axis slice) tiles of at most ``budget`` bytes
    (and at least ``min_tiles`` of them where the problem allows)."""
    budget = TILE_BYTES if budget is None else budget
    if min_tiles > 1:
        budget = min(budget, max(1, n * per_image // min_tiles))
    if per_image <= budget:
        nb = max(1, min(n, budget // max(per_image, 1)))
        for i in range(0, n, nb):
            yield slice(i, min(n, i + nb)), slice(None)
    else:
        rows = max(1, int(out0 * min(budget, SCRATCH_BYTES) // per_image))
        for i in range(n):
            for r in range(0, out0, rows):
                yield slice(i, i + 1), slice(r, min(out0, r + rows))


def im2col(xp, groups, kernel, out_spatial, stride, dilation, nsl=slice(None),
           osl=slice(None), single_thread=False):
    """Copy the patches of images ``nsl`` (output rows ``osl``) into ``(n, G, Cg*K, O')``."""
    nd = len(kernel)
    if _cgemm is not None and nd <= 3 and xp.dtype in (np.float32, np.float64):
        return _im2col_compiled(xp, groups, kernel, out_spatial, stride, dilation, nsl, osl,
                                1 if single_thread else None)
    v = _patch_view(xp, groups, kernel, out_spatial, stride, dilation)
    v = v[(nsl, slice(None), slice(None)) + (slice(None),) * nd + (osl,)]
    cols = np.empty(v.shape, dtype=xp.dtype)
    np.copyto(cols, v)
    n, g, cg = v.shape[:3]
    return cols.reshape(n, g, cg * _prod(kernel), _prod(v.shape[3 + nd:]))


def _im2col_compiled(xp, groups, kernel, out_spatial, stride, dilation, nsl, osl,
                     nthreads=None):
    """:func:`im2col` by ``fastconv._gemm.im2col3d`` (OpenMP over images and channels)."""
    from .._config import get_num_threads
    nd = len(kernel)
    x = xp[nsl]
    r0, r1, _ = osl.indices(out_spatial[0])
    ext = (1,) * (3 - nd)
    k, o, s, d = (ext + tuple(kernel), ext + tuple(out_spatial), ext + tuple(stride),
                  ext + tuple(dilation))
    o = list(o)
    o[3 - nd] = r1 - r0
    x5 = x.reshape(x.shape[:2] + ext + x.shape[2:])
    od0 = 0
    if nd == 3:
        od0 = r0
    elif r0:  # shift the first spatial axis instead (only the last axis must be contiguous)
        ax = 2 + 3 - nd
        x5 = x5[(slice(None),) * ax + (slice(r0 * s[3 - nd], None),)]
    n, c = x5.shape[:2]
    kk = math.prod(k)
    cols = np.empty((n, c * kk, math.prod(o)), dtype=xp.dtype)
    if cols.size:
        _cgemm.im2col3d(x5, cols, *k, od0, *o, *s, *d, nthreads or get_num_threads())
    return cols.reshape(n, groups, (c // groups) * kk, -1)


# ----------------------------------------------------------------------------------------
# fused im2col + GEMM (fastconv/src/fc_cgemm.h): float32, 1-3 spatial axes
# ----------------------------------------------------------------------------------------
def have_fused(dtype, nd):
    """Whether the fused float32 engine serves this dtype and number of spatial axes."""
    return (_cgemm is not None and hasattr(_cgemm, "conv_gemm_f32")
            and np.dtype(dtype) == np.float32 and 1 <= nd <= 3)


def implicit_form(kernel_taps, cog, images=0, pixels=0, cg=0):
    """Whether the fused engine runs a forward layer of ``kernel_taps`` taps and ``cog``
    output channels per group (``images`` images of ``pixels`` output pixels, when known)
    in its implicit form (the engine's own rule, ``fastconv._gemm.implicit_form``)."""
    return _cgemm.implicit_form(kernel_taps, cog, images, pixels, cg)


def _fused_operands(x, w, out, out_spatial, pad, bias):
    """The fused engine's operands of a forward call: ``x`` with leading samples of negative
    padding skipped (the engine pads with zeros only) and the pads clipped at 0, ``x``,
    ``w`` and ``out`` as float32 5-D views (unit leading spatial axes), the bias flat, and
    the threads (~1 M multiply-adds per thread at least). Returns (x5, w5, o5, b, pad, nt)."""
    nd = x.ndim - 2
    if min(pad) < 0:
        x = x[(Ellipsis, *[slice(-p, None) if p < 0 else slice(None) for p in pad])]
        pad = tuple(max(p, 0) for p in pad)
    ext = (1,) * (3 - nd)
    # (the checks and copies only where needed: this function had taken 4.5 of a tiny
    # call's ~35 us)
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    if w.dtype != np.float32 or not w.flags.c_contiguous:
        w = np.ascontiguousarray(w, dtype=np.float32)
    x5 = x.reshape(x.shape[:2] + ext + x.shape[2:])
    w5 = w.reshape(w.shape[:2] + ext + w.shape[2:])
    o5 = out.reshape(out.shape[:2] + ext + tuple(out_spatial))
    b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
    nt = max(1, min(_config.get_num_threads(), (out.size * _prod(w.shape[1:])) >> 20))
    return x5, w5, o5, b, tuple(pad), nt


#: 1x1 layers on at most this many output pixels in all (images x pixels) take
#: fastconv/src/fc_thin.h (each weight row read once, in place) instead of the GEMM engines,
#: which pack the whole weight first: batch-1 960 -> 240 on one pixel, the whole call 84 ->
#: 22 us (torch 21), the kernel 6.7 us. Past 16 pixels the one-pixel fold below ran as fast
#: or faster on some shapes (32 x 240 -> 960: 173 against 193 us; 960 -> 240 the other way
#: round: 261 against 145 us).
THIN_MAX_PIXELS = 16


def thin_serves(x_shape, w_shape, out_spatial, stride, dtype):
    """Whether a forward layer is a 1x1 layer on at most :data:`THIN_MAX_PIXELS` output
    pixels that :func:`correlate_fused` runs on the thin-product kernel (float32; it also
    needs zero padding, which only the caller knows)."""
    return (have_fused(dtype, len(w_shape) - 2) and _prod(w_shape[2:]) == 1
            and w_shape[1] > 0 and x_shape[0] * _prod(out_spatial) <= THIN_MAX_PIXELS
            and all(o == (i - 1) // s + 1
                    for o, i, s in zip(out_spatial, x_shape[2:], stride)))


def _pointwise_thin(x, w, out, stride, groups, bias, shuffle):
    """:func:`correlate_fused` of a 1x1 layer (no padding) on few output pixels in all: the
    pixels as rows of a (pixels, C_in) matrix (a small transpose), the product by
    ``fastconv._gemm.thin_f32``, the result transposed back into ``out``."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    osp = out.shape[2:]
    npx = _prod(osp)
    xs = x[(Ellipsis,) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(osp, stride))]
    w2 = np.ascontiguousarray(w, dtype=np.float32).reshape(c_out, c // groups)
    b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
    # threads from ~64K multiply-adds each (960 -> 240 on one pixel: 19.6 -> 11.4 us)
    nt = max(1, min(_config.get_num_threads(), (n * npx * c_out * (c // groups)) >> 16))
    if npx == 1:   # one pixel per image: x and out are already (pixels, channels)
        xt = np.ascontiguousarray(xs.reshape(n, c), dtype=np.float32)
        _cgemm.thin_f32(xt, w2, b, out.reshape(n, c_out), groups, shuffle, nt)
        return out
    xt = np.ascontiguousarray(np.moveaxis(xs.reshape(n, c, npx), 1, 2),
                              dtype=np.float32).reshape(n * npx, c)
    ot = np.empty((n * npx, c_out), np.float32)
    _cgemm.thin_f32(xt, w2, b, ot, groups, shuffle, nt)
    out.reshape(n, c_out, npx)[...] = np.moveaxis(ot.reshape(n, npx, c_out), 2, 1)
    return out


def _pointwise_one_pixel(x, w, out, groups, bias, shuffle):
    """:func:`correlate_fused` of a 1x1 layer on one-pixel maps (squeeze-and-excitation
    blocks, classifier heads as convolutions) over ``n`` > 1 images: the images become the
    pixels of one image -- ``x`` (n, C) transposed to (C, n), the result transposed back --
    so the engine packs the weight once, where as n images it packed it once per image and
    ran 16-pixel tiles holding one pixel. Measured, 2 threads: 32 x 960 -> 240 0.93 -> 0.16
    ms, 8 x 1280 -> 1000 1.33 -> 0.30 ms, 8 x 240 -> 240 / 3 35 -> 12 us (numpy matmul:
    0.18, 0.46 ms)."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    xt = np.ascontiguousarray(x.reshape(n, c).T, dtype=np.float32).reshape(1, c, 1, 1, n)
    w5 = np.ascontiguousarray(w, dtype=np.float32).reshape(c_out, c // groups, 1, 1, 1)
    b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
    ot = np.empty((1, c_out, 1, 1, n), np.float32)
    nt = max(1, min(_config.get_num_threads(), (n * c_out * (c // groups)) >> 20))
    _cgemm.conv_gemm_f32(xt, w5, b, ot, groups, (1, 1, 1), (1, 1, 1), shuffle, nt,
                         pad=(0, 0, 0))
    out.reshape(n, c_out)[...] = ot.reshape(c_out, n).T
    return out


def correlate_fused(x, w, out_spatial, stride, dilation, pad, groups, bias=None,
                    shuffle=False, out=None):
    """:func:`correlate` (plus ``bias``, and ShuffleNet's channel order with ``shuffle``) by
    the fused engine: no im2col matrix; blocks of it are packed from the padded input into
    cache-sized panels and consumed at once. Scratch: the packed weight and ~0.4 MiB per
    thread, besides the engine's zero-padded (strided: phase-split) copy of the input when
    padding or a stride is asked for."""
    nd = x.ndim - 2
    ext = (1,) * (3 - nd)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = tuple(w.shape[2:])
    if out is None:
        out = result_empty((n, c_out) + tuple(out_spatial), dtype=np.float32)
    if out.size == 0:
        return out
    if _prod(kernel) == 1 and not any(pad) and out.flags.c_contiguous:
        if (n * _prod(out_spatial) <= THIN_MAX_PIXELS   # (every output reads inside x)
                and all((o - 1) * s < i for o, s, i in zip(out_spatial, stride, x.shape[2:]))):
            return _pointwise_thin(x, w, out, stride, groups, bias, shuffle)
        if x.size == n * c and out.size == n * c_out:
            return _pointwise_one_pixel(x, w, out, groups, bias, shuffle)
    x5, w5, o5, b, pad, nt = _fused_operands(x, w, out, out_spatial, pad, bias)
    # the engine's padded / phase-split copy of the input: at most SCRATCH_BYTES per call
    # (blocks of images), and refused before allocation when one image alone cannot fit
    per_image = 4 * c * _prod(-(-((o - 1) * s + d * (k - 1) + 1) // s) * s
                              for o, s, d, k in zip(out_spatial, stride, dilation, kernel))
    if per_image > SCRATCH_BYTES:
        from .._config import check_alloc
        check_alloc(per_image, "the zero-padded copy of one input image")
    nb = max(1, min(n, SCRATCH_BYTES // max(per_image, 1)))
    st, dl, pd = ext + tuple(stride), ext + tuple(dilation), (0,) * (3 - nd) + tuple(pad)
    if nb >= n:
        _cgemm.conv_gemm_f32(x5, w5, b, o5, groups, st, dl, shuffle, nt, pad=pd)
        return out
    for i in range(0, n, nb):
        _cgemm.conv_gemm_f32(x5[i:i + nb], w5, b, o5[i:i + nb], groups, st, dl, shuffle, nt,
                             pad=pd)
    return out


WINOGRAD_KERNELS = ((3, 3), (1, 3, 3), (3, 3, 3), (5, 5), (1, 5, 5))


def winograd_serves(dtype, kernel, stride):
    """Whether the Winograd engine (fastconv/src/fc_winograd.h: F(2x2, 3x3), F(2x2, 5x5),
    in 3-D F(2x2x2, 3x3x3)) serves a forward correlation: float32, a 3x3 or 5x5 kernel
    (2-D; 1x3x3, 3x3x3 or 1x5x5 in 3-D), unit stride, an AVX2+FMA CPU. Any dilation,
    padding and groups."""
    kernel, stride = tuple(kernel), tuple(stride)
    return (have_fused(dtype, len(kernel)) and _cgemm.conv_gemm_avx2()
            and kernel in WINOGRAD_KERNELS and all(s == 1 for s in stride))


def winograd_positions(kernel):
    """Transform positions (GEMMs) of the Winograd form serving ``kernel``: 16 for
    F(2x2, 3x3), 36 for F(2x2, 5x5), 64 for F(2x2x2, 3x3x3)."""
    kernel = tuple(kernel)
    return 64 if kernel == (3, 3, 3) else 36 if kernel[-1] == 5 else 16


def correlate_winograd(x, w, out_spatial, dilation, pad, groups, bias=None):
    """:func:`correlate` (plus ``bias``) of a float32 3x3 (1x3x3, 3x3x3) or 5x5 (1x5x5)
    kernel at unit stride by Winograd's F(2x2, 3x3) (fastconv/src/fc_winograd.h): per 2x2
    output tile 16 multiplies per channel pair instead of 36 (3x3x3: F(2x2x2, 3x3x3), 64
    per 2x2x2 tile instead of 216; 5x5: F(2x2, 5x5), 36 instead of 100), in 16 (64, 36)
    GEMMs over the input channels, the input read in place (no padded copy). Rounding: a
    few times the direct sum's for 3x3, ~10-25x for 5x5 (relative errors ~3e-6 of the
    output's largest value; the tests bound both against float64 sums). Scratch: the
    transformed weight (16/9, 3-D 64/27, 5x5 36/25 of the weight) and ~0.4 MiB per
    thread. Inputs or weights holding Inf or NaN are computed by
    :func:`correlate_fused` instead (the transforms' differences would turn an Inf into
    NaN). Raises ValueError when :func:`winograd_serves` says no."""
    nd = x.ndim - 2
    ext = (1,) * (3 - nd)
    kernel = tuple(w.shape[2:])
    if not winograd_serves(x.dtype, kernel, (1,) * nd):
        raise ValueError(
            "algorithm='winograd' serves float32 (and float16) 3x3 and 5x5 kernels (1x3x3, "
            "3x3x3 or 1x5x5 in 3-D) "
            f"at stride 1 on AVX2+FMA CPUs; got a {np.dtype(x.dtype).name} "
            f"{'x'.join(map(str, kernel))} kernel"
            + ("" if have_fused(np.float32, nd) and _cgemm.conv_gemm_avx2()
               else " on a CPU or build without the AVX2 engine"))
    n, c = x.shape[:2]
    c_out = w.shape[0]
    out = result_empty((n, c_out) + tuple(out_spatial), dtype=np.float32)
    if out.size == 0:
        return out
    args = (x, w, out_spatial, (1,) * nd, dilation, pad, groups)
    x5, w5, o5, b, pad, nt = _fused_operands(x, w, out, out_spatial, pad, bias)
    # the transformed weight within SCRATCH_BYTES: blocks of output channels (one group)
    cb = winograd_channel_block(c_out, w.shape[1], groups, kernel)
    if cb is None:
        from .._config import check_alloc
        need = winograd_weight_bytes(c_out, w.shape[1], groups, kernel)
        check_alloc(need, "the Winograd-transformed weight")
        raise MemoryError(f"algorithm='winograd': the transformed weight of a grouped layer "
                          f"would take {need} bytes, above the {SCRATCH_BYTES}-byte scratch "
                          f"budget (split only for groups=1); use algorithm='gemm'")
    try:
        for c0 in range(0, c_out, cb):
            c1 = min(c_out, c0 + cb)
            _cgemm.conv_gemm_f32(x5, w5[c0:c1], None if b is None else b[c0:c1],
                                 o5[:, c0:c1], groups, (1, 1, 1), ext + tuple(dilation),
                                 False, nt, pad=(0,) * (3 - nd) + tuple(pad), engine=2)
    except FloatingPointError:
        # Inf or NaN in the input or weight: the transforms would turn an Inf into NaN
        # where the direct sum (and torch) give +-Inf; the implicit GEMM computes the sums
        # as they are written
        return correlate_fused(*args, bias=bias)
    return out


def winograd_weight_bytes(c_out, cg, groups, kernel):
    """Bytes of the Winograd engine's transformed weight: 16 floats per 3x3 weight (64 per
    3x3x3, 36 per 5x5), output channels rounded up to 16 per group."""
    nxi = winograd_positions(kernel)
    cog = c_out // groups
    return 4 * nxi * groups * (cog - cog % -16) * cg


def winograd_channel_block(c_out, cg, groups, kernel):
    """Output channels per engine call so that the transformed weight, with the threads'
    own scratch (~0.5 MiB each; 16 MiB are set aside), stays within SCRATCH_BYTES (all of
    them when it does; None when a grouped layer does not fit)."""
    budget = SCRATCH_BYTES - (16 << 20)
    if winograd_weight_bytes(c_out, cg, groups, kernel) <= budget:
        return c_out
    if groups != 1:
        return None
    per16 = winograd_weight_bytes(16, cg, 1, kernel)
    return max(16, budget // per16 * 16)


def correlate_weight_fused(x, gy, kernel, stride, dilation, pad, groups):
    """:func:`correlate_weight` (float32) by the fused engine's weight-gradient mode
    (``fastconv._gemm.conv_wgrad_f32``): per group one GEMM whose columns are the taps and
    whose reduction runs over all (image, output position) pairs, the patch matrix packed
    block by block from the input. Images in blocks whose copies (the padded input, the
    packed grad_output) stay under ``SCRATCH_BYTES``; the blocks' results are summed."""
    from .._config import get_num_threads
    nd = x.ndim - 2
    n, c = x.shape[:2]
    c_out = gy.shape[1]
    cg = c // groups
    out_spatial = tuple(gy.shape[2:])
    gw = np.zeros((c_out, cg) + tuple(kernel), dtype=np.float32)
    if n == 0 or gw.size == 0 or _prod(out_spatial) == 0:
        return gw
    if any(p < 0 for p in pad):  # skip leading samples (the engine pads with zeros only)
        x = x[(Ellipsis, *[slice(-p, None) if p < 0 else slice(None) for p in pad])]
        pad = tuple(max(p, 0) for p in pad)
    xp = np.ascontiguousarray(x, dtype=np.float32)
    gy = np.ascontiguousarray(gy, dtype=np.float32)
    ext = (1,) * (3 - nd)
    x5 = xp.reshape(xp.shape[:2] + ext + xp.shape[2:])
    g5 = gy.reshape(gy.shape[:2] + ext + out_spatial)
    # the padded (phase-split) copy of x, and grad_output packed: in 6-channel panels (packed
    # form) or 16-channel ones (implicit form, AVX2)
    cog = c_out // groups
    packed_gy = groups * max(-(-cog // 6) * 6, -(-cog // 16) * 16)
    per_image = 4 * (c * _prod(-(-((o - 1) * s + d * (k - 1) + 1) // s) * s for o, s, d, k
                               in zip(out_spatial, stride, dilation, kernel))
                     + packed_gy * _prod(out_spatial))
    if per_image > SCRATCH_BYTES:
        from .._config import check_alloc
        check_alloc(per_image, "the weight gradient's copies of one image")
    nb = max(1, min(n, SCRATCH_BYTES // max(per_image, 1)))
    macs = n * c_out * _prod(out_spatial) * cg * _prod(kernel)
    nt = max(1, min(get_num_threads(), macs >> 20))
    part = gw if nb >= n else np.empty_like(gw)
    gw5 = part.reshape(part.shape[:2] + ext + tuple(kernel))
    for i in range(0, n, nb):
        _cgemm.conv_wgrad_f32(x5[i:i + nb], g5[i:i + nb], gw5, groups, ext + tuple(stride),
                              ext + tuple(dilation), (0,) * (3 - nd) + tuple(pad), nt)
        if part is not gw:
            gw += part
    return gw


def correlate(x, w, out_spatial, stride, dilation, pad, groups, bias=None):
    """Strided, dilated, grouped cross-correlation by im2col + GEMM (see module docstring),
    plus ``bias`` (C_out,) when given. float32 takes the fused engine. (Not BLAS for small
    1x1 problems, though an isolated call ran 1.4-5.5x faster there: OpenBLAS's threads
    keep spinning for ~0.1 s after a call and took a core from the OpenMP kernels of the
    next layers: a batch-1 ResNet bottleneck on 7x7 ran 9.6-11.5 ms against 3.7-4.0 ms
    all-fused; single-threaded BLAS on the pool's threads, 4.7-4.9 ms.)"""
    if have_fused(x.dtype, x.ndim - 2):
        return correlate_fused(x, w, out_spatial, stride, dilation, pad, groups, bias)
    out = _correlate_blas(x, w, out_spatial, stride, dilation, pad, groups)
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (out.ndim - 2))
    return out


def _correlate_blas(x, w, out_spatial, stride, dilation, pad, groups):
    """:func:`correlate` by im2col tiles + BLAS (float64, complex, > 3 spatial axes)."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    g = groups
    cg, cog = c // g, c_out // g
    out = result_empty((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    if n == 0 or out.size == 0:
        return out
    if all(k == 1 for k in kernel):
        return pointwise(x, w.reshape(c_out, cg), out_spatial, stride, pad, groups, out)
    per_image = c * _prod(kernel) * _prod(out_spatial) * x.itemsize
    if (per_image // out_spatial[0] > SCRATCH_BYTES and have_implicit(x.dtype)
            and all(p >= 0 for p in pad)):
        # even one slice of the first output axis would need more than the scratch budget
        return correlate_implicit(x, w, out_spatial, stride, dilation, pad, groups)
    xp = pad_input(x, out_spatial, kernel, stride, dilation, pad)
    wg = w.reshape(g, cog, cg * _prod(kernel))
    out5 = out.reshape((n, g, cog) + tuple(out_spatial))
    nt = _nthreads(n * c_out * _prod(out_spatial) * cg * _prod(kernel))
    single = nt > 1 and _pool(nt) is not None

    if len(kernel) == 3 and have_implicit(x.dtype) and \
            per_image // out_spatial[0] > TILE_BYTES:
        return _correlate_3d_rows(xp, wg, out5, kernel, out_spatial, stride, dilation, nt,
                                  single)

    def tile(t):
        nsl, osl = t
        cols = im2col(xp, g, kernel, out_spatial, stride, dilation, nsl, osl, single)
        if osl == slice(None):
            np.matmul(wg, cols, out=out5[nsl].reshape(cols.shape[:2] + (cog, cols.shape[3])))
        else:
            r = np.matmul(wg, cols)
            out5[(nsl, slice(None), slice(None), osl)] = r.reshape(
                r.shape[:3] + (-1,) + tuple(out_spatial[1:]))
    _run_chunks(tile, list(_tiles(n, per_image, out_spatial[0], min_tiles=4 * nt)), nt)
    return out


def _correlate_3d_rows(xp, wg, out5, kernel, out_spatial, stride, dilation, nt, single):
    """3-D im2col + GEMM in tiles of (image, output depth plane, block of output rows), so
    each patch matrix stays near ``TILE_BYTES`` (cache-sized) however large the layer."""
    n, c = xp.shape[:2]
    g, cog = out5.shape[1:3]
    kk = _prod(kernel)
    o0, o1, o2 = out_spatial
    rows = max(1, min(o1, TILE_BYTES // max(1, c * kk * o2 * xp.itemsize)))
    tiles = [(i, d, h) for i in range(n) for d in range(o0) for h in range(0, o1, rows)]

    def tile(t):
        i, d, h = t
        hn = min(rows, o1 - h)
        x5 = xp[i:i + 1, :, :, h * stride[1]:, :]
        cols = np.empty((1, c * kk, hn * o2), dtype=xp.dtype)
        _cgemm.im2col3d(x5, cols, *kernel, d, 1, hn, o2, *stride, *dilation,
                        1 if single else nt)
        r = np.matmul(wg, cols.reshape(g, -1, hn * o2))
        out5[i, :, :, d, h:h + hn, :] = r.reshape(g, cog, hn, o2)
    _run_chunks(tile, tiles, nt)
    return out5.reshape((n, g * cog) + tuple(out_spatial))


def _image_blocks(n, parts):
    """``n`` images in at most ``parts`` contiguous blocks of near-equal size."""
    parts = max(1, min(n, parts))
    step = -(-n // parts)
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def pointwise(x, w2, out_spatial, stride, pad, groups, out=None, shuffle=False, bias=None):
    """1x1 convolution: a GEMM per image and group, no im2col.

    ``w2`` is ``(C_out, C_in/groups)``. With ``shuffle=True`` the result is written directly
    in channel-shuffled order (ShuffleNet), i.e. channel ``g*Cog + j`` lands at ``j*G + g``;
    ``bias`` (C_out,), in the unshuffled order of ``w2``'s rows, follows its channel.
    """
    n, c = x.shape[:2]
    c_out = w2.shape[0]
    g = groups
    cog = c_out // g
    nd = x.ndim - 2
    if have_fused(x.dtype, nd) and all(p >= 0 for p in pad):
        w = w2.reshape(w2.shape + (1,) * nd)
        return correlate_fused(x, w, out_spatial, stride, (1,) * nd, pad, groups, bias,
                               shuffle=shuffle, out=out)
    out = _pointwise_blas(x, w2, out_spatial, stride, pad, groups, out, shuffle)
    if bias is not None:
        b = np.asarray(bias).reshape(g, cog)
        b = (b.T if shuffle else b).reshape((-1,) + (1,) * nd)
        out += b
    return out


def _pointwise_blas(x, w2, out_spatial, stride, pad, groups, out, shuffle):
    """:func:`pointwise` on BLAS, one ``matmul`` per chunk of images and group."""
    n, c = x.shape[:2]
    c_out = w2.shape[0]
    g = groups
    cg, cog = c // g, c_out // g
    nd = x.ndim - 2
    if any(pad) or any(s != 1 for s in stride) or tuple(x.shape[2:]) != tuple(out_spatial):
        xp = pad_input(x, out_spatial, (1,) * nd, stride, (1,) * nd, pad)
        idx = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_spatial, stride))
        x = np.ascontiguousarray(xp[(Ellipsis, *idx)])
    else:
        x = np.ascontiguousarray(x)
    hw = _prod(out_spatial)
    if out is None:
        out = result_empty((n, c_out) + tuple(out_spatial), dtype=x.dtype)
    if n == 0 or out.size == 0:
        return out
    if shuffle:
        # out[n, j*G + g] = w[g*cog + j] @ x[n, g]
        o4 = out.reshape(n, cog, g, hw)
        x4 = x.reshape(n, g, cg, hw)
        w3 = w2.reshape(g, cog, cg)
        nt = _nthreads(n * c_out * hw * cg)
        # one job per (group, block of images): a batched matmul writes the strided
        # shuffled rows directly (row stride G*HW); blocks give the pool >= ~2*nt jobs
        jobs = [(sl, gi) for sl in _image_blocks(n, -(-2 * nt // g) if nt > 1 else 1)
                for gi in range(g)]
        _run_chunks(lambda j: np.matmul(w3[j[1]], x4[j[0], j[1]], out=o4[j[0], :, j[1]]),
                    jobs, nt)
        return out
    nt = _nthreads(n * c_out * hw * cg)
    chunks = _image_blocks(n, 2 * nt) if nt > 1 and n > 1 else [slice(None)]
    if len(chunks) == 1 and nt > 1 and hw >= 4096:  # one image: split the pixels
        step = -(-hw // (2 * nt))
        cols = [slice(i, min(hw, i + step)) for i in range(0, hw, step)]
        o3, x3 = out.reshape(n, g, cog, hw), x.reshape(n, g, cg, hw)
        w3 = w2.reshape(g, cog, cg)
        _run_chunks(lambda cs: o3.__setitem__((Ellipsis, cs), np.matmul(w3, x3[..., cs])),
                    cols, nt)
        return out
    if g == 1:
        o3, x3 = out.reshape(n, c_out, hw), x.reshape(n, c, hw)
        _run_chunks(lambda sl: np.matmul(w2, x3[sl], out=o3[sl]), chunks, nt)
    else:
        o4, x4 = out.reshape(n, g, cog, hw), x.reshape(n, g, cg, hw)
        w3 = w2.reshape(g, cog, cg)
        _run_chunks(lambda sl: np.matmul(w3, x4[sl], out=o4[sl]), chunks, nt)
    return out


def col2im_add(xp, cols, kernel, y_spatial, stride, dilation):
    """Scatter-add ``cols`` ``(n, C, *K, *Y)`` into the padded buffer ``xp`` ``(n, C, *S)``."""
    nd = len(kernel)
    for k in np.ndindex(*kernel):
        idx = tuple(slice(ki * d, ki * d + (yo - 1) * s + 1, s)
                    for ki, d, yo, s in zip(k, dilation, y_spatial, stride))
        xp[(Ellipsis, *idx)] += cols[(slice(None), slice(None), *k)]
    assert nd == len(k)


def correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups):
    """Transposed convolution by GEMM + col2im: the adjoint of :func:`correlate`.

    ``y`` ``(N, C_out, *O)``, ``w`` ``(C_out, C_in/G, *K)``; returns ``(N, C_in, *x_spatial)``.
    """
    n, c_out = y.shape[:2]
    kernel = w.shape[2:]
    g = groups
    cog, cg = c_out // g, w.shape[1]
    c = cg * g
    y_spatial = y.shape[2:]
    kk = _prod(kernel)
    if n == 0:
        return np.zeros((n, c) + tuple(x_spatial), dtype=y.dtype)
    if kk == 1 and all(p == 0 for p in pad) and all(s == 1 for s in stride) \
            and tuple(y_spatial) == tuple(x_spatial):
        wt = np.ascontiguousarray(w.reshape(g, cog, cg).transpose(0, 2, 1))
        out = np.matmul(wt, y.reshape(n, g, cog, -1))
        return out.reshape((n, c) + tuple(x_spatial))
    ys = y.reshape(n, g, cog, _prod(y_spatial))
    per_image = c * kk * _prod(y_spatial) * y.itemsize
    nt = _nthreads(n * c_out * _prod(y_spatial) * cg * kk)
    nb = max(1, min(n, TILE_BYTES // max(per_image, 1)))
    if nt > 1:
        nb = max(1, min(nb, n // (2 * nt)))

    nd = len(kernel)
    compiled = (_cgemm is not None and hasattr(_cgemm, "col2im3d") and nd <= 3
                and y.dtype in (np.float32, np.float64) and w.dtype == y.dtype)
    ext = (1,) * (3 - nd)
    if compiled:
        # col2im scatters straight into the output, dropping the taps that land in the
        # padding, and zeroes each channel plane in the thread that owns it: no padded
        # buffer, no serial crop copy (L13, 2 threads: ~10 % of the call before)
        out = result_empty((n, c) + tuple(x_spatial), dtype=y.dtype)
        out5 = out.reshape((n, c) + ext + tuple(x_spatial))
        geo = (*(ext + tuple(kernel)), *(ext + tuple(y_spatial)), *(ext + tuple(stride)),
               *(ext + tuple(dilation)))
        lo = (0,) * (3 - nd) + tuple(pad)
    if compiled and have_fused(y.dtype, nd):
        # the patch matrix of blocks of images by the fused engine (a grouped 1x1
        # correlation of y with W_g^T), scattered by col2im; blocks <= SCRATCH_BYTES / 4
        from .._config import get_num_threads
        nt = max(1, min(get_num_threads(), (n * c_out * _prod(y_spatial) * cg * kk) >> 20))
        nb = max(1, min(n, (SCRATCH_BYTES // 4) // max(per_image, 1)))
        py = _prod(y_spatial)
        y5 = np.ascontiguousarray(y).reshape(n, c_out, 1, 1, py)
        # W_g^T read in place by the engine (w_trans): no serial transposed copy
        w5 = np.ascontiguousarray(w).reshape(g * cog, cg * kk, 1, 1, 1)
        for i in range(0, n, nb):
            m = min(nb, n - i)
            cols = np.empty((m, c * kk, py), dtype=y.dtype)
            _cgemm.conv_gemm_f32(y5[i:i + m], w5, None, cols.reshape(m, c * kk, 1, 1, py), g,
                                 (1, 1, 1), (1, 1, 1), False, nt, w_trans=True)
            _cgemm.col2im3d(out5[i:i + m], cols, *geo, nt, *lo, True)
        return out
    # W_g^T (Cg*K, Cog) @ y[n, g] (Cog, O) by BLAS
    wt = np.ascontiguousarray(w.reshape(g, cog, cg * kk).transpose(0, 2, 1))
    single = nt > 1 and _pool(nt) is not None
    if compiled:
        def block(i):  # scatter-add in C (OpenMP over channels when not on the pool)
            cols = np.matmul(wt, ys[i:i + nb])
            _cgemm.col2im3d(out5[i:i + nb], cols.reshape(cols.shape[0], c * kk, -1), *geo,
                            1 if single else nt, *lo, True)
        _run_chunks(block, list(range(0, n, nb)), nt)
        return out
    # NumPy only: a padded buffer covering every tap, [0, max(x + pad, need)), then a crop
    lo = [max(p, 0) for p in pad]
    size = [max(xs + a, (yo - 1) * s + d * (k - 1) + 1 + max(-p, 0))
            for xs, a, yo, s, d, k, p in zip(x_spatial, lo, y_spatial, stride, dilation,
                                             kernel, pad)]
    shift = [max(-p, 0) for p in pad]  # negative pad: taps start after x[0]
    xp = np.zeros((n, c) + tuple(size), dtype=y.dtype)
    view = xp[(Ellipsis, *[slice(sh, None) for sh in shift])] if any(shift) else xp

    def block(i):
        cols = np.matmul(wt, ys[i:i + nb])
        cols = cols.reshape((cols.shape[0], c) + tuple(kernel) + tuple(y_spatial))
        col2im_add(view[i:i + nb], cols, kernel, y_spatial, stride, dilation)
    _run_chunks(block, list(range(0, n, nb)), nt)
    crop = tuple(slice(a, a + xs) for a, xs in zip(lo, x_spatial))
    return np.ascontiguousarray(xp[(Ellipsis, *crop)])


def correlate_weight(x, gy, kernel, stride, dilation, pad, groups):
    """Weight gradient of :func:`correlate`: ``gw[co, ci, k] = sum_{n,o} gy * x-patch``."""
    n, c = x.shape[:2]
    c_out = gy.shape[1]
    g = groups
    cg, cog = c // g, c_out // g
    out_spatial = gy.shape[2:]
    kk = _prod(kernel)
    hw = _prod(out_spatial)
    gw = np.zeros((g, cog, cg * kk), dtype=x.dtype)
    if n == 0 or hw == 0:
        return gw.reshape((c_out, cg) + tuple(kernel))
    if (kk == 1 and not any(pad) and all(s == 1 for s in stride)
            and tuple(x.shape[2:]) == tuple(out_spatial)):
        # 1x1, unit stride, no padding: the patch matrix is x itself
        x4 = np.ascontiguousarray(x).reshape(n, g, cg, hw)
        gy4 = np.ascontiguousarray(gy).reshape(n, g, cog, hw)
        for i in range(n):  # BLAS reads the transposed operand in place: no copies
            for gi in range(g):   # (2-D matmul: the stacked one does not reach BLAS here)
                gw[gi] += gy4[i, gi] @ x4[i, gi].T
        return gw.reshape((c_out, cg) + tuple(kernel))
    xp = pad_input(x, out_spatial, kernel, stride, dilation, pad)
    per_image = c * kk * hw * x.itemsize
    gy5 = gy.reshape((n, g, cog) + tuple(out_spatial))
    for nsl, osl in _tiles(n, per_image, out_spatial[0], budget=SCRATCH_BYTES):
        cols = im2col(xp, g, kernel, out_spatial, stride, dilation, nsl, osl)
        b, hw = cols.shape[0], cols.shape[3]
        gys = gy5[nsl][:, :, :, osl].reshape(b, g, cog, hw)
        for i in range(b):  # one GEMM per image and group, the patch matrix read transposed
            for gi in range(g):
                gw[gi] += gys[i, gi] @ cols[i, gi].T
    return gw.reshape((c_out, cg) + tuple(kernel))


# ----------------------------------------------------------------------------------------
# implicit GEMM (fastconv/_gemm.pyx): no im2col, one GEMM per kernel tap on shifted views
# ----------------------------------------------------------------------------------------
def have_implicit(dtype):
    return _cgemm is not None and np.dtype(dtype) in (np.float32, np.float64)


def _phase_geometry(x_spatial, kernel, out_spatial, stride, dilation, pad):
    """Padded length, phase-image length, tap phases and flat tap offsets per problem."""
    nd = len(kernel)
    hp = [max(n + p, (o - 1) * s + d * (k - 1) + 1)
          for n, p, o, s, d, k in zip(x_spatial, pad, out_spatial, stride, dilation, kernel)]
    hph = [-(-h // s) for h, s in zip(hp, stride)]
    pstride = [math.prod(hph[i + 1:]) for i in range(nd)]
    phase, off = [], []
    for k in np.ndindex(*kernel):
        r = [ki * d % s for ki, d, s in zip(k, dilation, stride)]
        q = [ki * d // s for ki, d, s in zip(k, dilation, stride)]
        phase.append(int(np.ravel_multi_index(r, stride)) if nd else 0)
        off.append(sum(qi * ps for qi, ps in zip(q, pstride)))
    length = sum((o - 1) * ps for o, ps in zip(out_spatial, pstride)) + 1
    return hph, np.array(phase, np.int64), np.array(off, np.int64), length


def _phases(xp, hph, stride):
    """(N, C, *hph*stride) padded input -> (N, prod(stride), C, prod(hph)) phase images."""
    n, c = xp.shape[:2]
    nd = len(hph)
    if all(s == 1 for s in stride):
        return xp.reshape(n, 1, c, -1)
    v = xp.reshape((n, c) + tuple(e for h, s in zip(hph, stride) for e in (h, s)))
    perm = (0,) + tuple(3 + 2 * i for i in range(nd)) + (1,) + tuple(2 + 2 * i
                                                                       for i in range(nd))
    return np.ascontiguousarray(v.transpose(perm)).reshape(n, math.prod(stride), c, -1)


def _tap_weights(w, groups):
    c_out, cg = w.shape[:2]
    kk = math.prod(w.shape[2:])
    return np.ascontiguousarray(
        w.reshape(groups, c_out // groups, cg, kk).transpose(3, 0, 1, 2))


def correlate_implicit(x, w, out_spatial, stride, dilation, pad, groups):
    """Forward correlation by implicit GEMM (contract of :func:`correlate`, ``pad >= 0``)."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    hph, phase, off, length = _phase_geometry(x.shape[2:], kernel, out_spatial, stride,
                                              dilation, pad)
    full = tuple(h * s for h, s in zip(hph, stride))
    if tuple(pad) == (0,) * len(pad) and tuple(x.shape[2:]) == full:
        xp = np.ascontiguousarray(x)
    else:
        xp = np.zeros((n, c) + full, dtype=x.dtype)
        xp[(Ellipsis, *[slice(p, p + e) for p, e in zip(pad, x.shape[2:])])] = x
    xph = _phases(xp, hph, stride)
    grid = (out_spatial[0],) + tuple(hph[1:])
    og = np.empty((n, c_out, math.prod(grid)), dtype=x.dtype)
    _cgemm.implicit_gemm(xph, _tap_weights(w, groups), og, phase, off, groups, length, False,
                         0)
    og = og.reshape((n, c_out) + grid)
    return np.ascontiguousarray(og[(Ellipsis, *[slice(0, o) for o in out_spatial])])


def adjoint_implicit(y, w, x_spatial, stride, dilation, pad, groups):
    """Transposed convolution by implicit GEMM: the exact adjoint of
    :func:`correlate_implicit` (phase buffers accumulated tap by tap, then interleaved)."""
    n, c_out = y.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    c = w.shape[1] * groups
    out_spatial = y.shape[2:]
    hph, phase, off, length = _phase_geometry(x_spatial, kernel, out_spatial, stride,
                                              dilation, pad)
    grid = (out_spatial[0],) + tuple(hph[1:])
    yg = np.zeros((n, c_out) + grid, dtype=y.dtype)
    yg[(Ellipsis, *[slice(0, o) for o in out_spatial])] = y
    nph = math.prod(stride)
    xph = np.zeros((n, nph, c, math.prod(hph)), dtype=y.dtype)
    _cgemm.implicit_gemm(xph, _tap_weights(w, groups), yg.reshape(n, c_out, -1), phase, off,
                         groups, length, True, 0)
    if nph == 1:
        xp = xph.reshape((n, c) + tuple(hph))
    else:
        v = xph.reshape((n,) + tuple(stride) + (c,) + tuple(hph))
        perm = (0, 1 + nd) + tuple(e for i in range(nd) for e in (2 + nd + i, 1 + i))
        xp = v.transpose(perm).reshape((n, c) + tuple(h * s for h, s in zip(hph, stride)))
    return np.ascontiguousarray(xp[(Ellipsis, *[slice(p, p + e)
                                                for p, e in zip(pad, x_spatial)])])
