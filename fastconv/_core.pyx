"""Direct convolution engine: compiled, multi-threaded, GIL-free cross-correlation.

Contract (docs/internals.md, "Direct engine")::

    out[n, co, o] = sum_{ci < C_in/groups} sum_k
                        x[n, g*C_in/groups + ci, o*stride + k*dilation - pad] * w[co, ci, k]

with ``g = co // (C_out // groups)`` and ``x`` read as zero outside ``[0, S)`` along every
spatial axis (so ``pad`` zeros before each axis, and as many zeros after as the output
shape ``O = out.shape[2:]`` needs). No flipping and no conjugation happen here: the
fronts (``signal.py``, ``nn``) do that.

Where things live
-----------------
* this module: argument validation (``correlate``), the complex -> real reduction
  (a complex correlation is one real correlation with doubled channels, see
  ``_correlate_complex``), and the OpenMP ``prange`` over tasks (``_run``);
* ``src/fc_conv.h``: the plan (geometry, tiling, thread-level task split) and the run-time
  ISA dispatch (AVX2+FMA or baseline x86-64 / any other ISA, no ``-march`` flag);
* ``src/fc_kernel_impl.h``: the typed kernels -- the zero-padding, stride-decimating panel
  gather and three register-blocked microkernels that keep an output tile in vector
  registers across every input channel and tap:

  - ``fc_mk_rows``: 4 rows x (V*8) columns (float32), each loaded input row feeding every
    output row that uses it (unit row stride/dilation; 3- and 5-wide kernels unrolled);
  - ``fc_mk``: the same tile for strided/dilated rows, or 1 row x 64 columns for 1-D;
  - ``fc_mk_ch``: dense convolutions (>= 8 float32 output channels per group): lanes hold
    output channels (weights packed per call), 6 or 12 pixels per tile.

All spatial ranks >= 1 go through the same kernel: the last axis is vectorised, the
second-to-last is register-blocked by rows, and any further leading axes are "planes"
whose taps are extra reduction terms (1-D, 2-D, 3-D and N-D share one fast path).

Threads: tasks are (image, group, output plane, tile of rows, tile of columns), sized so
that there are several per thread even for a single 2-D image or a single 1-D signal;
each thread gathers into its own scratch buffer. There is no global mutable state: many
Python threads may call ``correlate`` at once.
"""
import operator

import numpy as np

from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t
cimport numpy as cnp

cdef extern from "fc_conv.h" nogil:
    ctypedef struct fc_plan:
        int isa
    int FC_MAXD
    int FC_F32
    int FC_F64
    int FC_I64
    int fc_plan_init(fc_plan *pl, int dtype, int D, const int64_t *xs,
                     const int64_t *ws, const int64_t *os, const int64_t *st,
                     const int64_t *di, const int64_t *pa, int64_t groups,
                     int nthreads, int isa_cap, const void *x,
                     const void *w, void *out)
    void fc_plan_free(fc_plan *pl)
    int64_t fc_plan_ntasks(const fc_plan *pl)
    size_t fc_plan_scratch_bytes(const fc_plan *pl)
    void fc_run_task(const fc_plan *pl, int64_t t, void *scratch)
    void *fc_alloc(size_t nbytes)
    void fc_free(void *p)
    int fc_cpu_has_avx2_fma()
    int fc_cpu_has_avx512vl()
    const char *fc_isa_name(int isa)
    int fc_openmp_enabled()

__all__ = ["correlate", "openmp_enabled", "simd_info"]

# fc_plan_init's isa_cap (fc_conv.h): None = the best the CPU has
_ISA_CAPS = {None: 0, "generic": 1, "avx2": 2}
_REAL_CODES = {
    np.dtype(np.float32): FC_F32,
    np.dtype(np.float64): FC_F64,
    np.dtype(np.int64): FC_I64,
}
_COMPLEX_PARTS = {
    np.dtype(np.complex64): np.dtype(np.float32),
    np.dtype(np.complex128): np.dtype(np.float64),
}


def openmp_enabled():
    """Whether this build of ``fastconv._core`` was compiled with OpenMP.

    Returns
    -------
    bool
        ``False`` means every call runs on one thread whatever ``nthreads`` says.

    Examples
    --------
    >>> from fastconv import _core
    >>> isinstance(_core.openmp_enabled(), bool)
    True
    """
    return bool(fc_openmp_enabled())


def simd_info():
    """The instruction-set path the kernels dispatch to on this CPU.

    Returns
    -------
    str
        ``'avx512vl+avx2+fma'`` (x86-64 with AVX-512F/VL/BW/DQ: the 256-bit kernels
        compiled with 32 vector registers), ``'avx2+fma'`` (x86-64 with AVX2 and FMA) or
        ``'generic'`` (baseline ISA).  The direct engine takes the first for its diagonal
        kernel and for plans of at most 32 taps (channels x kernel taps), the AVX2 build for
        larger plans; the depthwise and GEMM kernels use the AVX2 path on both x86 cases.

    Examples
    --------
    >>> from fastconv import _core
    >>> _core.simd_info() in ('avx512vl+avx2+fma', 'avx2+fma', 'generic')
    True
    """
    isa = 2 if fc_cpu_has_avx512vl() else 1 if fc_cpu_has_avx2_fma() else 0
    return fc_isa_name(isa).decode("ascii")


def _int_tuple(name, value, D, minimum):
    try:
        seq = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of {D} ints, got {value!r}") from None
    if len(seq) != D:
        raise ValueError(f"{name} must have one entry per spatial axis ({D}), got {seq!r}")
    res = []
    for v in seq:
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} entries must be ints, got {v!r}")
        try:
            v = operator.index(v)
        except TypeError:
            raise TypeError(f"{name} entries must be ints, got {v!r}") from None
        if minimum is not None and v < minimum:
            raise ValueError(f"{name} entries must be >= {minimum}, got {seq!r}")
        res.append(v)
    return tuple(res)


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return v


def correlate(x, w, out, stride, dilation, pad, groups, nthreads, *, _isa=None):
    """Multi-channel N-D cross-correlation with implicit zero padding, into ``out``.

    ``out[n, co, o] = sum_ci sum_k x[n, g*C_in/groups + ci, o*stride + k*dilation - pad]
    * w[co, ci, k]`` with ``g = co // (C_out // groups)`` and ``x`` read as zero outside
    its bounds.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *S)
        Input, C-contiguous.
    w : ndarray, shape (C_out, C_in // groups, *K)
        Weights, C-contiguous, same dtype as ``x``. Not flipped, not conjugated.
    out : ndarray, shape (N, C_out, *O)
        Preallocated C-contiguous output (overwritten; must not overlap ``x`` or ``w``).
        ``O`` is free: outputs reading past the end of ``x`` see zeros ('full' mode).
    stride, dilation : tuple of int
        One entry (>= 1) per spatial axis.
    pad : tuple of int
        Zeros before each spatial axis (a negative entry crops instead).
    groups : int
        Divides ``C_in`` and ``C_out``; ``groups == C_in`` is depth-wise.
    nthreads : int
        OpenMP threads (>= 1). Ignored (1) in a build without OpenMP.
    _isa : {None, 'generic', 'avx2'}, optional
        Testing hook: ``'generic'`` forces the baseline-ISA kernels, ``'avx2'`` the AVX2
        kernels where the CPU would take the AVX-512VL ones.

    Returns
    -------
    out : ndarray
        The ``out`` argument.

    Raises
    ------
    TypeError
        Non-ndarray arguments, unsupported or mismatched dtypes, non-int parameters.
    ValueError
        Inconsistent shapes, non-contiguous / unaligned / read-only / overlapping arrays,
        bad stride, dilation, groups or nthreads.

    See Also
    --------
    scipy.signal.correlate : the N = C = 1, stride = dilation = 1 case.
    torch.nn.functional.conv2d : the same contract (float, 'pad' zeros on both sides).

    Notes
    -----
    dtypes: float32, float64, complex64, complex128 and int64 (which wraps modulo 2**64).
    Cost: ``N * C_out * prod(O) * (C_in / groups) * prod(K)`` multiply-adds, run with
    AVX2+FMA register-blocked kernels where the CPU has them, plus one gathered copy of
    the input per output-row tile. Complex inputs cost four real correlations (done as one
    real correlation with doubled channels) plus a de-/re-interleaving copy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import _core
    >>> x = np.arange(5.0).reshape(1, 1, 5)
    >>> w = np.array([1.0, 1.0]).reshape(1, 1, 2)
    >>> out = np.empty((1, 1, 6))
    >>> _core.correlate(x, w, out, (1,), (1,), (1,), 1, 1)[0, 0]
    array([0., 1., 3., 5., 7., 4.])
    """
    for name, a in (("x", x), ("w", w), ("out", out)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if not (x.dtype == w.dtype == out.dtype):
        raise TypeError(f"x, w and out must share one dtype, got {x.dtype}, {w.dtype}, "
                        f"{out.dtype}")
    dt = x.dtype
    if dt not in _REAL_CODES and dt not in _COMPLEX_PARTS:
        raise TypeError(f"unsupported dtype {dt}: expected float32, float64, complex64, "
                        "complex128 or int64 (native byte order)")
    if x.ndim < 3:
        raise ValueError(f"x must have shape (N, C_in, *spatial) with >= 1 spatial axis, "
                         f"got shape {x.shape}")
    if w.ndim != x.ndim or out.ndim != x.ndim:
        raise ValueError(f"x, w and out must have the same number of dimensions, got "
                         f"shapes {x.shape}, {w.shape}, {out.shape}")
    D = x.ndim - 2
    if D > FC_MAXD:
        raise ValueError(f"at most {FC_MAXD} spatial axes are supported, got {D}")
    for name, a in (("x", x), ("w", w), ("out", out)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if not a.flags.aligned:
            raise ValueError(f"{name} must be aligned")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    stride = _int_tuple("stride", stride, D, 1)
    dilation = _int_tuple("dilation", dilation, D, 1)
    pad = _int_tuple("pad", pad, D, None)
    groups = _positive_int("groups", groups)
    nthreads = _positive_int("nthreads", nthreads)
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    if C_in % groups or C_out % groups:
        raise ValueError(f"groups={groups} must divide C_in={C_in} and C_out={C_out}")
    if w.shape[1] != C_in // groups:
        raise ValueError(f"w.shape[1] must be C_in // groups = {C_in // groups}, got "
                         f"w.shape = {w.shape}")
    if out.shape[0] != N or out.shape[1] != C_out:
        raise ValueError(f"out.shape must start with (N, C_out) = ({N}, {C_out}), got "
                         f"{out.shape}")
    if out.size and (np.may_share_memory(out, x) or np.may_share_memory(out, w)):
        raise ValueError("out must not overlap x or w")
    if _isa not in (None, "generic", "avx2"):
        raise ValueError(f"_isa must be None, 'generic' or 'avx2', got {_isa!r}")
    if out.size == 0:
        return out
    if x.size == 0 or w.size == 0:
        out[...] = 0  # empty reduction (or every read outside x)
        return out
    if dt in _COMPLEX_PARTS:
        _correlate_complex(x, w, out, stride, dilation, pad, groups, nthreads, _isa)
    else:
        _correlate_real(x, w, out, stride, dilation, pad, groups, nthreads, _isa,
                        _REAL_CODES[dt])
    return out


def _correlate_complex(x, w, out, stride, dilation, pad, groups, nthreads, isa):
    """Complex correlation as one real correlation with doubled channels.

    Per group, input channels become [Re x_g, Im x_g] and output channels
    [Re out_g, Im out_g] with weights [[Re w, -Im w], [Im w, Re w]].
    """
    rdt = _COMPLEX_PARTS[x.dtype]
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    G = groups
    Cig, Cog = C_in // G, C_out // G
    S, K, O = x.shape[2:], w.shape[2:], out.shape[2:]
    xv = x.reshape((N, G, Cig) + S)
    xr = np.empty((N, G, 2, Cig) + S, dtype=rdt)
    xr[:, :, 0] = xv.real
    xr[:, :, 1] = xv.imag
    wv = w.reshape((G, Cog, Cig) + K)
    wr = np.empty((G, 2, Cog, 2, Cig) + K, dtype=rdt)
    wr[:, 0, :, 0] = wv.real
    np.negative(wv.imag, out=wr[:, 0, :, 1])
    wr[:, 1, :, 0] = wv.imag
    wr[:, 1, :, 1] = wv.real
    orr = np.empty((N, G, 2, Cog) + O, dtype=rdt)
    _correlate_real(xr.reshape((N, 2 * C_in) + S), wr.reshape((2 * C_out, 2 * Cig) + K),
                    orr.reshape((N, 2 * C_out) + O), stride, dilation, pad, G, nthreads,
                    isa, _REAL_CODES[rdt])
    ov = out.reshape((N, G, Cog) + O)
    ov.real = orr[:, :, 0]
    ov.imag = orr[:, :, 1]


cdef int _run(const fc_plan *pl, int nthreads) noexcept nogil:
    """Run every task of the plan on ``nthreads`` OpenMP threads; -1 on out of memory."""
    cdef int64_t ntasks = fc_plan_ntasks(pl)
    cdef int64_t t
    cdef size_t nbytes = fc_plan_scratch_bytes(pl)
    cdef char *buf = NULL
    cdef int failed = 0
    if ntasks <= 0:
        return 0
    if nthreads > ntasks:
        nthreads = <int>ntasks
    if nthreads <= 1:
        buf = <char *>fc_alloc(nbytes)
        if buf == NULL:
            return -1
        for t in range(ntasks):
            fc_run_task(pl, t, buf)
        fc_free(buf)
        return 0
    with parallel(num_threads=nthreads):
        buf = <char *>fc_alloc(nbytes)
        for t in prange(ntasks, schedule="static"):
            if buf == NULL:
                failed += 1
            else:
                fc_run_task(pl, t, buf)
        fc_free(buf)
    return -1 if failed else 0


def _correlate_real(x, w, out, stride, dilation, pad, groups, nthreads, isa, int code):
    """Validated real (float32/float64/int64) correlation: plan, run without the GIL."""
    cdef int D = x.ndim - 2
    cdef int64_t xs[34]
    cdef int64_t ws[34]
    cdef int64_t os[34]
    cdef int64_t st[32]
    cdef int64_t di[32]
    cdef int64_t pa[32]
    cdef int i, rc, nt = nthreads
    cdef fc_plan pl
    # the data pointers straight from the array structs (``.ctypes.data`` built three
    # ctypes helper objects, ~1.5 us of a small layer's call)
    cdef size_t px = <size_t>cnp.PyArray_DATA(<cnp.ndarray?>x)
    cdef size_t pw = <size_t>cnp.PyArray_DATA(<cnp.ndarray?>w)
    cdef size_t po = <size_t>cnp.PyArray_DATA(<cnp.ndarray?>out)
    for i in range(D + 2):
        xs[i] = x.shape[i]
        ws[i] = w.shape[i]
        os[i] = out.shape[i]
    for i in range(D):
        st[i] = stride[i]
        di[i] = dilation[i]
        pa[i] = pad[i]
    if not fc_openmp_enabled():
        nt = 1
    rc = fc_plan_init(&pl, code, D, xs, ws, os, st, di, pa, groups, nt,
                      _ISA_CAPS[isa], <const void *>px, <const void *>pw,
                      <void *>po)
    if rc != 0:
        fc_plan_free(&pl)
        raise MemoryError("fastconv._core: cannot allocate the convolution plan")
    with nogil:
        rc = _run(&pl, nt)
    fc_plan_free(&pl)
    if rc != 0:
        raise MemoryError("fastconv._core: cannot allocate scratch memory")


# ----------------------------------------------------------------------------------------
# depthwise 2-D, float32 (fastconv/src/fc_depthwise.h)
# ----------------------------------------------------------------------------------------
cdef extern from "fc_depthwise.h" nogil:
    ctypedef struct fc_dwgeom:
        int64_t N, C, M
        int64_t H, W
        int64_t KH, KW, OH, OW
        int64_t sh, sw, dh, dw, ph, pw
        int64_t D, KD, OD, sd, dd, pd
    int fc_depthwise_f32(const fc_dwgeom *q, const float *x, const float *w,
                         const float *bias, float *out, int nthreads, int isa_cap)
    int64_t fc_depthwise_scratch_bytes(const fc_dwgeom *q, int nthreads)
    int fc_depthwise_wgrad_f32(const fc_dwgeom *q, const float *x, const float *gy,
                               float *gw, int nthreads, int force_generic)
    int FCD_MAXTAPS


cdef fc_dwgeom _dw_geometry(str fname, x_shape, Py_ssize_t c_out, Py_ssize_t n_out,
                             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t oh, Py_ssize_t ow,
                             stride, dilation, pad) except *:
    """The depthwise geometry, validated (ValueError naming ``fname``)."""
    cdef fc_dwgeom q
    q.D, q.KD, q.OD, q.sd, q.dd, q.pd = 1, 1, 1, 1, 1, 0   # planes (depthwise3d_f32 sets them)
    q.N, q.C, q.H, q.W = x_shape[0], x_shape[1], x_shape[2], x_shape[3]
    q.KH, q.KW, q.OH, q.OW = kh, kw, oh, ow
    q.sh, q.sw = stride
    q.dh, q.dw = dilation
    q.ph, q.pw = pad
    if q.C == 0 or c_out % q.C or n_out != q.N:
        raise ValueError(f"{fname}: inconsistent channel counts")
    q.M = c_out // q.C
    if min(q.sh, q.sw, q.dh, q.dw) < 1 or min(q.ph, q.pw) < 0:
        raise ValueError(f"{fname}: stride/dilation must be >= 1 and pad >= 0")
    if q.KH < 1 or q.KW < 1 or q.KH * q.KW > FCD_MAXTAPS:
        raise ValueError(f"{fname}: kernel must have 1 .. {FCD_MAXTAPS} taps")
    return q


cdef int _dw_prepare(str fname, const fc_dwgeom *q, bias, out, Py_ssize_t c_out,
                     const float **bptr) except -1:
    """The forward depthwise calls' shared checks: ``bias`` (None or ``c_out`` float32, an
    array the caller holds, so that its data outlive this frame) pointed to by ``*bptr``; returns 1 when nothing is left for the kernel (an empty
    output, or an empty input, whose every tap reads zeros: ``out`` = bias), else 0."""
    cdef const float[::1] b
    if bias is not None:
        b = bias
        if b.shape[0] != c_out:
            raise ValueError(f"{fname}: bias has the wrong length")
        bptr[0] = &b[0]
    if q.N == 0 or q.OD == 0 or q.OH == 0 or q.OW == 0:
        return 1
    if q.D == 0 or q.H == 0 or q.W == 0:
        o = np.asarray(out)
        o[...] = 0 if bias is None else np.asarray(bias).reshape((-1,) + (1,) * (o.ndim - 2))
        return 1
    return 0


def depthwise2d_f32(const float[:, :, :, ::1] x, const float[:, :, ::1] w, bias,
                    float[:, :, :, ::1] out, stride, dilation, pad, int nthreads=1,
                    bint force_generic=False, int isa_cap=2):
    """Depthwise 2-D correlation of float32 planes (groups = C_in), into ``out``.

    ``out[n, c*M + m, oh, ow] = bias[c*M + m] + sum_{kh,kw} w[c*M + m, kh, kw] *
    x[n, c, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]`` (zeros outside ``x``), ``M`` the
    channel multiplier ``out.shape[1] // x.shape[1]``; ``pad`` >= 0 on each axis.
    ``force_generic``: the portable loops; else ``isa_cap`` 1 caps the kernels at AVX2
    (2: the best this CPU runs -- on AVX-512VL CPUs the 3x3 and 5x5 kernels at stride 1
    and 2 that read the input in place, and the general kernel's AVX-512VL build).
    """
    cdef const float *bptr = NULL
    cdef int rc
    if w.shape[0] != out.shape[1]:
        raise ValueError("depthwise2d_f32: inconsistent channel counts")
    cdef fc_dwgeom q = _dw_geometry("depthwise2d_f32", x.shape, out.shape[1], out.shape[0],
                                    w.shape[1], w.shape[2], out.shape[2], out.shape[3],
                                    stride, dilation, pad)
    if _dw_prepare("depthwise2d_f32", &q, bias, out, out.shape[1], &bptr):
        return out
    with nogil:
        rc = fc_depthwise_f32(&q, &x[0, 0, 0, 0], &w[0, 0, 0], bptr, &out[0, 0, 0, 0],
                              nthreads, 0 if force_generic else isa_cap)
    if rc == -1:
        raise MemoryError("depthwise2d_f32: could not allocate %d bytes of scratch"
                          % fc_depthwise_scratch_bytes(&q, nthreads))
    return out


cdef fc_dwgeom _dw3_geometry(str fname, x_shape, Py_ssize_t c_out, Py_ssize_t n_out,
                              kernel, out_spatial, stride, dilation, pad) except *:
    """The 3-D depthwise geometry (x (N, C, D, H, W)), validated (ValueError naming
    ``fname``)."""
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    cdef fc_dwgeom q = _dw_geometry(fname, (x_shape[0], x_shape[1], x_shape[3], x_shape[4]),
                                    c_out, n_out, kernel[1], kernel[2], out_spatial[1],
                                    out_spatial[2], (sh, sw), (dh, dw), (ph, pw))
    q.D, q.KD, q.OD, q.sd, q.dd, q.pd = x_shape[2], kernel[0], out_spatial[0], sd, dd, pd
    if min(q.sd, q.dd) < 1 or q.pd < 0:
        raise ValueError(f"{fname}: stride/dilation must be >= 1 and pad >= 0")
    if q.KD < 1 or q.KD * q.KH * q.KW > FCD_MAXTAPS:
        raise ValueError(f"{fname}: kernel must have 1 .. {FCD_MAXTAPS} taps")
    return q


def depthwise3d_f32(const float[:, :, :, :, ::1] x, const float[:, :, :, ::1] w, bias,
                    float[:, :, :, :, ::1] out, stride, dilation, pad, int nthreads=1,
                    bint force_generic=False, int isa_cap=2):
    """Depthwise 3-D correlation of float32 volumes (groups = C_in), into ``out``.

    ``out[n, c*M + m, od, oh, ow] = bias[c*M + m] + sum_{kd,kh,kw} w[c*M + m, kd, kh, kw] *
    x[n, c, od*sd + kd*dd - pd, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]`` (zeros outside
    ``x``); ``stride``, ``dilation``, ``pad`` three ints each (pad >= 0). One work item per
    (image, channel, output plane): the kernel's KD input planes are read into a panel of
    KD slabs (fc_depthwise.h). ``force_generic`` / ``isa_cap`` as in
    :func:`depthwise2d_f32`.
    """
    cdef const float *bptr = NULL
    cdef int rc
    if w.shape[0] != out.shape[1]:
        raise ValueError("depthwise3d_f32: inconsistent channel counts")
    cdef fc_dwgeom q = _dw3_geometry("depthwise3d_f32", x.shape, out.shape[1], out.shape[0],
                                     (w.shape[1], w.shape[2], w.shape[3]),
                                     (out.shape[2], out.shape[3], out.shape[4]), stride,
                                     dilation, pad)
    if _dw_prepare("depthwise3d_f32", &q, bias, out, out.shape[1], &bptr):
        return out
    with nogil:
        rc = fc_depthwise_f32(&q, &x[0, 0, 0, 0, 0], &w[0, 0, 0, 0], bptr,
                              &out[0, 0, 0, 0, 0], nthreads, 0 if force_generic else isa_cap)
    if rc == -1:
        raise MemoryError("depthwise3d_f32: could not allocate %d bytes of scratch"
                          % fc_depthwise_scratch_bytes(&q, nthreads))
    return out


def depthwise2d_wgrad_f32(const float[:, :, :, ::1] x, const float[:, :, :, ::1] gy,
                          float[:, :, ::1] gw, stride, dilation, pad, int nthreads=1,
                          bint force_generic=False):
    """Weight gradient of :func:`depthwise2d_f32` into ``gw`` (C*M, KH, KW):
    ``gw[c*M + m, kh, kw] = sum_{n,oh,ow} gy[n, c*M + m, oh, ow] *
    x[n, c, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]`` (zeros outside ``x``), float32 with
    double sums per image."""
    cdef int rc
    if gy.shape[1] != gw.shape[0]:
        raise ValueError("depthwise2d_wgrad_f32: inconsistent channel counts")
    cdef fc_dwgeom q = _dw_geometry("depthwise2d_wgrad_f32", x.shape, gw.shape[0],
                                    gy.shape[0], gw.shape[1], gw.shape[2], gy.shape[2],
                                    gy.shape[3], stride, dilation, pad)
    if q.N == 0 or q.OH == 0 or q.OW == 0 or q.H == 0 or q.W == 0:
        np.asarray(gw)[...] = 0
        return gw
    with nogil:
        rc = fc_depthwise_wgrad_f32(&q, &x[0, 0, 0, 0], &gy[0, 0, 0, 0], &gw[0, 0, 0],
                                    nthreads, force_generic)
    if rc == -1:
        raise MemoryError("depthwise2d_wgrad_f32: could not allocate %d bytes of scratch"
                          % fc_depthwise_scratch_bytes(&q, nthreads))
    return gw


def depthwise3d_wgrad_f32(const float[:, :, :, :, ::1] x, const float[:, :, :, :, ::1] gy,
                          float[:, :, :, ::1] gw, stride, dilation, pad, int nthreads=1,
                          bint force_generic=False):
    """Weight gradient of :func:`depthwise3d_f32` into ``gw`` (C*M, KD, KH, KW):
    ``gw[c*M + m, kd, kh, kw] = sum_{n,od,oh,ow} gy[n, c*M + m, od, oh, ow] *
    x[n, c, od*sd + kd*dd - pd, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]`` (zeros outside
    ``x``), float32 with double sums per output plane."""
    cdef int rc
    if gy.shape[1] != gw.shape[0]:
        raise ValueError("depthwise3d_wgrad_f32: inconsistent channel counts")
    cdef fc_dwgeom q = _dw3_geometry("depthwise3d_wgrad_f32", x.shape, gw.shape[0],
                                     gy.shape[0], (gw.shape[1], gw.shape[2], gw.shape[3]),
                                     (gy.shape[2], gy.shape[3], gy.shape[4]), stride,
                                     dilation, pad)
    if q.N == 0 or q.OD == 0 or q.OH == 0 or q.OW == 0 or q.D == 0 or q.H == 0 or q.W == 0:
        np.asarray(gw)[...] = 0
        return gw
    with nogil:
        rc = fc_depthwise_wgrad_f32(&q, &x[0, 0, 0, 0, 0], &gy[0, 0, 0, 0, 0],
                                    &gw[0, 0, 0, 0], nthreads, force_generic)
    if rc == -1:
        raise MemoryError("depthwise3d_wgrad_f32: could not allocate %d bytes of scratch"
                          % fc_depthwise_scratch_bytes(&q, nthreads))
    return gw
