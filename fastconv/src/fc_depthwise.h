/*
 * fc_depthwise.h — float32 2-D depthwise convolution (one input channel per group).
 *
 *   out[n, c*M + m, oh, ow] = bias[c*M + m]
 *       + sum_{kh, kw} w[c*M + m, kh, kw] * x[n, c, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]
 *
 * (zeros outside x; M = channel multiplier). Memory bound: every input plane is read
 * once into a thread-local zero-padded, column-phase-split panel (L1/L2 resident), from
 * which all M output planes are computed with unit-stride vector loads; large outputs
 * are written with streaming stores (no read-for-ownership traffic). Work = (image,
 * channel) planes, OpenMP dynamic. AVX2+FMA by run-time dispatch, portable C otherwise.
 *
 * Panel: panel[ph][r][t] = xpad[r][t*sw + ph], r < HP rows of the padded plane, column
 * phase ph < sw of pitch elements each (pitch >= OW + (KW-1)*dw/sw + 8, a multiple of 8).
 * Tap (kh, kw) of output (oh, ow) reads panel[(kw*dw) % sw][oh*sh + kh*dh][ow + (kw*dw)/sw].
 *
 * 3-D (D, KD, OD, sd, dd, pd; 1, 1, 1, 1, 1, 0 for planes): the work items are (image,
 * channel, chunk of output planes); the panel holds one such slab per input plane the
 * chunk reads (slab j: input plane od0*sd - pd + j, zeros when that plane is padding), each
 * filled once, and tap (kd, kh, kw) of output plane od reads slab (od - od0)*sd + kd*dd.
 * Chunks are sized so the panel stays within FCD_PANEL3D_BYTES. The weight gradient below
 * reads the same slabs.
 */
#ifndef FASTCONV_FC_DEPTHWISE_H
#define FASTCONV_FC_DEPTHWISE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fc_cpu.h"

#define FCD_MAXTAPS 1024
/* 3-D: most bytes of input slabs one work item's panel holds (its chunk of output planes) */
#define FCD_PANEL3D_BYTES ((int64_t)384 << 10)
/* outputs larger than this are written with streaming stores */
#define FCD_NT_BYTES ((int64_t)8 << 20)

typedef struct {
    int64_t N, C, M;          /* images, input channels, channel multiplier */
    int64_t H, W;             /* input plane */
    int64_t KH, KW, OH, OW;   /* kernel, output plane */
    int64_t sh, sw, dh, dw, ph, pw;
    int64_t D, KD, OD, sd, dd, pd;   /* depth axis (3-D); 1, 1, 1, 1, 1, 0 for planes */
} fc_dwgeom;

/* taps per output element */
static inline int64_t fcd_ntaps(const fc_dwgeom *q) { return q->KD * q->KH * q->KW; }

typedef struct {
    int64_t HP, pitch, phase_stride;   /* padded rows, column pitch, elements per phase */
} fcd_panel;

static fcd_panel fcd_panel_geom(const fc_dwgeom *q)
{
    fcd_panel p;
    p.HP = (q->OH - 1) * q->sh + (q->KH - 1) * q->dh + 1;
    int64_t cols = q->OW + ((q->KW - 1) * q->dw) / q->sw + 8;
    p.pitch = (cols + 7) / 8 * 8;
    p.phase_stride = p.HP * p.pitch;
    return p;
}

/* Panel offset of each tap (kd, kh, kw) for output (0, 0): slab kd, phase (kw*dw) % sw,
 * row kh*dh, column (kw*dw) / sw (shared by the forward kernel and the weight gradient). */
static void fcd_taps(const fc_dwgeom *q, const fcd_panel *pg, int64_t *toff)
{
    const int64_t slab = q->sw * pg->phase_stride;
    for (int64_t kd = 0; kd < q->KD; kd++)
        for (int64_t kh = 0; kh < q->KH; kh++)
            for (int64_t kw = 0; kw < q->KW; kw++) {
                const int64_t e = kw * q->dw;
                toff[(kd * q->KH + kh) * q->KW + kw] = kd * q->dd * slab
                    + (e % q->sw) * pg->phase_stride + kh * q->dh * pg->pitch + e / q->sw;
            }
}

/* 3-D: output planes per work item (a chunk), so that its input slabs fit in
 * FCD_PANEL3D_BYTES (at least one plane); 1 for planes. */
static int64_t fcd_chunk(const fc_dwgeom *q, const fcd_panel *pg)
{
    if (q->OD <= 1)
        return 1;
    const int64_t slab = (int64_t)sizeof(float) * q->sw * pg->phase_stride;
    const int64_t span = (q->KD - 1) * q->dd + 1;
    const int64_t nslab = FCD_PANEL3D_BYTES / fc_max(slab, 1);
    const int64_t ob = nslab >= span ? (nslab - span) / q->sd + 1 : 1;
    return fc_max(1, fc_min(ob, q->OD));
}

/* Input slabs a chunk of ob output planes reads. */
static int64_t fcd_nslab(const fc_dwgeom *q, int64_t ob)
{
    return (ob - 1) * q->sd + (q->KD - 1) * q->dd + 1;
}

/* A thread's panel buffer: the slabs of one work item (64-byte aligned; the AVX2 paths read
 * 8 floats past a row). */
static float *fcd_panel_alloc(const fc_dwgeom *q, const fcd_panel *pg)
{
    const int64_t nslab = fcd_nslab(q, fcd_chunk(q, pg));
    return (float *)fc_alloc_aligned(
        sizeof(float) * (size_t)(nslab * q->sw * pg->phase_stride + 8));
}

/* Fill the panel of one input plane (rows/columns outside x are zero). Each phase row is
 * [zeros | input columns a + t*sw for lo <= t < hi | zeros], a = ph - pw; the copy loops
 * have constant strides (1, 2, other) and no exits, so the compiler vectorises them (a
 * stride-2 loop with a break in it ran scalar: ~60% of a 3-D depthwise stride-2 call). */
static void fcd_fill(const fc_dwgeom *q, const fcd_panel *pg, const float *src, float *panel,
                     int interior)
{
    const int64_t sw = q->sw, P = pg->pitch;
    for (int64_t ph = 0; ph < sw; ph++) {
        const int64_t a = ph - q->pw;
        int64_t lo = a >= 0 ? 0 : fc_cdiv(-a, sw);
        int64_t hi = q->W - a > 0 ? fc_cdiv(q->W - a, sw) : 0;
        lo = fc_min(lo, P);
        hi = fc_max(lo, fc_min(hi, P));
        for (int64_t r = 0; r < pg->HP; r++) {
            float *restrict d = panel + ph * pg->phase_stride + r * P;
            const int64_t iy = r - q->ph;
            if (iy < 0 || iy >= q->H) {
                if (!interior)
                    memset(d, 0, sizeof(float) * (size_t)P);
                continue;
            }
            const float *restrict s = src + iy * q->W;   /* s[a + t*sw]: column a + t*sw */
            int64_t t;
            if (!interior)
                for (t = 0; t < lo; t++)
                    d[t] = 0.0f;
            if (sw == 1)
                memcpy(d + lo, s + a + lo, sizeof(float) * (size_t)(hi - lo));
            else if (sw == 2)
                for (t = lo; t < hi; t++)
                    d[t] = s[a + 2 * t];
            else
                for (t = lo; t < hi; t++)
                    d[t] = s[a + t * sw];
            if (!interior)
                for (t = hi; t < P; t++)
                    d[t] = 0.0f;
        }
    }
}

/* 3-D: the slabs of output planes od0 .. od1-1 of one (image, channel) volume xv (D planes
 * of H*W): slab j holds input plane od0*sd - pd + j, zeros where that plane is padding.
 * Planes: one slab, the plane itself. Shared by the forward kernel and the weight
 * gradient. */
static void fcd_fill_slabs(const fc_dwgeom *q, const fcd_panel *pg, const float *xv,
                           int64_t od0, int64_t od1, float *panel, int64_t *ready)
{
    /* The cells of a slab outside the input (padding rows and columns) are only ever
     * written with zeros, so once a thread has filled slab j of its panel (*ready > j) the
     * next fills copy the input rows alone: on 7x7 planes the zeroing had been a third of
     * the call. */
    const int64_t slab = q->sw * pg->phase_stride, isz = q->H * q->W;
    const int64_t z0 = od0 * q->sd - q->pd, ns = fcd_nslab(q, od1 - od0);
    for (int64_t j = 0; j < ns; j++) {
        const int64_t id = z0 + j;
        if (id < 0 || id >= q->D)
            memset(panel + j * slab, 0, sizeof(float) * (size_t)slab);
        else
            fcd_fill(q, pg, xv + id * isz, panel + j * slab, j < *ready);
    }
    if (ns > *ready)
        *ready = ns;
}

/* Portable: one output plane from the panel. */
static void fcd_plane_generic(const fc_dwgeom *q, const fcd_panel *pg, const float *panel,
                              const float *wk, float b, float *dst, const int64_t *toff, int nt)
{
    (void)nt;
    const int64_t T = fcd_ntaps(q);
    for (int64_t oh = 0; oh < q->OH; oh++) {
        const float *row = panel + oh * q->sh * pg->pitch;
        float *d = dst + oh * q->OW;
        for (int64_t ow = 0; ow < q->OW; ow++) {
            float acc = b;
            for (int64_t t = 0; t < T; t++)
                acc += wk[t] * row[toff[t] + ow];
            d[ow] = acc;
        }
    }
}

#if FC_X86
/* Block: R output rows x V vectors of 8 columns, R*V independent accumulators (the FMA
 * latency is hidden with >= 8 of them). Columns past OW (the last vector of a row) are
 * computed from the panel's spare columns and stored masked. Compiled for AVX2 and for
 * AVX-512VL (fcd_plane_avx2 / fcd_plane_avx512: the same 256-bit code, 32 registers and
 * k-masked tail stores). */
#define FCD_BLOCK(ATTR, SFX, TAIL, R, V)                                                  \
ATTR static inline __attribute__((always_inline)) void                                    \
fcd_blk_##SFX##_##R##_##V(const float *p, int64_t rstride, const int64_t *toff, int64_t T, \
                  const __m256 *wv, const float *wk, int small, __m256 bv, float *d,       \
                  int64_t OW, int nvalid_last, __m256i tmask, int nt)                      \
{                                                                                         \
    __m256 acc[R][V];                                                                     \
    for (int r = 0; r < R; r++)                                                           \
        for (int v = 0; v < V; v++)                                                       \
            acc[r][v] = bv;                                                               \
    for (int64_t t = 0; t < T; t++) {                                                     \
        const __m256 w = small ? wv[t] : _mm256_set1_ps(wk[t]);                           \
        const float *s = p + toff[t];                                                     \
        for (int r = 0; r < R; r++)                                                       \
            for (int v = 0; v < V; v++)                                                   \
                acc[r][v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + r * rstride + v * 8),   \
                                            acc[r][v]);                                   \
    }                                                                                     \
    for (int r = 0; r < R; r++) {                                                         \
        float *dr = d + r * OW;                                                           \
        for (int v = 0; v < V; v++) {                                                     \
            if (v == V - 1 && nvalid_last < 8)                                            \
                TAIL(dr + v * 8, acc[r][v]);                                              \
            else if (nt == 2)                                                             \
                _mm256_stream_ps(dr + v * 8, acc[r][v]);                                  \
            else if (nt == 1) {                                                           \
                _mm_stream_ps(dr + v * 8, _mm256_castps256_ps128(acc[r][v]));             \
                _mm_stream_ps(dr + v * 8 + 4, _mm256_extractf128_ps(acc[r][v], 1));       \
            }                                                                             \
            else                                                                          \
                _mm256_storeu_ps(dr + v * 8, acc[r][v]);                                  \
        }                                                                                 \
    }                                                                                     \
}
/* a row's last, partial vector: vmaskmovps (AVX2; microcoded on AMD) or an AVX-512VL
 * masked store (the AVX-512VL build; 8 x 576 x 14^2 at stride 2 on the panel path, one
 * run each: 0.47 -> 0.43 ms) */
#define FCD_TAIL_AVX2(dst, v) _mm256_maskstore_ps(dst, tmask, v)
#define FCD_TAIL_AVX512(dst, v) \
    _mm256_mask_storeu_ps(dst, (__mmask8)((1u << nvalid_last) - 1u), v)
#define FCD_PLANE(ATTR, SFX, TAIL)                                                        \
FCD_BLOCK(ATTR, SFX, TAIL, 1, 1) FCD_BLOCK(ATTR, SFX, TAIL, 1, 2)                          \
FCD_BLOCK(ATTR, SFX, TAIL, 1, 3) FCD_BLOCK(ATTR, SFX, TAIL, 1, 4)                          \
FCD_BLOCK(ATTR, SFX, TAIL, 2, 1) FCD_BLOCK(ATTR, SFX, TAIL, 2, 2)                          \
FCD_BLOCK(ATTR, SFX, TAIL, 2, 3) FCD_BLOCK(ATTR, SFX, TAIL, 2, 4)                          \
FCD_BLOCK(ATTR, SFX, TAIL, 3, 1) FCD_BLOCK(ATTR, SFX, TAIL, 3, 2)                          \
FCD_BLOCK(ATTR, SFX, TAIL, 3, 3) FCD_BLOCK(ATTR, SFX, TAIL, 3, 4)                          \
ATTR static void fcd_plane_##SFX(const fc_dwgeom *q, const fcd_panel *pg,                  \
                                const float *panel, const float *wk, float b, float *dst,  \
                                const int64_t *toff, int nt)                               \
{                                                                                          \
    const int64_t T = fcd_ntaps(q), OW = q->OW;                                            \
    const int64_t nvec = (OW + 7) / 8;             /* vectors per row, the last maybe partial */ \
    const int last = (int)(OW - (nvec - 1) * 8);   /* valid columns of the last vector */  \
    __m256 wv[64];                                                                         \
    const int small = T <= 64;                                                             \
    if (small)                                                                             \
        for (int64_t t = 0; t < T; t++)                                                    \
            wv[t] = _mm256_set1_ps(wk[t]);                                                 \
    const __m256 bv = _mm256_set1_ps(b);                                                   \
    int32_t mk[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};             \
    const __m256i tmask = _mm256_loadu_si256((const __m256i *)(mk + 8 - last));            \
    /* streaming stores need aligned rows: 32-byte (one 256-bit store per vector) or       \
     * 16-byte (two 128-bit ones), rows a whole number of vectors. numpy's large arrays    \
     * are often only 16-byte aligned (glibc's mmapped chunks start 16 bytes into a page): \
     * with 256-bit streaming stores alone, MobileNetV2's depthwise layer (bench L9) took  \
     * 1.35-1.45 ms into such an output and 0.95-1.0 ms into a 32-byte aligned one */      \
    const uintptr_t al = (uintptr_t)dst;                                                   \
    const int ntok = !nt || (OW & 7) ? 0 : (al & 31) == 0 ? 2 : (al & 15) == 0 ? 1 : 0;    \
    const int64_t rstride = q->sh * pg->pitch;                                             \
    for (int64_t oh = 0; oh < q->OH; oh += 3) {                                            \
        const int R = (int)(q->OH - oh < 3 ? q->OH - oh : 3);                              \
        const float *row = panel + oh * rstride;                                           \
        float *d = dst + oh * OW;                                                          \
        for (int64_t v = 0; v < nvec; v += 4) {                                            \
            const int V = (int)(nvec - v < 4 ? nvec - v : 4);                              \
            const int lastv = v + V == nvec ? last : 8;                                    \
            const float *p = row + v * 8;                                                  \
            float *dd = d + v * 8;                                                         \
            switch (R * 8 + V) {                                                           \
            case 1 * 8 + 1: fcd_blk_##SFX##_1_1(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 1 * 8 + 2: fcd_blk_##SFX##_1_2(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 1 * 8 + 3: fcd_blk_##SFX##_1_3(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 1 * 8 + 4: fcd_blk_##SFX##_1_4(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 2 * 8 + 1: fcd_blk_##SFX##_2_1(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 2 * 8 + 2: fcd_blk_##SFX##_2_2(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 2 * 8 + 3: fcd_blk_##SFX##_2_3(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 2 * 8 + 4: fcd_blk_##SFX##_2_4(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 3 * 8 + 1: fcd_blk_##SFX##_3_1(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 3 * 8 + 2: fcd_blk_##SFX##_3_2(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            case 3 * 8 + 3: fcd_blk_##SFX##_3_3(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            default: fcd_blk_##SFX##_3_4(p, rstride, toff, T, wv, wk, small, bv, dd, OW, lastv, tmask, ntok); break; \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}
FCD_PLANE(FC_ATTR_AVX2, avx2, FCD_TAIL_AVX2)
FCD_PLANE(FC_ATTR_AVX512, avx512, FCD_TAIL_AVX512)
#undef FCD_PLANE
#undef FCD_BLOCK
#undef FCD_TAIL_AVX2
#undef FCD_TAIL_AVX512
#endif

#if FC_X86
/* 3x3 kernels at unit stride and dilation (MobileNet's depthwise layers), row-stationary:
 * a strip of V vectors (8V columns) is swept down the panel; each input row is read once,
 * as its three column shifts, and feeds the three output rows that read it (kh = 2, 1, 0:
 * the first of them completes and is stored). Per output vector: one input row's three
 * shifts and 9 FMAs, the weights held in registers -- where fcd_plane_avx2 loads every
 * tap's vector for every output (9 loads, a third of them split across cache lines).
 * Each output still sums bias + taps in tap order, as fcd_plane_avx2 does (same bits).
 * Measured on the 2-core Zen 4 VM, one 56x56 plane from L1: 10.3 cycles per output vector
 * (fcd_plane_avx2) -> 6.2 here (AVX2: 16 registers, some spilled) -> 4.8 in the AVX-512VL
 * form that reads the input in place (fcdx_plane_avx512 below: 32 registers, the shifts by
 * valignd from aligned loads, 112x112 7.2 -> 4.9 against unaligned loads). This panel form
 * serves AVX2 CPUs and the 3-D case (KD = 1 on volumes), compiled for AVX2 only.
 * TAIL(dst, v) stores a row's partial last vector (``nvalid_last`` columns). */
/* The row-stationary 3x3 kernels' shared steps (inside a strip's loop over input rows i,
 * accumulators a2/a1/a0 = output rows i-2, i-1, i, vector v, the row's shifts s0, s1, s2):
 * the row's 9 multiply-adds into the output rows that read it, in tap order; then the
 * store of the completed row i-2 (TAIL for a partial last vector) and the rotation. */
#define FCD3_ROW_FMAS                                                                     \
    if (i >= 2) {   /* i - 2 < OH always */                                               \
        a2[v] = _mm256_fmadd_ps(w[6], s0, a2[v]);                                         \
        a2[v] = _mm256_fmadd_ps(w[7], s1, a2[v]);                                         \
        a2[v] = _mm256_fmadd_ps(w[8], s2, a2[v]);                                         \
    }                                                                                     \
    if (i >= 1 && i - 1 < OH) {                                                           \
        a1[v] = _mm256_fmadd_ps(w[3], s0, a1[v]);                                         \
        a1[v] = _mm256_fmadd_ps(w[4], s1, a1[v]);                                         \
        a1[v] = _mm256_fmadd_ps(w[5], s2, a1[v]);                                         \
    }                                                                                     \
    if (i < OH) {                                                                         \
        a0[v] = _mm256_fmadd_ps(w[0], s0, bv);                                            \
        a0[v] = _mm256_fmadd_ps(w[1], s1, a0[v]);                                         \
        a0[v] = _mm256_fmadd_ps(w[2], s2, a0[v]);                                         \
    }
#define FCD3_ROW_EMIT(V, TAIL)                                                            \
    if (i >= 2) {                                                                         \
        float *dr = d + (i - 2) * OW;                                                     \
        for (int v = 0; v < V; v++) {                                                     \
            if (v == V - 1 && nvalid_last < 8)                                            \
                TAIL(dr + v * 8, a2[v]);                                                  \
            else                                                                          \
                _mm256_storeu_ps(dr + v * 8, a2[v]);                                      \
        }                                                                                 \
    }                                                                                     \
    for (int v = 0; v < V; v++) {                                                         \
        a2[v] = a1[v];                                                                    \
        a1[v] = a0[v];                                                                    \
    }
#define FCD3_TAIL_MST(dst, v) _mm256_mask_storeu_ps(dst, mst, v)

#define FCDRS_STRIP(ATTR, SFX, V, SHIFT, TAIL)                                            \
ATTR static inline __attribute__((always_inline)) void                                    \
fcdrs_strip_##SFX##_##V(const float *p, int64_t P, int64_t OH, const __m256 *w, __m256 bv, \
                        float *d, int64_t OW, int nvalid_last, __m256i tmask)             \
{                                                                                         \
    __m256 a2[V], a1[V], a0[V];   /* output rows i-2, i-1, i */                           \
    for (int v = 0; v < V; v++)                                                           \
        a2[v] = a1[v] = a0[v] = bv;                                                       \
    for (int64_t i = 0; i < OH + 2; i++) {                                                \
        const float *s = p + i * P;                                                       \
        for (int v = 0; v < V; v++) {                                                     \
            __m256 s0, s1, s2;                                                            \
            SHIFT                                                                         \
            FCD3_ROW_FMAS                                                                 \
        }                                                                                 \
        FCD3_ROW_EMIT(V, TAIL)                                                            \
    }                                                                                     \
}
/* the three shifts of columns v*8 .. v*8+9 of row s: unaligned loads */
#define FCDRS_LOADU                                                                       \
    s0 = _mm256_loadu_ps(s + v * 8);                                                      \
    s1 = _mm256_loadu_ps(s + v * 8 + 1);                                                  \
    s2 = _mm256_loadu_ps(s + v * 8 + 2);
/* a row's last, partial vector */
#define FCDRS_TAIL_AVX2(dst, v) _mm256_maskstore_ps(dst, tmask, v)

#define FCDRS_PLANE(ATTR, SFX, SHIFT, TAIL)                                               \
FCDRS_STRIP(ATTR, SFX, 1, SHIFT, TAIL) FCDRS_STRIP(ATTR, SFX, 2, SHIFT, TAIL)              \
FCDRS_STRIP(ATTR, SFX, 3, SHIFT, TAIL) FCDRS_STRIP(ATTR, SFX, 4, SHIFT, TAIL)              \
ATTR static void fcdrs_plane_##SFX(const fc_dwgeom *q, const fcd_panel *pg,               \
                                   const float *panel, const float *wk, float b,          \
                                   float *dst, const int64_t *toff, int nt)               \
{                                                                                         \
    (void)toff;   /* 3x3, unit stride and dilation: tap (kh, kw) at kh*pitch + kw */      \
    const int64_t OW = q->OW, P = pg->pitch;                                              \
    const int64_t nvec = (OW + 7) / 8;                                                    \
    const int last = (int)(OW - (nvec - 1) * 8);                                          \
    __m256 w[9];                                                                          \
    for (int t = 0; t < 9; t++)                                                           \
        w[t] = _mm256_set1_ps(wk[t]);                                                     \
    const __m256 bv = _mm256_set1_ps(b);                                                  \
    int32_t mk[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};            \
    const __m256i tmask = _mm256_loadu_si256((const __m256i *)(mk + 8 - last));           \
    /* ordinary stores whatever ``nt``: timed against streaming ones (written in bands of    \
     * whole rows, whole cache lines) they were 1.06-1.14x faster, 12-55 MiB outputs */    \
    (void)nt;                                                                             \
    for (int64_t v = 0; v < nvec; v += 4) {                                               \
        const int V = (int)(nvec - v < 4 ? nvec - v : 4);                                 \
        const int lastv = v + V == nvec ? last : 8;                                       \
        const float *pv = panel + v * 8;                                                  \
        float *dv = dst + v * 8;                                                          \
        switch (V) {                                                                      \
        case 1: fcdrs_strip_##SFX##_1(pv, P, q->OH, w, bv, dv, OW, lastv, tmask); break;   \
        case 2: fcdrs_strip_##SFX##_2(pv, P, q->OH, w, bv, dv, OW, lastv, tmask); break;   \
        case 3: fcdrs_strip_##SFX##_3(pv, P, q->OH, w, bv, dv, OW, lastv, tmask); break;   \
        default: fcdrs_strip_##SFX##_4(pv, P, q->OH, w, bv, dv, OW, lastv, tmask); break;  \
        }                                                                                 \
    }                                                                                     \
}
FCDRS_PLANE(FC_ATTR_AVX2, avx2, FCDRS_LOADU, FCDRS_TAIL_AVX2)
#undef FCDRS_PLANE
#undef FCDRS_STRIP
#undef FCDRS_LOADU
#undef FCDRS_TAIL_AVX2
#endif

#if FC_X86
/* The AVX-512VL row-stationary kernel reading the input plane itself, with no panel: the
 * padding comes from masked loads (lanes outside the row read as zeros, and never touch
 * memory) and from zero vectors for the rows outside the plane -- still multiplied in, so
 * an Inf or NaN weight meets the zeros as in torch. The panel's fill (a row-by-row copy)
 * had cost 0.6x the kernel's own time on MobileNetV2's 56x56 planes. */
FC_ATTR_AVX512 static inline __mmask8 fcdx_mask(int64_t c, int64_t W)
{
    /* lanes j (0..7) with 0 <= c + j < W */
    const int64_t lo = c < 0 ? -c : 0, hi = W - c;
    if (hi <= 0 || lo >= 8)
        return 0;
    const unsigned up = hi >= 8 ? 0xffu : (1u << hi) - 1u;
    return (__mmask8)(up & ~((1u << (lo > 8 ? 8 : lo)) - 1u));
}

#define FCDX_STRIP(V)                                                                     \
FC_ATTR_AVX512 static inline __attribute__((always_inline)) void                          \
fcdx_strip_##V(const float *xp, int64_t H, int64_t W, int64_t ph, int64_t c0, int64_t OH, \
               const __m256 *w, __m256 bv, float *d, int64_t OW, int nvalid_last)         \
{                                                                                         \
    __mmask8 mlo[V], mhi[V];   /* valid lanes of columns c0+8v .. +7 and of +8, +9 */      \
    for (int v = 0; v < V; v++) {                                                         \
        mlo[v] = fcdx_mask(c0 + 8 * v, W);                                                \
        mhi[v] = (__mmask8)(fcdx_mask(c0 + 8 * v + 8, W) & 3u);                           \
    }                                                                                     \
    const __mmask8 mst = (__mmask8)((1u << nvalid_last) - 1u);                            \
    __m256 a2[V], a1[V], a0[V];   /* output rows i-2, i-1, i */                           \
    for (int v = 0; v < V; v++)                                                           \
        a2[v] = a1[v] = a0[v] = bv;                                                       \
    for (int64_t i = 0; i < OH + 2; i++) {                                                \
        const int64_t iy = i - ph;                                                        \
        const int in = iy >= 0 && iy < H;                                                 \
        const float *s = xp + iy * W + c0;                                                \
        for (int v = 0; v < V; v++) {                                                     \
            __m256 s0, s1, s2;                                                            \
            if (in) {                                                                     \
                const __m256i lo = _mm256_castps_si256(                                   \
                    _mm256_maskz_loadu_ps(mlo[v], s + v * 8));                            \
                const __m256i hi = _mm256_castps_si256(                                   \
                    _mm256_maskz_loadu_ps(mhi[v], s + v * 8 + 8));                        \
                s0 = _mm256_castsi256_ps(lo);                                             \
                s1 = _mm256_castsi256_ps(_mm256_alignr_epi32(hi, lo, 1));                 \
                s2 = _mm256_castsi256_ps(_mm256_alignr_epi32(hi, lo, 2));                 \
            } else {                                                                      \
                s0 = s1 = s2 = _mm256_setzero_ps();                                       \
            }                                                                             \
            FCD3_ROW_FMAS                                                                 \
        }                                                                                 \
        FCD3_ROW_EMIT(V, FCD3_TAIL_MST)                                                   \
    }                                                                                     \
}
FCDX_STRIP(1) FCDX_STRIP(2) FCDX_STRIP(3) FCDX_STRIP(4)
#undef FCDX_STRIP
#undef FCD3_ROW_FMAS
#undef FCD3_ROW_EMIT
#undef FCD3_TAIL_MST

/* One output plane of a 2-D 3x3 problem from input plane ``xp`` (H x W): strips of up to
 * 4 output vectors, output vector v reading input columns from CS*v - pw (CS = 8 at unit
 * stride, 16 at stride 2). */
#define FCDX_PLANE(NAME, STRIP, CS)                                                       \
FC_ATTR_AVX512 static void NAME(const fc_dwgeom *q, const float *xp, const float *wk,     \
                                float b, float *dst)                                      \
{                                                                                         \
    const int64_t OW = q->OW, nvec = (OW + 7) / 8;                                        \
    const int last = (int)(OW - (nvec - 1) * 8);                                          \
    __m256 w[9];                                                                          \
    for (int t = 0; t < 9; t++)                                                           \
        w[t] = _mm256_set1_ps(wk[t]);                                                     \
    const __m256 bv = _mm256_set1_ps(b);                                                  \
    for (int64_t v = 0; v < nvec; v += 4) {                                               \
        const int V = (int)(nvec - v < 4 ? nvec - v : 4);                                 \
        const int lastv = v + V == nvec ? last : 8;                                       \
        const int64_t c0 = (CS) * v - q->pw;                                              \
        float *dv = dst + v * 8;                                                          \
        switch (V) {                                                                      \
        case 1: STRIP##_1(xp, q->H, q->W, q->ph, c0, q->OH, w, bv, dv, OW, lastv); break; \
        case 2: STRIP##_2(xp, q->H, q->W, q->ph, c0, q->OH, w, bv, dv, OW, lastv); break; \
        case 3: STRIP##_3(xp, q->H, q->W, q->ph, c0, q->OH, w, bv, dv, OW, lastv); break; \
        default: STRIP##_4(xp, q->H, q->W, q->ph, c0, q->OH, w, bv, dv, OW, lastv); break; \
        }                                                                                 \
    }                                                                                     \
}
FCDX_PLANE(fcdx_plane_avx512, fcdx_strip, 8)

/* Stride 2 (3x3, unit dilation; MobileNet's downsampling layers), from the input plane in
 * place as fcdx_plane_avx512: output row o reads input rows 2o, 2o+1, 2o+2, so each even
 * row completes row o-1 (its kh = 2) and starts row o; output vector v reads input columns
 * c0 + 16v + 0..16, de-interleaved by vpermt2ps into the even (kw = 0), odd (kw = 1) and
 * shifted even (kw = 2) columns. The panel path spent 54% of a 576-channel 14x14 layer in
 * its stride-2 fill; per plane (one core, from L1): 14x14 0.10 -> 0.03 us, 56x56 0.83 ->
 * 0.51, 112x112 2.6 -> 1.7. Same sums in the same order as the panel kernels. */
#define FCDX2_STRIP(V)                                                                    \
FC_ATTR_AVX512 static inline __attribute__((always_inline)) void                          \
fcdx2_strip_##V(const float *xp, int64_t H, int64_t W, int64_t ph, int64_t c0, int64_t OH, \
                const __m256 *w, __m256 bv, float *d, int64_t OW, int nvalid_last)        \
{                                                                                         \
    /* output vector v: outputs 8v..8v+7 read input columns c0 + 16v + {0..16} */          \
    /* valid lanes of columns c0+16v + 0..7, 8..15, 2..9 and 10..17 */                  \
    __mmask8 m0[V], m1[V], m2[V], m3[V];                                                  \
    for (int v = 0; v < V; v++) {                                                         \
        m0[v] = fcdx_mask(c0 + 16 * v, W);                                                \
        m1[v] = fcdx_mask(c0 + 16 * v + 8, W);                                            \
        m2[v] = fcdx_mask(c0 + 16 * v + 2, W);                                            \
        m3[v] = fcdx_mask(c0 + 16 * v + 10, W);                                           \
    }                                                                                     \
    const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);                      \
    const __m256i od = _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15);                      \
    const __mmask8 mst = (__mmask8)((1u << nvalid_last) - 1u);                            \
    __m256 ap[V], ac[V];   /* output rows o-1 (waits for kh = 2) and o */                 \
    for (int v = 0; v < V; v++)                                                           \
        ap[v] = ac[v] = bv;                                                               \
    for (int64_t o = 0; o <= OH; o++) {                                                   \
        for (int k = 0; k < 2; k++) {   /* input rows 2o (kh 0 of o, kh 2 of o-1), 2o+1 */ \
            if (o == OH && k == 1)                                                        \
                break;                                                                    \
            const int64_t iy = 2 * o + k - ph;                                            \
            const int in = iy >= 0 && iy < H;                                             \
            const float *s = xp + iy * W + c0;                                            \
            for (int v = 0; v < V; v++) {                                                 \
                __m256 s0, s1, s2;                                                        \
                if (in) {                                                                 \
                    const float *sv = s + 16 * v;                                         \
                    const __m256 l0 = _mm256_maskz_loadu_ps(m0[v], sv);                   \
                    const __m256 l1 = _mm256_maskz_loadu_ps(m1[v], sv + 8);               \
                    const __m256 l2 = _mm256_maskz_loadu_ps(m2[v], sv + 2);               \
                    const __m256 l3 = _mm256_maskz_loadu_ps(m3[v], sv + 10);              \
                    s0 = _mm256_permutex2var_ps(l0, ev, l1);                              \
                    s1 = _mm256_permutex2var_ps(l0, od, l1);                              \
                    s2 = _mm256_permutex2var_ps(l2, ev, l3);                              \
                } else {                                                                  \
                    s0 = s1 = s2 = _mm256_setzero_ps();                                   \
                }                                                                         \
                if (k == 0) {                                                             \
                    if (o >= 1) {                                                         \
                        ap[v] = _mm256_fmadd_ps(w[6], s0, ap[v]);                         \
                        ap[v] = _mm256_fmadd_ps(w[7], s1, ap[v]);                         \
                        ap[v] = _mm256_fmadd_ps(w[8], s2, ap[v]);                         \
                    }                                                                     \
                    if (o < OH) {                                                         \
                        ac[v] = _mm256_fmadd_ps(w[0], s0, bv);                            \
                        ac[v] = _mm256_fmadd_ps(w[1], s1, ac[v]);                         \
                        ac[v] = _mm256_fmadd_ps(w[2], s2, ac[v]);                         \
                    }                                                                     \
                } else {                                                                  \
                    ac[v] = _mm256_fmadd_ps(w[3], s0, ac[v]);                             \
                    ac[v] = _mm256_fmadd_ps(w[4], s1, ac[v]);                             \
                    ac[v] = _mm256_fmadd_ps(w[5], s2, ac[v]);                             \
                }                                                                         \
            }                                                                             \
            if (k == 0 && o >= 1) {                                                       \
                float *dr = d + (o - 1) * OW;                                             \
                for (int v = 0; v < V; v++) {                                             \
                    if (v == V - 1 && nvalid_last < 8)                                    \
                        _mm256_mask_storeu_ps(dr + v * 8, mst, ap[v]);                    \
                    else                                                                  \
                        _mm256_storeu_ps(dr + v * 8, ap[v]);                              \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        for (int v = 0; v < V; v++)                                                       \
            ap[v] = ac[v];                                                                \
    }                                                                                     \
}
FCDX2_STRIP(1) FCDX2_STRIP(2) FCDX2_STRIP(3) FCDX2_STRIP(4)
#undef FCDX2_STRIP

FCDX_PLANE(fcdx2_plane_avx512, fcdx2_strip, 16)
#undef FCDX_PLANE

/* The same for K x K kernels (K = 3 or 5) at stride S = 1 or 2, unit dilation, input read
 * in place (AVX-512VL), weights from memory (25 would not fit the registers beside the
 * accumulators; an FMA takes a broadcast memory operand): NF = ceil(K/S) output rows in
 * flight, a[j] the row S*on..'s j-th predecessor; after input rows S*on .. S*on+S-1 the
 * oldest is complete. Sums in tap order, as the panel kernels (same bits). Served: 5x5
 * (EfficientNet's, MnasNet's depthwise layers); 3x3 keeps fcdx_plane_avx512 /
 * fcdx2_plane_avx512 (this form's 3x3 instances took 0.94-1.9x their time, one core,
 * 7x7 to 112x112 planes). Per plane, one core, against the panel path: 5x5/1 14x14 0.29 -> 0.20 us, 56x56 2.8 -> 2.5; 5x5/2
 * 14x14 0.34 -> 0.10, 28x28 0.62 -> 0.28, 112x112 5.0 -> 3.4. */
#define FCDK_AL(hi, lo, n) _mm256_castsi256_ps(_mm256_alignr_epi32(_mm256_castps_si256(hi), _mm256_castps_si256(lo), n))
/* S = 1: the K shifts of columns cv .. cv+7+K-1 (sh[kw] = columns cv+kw ..) */
#define FCDK_SH_3_1 { const __m256 lo = _mm256_maskz_loadu_ps(ma[v], sv), hi = _mm256_maskz_loadu_ps(mb[v], sv + 8); \
    sh[0] = lo; sh[1] = FCDK_AL(hi, lo, 1); sh[2] = FCDK_AL(hi, lo, 2); }
#define FCDK_SH_5_1 { const __m256 lo = _mm256_maskz_loadu_ps(ma[v], sv), hi = _mm256_maskz_loadu_ps(mb[v], sv + 8); \
    sh[0] = lo; sh[1] = FCDK_AL(hi, lo, 1); sh[2] = FCDK_AL(hi, lo, 2); sh[3] = FCDK_AL(hi, lo, 3); sh[4] = FCDK_AL(hi, lo, 4); }
/* S = 2: sh[kw] = columns cv + kw + 2j (j = 0..7), de-interleaved from two loads */
#define FCDK_SH_3_2 { \
    const __m256 a0 = _mm256_maskz_loadu_ps(ma[v], sv), a1 = _mm256_maskz_loadu_ps(mb[v], sv + 8); \
    const __m256 b0 = _mm256_maskz_loadu_ps(mc[v], sv + 2), b1 = _mm256_maskz_loadu_ps(md[v], sv + 10); \
    sh[0] = _mm256_permutex2var_ps(a0, ev, a1); sh[1] = _mm256_permutex2var_ps(a0, od, a1); \
    sh[2] = _mm256_permutex2var_ps(b0, ev, b1); }
#define FCDK_SH_5_2 { \
    const __m256 a0 = _mm256_maskz_loadu_ps(ma[v], sv), a1 = _mm256_maskz_loadu_ps(mb[v], sv + 8); \
    const __m256 b0 = _mm256_maskz_loadu_ps(mc[v], sv + 2), b1 = _mm256_maskz_loadu_ps(md[v], sv + 10); \
    const __m256 c0_ = _mm256_maskz_loadu_ps(me[v], sv + 4), c1_ = _mm256_maskz_loadu_ps(mf[v], sv + 12); \
    sh[0] = _mm256_permutex2var_ps(a0, ev, a1); sh[1] = _mm256_permutex2var_ps(a0, od, a1); \
    sh[2] = _mm256_permutex2var_ps(b0, ev, b1); sh[3] = _mm256_permutex2var_ps(b0, od, b1); \
    sh[4] = _mm256_permutex2var_ps(c0_, ev, c1_); }

#define FCDK_STRIP(K, S, V)                                                               \
FC_ATTR_AVX512 static inline __attribute__((always_inline)) void                          \
fcdk_strip_##K##_##S##_##V(const float *xp, int64_t H, int64_t W, int64_t ph, int64_t c0, \
                  int64_t OH, const float *wk, __m256 bv, float *d, int64_t OW, int nvalid_last) \
{                                                                                         \
    enum { NF = (K + S - 1) / S };  /* output rows in flight */                           \
    __mmask8 ma[V], mb[V], mc[V], md[V], me[V], mf[V];                                    \
    for (int v = 0; v < V; v++) {                                                         \
        const int64_t cv = c0 + 8 * S * v;                                                \
        ma[v] = fcdx_mask(cv, W);                                                         \
        mb[v] = S == 1 ? (__mmask8)(fcdx_mask(cv + 8, W) & ((1u << (K - 1)) - 1u))        \
                       : fcdx_mask(cv + 8, W);                                            \
        mc[v] = fcdx_mask(cv + 2, W); md[v] = fcdx_mask(cv + 10, W);                      \
        me[v] = fcdx_mask(cv + 4, W); mf[v] = fcdx_mask(cv + 12, W);                      \
    }                                                                                     \
    const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);                      \
    const __m256i od = _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15);                      \
    (void)ev; (void)od; (void)mc; (void)md; (void)me; (void)mf;                           \
    const __mmask8 mst = (__mmask8)((1u << nvalid_last) - 1u);                            \
    __m256 a[NF][V];   /* a[j]: output row on - j */                                      \
    for (int j = 0; j < NF; j++)                                                          \
        for (int v = 0; v < V; v++)                                                       \
            a[j][v] = bv;                                                                 \
    for (int64_t on = 0; on < OH + NF - 1; on++) {                                        \
        for (int k = 0; k < S; k++) {                                                     \
            const int64_t iy = S * on + k - ph;                                           \
            const int in = iy >= 0 && iy < H;                                             \
            const float *s = xp + iy * W + c0;                                            \
            for (int v = 0; v < V; v++) {                                                 \
                __m256 sh[K];                                                             \
                const float *sv = s + 8 * S * v;                                          \
                if (in)                                                                   \
                    FCDK_SH_##K##_##S                                                     \
                else                                                                      \
                    for (int kw = 0; kw < K; kw++)                                        \
                        sh[kw] = _mm256_setzero_ps();                                     \
                for (int j = 0; j < NF; j++) {                                            \
                    const int kh = k + S * j;                                             \
                    if (kh >= K || on - j < 0 || on - j >= OH)                            \
                        continue;                                                         \
                    __m256 acc = kh == 0 ? bv : a[j][v];                                  \
                    for (int kw = 0; kw < K; kw++)                                        \
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(wk[kh * K + kw]), sh[kw], acc); \
                    a[j][v] = acc;                                                        \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        if (on - (NF - 1) >= 0) {                                                         \
            float *dr = d + (on - (NF - 1)) * OW;                                         \
            for (int v = 0; v < V; v++) {                                                 \
                if (v == V - 1 && nvalid_last < 8)                                        \
                    _mm256_mask_storeu_ps(dr + v * 8, mst, a[NF - 1][v]);                 \
                else                                                                      \
                    _mm256_storeu_ps(dr + v * 8, a[NF - 1][v]);                           \
            }                                                                             \
        }                                                                                 \
        for (int j = NF - 1; j > 0; j--)                                                  \
            for (int v = 0; v < V; v++)                                                   \
                a[j][v] = a[j - 1][v];                                                    \
    }                                                                                     \
}
#define FCDK_PLANE(K, S)                                                                  \
FCDK_STRIP(K, S, 1) FCDK_STRIP(K, S, 2) FCDK_STRIP(K, S, 3) FCDK_STRIP(K, S, 4)            \
FC_ATTR_AVX512 static void fcdk_plane_##K##_##S(const fc_dwgeom *q, const float *xp,      \
                                                const float *wk, float b, float *dst)     \
{                                                                                         \
    const int64_t OW = q->OW, nvec = (OW + 7) / 8;                                        \
    const int last = (int)(OW - (nvec - 1) * 8);                                          \
    const __m256 bv = _mm256_set1_ps(b);                                                  \
    for (int64_t v = 0; v < nvec; v += 4) {                                               \
        const int V = (int)(nvec - v < 4 ? nvec - v : 4);                                 \
        const int lastv = v + V == nvec ? last : 8;                                       \
        const int64_t c0 = S * 8 * v - q->pw;                                             \
        float *dv = dst + v * 8;                                                          \
        switch (V) {                                                                      \
        case 1: fcdk_strip_##K##_##S##_1(xp, q->H, q->W, q->ph, c0, q->OH, wk, bv, dv, OW, lastv); break; \
        case 2: fcdk_strip_##K##_##S##_2(xp, q->H, q->W, q->ph, c0, q->OH, wk, bv, dv, OW, lastv); break; \
        case 3: fcdk_strip_##K##_##S##_3(xp, q->H, q->W, q->ph, c0, q->OH, wk, bv, dv, OW, lastv); break; \
        default: fcdk_strip_##K##_##S##_4(xp, q->H, q->W, q->ph, c0, q->OH, wk, bv, dv, OW, lastv); break; \
        }                                                                                 \
    }                                                                                     \
}
FCDK_PLANE(5, 1) FCDK_PLANE(5, 2)
#undef FCDK_PLANE
#undef FCDK_STRIP
#undef FCDK_SH_3_1
#undef FCDK_SH_5_1
#undef FCDK_SH_3_2
#undef FCDK_SH_5_2
#undef FCDK_AL
#endif

/* Whether the row-stationary 3x3 kernels serve a problem: in-plane 3x3 taps (KD = 1),
 * unit strides and dilations in the plane. */
static int fcd_rs_serves(const fc_dwgeom *q)
{
    return q->KD == 1 && q->KH == 3 && q->KW == 3 && q->sh == 1 && q->sw == 1 && q->dh == 1
           && q->dw == 1;
}

typedef void (*fcd_plane_fn)(const fc_dwgeom *, const fcd_panel *, const float *,
                             const float *, float, float *, const int64_t *, int);

static int64_t fc_depthwise_scratch_bytes(const fc_dwgeom *q, int nthreads)
{
    fcd_panel pg = fcd_panel_geom(q);
    return (int64_t)nthreads * (int64_t)sizeof(float)
           * (fcd_nslab(q, fcd_chunk(q, &pg)) * q->sw * pg.phase_stride + 8);
}

/*
 * x (N, C, D, H, W), w (C*M, KD, KH, KW), bias (C*M) or NULL, out (N, C*M, OD, OH, OW)
 * (D = KD = OD = 1: planes); all C-contiguous float32. ``isa_cap``: 0 the portable loops,
 * 1 at most AVX2, 2 the best this CPU runs (AVX-512VL for the 3x3 row-stationary kernel).
 * Returns 0, -1 when scratch could not be allocated, -2 when the kernel has more than
 * FCD_MAXTAPS taps.
 */
static int fc_depthwise_f32(const fc_dwgeom *q, const float *x, const float *w,
                            const float *bias, float *out, int nthreads, int isa_cap)
{
    const int64_t T = fcd_ntaps(q);
    if (q->N <= 0 || q->C <= 0 || q->M <= 0 || q->OH <= 0 || q->OW <= 0 || q->OD <= 0)
        return 0;
    if (T > FCD_MAXTAPS)
        return -2;
    fcd_panel pg = fcd_panel_geom(q);
    int64_t toff[FCD_MAXTAPS];
    fcd_taps(q, &pg, toff);
    fcd_plane_fn plane = fcd_plane_generic;
    /* 2-D 3x3 and 5x5 at stride 1 or 2 on AVX-512VL, unit dilation: the input read in
     * place, no panel -- 1 fcdx_plane_avx512 (3x3/1), 2 fcdx2_plane_avx512 (3x3/2),
     * 3 fcdk_plane_5_1, 4 fcdk_plane_5_2 */
    int xdirect = 0;
#if FC_X86
    if (isa_cap >= 1 && fc_cpu_has_avx2_fma()) {
        plane = isa_cap >= 2 && fc_cpu_has_avx512vl() ? fcd_plane_avx512 : fcd_plane_avx2;
        if (fcd_rs_serves(q)) {
            plane = fcdrs_plane_avx2;
            xdirect = isa_cap >= 2 && fc_cpu_has_avx512vl() && q->D == 1 && q->OD == 1;
        } else if (q->KD == 1 && q->KH == q->KW && (q->KH == 3 || q->KH == 5)
                   && q->sh == q->sw && (q->sh == 1 || q->sh == 2) && q->dh == 1
                   && q->dw == 1 && q->D == 1 && q->OD == 1 && isa_cap >= 2
                   && fc_cpu_has_avx512vl()) {
            xdirect = q->KH == 3 ? 2 : q->sh == 1 ? 3 : 4;   /* 3x3 / 1 is served above */
        }
    }
#else
    (void)isa_cap;
#endif
    const int64_t ob = fcd_chunk(q, &pg), nchunk = fc_cdiv(q->OD, ob);
    const int64_t planes = q->N * q->C * nchunk;   /* work items (n, c, chunk of od) */
    const int64_t osz = q->OH * q->OW, isz = q->H * q->W;
    const int64_t slab = q->sw * pg.phase_stride;
    const int nt_store = (int64_t)sizeof(float) * q->N * q->C * q->OD * q->M * osz
                         > FCD_NT_BYTES;
    if (nthreads < 1)
        nthreads = 1;
    if (planes < nthreads)
        nthreads = (int)planes;
    /* items per grab: about 8 grabs per thread (at least 4 items). Small planes are
     * ~100 ns each: grabbed 4 at a time, two threads wrote neighbouring output planes
     * (sharing cache lines at every boundary) and took turns on the shared counter, and
     * 2 threads ran no faster than 1 (960 channels on 7x7) */
    const int64_t dchunk = fc_max(4, planes / (8 * (int64_t)nthreads));
    int failed = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
    {
        float *panel = fcd_panel_alloc(q, &pg);
        int64_t ready = 0;   /* slabs of this thread's panel whose padding cells are zero */
        if (!panel) {
            fc_flag_failure(&failed);
        }
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, dchunk)
#endif
        for (int64_t pl = 0; pl < planes; pl++) {
            if (!panel)
                continue;
            const int64_t ch = pl % nchunk, nc = pl / nchunk;   /* nc = n*C + c */
            const int64_t c = nc % q->C, n = nc / q->C;
            const int64_t od0 = ch * ob, od1 = fc_min(q->OD, od0 + ob);
#if FC_X86
            if (xdirect) {
                for (int64_t m = 0; m < q->M; m++) {
                    const int64_t co = c * q->M + m;
                    (xdirect == 1   ? fcdx_plane_avx512
                     : xdirect == 2 ? fcdx2_plane_avx512
                     : xdirect == 3 ? fcdk_plane_5_1
                                    : fcdk_plane_5_2)(q, x + nc * isz, w + co * T,
                                                      bias ? bias[co] : 0.0f,
                                                      out + (n * q->C * q->M + co) * osz);
                }
                continue;
            }
#endif
            fcd_fill_slabs(q, &pg, x + nc * q->D * isz, od0, od1, panel, &ready);
            for (int64_t od = od0; od < od1; od++)
                for (int64_t m = 0; m < q->M; m++) {
                    const int64_t co = c * q->M + m;
                    plane(q, &pg, panel + (od - od0) * q->sd * slab, w + co * T,
                          bias ? bias[co] : 0.0f,
                          out + ((n * q->C * q->M + co) * q->OD + od) * osz, toff, nt_store);
                }
        }
#if FC_X86
        if (nt_store)
            _mm_sfence();  /* this thread's streaming stores, before the closing barrier */
#endif
        free(panel);
    }
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Weight gradient of the depthwise correlation:
 *   gw[c*M + m, kd, kh, kw] = sum_n sum_{od,oh,ow} gy[n, c*M + m, od, oh, ow]
 *           * x[n, c, od*sd + kd*dd - pd, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]
 * One task per input channel c (it owns its M output rows, so no reduction across threads):
 * for every image (and chunk of output planes, 3-D) the input is read once into the same
 * panel as the forward kernel, and each gy row vector feeds one FMA per tap (T vector
 * accumulators, reduced per output plane into double sums). gy: (N, C*M, OD, OH, OW), gw:
 * (C*M, KD, KH, KW), both C-contiguous (OD = KD = 1: planes).
 * ------------------------------------------------------------------------------------- */
static void fcd_wgrad_plane_generic(const fc_dwgeom *q, const fcd_panel *pg,
                                    const float *panel, const float *g, const int64_t *toff,
                                    double *sums)
{
    const int64_t T = fcd_ntaps(q);
    const int64_t rstride = q->sh * pg->pitch;
    for (int64_t t = 0; t < T; t++) {
        float acc = 0.0f;
        for (int64_t oh = 0; oh < q->OH; oh++) {
            const float *pr = panel + toff[t] + oh * rstride;
            const float *gr = g + oh * q->OW;
            for (int64_t ow = 0; ow < q->OW; ow++)
                acc += gr[ow] * pr[ow];
        }
        sums[t] += acc;
    }
}

#if FC_X86
FC_ATTR_AVX2 static void fcd_wgrad_plane_avx2(const fc_dwgeom *q, const fcd_panel *pg,
                                          const float *panel, const float *g,
                                          const int64_t *toff, double *sums)
{
    const int64_t T = fcd_ntaps(q), OW = q->OW;
    const int64_t nvec = (OW + 7) / 8;
    const int last = (int)(OW - (nvec - 1) * 8);
    int32_t mk[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256i tmask = _mm256_loadu_si256((const __m256i *)(mk + 8 - last));
    const int64_t rstride = q->sh * pg->pitch;
    /* taps in groups of up to 12 register accumulators */
    for (int64_t t0 = 0; t0 < T; t0 += 12) {
        const int nt = (int)(T - t0 < 12 ? T - t0 : 12);
        __m256 acc[12];
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_setzero_ps();
        for (int64_t oh = 0; oh < q->OH; oh++) {
            const float *gr = g + oh * OW;
            const float *pr = panel + oh * rstride;
            for (int64_t v = 0; v < nvec; v++) {
                const __m256 gv = v + 1 < nvec ? _mm256_loadu_ps(gr + v * 8)
                                               : _mm256_maskload_ps(gr + v * 8, tmask);
                const float *pv = pr + v * 8;
#define FCD_WG(i) \
                if (i < nt) acc[i] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(pv + toff[t0 + i]), acc[i])
                FCD_WG(0); FCD_WG(1); FCD_WG(2); FCD_WG(3); FCD_WG(4); FCD_WG(5);
                FCD_WG(6); FCD_WG(7); FCD_WG(8); FCD_WG(9); FCD_WG(10); FCD_WG(11);
#undef FCD_WG
            }
        }
        for (int i = 0; i < nt; i++) {
            float h[8];
            _mm256_storeu_ps(h, acc[i]);
            sums[t0 + i] += ((double)h[0] + h[1]) + ((double)h[2] + h[3])
                            + (((double)h[4] + h[5]) + ((double)h[6] + h[7]));
        }
    }
}
#endif

typedef void (*fcd_wgrad_fn)(const fc_dwgeom *, const fcd_panel *, const float *,
                             const float *, const int64_t *, double *);

/* Returns 0, -1 when scratch could not be allocated, -2 for more than FCD_MAXTAPS taps. */
static int fc_depthwise_wgrad_f32(const fc_dwgeom *q, const float *x, const float *gy,
                                  float *gw, int nthreads, int force_generic)
{
    const int64_t T = fcd_ntaps(q);
    if (q->C <= 0 || q->M <= 0 || T <= 0)
        return 0;
    if (T > FCD_MAXTAPS)
        return -2;
    if (q->N <= 0 || q->OD <= 0 || q->OH <= 0 || q->OW <= 0) {
        memset(gw, 0, sizeof(float) * (size_t)(q->C * q->M * T));
        return 0;
    }
    fcd_panel pg = fcd_panel_geom(q);
    int64_t toff[FCD_MAXTAPS];
    fcd_taps(q, &pg, toff);
    fcd_wgrad_fn plane = fcd_wgrad_plane_generic;
#if FC_X86
    if (!force_generic && fc_cpu_has_avx2_fma())
        plane = fcd_wgrad_plane_avx2;
#else
    (void)force_generic;
#endif
    const int64_t osz = q->OH * q->OW, isz = q->H * q->W;
    const int64_t slab = q->sw * pg.phase_stride;
    const int64_t ob = fcd_chunk(q, &pg);
    if (nthreads < 1)
        nthreads = 1;
    if (q->C < nthreads)
        nthreads = (int)q->C;
    int failed = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
    {
        float *panel = fcd_panel_alloc(q, &pg);
        int64_t ready = 0;   /* slabs of this thread's panel whose padding cells are zero */
        double *sums = (double *)malloc(sizeof(double) * (size_t)(q->M * T));
        if (!panel || !sums) {
            fc_flag_failure(&failed);
        }
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t c = 0; c < q->C; c++) {
            if (!panel || !sums)
                continue;
            memset(sums, 0, sizeof(double) * (size_t)(q->M * T));
            for (int64_t n = 0; n < q->N; n++)
                for (int64_t od0 = 0; od0 < q->OD; od0 += ob) {
                    const int64_t od1 = fc_min(q->OD, od0 + ob);
                    fcd_fill_slabs(q, &pg, x + (n * q->C + c) * q->D * isz, od0, od1, panel,
                                   &ready);
                    for (int64_t od = od0; od < od1; od++)
                        for (int64_t m = 0; m < q->M; m++)
                            plane(q, &pg, panel + (od - od0) * q->sd * slab,
                                  gy + ((n * q->C * q->M + c * q->M + m) * q->OD + od) * osz,
                                  toff, sums + m * T);
                }
            for (int64_t i = 0; i < q->M * T; i++)
                gw[c * q->M * T + i] = (float)sums[i];
        }
        free(panel);
        free(sums);
    }
    return failed ? -1 : 0;
}

#endif /* FASTCONV_FC_DEPTHWISE_H */
