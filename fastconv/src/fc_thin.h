/*
 * fc_thin.h — float32 products with few columns: 1x1 layers on a handful of pixels in all
 * (batch-1 squeeze-and-excitation blocks and classifier heads on one-pixel maps).
 *
 *   out[i, o(g, m)] = bias[g*Cog + m] + sum_k w[g*Cog + m, k] * x[i, g*Cg + k]
 *   for the n "pixels" i (rows of x, (n, G*Cg) C-contiguous) and o(g, m) = g*Cog + m, or
 *   m*G + g with ``shuffle`` (ShuffleNet's channel order); out (n, G*Cog) C-contiguous.
 *
 * The fused GEMM engines pack the weight into panels before they use it (a pass over the
 * whole weight, written and read back), and their tiles are 6 or 16 pixels wide: for a
 * product of one pixel that packing was the call (960 -> 240: 84 us, torch 21 us). Here
 * each weight row is read once, in place, and dotted with the n pixel rows of x (which stay
 * in L1): blocks of 4 weight rows x 2 pixels, 8 vector accumulators, horizontal sums at the
 * end. Threads take blocks of output channels. AVX2+FMA by run-time dispatch, portable C
 * otherwise.
 */
#ifndef FASTCONV_FC_THIN_H
#define FASTCONV_FC_THIN_H

#include <stdint.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fc_cpu.h"

/* rows [m0, m0 + rows) of group g (rows <= 4), pixels [i0, i0 + np) (np <= 2) */
static void fct_block_generic(const float *x, int64_t C, const float *w, int64_t Cg,
                              int64_t g, int64_t Cog, int64_t m0, int rows, int64_t i0,
                              int np, const float *bias, float *out, int64_t Cout, int64_t G,
                              int shuffle)
{
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (g * Cog + m0 + r) * Cg;
        const int64_t o = shuffle ? (m0 + r) * G + g : g * Cog + m0 + r;
        for (int i = 0; i < np; i++) {
            const float *xr = x + (i0 + i) * C + g * Cg;
            double acc = 0.0;
            for (int64_t k = 0; k < Cg; k++)
                acc += (double)(wr[k] * xr[k]);
            out[(i0 + i) * Cout + o] = (float)acc + (bias ? bias[g * Cog + m0 + r] : 0.0f);
        }
    }
}

#if FC_X86
FC_ATTR_AVX2 static inline float fct_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

FC_ATTR_AVX2 static void fct_block_avx2(const float *x, int64_t C, const float *w,
                                        int64_t Cg, int64_t g, int64_t Cog, int64_t m0,
                                        int rows, int64_t i0, int np, const float *bias,
                                        float *out, int64_t Cout, int64_t G, int shuffle)
{
    __m256 acc[4][2];
    for (int r = 0; r < 4; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *wr[4], *xr[2];
    for (int r = 0; r < 4; r++)   /* missing rows repeat the first (never stored) */
        wr[r] = w + (g * Cog + m0 + (r < rows ? r : 0)) * Cg;
    for (int i = 0; i < 2; i++)
        xr[i] = x + (i0 + (i < np ? i : 0)) * C + g * Cg;
    int64_t k = 0;
    if (np == 1) {
        /* one pixel: the second accumulator of each row takes every other 8 columns, so
         * that 8 chains of FMAs run, not 4 (at the FMA latency: 1.28M multiply-adds of a
         * 1280 -> 1000 classifier in 103 us on one thread) */
        for (; k + 16 <= Cg; k += 16) {
            const __m256 x0 = _mm256_loadu_ps(xr[0] + k), x1 = _mm256_loadu_ps(xr[0] + k + 8);
            for (int r = 0; r < 4; r++) {
                acc[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(wr[r] + k), x0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(wr[r] + k + 8), x1, acc[r][1]);
            }
        }
        for (int r = 0; r < 4; r++) {
            acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][1]);
            acc[r][1] = _mm256_setzero_ps();
        }
    }
    for (; k + 8 <= Cg; k += 8) {
        const __m256 x0 = _mm256_loadu_ps(xr[0] + k), x1 = _mm256_loadu_ps(xr[1] + k);
        for (int r = 0; r < 4; r++) {
            const __m256 wv = _mm256_loadu_ps(wr[r] + k);
            acc[r][0] = _mm256_fmadd_ps(wv, x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(wv, x1, acc[r][1]);
        }
    }
    if (k < Cg) {   /* the last 1-7 columns: masked loads (they never touch the lanes past) */
        int32_t mk[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
        const __m256i m = _mm256_loadu_si256((const __m256i *)(mk + 8 - (Cg - k)));
        const __m256 x0 = _mm256_maskload_ps(xr[0] + k, m), x1 = _mm256_maskload_ps(xr[1] + k, m);
        for (int r = 0; r < 4; r++) {
            const __m256 wv = _mm256_maskload_ps(wr[r] + k, m);
            acc[r][0] = _mm256_fmadd_ps(wv, x0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(wv, x1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        const int64_t o = shuffle ? (m0 + r) * G + g : g * Cog + m0 + r;
        const float b = bias ? bias[g * Cog + m0 + r] : 0.0f;
        for (int i = 0; i < np; i++)
            out[(i0 + i) * Cout + o] = fct_hsum(acc[r][i]) + b;
    }
}
#endif

/* See the file comment. x (n, G*Cg), w (G*Cog, Cg), bias (G*Cog) or NULL, out (n, G*Cog),
 * all C-contiguous float32. */
static void fc_thin_f32(const float *x, int64_t n, int64_t G, int64_t Cg, const float *w,
                        int64_t Cog, const float *bias, float *out, int shuffle, int nthreads,
                        int force_generic)
{
    const int64_t C = G * Cg, Cout = G * Cog, mb = fc_cdiv(Cog, 4);
    if (n <= 0 || Cout <= 0)
        return;
    void (*blk)(const float *, int64_t, const float *, int64_t, int64_t, int64_t, int64_t,
                int, int64_t, int, const float *, float *, int64_t, int64_t, int) =
        fct_block_generic;
#if FC_X86
    if (!force_generic && fc_cpu_has_avx2_fma())
        blk = fct_block_avx2;
#else
    (void)force_generic;
#endif
    if (nthreads < 1)
        nthreads = 1;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
#endif
    for (int64_t gb = 0; gb < G * mb; gb++) {
        const int64_t g = gb / mb, m0 = (gb % mb) * 4;
        const int rows = (int)fc_min(4, Cog - m0);
        for (int64_t i0 = 0; i0 < n; i0 += 2)
            blk(x, C, w, Cg, g, Cog, m0, rows, i0, (int)fc_min(2, n - i0), bias, out, Cout, G,
                shuffle);
    }
}

#endif /* FASTCONV_FC_THIN_H */
