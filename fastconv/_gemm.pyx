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
"""
cimport cython
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
             int nthreads):
    """Scatter-add a patch matrix into a zero-padded 3-D batch: the adjoint of
    :func:`im2col3d` (with ``od0 = 0``).

    ``xp[n, c, o_d*sd + k_d*dd, o_h*sh + k_h*dh, o_w*sw + k_w*dw] += cols[n, c*K + k, o]``;
    OpenMP over (image, channel), each job owns one channel plane of ``xp``.
    """
    cdef Py_ssize_t n_img = xp.shape[0], c = xp.shape[1]
    cdef Py_ssize_t kk = kd * kh * kw, osz = od * oh * ow
    cdef Py_ssize_t job, n, ci, a, b, e, pd, ph, j, row, base
    cdef real_t *dst
    cdef const real_t *src
    if xp.strides[4] != sizeof(real_t):
        raise ValueError("col2im3d: the last axis of xp must be contiguous")
    if cols.shape[0] != n_img or cols.shape[1] != c * kk or cols.shape[2] != osz:
        raise ValueError("col2im3d: cols has the wrong shape")
    if ((od - 1) * sd + (kd - 1) * dd >= xp.shape[2] or
            (oh - 1) * sh + (kh - 1) * dh >= xp.shape[3] or
            (ow - 1) * sw + (kw - 1) * dw >= xp.shape[4]):
        raise ValueError("col2im3d: the padded buffer is too small")
    if osz == 0 or kk == 0:
        return
    if nthreads < 1:
        nthreads = 1
    for job in prange(n_img * c, nogil=True, schedule='static', num_threads=nthreads):
        n = job // c
        ci = job % c
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    row = ci * kk + (a * kh + b) * kw + e
                    src = &cols[n, row, 0]
                    for pd in range(od):
                        for ph in range(oh):
                            dst = &xp[n, ci, pd * sd + a * dd, ph * sh + b * dh, e * dw]
                            base = (pd * oh + ph) * ow
                            if sw == 1:
                                for j in range(ow):
                                    dst[j] = dst[j] + src[base + j]
                            else:
                                for j in range(ow):
                                    dst[j * sw] = dst[j * sw] + src[base + j]
