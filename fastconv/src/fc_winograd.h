/*
 * fc_winograd.h — the forward correlation of fc_cgemm.h for 3x3 (and 3x3x3) kernels at
 * stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016): 16 multiplies
 * per 2x2 output tile and channel pair where the direct sum takes 36 (2.25x fewer), paid
 * for by three cheap linear transforms; in 3-D F(2x2x2, 3x3x3), the same 1-D transforms
 * along each axis: 64 multiplies per 2x2x2 tile where the direct sum takes 216 (3.4x).
 * A 1x3x3 kernel in 3-D is the 2-D form on every depth plane.
 *
 * 5x5 (and 1x5x5) kernels take F(2x2, 5x5): the same 2x2 output tiles, 6x6 input patches,
 * 36 multiplies per tile where the direct sum takes 100 (2.8x fewer), with the
 * interpolation points 0, 1, -1, 2, -2, infinity (the B^T of F(4x4, 3x3)):
 *
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *          0 4 0 -5 0 1]
 *   G = [1/4 0 0 0 0; -1/6 -1/6 -1/6 -1/6 -1/6; -1/6 1/6 -1/6 1/6 -1/6;
 *        1/24 1/12 1/6 1/3 2/3; 1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]
 *
 * Its factors (up to 5 in B^T, 1/24 in G) cost accuracy: ~3e-6 of the output's largest
 * value against the direct float32 sum's ~1e-7 (float32 inputs of unit scale, 2-4k terms;
 * tests/test_winograd.py bounds it), the price oneDNN's and cuDNN's F(4x4, 3x3) pay too.
 *
 * Per output tile (2x2 outputs, in the dilated sense: outputs (oy + a*dh, ox + b*dw),
 * a, b in {0, 1}) and input channel c the 4x4 input patch d (rows oy - ph + u*dh,
 * columns ox - pw + v*dw, zero outside the input) becomes V = B^T d B; per (output
 * channel m, input channel c) the 3x3 weight g becomes U = G g G^T; then for each of the
 * 16 transform positions xi a GEMM over the input channels, M[xi][m][tile] =
 * sum_c U[xi][m][c] V[xi][c][tile], and each tile's 2x2 outputs are A^T M A:
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * (this is the correlation form: y0 = d0 g0 + d1 g1 + d2 g2, y1 = d1 g0 + d2 g1 + d3 g2).
 * The 16 GEMMs run on fc_igemm.h's micro-kernel: its "pixels" are 6 consecutive tiles of
 * V[xi] (tiles contiguous per channel), its taps the input channels (a stride of one
 * channel's tiles), its weight panels U[xi] packed 16 output channels at a time. Rounding:
 * the transforms add at most a few terms with factors 1 and 1/2, so the error stays within
 * a small multiple of the direct sum's (measured against float64 sums in the tests).
 *
 * Work items: (image, group, block of tiles); per item the input transform of the block
 * (all channels, V in the thread's scratch, sized to stay in L2), then per 16-channel
 * panel the 16 GEMMs and the output transform (plus bias) straight into the output.
 * The tile geometry (origins, runs of 8 tiles, output scatter) is shared by both 2-D forms;
 * fcw_tiles.r selects the transforms. Included by fc_cgemm.h (fc_cgemm_run dispatches
 * engine 2 here).
 */
#ifndef FASTCONV_FC_WINOGRAD_H
#define FASTCONV_FC_WINOGRAD_H

#include <stdint.h>
#include <string.h>

#define FCW_XI 16          /* transform positions of F(2x2, 3x3) */
#define FCW_XI5 36         /* ... of F(2x2, 5x5) */
#define FCW_XI3 64         /* ... of F(2x2x2, 3x3x3) */
#ifndef FCW_V_BYTES
#define FCW_V_BYTES ((int64_t)384 << 10)   /* one item's transformed input, per thread */
#endif
#ifndef FCW_V_BYTES_5
/* ... of F(2x2, 5x5): 2.25x the positions; at 384 KiB a 256-channel layer's blocks were 6
 * tiles and every block read the whole transformed weight (192 -> 192 on 2 x 56^2:
 * 105 ms, 29 ms at 864 KiB; 640 KiB and 1.25 MiB slower) */
#define FCW_V_BYTES_5 ((int64_t)864 << 10)
#endif
#ifndef FCW_TB_MAX
#define FCW_TB_MAX 96       /* tiles per item at most */
#endif
#ifndef FCW_KC
#define FCW_KC 256          /* input channels per micro-kernel call (panel in L1) */
#endif
#ifndef FCW_SMALL_BYTES
#define FCW_SMALL_BYTES ((int64_t)2 << 20)   /* all tiles' transformed input in cache */
#endif
#ifndef FCW_PANELS_MAX_BYTES
#define FCW_PANELS_MAX_BYTES ((int64_t)64 << 20)   /* ... at most, streamed (fc_wino_run) */
#endif

/* Whether engine 2 serves this problem: 3x3, 1x3x3, 3x3x3, 5x5 or 1x5x5 kernels, unit
 * strides, float32 on an AVX2 + FMA CPU, the weight in its own layout. */
static int fc_wino_supported(const fc_cgeom *q)
{
    const int k3 = (q->KD == 1 || q->KD == 3) && q->KH == 3 && q->KW == 3;
    const int k5 = q->KD == 1 && q->KH == 5 && q->KW == 5;
    return FC_X86 && fc_cpu_has_avx2_fma() && (k3 || k5) && q->sd == 1 && q->sh == 1
           && q->sw == 1 && !q->w_trans;
}

/* The stride between transform positions of U, V and VA: their blocks plus one cache
 * line. The transforms write (and the GEMMs read) 16-64 positions at once; blocks of a
 * multiple of 4 KiB (256 channels x 16 floats, 256 x 24 tiles) put all of them in one L1
 * set, and 16 streams thrashed its 8 ways (the weight transform of a 256 -> 256 layer
 * took ~250 cycles per channel and panel). */
static inline int64_t fcw_xstride(int64_t block) { return block + 16; }

/* Transform positions of the problem's form: 16 (3x3), 36 (5x5), 64 (3x3x3). */
static int fcw_nxi(const fc_cgeom *q)
{
    return q->KD == 3 ? FCW_XI3 : q->KH == 5 ? FCW_XI5 : FCW_XI;
}

/* Tile origins along one axis of n outputs at dilation d: the outputs o and o + d form a
 * tile (o + d >= n: a half tile, its second output not stored). Output o's phase o % d
 * chains every d-th output; each chain is cut into pairs. org may be NULL (count only). */
static int64_t fcw_origins(int64_t n, int64_t d, int64_t *org)
{
    int64_t c = 0;
    for (int64_t r = 0; r < d && r < n; r++) {
        const int64_t cnt = (n - r + d - 1) / d;
        for (int64_t j = 0; j < cnt; j += 2) {
            if (org)
                org[c] = r + j * d;
            c++;
        }
    }
    return c;
}

#if FC_X86
/* The weight transforms: AVX2 (the 16 lanes are two vectors; compiled for the baseline
 * they ran at SSE width, ~20% of a batch-1 256 -> 256 14x14 call). */

/* G along one axis of 16 weights side by side: (a, b, c) -> (a, (a+b+c)/2, (a-b+c)/2, c). */
FC_ATTR_AVX2 static inline void fcw_g16(const float *a, const float *b, const float *c, float *o0,
                           float *o1, float *o2, float *o3)
{
    for (int j = 0; j < FCI_NV; j++) {
        o0[j] = a[j];
        o1[j] = 0.5f * (a[j] + b[j] + c[j]);
        o2[j] = 0.5f * (a[j] - b[j] + c[j]);
        o3[j] = c[j];
    }
}

/* U = G g G^T of a 3x3x3 kernel (G along each axis) for 16 weights side by side: g[k][j]
 * (k the tap, row-major over kd, kh, kw) -> u[xi][j] (xi row-major over the 4, 4, 4
 * positions). (The 2-D kernels go through fcw_weight_2d, G in registers.) */
FC_ATTR_AVX2 static void fcw_weight_3d(const float g[27][FCI_NV], float u[FCW_XI3][FCI_NV])
{
    float t[3][3][4][FCI_NV], t2[3][4][4][FCI_NV];
    for (int z = 0; z < 3; z++) {
        for (int y = 0; y < 3; y++)   /* along x */
            fcw_g16(g[(z * 3 + y) * 3], g[(z * 3 + y) * 3 + 1], g[(z * 3 + y) * 3 + 2],
                    t[z][y][0], t[z][y][1], t[z][y][2], t[z][y][3]);
        for (int x = 0; x < 4; x++)   /* along y */
            fcw_g16(t[z][0][x], t[z][1][x], t[z][2][x], t2[z][0][x], t2[z][1][x],
                    t2[z][2][x], t2[z][3][x]);
    }
    for (int y = 0; y < 4; y++)       /* along z */
        for (int x = 0; x < 4; x++)
            fcw_g16(t2[0][y][x], t2[1][y][x], t2[2][y][x], u[(0 * 4 + y) * 4 + x],
                    u[(1 * 4 + y) * 4 + x], u[(2 * 4 + y) * 4 + x], u[(3 * 4 + y) * 4 + x]);
}

/* B^T of F(2x2, 5x5) along one axis (points 0, 1, -1, 2, -2, infinity), in registers:
 * (d0..d5) -> (4d0 - 5d2 + d4, d3 + d4 - 4(d1 + d2), d4 - d3 + 4(d1 - d2),
 *              d4 - d2 + 2(d3 - d1), d4 - d2 - 2(d3 - d1), 4d1 - 5d3 + d5). */
#define FCW_BT6(d0, d1, d2, d3, d4, d5, o)                                              \
    do {                                                                                \
        const __m256 c4_ = _mm256_set1_ps(4.0f), c5_ = _mm256_set1_ps(5.0f),            \
                     c2_ = _mm256_set1_ps(2.0f);                                        \
        const __m256 e0_ = (d0), e1_ = (d1), e2_ = (d2), e3_ = (d3), e4_ = (d4),        \
                     e5_ = (d5);                                                        \
        const __m256 t3_ = _mm256_sub_ps(e3_, e1_), t4_ = _mm256_sub_ps(e4_, e2_);      \
        (o)[0] = _mm256_fmadd_ps(c4_, e0_, _mm256_fnmadd_ps(c5_, e2_, e4_));            \
        (o)[1] = _mm256_fnmadd_ps(c4_, _mm256_add_ps(e1_, e2_), _mm256_add_ps(e3_, e4_)); \
        (o)[2] = _mm256_fmadd_ps(c4_, _mm256_sub_ps(e1_, e2_), _mm256_sub_ps(e4_, e3_)); \
        (o)[3] = _mm256_fmadd_ps(c2_, t3_, t4_);                                        \
        (o)[4] = _mm256_fnmadd_ps(c2_, t3_, t4_);                                       \
        (o)[5] = _mm256_fmadd_ps(c4_, e1_, _mm256_fnmadd_ps(c5_, e3_, e5_));            \
    } while (0)
/* A^T of F(2x2, 5x5) along one axis: (m0..m5) -> (m0+m1+m2+m3+m4, m1-m2+2(m3-m4)+m5). */
#define FCW_AT6(m0, m1, m2, m3, m4, m5, o0, o1)                                         \
    do {                                                                                \
        const __m256 f1_ = (m1), f2_ = (m2), f3_ = (m3), f4_ = (m4);                    \
        o0 = _mm256_add_ps(_mm256_add_ps((m0), _mm256_add_ps(f1_, f2_)),                \
                           _mm256_add_ps(f3_, f4_));                                    \
        o1 = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(2.0f), _mm256_sub_ps(f3_, f4_), \
                                           _mm256_sub_ps(f1_, f2_)),                    \
                           (m5));                                                       \
    } while (0)

/* B^T along one axis, in registers: (d0, d1, d2, d3) -> (d0-d2, d1+d2, d2-d1, d1-d3). */
#define FCW_BT(d0, d1, d2, d3, o0, o1, o2, o3)                                          \
    do {                                                                                \
        const __m256 b0_ = (d0), b1_ = (d1), b2_ = (d2), b3_ = (d3);                    \
        o0 = _mm256_sub_ps(b0_, b2_);                                                   \
        o1 = _mm256_add_ps(b1_, b2_);                                                   \
        o2 = _mm256_sub_ps(b2_, b1_);                                                   \
        o3 = _mm256_sub_ps(b1_, b3_);                                                   \
    } while (0)
/* A^T along one axis: (m0, m1, m2, m3) -> (m0+m1+m2, m1-m2-m3). */
#define FCW_AT(m0, m1, m2, m3, o0, o1)                                                  \
    do {                                                                                \
        const __m256 a1_ = (m1), a2_ = (m2);                                            \
        o0 = _mm256_add_ps(_mm256_add_ps((m0), a1_), a2_);                              \
        o1 = _mm256_sub_ps(_mm256_sub_ps(a1_, a2_), (m3));                              \
    } while (0)

/* The bias of output channels 8h .. 8h + 7 of a panel of ``nch`` (zeros past it, or no
 * bias). */
FC_ATTR_AVX2 static inline __m256 fcw_bias8(const float *bias, int nch, int h)
{
    float bb[8];
    if (!bias)
        return _mm256_setzero_ps();
    for (int j = 0; j < 8; j++)
        bb[j] = 8 * h + j < nch ? bias[8 * h + j] : 0.0f;
    return _mm256_loadu_ps(bb);
}

/* The output transform of one tile for 16 channels: m[xi] at acc + xi * ld (16 floats
 * each, 32-byte aligned), y[r][c] = (A^T m A)[r] + bias (r row-major over the (2,) 2, 2
 * outputs: 4 in 2-D, 8 in 3-D). */
FC_ATTR_AVX2 static void fcw_output_tf(int nd3, const float *acc, int64_t ld,
                                       const float *bias, int nch, float y[8][FCI_NV])
{
    const int nz = nd3 ? 4 : 1;
    for (int h = 0; h < 2; h++) {
        __m256 s[4][2][2];   /* [z][a][b]: A^T along x and y of depth slice z */
        for (int z = 0; z < nz; z++) {
            __m256 r[4][2];  /* [row i][b]: A^T along x */
            for (int i = 0; i < 4; i++) {
                const float *m = acc + ((z * 4 + i) * 4) * ld + 8 * h;
                FCW_AT(_mm256_load_ps(m), _mm256_load_ps(m + ld), _mm256_load_ps(m + 2 * ld),
                       _mm256_load_ps(m + 3 * ld), r[i][0], r[i][1]);
            }
            for (int b = 0; b < 2; b++)
                FCW_AT(r[0][b], r[1][b], r[2][b], r[3][b], s[z][0][b], s[z][1][b]);
        }
        const __m256 bv = fcw_bias8(bias, nch, h);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                if (!nd3) {
                    _mm256_storeu_ps(y[2 * a + b] + 8 * h, _mm256_add_ps(s[0][a][b], bv));
                } else {
                    __m256 y0, y1;
                    FCW_AT(s[0][a][b], s[1][a][b], s[2][a][b], s[3][a][b], y0, y1);
                    _mm256_storeu_ps(y[(0 * 2 + a) * 2 + b] + 8 * h, _mm256_add_ps(y0, bv));
                    _mm256_storeu_ps(y[(1 * 2 + a) * 2 + b] + 8 * h, _mm256_add_ps(y1, bv));
                }
            }
    }
}

/* fcw_output_tf of F(2x2, 5x5): m[xi] (xi = i*6 + x) -> y[2a + b] = (A^T m A)[a][b]. */
FC_ATTR_AVX2 static void fcw_output_tf5(const float *acc, int64_t ld, const float *bias,
                                        int nch, float y[8][FCI_NV])
{
    for (int h = 0; h < 2; h++) {
        __m256 r[6][2];   /* [row i][b]: A^T along x */
        for (int i = 0; i < 6; i++) {
            const float *m = acc + (i * 6) * ld + 8 * h;
            FCW_AT6(_mm256_load_ps(m), _mm256_load_ps(m + ld), _mm256_load_ps(m + 2 * ld),
                    _mm256_load_ps(m + 3 * ld), _mm256_load_ps(m + 4 * ld),
                    _mm256_load_ps(m + 5 * ld), r[i][0], r[i][1]);
        }
        const __m256 bv = fcw_bias8(bias, nch, h);
        for (int b = 0; b < 2; b++) {
            __m256 y0, y1;
            FCW_AT6(r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b], y0, y1);
            _mm256_storeu_ps(y[b] + 8 * h, _mm256_add_ps(y0, bv));
            _mm256_storeu_ps(y[2 + b] + 8 * h, _mm256_add_ps(y1, bv));
        }
    }
}

/* Even and odd elements of r[0 .. 16): (r0, r2, .., r14) and (r1, r3, .., r15). */
FC_ATTR_AVX2 static inline void fcw_deint(const float *r, __m256 *ev, __m256 *od)
{
    const __m256 a = _mm256_loadu_ps(r), b = _mm256_loadu_ps(r + 8);
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

/* B^T along x of one patch row for 8 tiles side by side: tile k's columns r[2k .. 2k+3]. */
FC_ATTR_AVX2 static inline void fcw_row8(const float *r, __m256 o[4])
{
    __m256 d0, d1, d2, d3;
    fcw_deint(r, &d0, &d1);          /* columns 2k, 2k + 1 */
    fcw_deint(r + 2, &d2, &d3);      /* columns 2k + 2, 2k + 3 */
    FCW_BT(d0, d1, d2, d3, o[0], o[1], o[2], o[3]);
}

FC_ATTR_AVX2 static inline void fcw_store8(float *v, __m256 a, int k, __m256i mk)
{
    if (k == 8)
        _mm256_storeu_ps(v, a);
    else
        _mm256_maskstore_ps(v, mk, a);
}

/* The input transform of 8 tiles side by side (only the first k stored): patch rows
 * rows[z*4 + u] (4 in 2-D, 16 in 3-D; tile k's columns 2k .. 2k+3 of each); V[xi * xs + k]. */
FC_ATTR_AVX2 static void fcw_input_tf8(int nd3, const float *const *rows, float *v,
                                       int64_t xs, int k)
{
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (!nd3) {
        __m256 w[4][4];
        for (int u = 0; u < 4; u++)
            fcw_row8(rows[u], w[u]);
        for (int j = 0; j < 4; j++) {
            __m256 o0, o1, o2, o3;
            FCW_BT(w[0][j], w[1][j], w[2][j], w[3][j], o0, o1, o2, o3);
            fcw_store8(v + (0 + j) * xs, o0, k, mk);
            fcw_store8(v + (4 + j) * xs, o1, k, mk);
            fcw_store8(v + (8 + j) * xs, o2, k, mk);
            fcw_store8(v + (12 + j) * xs, o3, k, mk);
        }
        return;
    }
    __m256 t[4][4][4];   /* [z][i][j]: B^T along x and y of depth slice z */
    for (int z = 0; z < 4; z++) {
        __m256 w[4][4];
        for (int u = 0; u < 4; u++)
            fcw_row8(rows[z * 4 + u], w[u]);
        for (int j = 0; j < 4; j++)
            FCW_BT(w[0][j], w[1][j], w[2][j], w[3][j], t[z][0][j], t[z][1][j], t[z][2][j],
                   t[z][3][j]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            __m256 o0, o1, o2, o3;
            FCW_BT(t[0][i][j], t[1][i][j], t[2][i][j], t[3][i][j], o0, o1, o2, o3);
            fcw_store8(v + ((0 * 4 + i) * 4 + j) * xs, o0, k, mk);
            fcw_store8(v + ((1 * 4 + i) * 4 + j) * xs, o1, k, mk);
            fcw_store8(v + ((2 * 4 + i) * 4 + j) * xs, o2, k, mk);
            fcw_store8(v + ((3 * 4 + i) * 4 + j) * xs, o3, k, mk);
        }
}

/* fcw_input_tf8 of F(2x2, 5x5): 6 patch rows (tile k's columns 2k .. 2k+5 of each). */
FC_ATTR_AVX2 static void fcw_input_tf8_5(const float *const *rows, float *v, int64_t xs,
                                         int k)
{
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 w[6][6];
    for (int u = 0; u < 6; u++) {
        __m256 d[6];
        fcw_deint(rows[u], &d[0], &d[1]);       /* columns 2k, 2k + 1 */
        fcw_deint(rows[u] + 2, &d[2], &d[3]);   /* 2k + 2, 2k + 3 */
        fcw_deint(rows[u] + 4, &d[4], &d[5]);   /* 2k + 4, 2k + 5 */
        FCW_BT6(d[0], d[1], d[2], d[3], d[4], d[5], w[u]);
    }
    for (int j = 0; j < 6; j++) {
        __m256 o[6];
        FCW_BT6(w[0][j], w[1][j], w[2][j], w[3][j], w[4][j], w[5][j], o);
        for (int i = 0; i < 6; i++)
            fcw_store8(v + (i * 6 + j) * xs, o[i], k, mk);
    }
}
#endif

/* The number of tiles, at most 8, from tile index tx on that continue its chain along
 * the axis (origins 2*d apart): the tiles one vector transform takes. */
static int fcw_run8(const int64_t *org, int64_t ntx, int64_t tx, int64_t d)
{
    int k = 1;
    while (k < 8 && tx + k < ntx && org[tx + k] == org[tx] + 2 * k * d)
        k++;
    return k;
}

/* The patch row of a row outside the input (fcw_input_block; read 24 floats at most). */
static const float fcw_zero_row[24] __attribute__((aligned(32))) = {0};

/* Tile geometry of one call: origins per axis (orz: tile depth origins in 3-D, every
 * depth plane in 2-D), their counts, runs along x. */
typedef struct {
    int nd3, nxi, r;   /* r: the kernel's side, 3 or 5 (nd3: 3x3x3) */
    int64_t ntz, nty, ntx;
    const int64_t *orz, *ory, *orx;
    const int8_t *run;
} fcw_tiles;

/* The input transform of tiles [t0, t0 + nt) of channels [c0, c1) of one group's Cg
 * (xc, cs floats apart) into V[xi][c][i] (xi stride xs >= Cg * tbp, channel stride tbp); tiles
 * nt .. tbp-1 zero. Tile t = (tz, ty, tx) in row-major order. Runs of up to 8 tiles of one
 * tile row and chain go through one vector transform, their patch rows read in place when
 * inside the input at unit dilation along x, else gathered with zeros outside. */
static void fcw_input_block(const fc_cgeom *q, const fcw_tiles *tl, const float *xc,
                            int64_t cs, int64_t Cg, int64_t c0, int64_t c1, int64_t t0,
                            int64_t nt, int64_t tbp, int64_t xs, float *V)
{
#if FC_X86
    const int64_t D = q->D, H = q->H, W = q->W, HW = H * W, dd = q->dd, dh = q->dh,
                  dw = q->dw;
    const int64_t ntx = tl->ntx, nty = tl->nty;
    const int nxi = tl->nxi, nzr = tl->nd3 ? 4 : 1, r5 = tl->r == 5, pn = tl->r + 1;
    /* floats one run of k tiles reads per patch row: 2k + r - 1 (in place: 16 + r - 1,
     * the vector reads of fcw_deint) */
    const int64_t rd = 16 + tl->r - 1;
    float buf[16 * 24];
    for (int64_t c = c0; c < c1; c++) {
        float *vc = V + c * tbp;
        const float *pc = xc + c * cs;
        for (int64_t i = 0; i < nt;) {
            const int64_t t = t0 + i, tx = t % ntx, ty = (t / ntx) % nty, tz = t / (ntx * nty);
            const int k = (int)fc_min(tl->run[tx], nt - i);
            const int64_t z0 = tl->orz[tz] - q->pd, y0 = tl->ory[ty] - q->ph,
                          x0 = tl->orx[tx] - q->pw;
            const int xin = x0 >= 0 && x0 + (2 * k + tl->r - 2) * dw < W;
            const float *rows[16];
            for (int z = 0; z < nzr; z++)
                for (int u = 0; u < pn; u++) {
                    const int64_t zz = z0 + z * dd, yy = y0 + u * dh;
                    float *br = buf + 24 * (z * pn + u);
                    if (zz < 0 || zz >= D || yy < 0 || yy >= H) {
                        rows[z * pn + u] = fcw_zero_row;
                        continue;
                    }
                    const float *r = pc + zz * HW + yy * W;
                    if (xin && dw == 1 && x0 + rd <= W) {   /* in place */
                        rows[z * pn + u] = r + x0;
                        continue;
                    }
                    int m = 0;
                    const int ncol = 2 * k + tl->r - 1;
                    if (dw == 1) {   /* the columns inside the row copied, zeros around */
                        const int64_t a = x0 < 0 ? -x0 : 0, b = fc_min(ncol, W - x0);
                        memset(br, 0, sizeof(float) * 24);
                        if (b > a)
                            memcpy(br + a, r + x0 + a, sizeof(float) * (size_t)(b - a));
                        rows[z * pn + u] = br;
                        continue;
                    }
                    if (xin) {   /* a dilated run inside the row: strided reads */
                        const float *rx = r + x0;
                        for (; m < ncol; m++)
                            br[m] = rx[m * dw];
                    } else {
                        for (; m < ncol; m++) {
                            const int64_t xx = x0 + m * dw;
                            br[m] = xx >= 0 && xx < W ? r[xx] : 0.0f;
                        }
                    }
                    for (; m < 24; m++)
                        br[m] = 0.0f;
                    rows[z * pn + u] = br;
                }
            if (r5)
                fcw_input_tf8_5(rows, vc + i, xs, k);
            else
                fcw_input_tf8(tl->nd3, rows, vc + i, xs, k);
            i += k;
        }
        for (int64_t i = nt; i < tbp; i++)
            for (int xi = 0; xi < nxi; xi++)
                vc[xi * xs + i] = 0.0f;
    }
#else
    (void)q; (void)tl; (void)xc; (void)cs; (void)Cg; (void)t0; (void)nt; (void)tbp; (void)xs;
    (void)V;
#endif
}

#if FC_X86
/* The outputs of k <= 8 tiles of one run (fcw_run8), 16 channels (nch stored) from
 * M + i * 16 (xi stride ld): depth planes oz (+ dd in 3-D), rows oy, oy + dh; tile j's
 * columns ox + 2*j*dw, + dw; all clipped to the output. o: channel m0's plane; channel
 * stride osm. */
FC_ATTR_AVX2 static void fcw_output_run(const fc_cgeom *q, int nd3, int r5, const float *M,
                                        int64_t ld, int k, const float *bias, int nch,
                                        int64_t oz, int64_t oy, int64_t ox, float *o,
                                        int64_t osm)
{
    const int64_t OD = q->OD, OH = q->OH, OW = q->OW, dh = q->dh, dw = q->dw;
    float Y[8][8][FCI_NV] __attribute__((aligned(32)));
    for (int j = 0; j < k; j++) {
        if (r5)
            fcw_output_tf5(M + j * FCI_NV, ld, bias, nch, Y[j]);
        else
            fcw_output_tf(nd3, M + j * FCI_NV, ld, bias, nch, Y[j]);
    }
    for (int j = k; j < 8; j++)
        memset(Y[j], 0, sizeof(Y[j]));
    const int64_t ncol = fc_min(2 * (int64_t)k, dw == 1 ? OW - ox : fc_cdiv(OW - ox, dw));
    for (int e = 0; e < (nd3 ? 2 : 1); e++) {
        const int64_t zz = oz + e * q->dd;
        if (zz >= OD)
            break;
        for (int a = 0; a < 2; a++) {
            const int64_t yy = oy + a * dh;
            if (yy >= OH)
                break;
            const int r0 = (e * 2 + a) * 2;   /* Y row of (e, a, b = 0) */
            for (int h = 0; h < 2; h++) {
                const int c1 = nch - 8 * h < 8 ? nch - 8 * h : 8;
                if (c1 <= 0)
                    break;
                for (int half = 0; half < 2; half++) {   /* tiles 4*half .. 4*half + 3 */
                    const int64_t col0 = 8 * half;
                    if (col0 >= ncol)
                        break;
                    __m256 r[8], cols[8];
                    for (int j = 0; j < 4; j++) {
                        r[2 * j] = _mm256_load_ps(Y[4 * half + j][r0] + 8 * h);
                        r[2 * j + 1] = _mm256_load_ps(Y[4 * half + j][r0 + 1] + 8 * h);
                    }
                    fci_tr8(r, cols);   /* cols[c] = channel 8h + c's 8 columns */
                    const int64_t nc = fc_min(8, ncol - col0);
                    for (int c = 0; c < c1; c++) {
                        float *row = o + (8 * h + c) * osm + (zz * OH + yy) * OW + ox
                                     + col0 * dw;
                        if (dw == 1 && nc == 8) {
                            _mm256_storeu_ps(row, cols[c]);
                        } else {
                            float tmp[8];
                            _mm256_storeu_ps(tmp, cols[c]);
                            for (int64_t e2 = 0; e2 < nc; e2++)
                                row[e2 * dw] = tmp[e2];
                        }
                    }
                }
            }
        }
    }
}
#endif

#if FC_X86
/* G of F(2x2, 3x3) along one axis in registers: (a, b, c) -> (a, (a+b+c)/2, (a-b+c)/2, c) */
#define FCW_G3(a, b, c, o)                                                              \
    do {                                                                                \
        const __m256 h_ = _mm256_set1_ps(0.5f), ac_ = _mm256_add_ps((a), (c));          \
        (o)[0] = (a);                                                                   \
        (o)[1] = _mm256_mul_ps(h_, _mm256_add_ps(ac_, (b)));                            \
        (o)[2] = _mm256_mul_ps(h_, _mm256_sub_ps(ac_, (b)));                            \
        (o)[3] = (c);                                                                   \
    } while (0)
/* G of F(2x2, 5x5) along one axis in registers (points 0, 1, -1, 2, -2, infinity):
 *   (a, b, c, d, e) -> (a/4, -(a+b+c+d+e)/6, -(a-b+c-d+e)/6, (a+2b+4c+8d+16e)/24,
 *                       (a-2b+4c-8d+16e)/24, e) */
#define FCW_G5(a, b, c, d, e, o)                                                        \
    do {                                                                                \
        const __m256 ace_ = _mm256_add_ps(_mm256_add_ps((a), (c)), (e)),                \
                     bd_ = _mm256_add_ps((b), (d)),                                     \
                     ace4_ = _mm256_fmadd_ps(_mm256_set1_ps(16.0f), (e),                \
                                             _mm256_fmadd_ps(_mm256_set1_ps(4.0f), (c), (a))), \
                     bd2_ = _mm256_fmadd_ps(_mm256_set1_ps(8.0f), (d),                  \
                                            _mm256_mul_ps(_mm256_set1_ps(2.0f), (b)));   \
        const __m256 s6_ = _mm256_set1_ps(-1.0f / 6.0f), s24_ = _mm256_set1_ps(1.0f / 24.0f); \
        (o)[0] = _mm256_mul_ps(_mm256_set1_ps(0.25f), (a));                             \
        (o)[1] = _mm256_mul_ps(s6_, _mm256_add_ps(ace_, bd_));                          \
        (o)[2] = _mm256_mul_ps(s6_, _mm256_sub_ps(ace_, bd_));                          \
        (o)[3] = _mm256_mul_ps(s24_, _mm256_add_ps(ace4_, bd2_));                       \
        (o)[4] = _mm256_mul_ps(s24_, _mm256_sub_ps(ace4_, bd2_));                       \
        (o)[5] = (e);                                                                   \
    } while (0)

/* U = G g G^T of a 2-D r x r kernel (r 3 or 5) for 16 output channels: g[k][16] (k row-
 * major over the taps) -> d[xi * xis + j], xi row-major over the (r+1) x (r+1) positions. */
FC_ATTR_AVX2 static void fcw_weight_2d(int r, const float *g, float *d, int64_t xis)
{
    for (int h = 0; h < 2; h++) {
        if (r == 3) {
            __m256 t[3][4];
            for (int y = 0; y < 3; y++)   /* along x */
                FCW_G3(_mm256_load_ps(g + (3 * y) * FCI_NV + 8 * h),
                       _mm256_load_ps(g + (3 * y + 1) * FCI_NV + 8 * h),
                       _mm256_load_ps(g + (3 * y + 2) * FCI_NV + 8 * h), t[y]);
            for (int x = 0; x < 4; x++) {   /* along y */
                __m256 o[4];
                FCW_G3(t[0][x], t[1][x], t[2][x], o);
                for (int i = 0; i < 4; i++)
                    _mm256_storeu_ps(d + (i * 4 + x) * xis + 8 * h, o[i]);
            }
        } else {
            __m256 t[5][6];
            for (int y = 0; y < 5; y++) {
                const float *gy = g + 5 * y * FCI_NV + 8 * h;
                FCW_G5(_mm256_load_ps(gy), _mm256_load_ps(gy + FCI_NV),
                       _mm256_load_ps(gy + 2 * FCI_NV), _mm256_load_ps(gy + 3 * FCI_NV),
                       _mm256_load_ps(gy + 4 * FCI_NV), t[y]);
            }
            for (int x = 0; x < 6; x++) {
                __m256 o[6];
                FCW_G5(t[0][x], t[1][x], t[2][x], t[3][x], t[4][x], o);
                for (int i = 0; i < 6; i++)
                    _mm256_storeu_ps(d + (i * 6 + x) * xis + 8 * h, o[i]);
            }
        }
    }
}

/* The transformed weight of input channels [c0, c1) for output channels jt*16 ..
 * jt*16+15 of group g (zero past Cog): channel c's d[(c - c0) * cs + xi * xis + j] for
 * every transform position xi. The 16 output channels' weight rows (each channel's taps
 * contiguous, channels in a row) are read front to back and transposed 8x8 at a time into
 * tb[(c - c0) * ktaps + k][16] (scratch of (c1 - c0) * ktaps * 16 floats, 32-byte
 * aligned), then each channel's taps go through G: reading 16 rows tap by tap (16 streams
 * 9 KiB apart for 256 channels) had taken 23% of a batch-1 256 -> 256 14x14 call. */
FC_ATTR_AVX2 static void fcw_weight_panel(const float *w, int64_t g, int64_t jt, int64_t c0,
                                          int64_t c1, int64_t Cog, int64_t Cg, int nd3, int r,
                                          float *tb, float *d, int64_t cs, int64_t xis)
{
    const int ktaps = nd3 ? 27 : r * r, nxi = nd3 ? FCW_XI3 : (r + 1) * (r + 1);
    const int64_t L = (c1 - c0) * ktaps;   /* floats of each row used */
    for (int h = 0; h < 2; h++) {
        const float *row[8];
        for (int i = 0; i < 8; i++) {
            const int64_t m = jt * FCI_NV + 8 * h + i;
            row[i] = m < Cog ? w + ((g * Cog + m) * Cg + c0) * ktaps : NULL;
        }
        int64_t p = 0;
        for (; p + 8 <= L; p += 8) {
            __m256 rv[8], cv[8];
            for (int i = 0; i < 8; i++)
                rv[i] = row[i] ? _mm256_loadu_ps(row[i] + p) : _mm256_setzero_ps();
            fci_tr8(rv, cv);   /* cv[e] = the 8 rows' float p + e */
            for (int e = 0; e < 8; e++)
                _mm256_store_ps(tb + (p + e) * FCI_NV + 8 * h, cv[e]);
        }
        for (; p < L; p++)
            for (int i = 0; i < 8; i++)
                tb[p * FCI_NV + 8 * h + i] = row[i] ? row[i][p] : 0.0f;
    }
    float u[FCW_XI3][FCI_NV];
    for (int64_t c = c0; c < c1; c++) {
        const float *gt = tb + (c - c0) * ktaps * FCI_NV;
        float *dc = d + (c - c0) * cs;
        if (!nd3) {   /* 2-D: G along x and y in registers, stored straight into d */
            fcw_weight_2d(r, gt, dc, xis);
            continue;
        }
        fcw_weight_3d((const float (*)[FCI_NV])gt, u);
        for (int xi = 0; xi < nxi; xi++)
            memcpy(dc + xi * xis, u[xi], sizeof(float) * FCI_NV);
    }
}
#endif

/* The 2x2 (2x2x2) output tiles [0, nt) of M (M[xi][tile][16], xi stride ld floats) for
 * the 16 output channels from m0 (nch of them) of image n, group g: run by run. */
static void fcw_output_tiles(const fc_cgeom *q, const fcw_tiles *tl, const float *M,
                             int64_t ld, int64_t t0, int64_t nt, const float *bias, int nch,
                             float *og)
{
#if FC_X86
    const int64_t ntx = tl->ntx, nty = tl->nty;
    for (int64_t i = 0; i < nt;) {
        const int64_t t = t0 + i, tx = t % ntx, ty = (t / ntx) % nty, tz = t / (ntx * nty);
        const int k = (int)fc_min(tl->run[tx], nt - i);
        fcw_output_run(q, tl->nd3, tl->r == 5, M + i * FCI_NV, ld, k, bias, nch, tl->orz[tz],
                       tl->ory[ty], tl->orx[tx], og, q->o_sm);
        i += k;
    }
#else
    (void)q; (void)tl; (void)M; (void)ld; (void)t0; (void)nt; (void)bias; (void)nch; (void)og;
#endif
}

/* M[xi][0 .. tbp)[16] = sum over the Cg channels of U panel (Up[xi * uxs + c*16 + j]) x
 * V[xi][c][tile] (xi stride vxs; channel stride tap[1]), for every transform position. */
static void fcw_gemms(int nxi, int64_t Cg, const float *Up, int64_t uxs, const float *V,
                      int64_t vxs, int64_t tbp, const int64_t *tap, float *M)
{
#if FC_X86
    for (int xi = 0; xi < nxi; xi++) {
        const float *Wp = Up + xi * uxs;
        const float *Vx = V + xi * vxs;
        for (int64_t t6 = 0; t6 < tbp; t6 += FCI_MP) {
            const float *px[FCI_MP];
            for (int i = 0; i < FCI_MP; i++)
                px[i] = Vx + t6 + i;
            float *acc = M + (xi * tbp + t6) * FCI_NV;
            for (int64_t k0 = 0; k0 < Cg; k0 += FCW_KC)
                fci_ukr_avx2(fc_min(FCW_KC, Cg - k0), Wp + k0 * FCI_NV, tap + k0, px, acc,
                             k0 == 0);
        }
    }
#else
    (void)nxi; (void)Cg; (void)Up; (void)uxs; (void)V; (void)vxs; (void)tbp; (void)tap;
    (void)M;
#endif
}

#if FC_X86
/* Whether p[0 .. n) holds an Inf or NaN (x * 0 is NaN exactly for those: OR-ed into four
 * accumulators, 32 floats a step), in parallel blocks of 16 Ki floats. */
FC_ATTR_AVX2 static int fcw_nonfinite(const float *p, int64_t n, int nthreads)
{
    int bad = 0;
    const int64_t blk = 16384;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) reduction(|:bad) if (n >= 4 * blk)
#endif
    for (int64_t b = 0; b < fc_cdiv(n, blk); b++) {
        const int64_t i0 = b * blk, i1 = fc_min(n, i0 + blk);
        const __m256 z = _mm256_setzero_ps();
        __m256 a0 = z, a1 = z, a2 = z, a3 = z;
        int64_t i = i0;
        for (; i + 32 <= i1; i += 32) {
            a0 = _mm256_or_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(p + i), z));
            a1 = _mm256_or_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(p + i + 8), z));
            a2 = _mm256_or_ps(a2, _mm256_mul_ps(_mm256_loadu_ps(p + i + 16), z));
            a3 = _mm256_or_ps(a3, _mm256_mul_ps(_mm256_loadu_ps(p + i + 24), z));
        }
        const __m256 a = _mm256_or_ps(_mm256_or_ps(a0, a1), _mm256_or_ps(a2, a3));
        int nan = _mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)) != 0;
        for (; i < i1; i++)
            nan |= !(p[i] * 0.0f == 0.0f);
        bad |= nan;
    }
    return bad;
}
#endif

/* out[n, g, m, p] as fc_cgemm_run (engine 2). x: C-contiguous (N, G*Cg, D, H, W), image
 * stride q->x_sn; w (G*Cog, Cg, KD, 3, 3), KD 1 or 3. Returns 0; -1 when scratch could
 * not be allocated or the problem is not one engine 2 serves; -2 when x or w holds an
 * Inf or NaN (nothing written in either case). */
static int fc_wino_run(const fc_cgeom *q, const float *x, const float *w, const float *bias,
                       float *out, int nthreads)
{
#if FC_X86
    if (!fc_wino_supported(q))
        return -1;
    const int64_t N = q->N, G = q->G, Cg = q->Cg, Cog = q->Cog;
    /* Inf and NaN: the transforms' differences turn an Inf into NaN where the direct sum
     * gives +-Inf (d2 = Inf: V0 = -Inf, V1 = V2 = +Inf, and A^T subtracts their products),
     * so such inputs are left to the other engines (-2: nothing written) */
    if (fcw_nonfinite(w, G * Cog * Cg * q->KD * q->KH * q->KW, nthreads)
        || fcw_nonfinite(x, (N - 1) * q->x_sn + G * Cg * q->D * q->H * q->W, nthreads))
        return -2;
    const int64_t OD = q->OD, OH = q->OH, OW = q->OW;
    const int nd3 = q->KD == 3, nxi = fcw_nxi(q), kr = (int)q->KH;
    const int64_t njt = fc_cdiv(Cog, FCI_NV);
    const int64_t ntz = nd3 ? fcw_origins(OD, q->dd, NULL) : OD;
    const int64_t nty = fcw_origins(OH, q->dh, NULL), ntx = fcw_origins(OW, q->dw, NULL);
    const int64_t T = ntz * nty * ntx;   /* tiles per image */
    if (N <= 0 || G <= 0 || Cog <= 0 || T <= 0)
        return 0;
    if (nthreads < 1)
        nthreads = 1;
    const int64_t cs = q->D * q->H * q->W;   /* one input channel */
    int64_t *org = (int64_t *)malloc(sizeof(int64_t) * (size_t)(ntz + nty + ntx));
    int8_t *run = (int8_t *)malloc((size_t)ntx);
    int64_t *tap = (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(Cg, 1));
    if (!org || !run || !tap) {
        free(org); free(run); free(tap);
        return -1;
    }
    fcw_tiles tl = {nd3, nxi, kr, ntz, nty, ntx, org, org + ntz, org + ntz + nty, run};
    if (nd3) {
        fcw_origins(OD, q->dd, org);
    } else {
        for (int64_t z = 0; z < OD; z++)
            org[z] = z;   /* KD == 1: depth plane z reads input plane z - pd */
    }
    fcw_origins(OH, q->dh, org + ntz);
    fcw_origins(OW, q->dw, org + ntz + nty);
    for (int64_t tx = 0; tx < ntx; tx++)
        run[tx] = (int8_t)fcw_run8(tl.orx, ntx, tx, q->dw);
    int failed = 0;
    const int64_t Tp = fc_rup(T, FCI_MP);
    /* tiles per item of the tile-block form below: V (nxi x Cg x tb floats) within
     * FCW_V_BYTES, enough items for every thread, then near-equal blocks of a multiple of
     * 6 (49 tiles in blocks of 24 would pad to 72, in 18s to 54) */
    const int64_t vbytes = nxi == FCW_XI5 ? FCW_V_BYTES_5 : FCW_V_BYTES;
    int64_t tb = vbytes / ((int64_t)sizeof(float) * nxi * fc_max(Cg, 1));
    tb = fc_max(FCI_MP, fc_min(tb, FCW_TB_MAX)) / FCI_MP * FCI_MP;
    const int64_t want = 4 * (int64_t)nthreads;
    if (N * G * fc_cdiv(T, tb) < want)
        tb = fc_max(FCI_MP, fc_rup(fc_cdiv(T, fc_cdiv(want, N * G)), FCI_MP));
    const int64_t nblk = fc_cdiv(T, tb), items = N * G * nblk;
    tb = fc_rup(fc_cdiv(T, nblk), FCI_MP);
    /* Two forms. Tile blocks (below): each item transforms a block of tiles and reads its
     * group's whole transformed weight U, so U streams once per item. Weight panels
     * (here): every image's input is transformed first (VA), then each item -- a group's
     * 16-channel panel -- transforms its own panel of the weight into the thread's scratch
     * and runs the GEMMs of every image's tiles, so VA streams once per panel and U never
     * goes through memory. The panels when VA fits in cache (batch-1 maps of 7x7 to 28x28:
     * 256 -> 256 on 14x14 1.38 -> 1.04 ms, U was 4 MiB written and read back), or when
     * it streams fewer bytes (512 -> 512 on 8 x 7x7: U 16 MiB read by each of 16 items),
     * with enough panels for the threads. */
    const double va_bytes = (double)sizeof(float) * nxi * N * G * Cg * Tp;
    const double u_group = (double)sizeof(float) * nxi * njt * FCI_NV * Cg;
    const int panels = G * njt >= 2 * (int64_t)nthreads
                       && va_bytes <= (double)FCW_PANELS_MAX_BYTES
                       && (va_bytes <= (double)FCW_SMALL_BYTES
                           || va_bytes * njt < (double)items * u_group);
    /* the GEMMs' channel stride in V: one channel's tiles */
    for (int64_t c = 0; c < Cg; c++)
        tap[c] = c * (panels ? Tp : tb);
    /* xi strides (fcw_xstride): VA's per (image, group), each thread's weight panel Up,
     * U's, each thread's V */
    const int64_t vaxs = fcw_xstride(Cg * Tp), upxs = fcw_xstride(Cg * FCI_NV),
                  uxs = fcw_xstride(G * njt * Cg * FCI_NV), vxs = fcw_xstride(Cg * tb);
    /* VA (panels) or U (tile blocks) */
    float *buf = (float *)fc_alloc_aligned(
        sizeof(float) * (size_t)(panels ? nxi * N * G * vaxs : nxi * uxs));
    if (!buf) {
        fc_flag_failure(&failed);
    } else if (panels) {
        const float *VA = buf;
        const int64_t vng = (int64_t)nxi * vaxs;   /* one (image, group) */
        const int64_t cch = fc_max(1, fc_cdiv(Cg, 4 * (int64_t)nthreads));
        const int64_t ncc = fc_cdiv(Cg, cch);
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
        {
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t it = 0; it < N * G * ncc; it++) {
                const int64_t cc = it % ncc, ng = it / ncc, g = ng % G, n = ng / G;
                fcw_input_block(q, &tl, x + n * q->x_sn + g * Cg * cs, cs, Cg, cc * cch,
                                fc_min(Cg, (cc + 1) * cch), 0, T, Tp, vaxs, buf + ng * vng);
            }
            float *Up = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(nxi * upxs));
            float *M = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(nxi * Tp * FCI_NV));
            float *Tw = (float *)fc_alloc_aligned(sizeof(float)
                                                  * (size_t)(Cg * q->KD * q->KH * q->KW * FCI_NV));
            if (!Up || !M || !Tw)
                fc_flag_failure(&failed);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t it = 0; it < G * njt; it++) {
                if (!Up || !M || !Tw)
                    continue;
                const int64_t g = it / njt, jt = it % njt, m0 = jt * FCI_NV;
                const int nch = (int)fc_min(FCI_NV, Cog - m0);
                fcw_weight_panel(w, g, jt, 0, Cg, Cog, Cg, nd3, kr, Tw, Up, FCI_NV, upxs);
                for (int64_t n = 0; n < N; n++) {
                    fcw_gemms(nxi, Cg, Up, upxs, VA + (n * G + g) * vng, vaxs, Tp, tap, M);
                    fcw_output_tiles(q, &tl, M, Tp * FCI_NV, 0, T,
                                     bias ? bias + g * Cog + m0 : NULL, nch,
                                     out + n * q->o_sn + g * q->o_sg + m0 * q->o_sm);
                }
            }
            free(Up);
            free(M);
            free(Tw);
        }
    } else {
        float *U = buf;
        /* U[xi][g][jt][c][16]: panel (g, jt) of transform position xi, zero past Cog */
        const int64_t xis = uxs;
        /* per (panel, block of <= 64 channels): rows read in runs, transposed in L1 */
        const int64_t wcb = fc_min(Cg, 64), nwc = fc_cdiv(Cg, wcb);
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (G * Cog * Cg >= 4096)
#endif
        {
            float *Tw = (float *)fc_alloc_aligned(sizeof(float)
                                                  * (size_t)(wcb * q->KD * q->KH * q->KW * FCI_NV));
            if (!Tw)
                fc_flag_failure(&failed);
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
            for (int64_t gc = 0; gc < G * njt * nwc; gc++) {
                if (!Tw)
                    continue;
                const int64_t gj = gc / nwc, c0 = gc % nwc * wcb, c1 = fc_min(Cg, c0 + wcb);
                fcw_weight_panel(w, gj / njt, gj % njt, c0, c1, Cog, Cg, nd3, kr, Tw,
                                 U + (gj * Cg + c0) * FCI_NV, FCI_NV, xis);
            }
            free(Tw);
        }
        if (items < nthreads)
            nthreads = (int)items;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
        {
            float *V = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(nxi * vxs));
            float *M = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(nxi * tb * FCI_NV));
            if (!V || !M)
                fc_flag_failure(&failed);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t it = 0; it < items; it++) {
                if (!V || !M)
                    continue;
                const int64_t jb = it % nblk, ng = it / nblk, g = ng % G, n = ng / G;
                const int64_t t0 = jb * tb, nt = fc_min(tb, T - t0);
                fcw_input_block(q, &tl, x + n * q->x_sn + g * Cg * cs, cs, Cg, 0, Cg, t0, nt, tb,
                                vxs, V);
                for (int64_t jt = 0; jt < njt; jt++) {
                    const int64_t m0 = jt * FCI_NV;
                    /* M[xi][tile][16] = U[xi] panel jt x V[xi], then each run's output tiles */
                    fcw_gemms(nxi, Cg, U + (g * njt + jt) * Cg * FCI_NV, xis, V, vxs, tb, tap, M);
                    fcw_output_tiles(q, &tl, M, tb * FCI_NV, t0, nt,
                                     bias ? bias + g * Cog + m0 : NULL,
                                     (int)fc_min(FCI_NV, Cog - m0),
                                     out + n * q->o_sn + g * q->o_sg + m0 * q->o_sm);
                }
            }
            free(V);
            free(M);
        }
    }
    free(buf); free(org); free(run); free(tap);
    return failed ? -1 : 0;
#else
    (void)q; (void)x; (void)w; (void)bias; (void)out; (void)nthreads;
    return -1;
#endif
}

#endif /* FASTCONV_FC_WINOGRAD_H */
