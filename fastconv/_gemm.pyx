"""Implicit GEMM for fastconv.nn: a convolution as a sum of per-tap GEMMs on shifted views.

No im2col matrix is built. The (zero-padded, and for strided problems phase-split) input
is flattened per channel; for every kernel tap ``t`` the operand
``X[g*Cg:(g+1)*Cg, off_t : off_t + L]`` is a plain strided matrix (leading dimension = the
flattened image size), so BLAS reads it in place and accumulates (``beta = 1``) into an
output laid out on the same padded grid. The caller crops the grid afterwards.

``implicit_gemm(xph, wt, out, tap_phase, tap_off, groups, L, adjoint)``

* ``xph``  : (N, P, C, S)   phase images (P phases, S flattened samples), C-contiguous
* ``wt``   : (T, G, Cog, Cg) the weight of each tap, C-contiguous
* ``out``  : (N, C_out, So) output on the grid (So >= L), C-contiguous
* forward : ``out[n, g*Cog + i, :L] = sum_t wt[t, g] @ xph[n, ph_t, g*Cg:, off_t:off_t+L]``
* adjoint : ``xph[n, ph_t, g*Cg:, off_t:off_t+L] += wt[t, g].T @ out[n, g*Cog:, :L]``
  (``xph`` is then the accumulator and must start as zeros).

BLAS (scipy's, ``scipy.linalg.cython_blas``) is called with the GIL released and runs its
own threads.

Also here: ``im2col3d`` / ``col2im3d`` (OpenMP patch-matrix copies for the BLAS route) and
the fused float32 engine of fastconv/src/fc_cgemm.h: ``conv_gemm_f32`` (forward, bias,
shuffled channel order, implicit zero padding) and ``conv_wgrad_f32`` (weight gradient).
"""
cimport cython
import numpy as np
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused real_t:
    float
    double


cdef void _gemm(char *ta, char *tb, int m, int n, int k, real_t *a, int lda, real_t *b,
                int ldb, real_t beta, real_t *c, int ldc) noexcept nogil:
    cdef float onef = 1.0, betaf = <float>beta
    cdef double oned = 1.0, betad = <double>beta
    if real_t is float:
        sgemm(ta, tb, &m, &n, &k, &onef, a, &lda, b, &ldb, &betaf, c, &ldc)
    else:
        dgemm(ta, tb, &m, &n, &k, &oned, a, &lda, b, &ldb, &betad, c, &ldc)


def implicit_gemm(real_t[:, :, :, ::1] xph, real_t[:, :, :, ::1] wt, real_t[:, :, ::1] out,
                  int64_t[::1] tap_phase, int64_t[::1] tap_off, int groups, int64_t L,
                  bint adjoint, int64_t tile=0):
    cdef Py_ssize_t n_img = xph.shape[0], c = xph.shape[2], s = xph.shape[3]
    cdef Py_ssize_t ntap = wt.shape[0], cog = wt.shape[2], cg = wt.shape[3]
    cdef Py_ssize_t so = out.shape[2]
    cdef Py_ssize_t n, g, t, l0, lt
    cdef char nn = b'N', tt = b'T'
    if wt.shape[1] != groups or cg * groups != c or out.shape[1] != cog * groups:
        raise ValueError("implicit_gemm: inconsistent shapes")
    if tap_phase.shape[0] != ntap or tap_off.shape[0] != ntap or L > so or L <= 0:
        raise ValueError("implicit_gemm: bad tap list or length")
    for t in range(ntap):
        if tap_phase[t] < 0 or tap_phase[t] >= xph.shape[1] or tap_off[t] < 0 \
                or tap_off[t] + L > s:
            raise ValueError("implicit_gemm: tap outside the input")
    if n_img == 0 or ntap == 0 or cog == 0 or cg == 0:
        return
    if tile <= 0 or tile > L:
        tile = L
    # tiles of ``tile`` output positions keep the accumulated block in cache across taps
    with nogil:
        for n in range(n_img):
            for g in range(groups):
                l0 = 0
                while l0 < L:
                    lt = min(tile, L - l0)
                    for t in range(ntap):
                        if not adjoint:
                            # out^T (L x Cog) = X^T (L x Cg) @ W^T (Cg x Cog), col-major
                            _gemm(&nn, &nn, <int>lt, <int>cog, <int>cg,
                                  &xph[n, tap_phase[t], g * cg, tap_off[t] + l0], <int>s,
                                  &wt[t, g, 0, 0], <int>cg,
                                  <real_t>(0.0 if t == 0 else 1.0),
                                  &out[n, g * cog, l0], <int>so)
                        else:
                            # X^T (L x Cg) += Y^T (L x Cog) @ W (Cog x Cg)
                            _gemm(&nn, &tt, <int>lt, <int>cg, <int>cog,
                                  &out[n, g * cog, l0], <int>so,
                                  &wt[t, g, 0, 0], <int>cg, <real_t>1.0,
                                  &xph[n, tap_phase[t], g * cg, tap_off[t] + l0], <int>s)
                    l0 += tile


def im2col3d(real_t[:, :, :, :, :] xp, real_t[:, :, ::1] cols, int kd, int kh, int kw,
             int od0, int od, int oh, int ow, int sd, int sh, int sw, int dd, int dh, int dw,
             int nthreads):
    """Patch matrix of a zero-padded 3-D batch (1-D and 2-D use singleton axes).

    ``cols[n, c*K + k, o] = xp[n, c, (od0 + o_d)*sd + k_d*dd, o_h*sh + k_h*dh, o_w*sw + k_w*dw]``
    for output depth planes ``od0 .. od0 + od - 1``; OpenMP over (image, channel).
    """
    cdef Py_ssize_t n_img = xp.shape[0], c = xp.shape[1]
    cdef Py_ssize_t kk = kd * kh * kw, osz = od * oh * ow
    cdef Py_ssize_t job, n, ci, a, b, e, pd, ph, pz, j, row, base
    cdef real_t *dst
    cdef const real_t *src
    if xp.strides[4] != sizeof(real_t):
        raise ValueError("im2col3d: the last axis of xp must be contiguous")
    if cols.shape[0] != n_img or cols.shape[1] != c * kk or cols.shape[2] != osz:
        raise ValueError("im2col3d: cols has the wrong shape")
    if ((od0 + od - 1) * sd + (kd - 1) * dd >= xp.shape[2] or
            (oh - 1) * sh + (kh - 1) * dh >= xp.shape[3] or
            (ow - 1) * sw + (kw - 1) * dw >= xp.shape[4]):
        raise ValueError("im2col3d: the padded input is too small")
    if nthreads < 1:
        nthreads = 1
    for job in prange(n_img * c, nogil=True, schedule='static', num_threads=nthreads):
        n = job // c
        ci = job % c
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    row = ci * kk + (a * kh + b) * kw + e
                    dst = &cols[n, row, 0]
                    for pd in range(od):
                        for ph in range(oh):
                            src = &xp[n, ci, (od0 + pd) * sd + a * dd, ph * sh + b * dh, e * dw]
                            base = (pd * oh + ph) * ow
                            if sw == 1:
                                for j in range(ow):
                                    dst[base + j] = src[j]
                            else:
                                for j in range(ow):
                                    dst[base + j] = src[j * sw]


def col2im3d(real_t[:, :, :, :, :] xp, real_t[:, :, ::1] cols, int kd, int kh, int kw,
             int od, int oh, int ow, int sd, int sh, int sw, int dd, int dh, int dw,
             int nthreads, int ld=0, int lh=0, int lw=0, bint zero=False):
    """Scatter-add a patch matrix into a 3-D batch: the adjoint of :func:`im2col3d`.

    ``xp[n, c, o_d*sd + k_d*dd - ld, o_h*sh + k_h*dh - lh, o_w*sw + k_w*dw - lw] +=
    cols[n, c*K + k, o]`` for the positions inside ``xp`` (others are dropped: ``l*`` is
    the padding of the forward convolution, so ``xp`` can be the transposed convolution's
    output itself, with no padded buffer and no crop). With ``zero``, each channel plane is
    zeroed first by the thread that owns it. OpenMP over (image, channel).
    """
    cdef Py_ssize_t n_img = xp.shape[0], c = xp.shape[1]
    cdef Py_ssize_t D = xp.shape[2], H = xp.shape[3], W = xp.shape[4]
    cdef Py_ssize_t kk = kd * kh * kw, osz = od * oh * ow
    cdef Py_ssize_t job, n, ci, a, b, e, pd, ph, j, j0, j1, row, base, zd, zh, off
    cdef real_t *dst
    cdef const real_t *src
    if xp.strides[4] != sizeof(real_t):
        raise ValueError("col2im3d: the last axis of xp must be contiguous")
    if cols.shape[0] != n_img or cols.shape[1] != c * kk or cols.shape[2] != osz:
        raise ValueError("col2im3d: cols has the wrong shape")
    if nthreads < 1:
        nthreads = 1
    for job in prange(n_img * c, nogil=True, schedule='static', num_threads=nthreads):
        n = job // c
        ci = job % c
        if zero:
            for zd in range(D):
                for zh in range(H):
                    dst = &xp[n, ci, zd, zh, 0]
                    for j in range(W):
                        dst[j] = 0
        if osz == 0:
            continue
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    row = ci * kk + (a * kh + b) * kw + e
                    src = &cols[n, row, 0]
                    # columns j0 <= j < j1 land inside: 0 <= j*sw + off < W
                    off = e * dw - lw
                    j0 = 0
                    if off < 0:
                        j0 = (-off + sw - 1) // sw
                    j1 = 0
                    if W - 1 - off >= 0:
                        j1 = (W - 1 - off) // sw + 1
                    if j1 > ow:
                        j1 = ow
                    if j0 >= j1:
                        continue
                    for pd in range(od):
                        zd = pd * sd + a * dd - ld
                        if zd < 0 or zd >= D:
                            continue
                        for ph in range(oh):
                            zh = ph * sh + b * dh - lh
                            if zh < 0 or zh >= H:
                                continue
                            dst = &xp[n, ci, zd, zh, j0 * sw + off]
                            base = (pd * oh + ph) * ow
                            if sw == 1:
                                for j in range(j1 - j0):
                                    dst[j] = dst[j] + src[base + j0 + j]
                            else:
                                for j in range(j1 - j0):
                                    dst[j * sw] = dst[j * sw] + src[base + j0 + j]


# ----------------------------------------------------------------------------------------
# fused im2col + GEMM, float32 (fastconv/src/fc_cgemm.h)
# ----------------------------------------------------------------------------------------
cdef extern from "fc_cgemm.h" nogil:
    ctypedef struct fc_cgeom:
        int64_t N, G, Cg, Cog
        int64_t D, H, W
        int64_t KD, KH, KW
        int64_t OD, OH, OW
        int64_t sd, sh, sw, dd, dh, dw
        int64_t x_sn
        int64_t o_sn, o_sg, o_sm
        int64_t phase
        int64_t pd, ph, pw
        int64_t w_trans
        int64_t engine
    int fc_cgemm_f32(const fc_cgeom *q, const float *x, const float *w, const float *bias,
                     float *out, int nthreads, int force_generic)
    int fc_cgemm_wgrad_f32(const fc_cgeom *q, const float *x, const float *gy, float *gw,
                           int nthreads, int force_generic)
    int64_t fc_cgemm_scratch_bytes(const fc_cgeom *q, int nthreads)
    int fc_igemm_pays_dims(int64_t KT, int64_t Cog, int64_t Cg, int64_t P)
    int fc_igemm_small_map(int64_t N, int64_t P)
    int fc_wino_supported(const fc_cgeom *q)
    int fc_cpu_has_avx2_fma()


cdef fc_cgeom _geometry(str fname, x_shape, w_shape, y_shape, int groups, stride, dilation,
                        pad, int phase) except *:
    """The engine geometry of input ``x_shape``, weight ``w_shape`` (C_out, C/G, *K) and
    output ``y_shape`` (N, C_out, *O), validated (ValueError naming ``fname``). ``pad`` None:
    the input is already padded and must cover every tap; else three leading pads >= 0."""
    cdef fc_cgeom q
    cdef Py_ssize_t c = x_shape[1], c_out = w_shape[0]
    if groups < 1 or c % groups or c_out % groups or w_shape[1] * groups != c:
        raise ValueError(f"{fname}: channels and groups do not match")
    if y_shape[0] != x_shape[0] or y_shape[1] != c_out:
        raise ValueError(f"{fname}: the output / grad_output has the wrong shape")
    q.N, q.G, q.Cg, q.Cog = x_shape[0], groups, c // groups, c_out // groups
    q.D, q.H, q.W = x_shape[2], x_shape[3], x_shape[4]
    q.KD, q.KH, q.KW = w_shape[2], w_shape[3], w_shape[4]
    q.OD, q.OH, q.OW = y_shape[2], y_shape[3], y_shape[4]
    q.sd, q.sh, q.sw = stride
    q.dd, q.dh, q.dw = dilation
    if min(q.sd, q.sh, q.sw, q.dd, q.dh, q.dw) < 1:
        raise ValueError(f"{fname}: stride and dilation must be >= 1")
    if min(q.KD, q.KH, q.KW) < 1:
        raise ValueError(f"{fname}: the kernel is empty")
    if pad is None:
        q.pd = q.ph = q.pw = 0
        if q.OD * q.OH * q.OW and (
                (q.OD - 1) * q.sd + (q.KD - 1) * q.dd >= q.D or
                (q.OH - 1) * q.sh + (q.KH - 1) * q.dh >= q.H or
                (q.OW - 1) * q.sw + (q.KW - 1) * q.dw >= q.W):
            raise ValueError(f"{fname}: the padded input is too small for the output")
    else:
        q.pd, q.ph, q.pw = pad
        if min(q.pd, q.ph, q.pw) < 0:
            raise ValueError(f"{fname}: pad must be >= 0, got {pad}")
    q.x_sn = c * q.D * q.H * q.W
    q.phase = phase
    q.o_sn = q.o_sg = q.o_sm = 0
    q.w_trans = 0
    q.engine = -1
    return q


def conv_gemm_f32(const float[:, :, :, :, ::1] xp, const float[:, :, :, :, ::1] w, bias,
                  float[:, :, :, :, :] out, int groups, stride, dilation,
                  bint shuffle=False, int nthreads=1, bint force_generic=False,
                  int phase=-1, pad=None, bint w_trans=False, int engine=-1):
    """Fused im2col + GEMM correlation of a float32 batch (fc_cgemm.h).

    ``xp`` (N, C, D, H, W); ``w`` (C_out, C/G, KD, KH, KW); ``bias`` None or (C_out,)
    float32; ``out`` (N, C_out, OD, OH, OW), written entirely:
    ``out[n, co, o] = bias[co] + sum_{ci,k} w[co, ci, k] * xp[n, g*Cg + ci, o*stride +
    k*dilation - pad]`` (``g = co // (C_out/G)``). ``pad`` None: ``xp`` is already padded
    and every tap of every output must lie inside it; three ints >= 0: taps outside ``xp``
    (either side) read zeros, the engine builds the padded copy itself, in parallel. With
    ``shuffle`` the channels are written in channel-shuffled order: group ``g``'s channel
    ``j`` lands at ``j*G + g`` (ShuffleNet). ``phase`` (strided problems): -1 auto, 0 gather
    the strided taps, 1 pack from a phase-split copy of the input. ``w_trans`` (1x1 kernels
    only): ``w`` is given as (G*C/G, C_out/G, 1, 1, 1), each group's weight matrix
    transposed (``w[g*Cg + ci, m]`` is output channel ``g*Cog + m``'s weight of input
    channel ``ci``) -- a transposed convolution's ``W_g^T`` read in place. ``engine`` (AVX2
    CPUs; others always run the portable packed loops): -1 chooses, 0 the packed form
    (patch panels packed from the input, pixels in the vector lanes), 1 the implicit form
    (fastconv/src/fc_igemm.h: output channels in the lanes, the input broadcast in place,
    no phase split; ``phase`` is then ignored), 2 Winograd F(2x2, 3x3) / F(2x2, 5x5)
    (fastconv/src/fc_winograd.h: 3x3, 1x3x3, 3x3x3, 5x5 or 1x5x5 kernels at unit stride only, any
    dilation; ValueError otherwise; FloatingPointError, nothing written, when ``xp`` or
    ``w`` holds an Inf or NaN). -1 takes 1 for spatial kernels with >= 16
    output channels per group. ``out`` may be a slice of a larger array along its first
    two axes (a block of channels; not with ``shuffle``). Raises MemoryError (naming the
    bytes) when its scratch cannot be allocated.
    """
    cdef const float[::1] b
    cdef const float *bptr = NULL
    cdef const float *xptr = NULL
    cdef const float *wptr = NULL
    cdef int rc
    wshape = (w.shape[0], w.shape[1], w.shape[2], w.shape[3], w.shape[4])
    if w_trans:
        if wshape[2:] != (1, 1, 1) or groups < 1 or wshape[0] % groups:
            raise ValueError("conv_gemm_f32: w_trans needs a (G*Cg, Cog, 1, 1, 1) weight")
        wshape = (groups * wshape[1], wshape[0] // groups, 1, 1, 1)
    cdef fc_cgeom q = _geometry("conv_gemm_f32", xp.shape, wshape, out.shape, groups,
                                stride, dilation, pad, phase)
    q.w_trans = 1 if w_trans else 0
    if engine not in (-1, 0, 1, 2):
        raise ValueError(f"conv_gemm_f32: engine must be -1, 0, 1 or 2, got {engine}")
    q.engine = engine
    if engine == 2 and not fc_wino_supported(&q):
        raise ValueError("conv_gemm_f32: engine 2 (Winograd) needs a 3x3, 1x3x3, 3x3x3, 5x5 "
                         "or 1x5x5 kernel, unit strides and an AVX2+FMA CPU, got kernel %s, stride %s"
                         % (tuple(wshape[2:]), tuple(stride)))
    cdef Py_ssize_t c_out = q.G * q.Cog, npix = q.OD * q.OH * q.OW
    if q.N == 0 or c_out == 0 or npix == 0:
        return
    # ``out`` may be a slice of a larger array along its first two axes (a block of output
    # channels); its spatial block must be contiguous
    if (out.strides[2] != 4 * q.OH * q.OW or out.strides[3] != 4 * q.OW
            or out.strides[4] != 4 or out.strides[0] % 4 or out.strides[1] % 4):
        raise ValueError("conv_gemm_f32: out's spatial axes must be C-contiguous")
    q.o_sn = out.strides[0] // 4
    if shuffle:
        if out.strides[1] != 4 * npix or q.o_sn != c_out * npix:
            raise ValueError("conv_gemm_f32: shuffle needs a C-contiguous out")
        q.o_sg, q.o_sm = npix, groups * npix
    else:
        q.o_sm = out.strides[1] // 4
        q.o_sg = q.Cog * q.o_sm
    if bias is not None:
        b = bias
        if b.shape[0] != c_out:
            raise ValueError("conv_gemm_f32: bias has the wrong length")
        bptr = &b[0]
    if xp.shape[1]:
        xptr = &xp[0, 0, 0, 0, 0]
        wptr = &w[0, 0, 0, 0, 0]
    if nthreads < 1:
        nthreads = 1
    with nogil:
        rc = fc_cgemm_f32(&q, xptr, wptr, bptr, &out[0, 0, 0, 0, 0], nthreads, force_generic)
    if rc == -2:
        raise FloatingPointError("conv_gemm_f32: engine 2 (Winograd) does not take inputs or "
                                 "weights holding Inf or NaN (its transforms would turn an "
                                 "Inf into NaN); nothing was written")
    if rc != 0:
        raise MemoryError("conv_gemm_f32: could not allocate %d bytes of scratch"
                          % fc_cgemm_scratch_bytes(&q, nthreads))


def conv_wgrad_f32(const float[:, :, :, :, ::1] x, const float[:, :, :, :, ::1] gy,
                   float[:, :, :, :, ::1] gw, int groups, stride, dilation, pad,
                   int nthreads=1, bint force_generic=False, int engine=-1):
    """Weight gradient of :func:`conv_gemm_f32` (with ``pad``) by the same engine.

    ``x`` (N, C, D, H, W) unpadded, ``gy`` (N, C_out, OD, OH, OW), ``gw`` (C_out, C/G, KD,
    KH, KW) overwritten: ``gw[co, ci, k] = sum_{n, o} gy[n, co, o] * x[n, g*C/G + ci,
    o*stride + k*dilation - pad]`` (zeros outside ``x``) -- one GEMM per group whose
    columns are the taps and whose reduction runs over every (image, output position).
    ``engine``: -1 chooses, 0 the explicit form (patch matrix packed), 1 the implicit form
    (AVX2 CPUs: x read in place, grad_output's channels in the vector lanes; fc_igemm.h).
    """
    cdef int rc
    if pad is None:
        raise ValueError("conv_wgrad_f32: pad must be three ints >= 0, got None")
    if engine not in (-1, 0, 1):
        raise ValueError(f"conv_wgrad_f32: engine must be -1, 0 or 1, got {engine}")
    cdef fc_cgeom q = _geometry("conv_wgrad_f32", x.shape, gw.shape, gy.shape, groups,
                                stride, dilation, pad, -1)
    q.engine = engine
    if gw.size == 0:
        return
    if q.N == 0 or q.OD * q.OH * q.OW == 0 or x.shape[1] == 0:
        np.asarray(gw)[...] = 0
        return
    if nthreads < 1:
        nthreads = 1
    with nogil:
        rc = fc_cgemm_wgrad_f32(&q, &x[0, 0, 0, 0, 0], &gy[0, 0, 0, 0, 0],
                                &gw[0, 0, 0, 0, 0], nthreads, force_generic)
    if rc != 0:
        raise MemoryError("conv_wgrad_f32: could not allocate %d bytes of scratch"
                          % fc_cgemm_scratch_bytes(&q, nthreads))


def implicit_form(Py_ssize_t kernel_taps, Py_ssize_t cog, Py_ssize_t images=0,
                  Py_ssize_t pixels=0, Py_ssize_t cg=0):
    """Whether ``conv_gemm_f32(engine=-1)`` takes the implicit form (fc_igemm.h) for a
    forward call with a kernel of ``kernel_taps`` taps, ``cg`` input and ``cog`` output
    channels per group, on ``images`` images of ``pixels`` output pixels each (spatial
    kernels, or 1x1 ones with >= 128 input channels on maps of at most 100 pixels, with
    16-channel panels that are at most 1/8 padding; or at most 256 pixels in all, any
    kernel; on AVX2 CPUs; the rules themselves, shared with the engine, so the cost model
    sees the same choice)."""
    return bool(fc_igemm_pays_dims(kernel_taps, cog, cg, pixels)
                or (images > 0 and fc_igemm_small_map(images, pixels)))


def conv_gemm_avx2():
    """Whether the AVX2+FMA micro-kernel runs on this CPU."""
    return bool(fc_cpu_has_avx2_fma())


# ----------------------------------------------------------------------------------------
# products with few columns (fastconv/src/fc_thin.h)
# ----------------------------------------------------------------------------------------
cdef extern from "fc_thin.h" nogil:
    void fc_thin_f32(const float *x, int64_t n, int64_t G, int64_t Cg, const float *w,
                     int64_t Cog, const float *bias, float *out, int shuffle, int nthreads,
                     int force_generic)


def thin_f32(const float[:, ::1] x, const float[:, ::1] w, bias, float[:, ::1] out,
             int groups, bint shuffle=False, int nthreads=1, bint force_generic=False):
    """1x1 correlation of ``n`` pixels as a product with few columns (fc_thin.h).

    ``x`` (n, G*Cg): one row per pixel; ``w`` (G*Cog, Cg); ``bias`` None or (G*Cog,)
    float32; ``out`` (n, G*Cog), written entirely: ``out[i, o] = bias[g*Cog + m] +
    sum_k w[g*Cog + m, k] * x[i, g*Cg + k]`` with ``o = g*Cog + m``, or ``m*G + g`` with
    ``shuffle`` (ShuffleNet's channel order). Each weight row is read once, in place (no
    packing): for the handful of pixels of a batch-1 squeeze-and-excitation block or
    classifier head.
    """
    cdef const float[::1] b
    cdef const float *bptr = NULL
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], c_out = w.shape[0], cg = w.shape[1]
    if groups < 1 or c_out % groups or cg * groups != c:
        raise ValueError("thin_f32: channels and groups do not match")
    if out.shape[0] != n or out.shape[1] != c_out:
        raise ValueError("thin_f32: out has the wrong shape")
    if bias is not None:
        b = bias
        if b.shape[0] != c_out:
            raise ValueError("thin_f32: bias has the wrong length")
        bptr = &b[0]
    if n == 0 or c_out == 0:
        return
    if cg == 0:   # no input channels: every output is its bias (or zero)
        bb = np.zeros(c_out, np.float32) if bias is None else np.asarray(bias)
        bb = bb.reshape(groups, c_out // groups)
        np.asarray(out)[...] = (bb.T if shuffle else bb).reshape(-1)
        return
    if nthreads < 1:
        nthreads = 1
    with nogil:
        fc_thin_f32(&x[0, 0], n, groups, cg, &w[0, 0], c_out // groups, bptr, &out[0, 0],
                    shuffle, nthreads, force_generic)
