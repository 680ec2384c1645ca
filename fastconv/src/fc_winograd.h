/*
 * fc_winograd.h — the forward correlation of fc_cgemm.h for 3x3 kernels at stride 1 by
 * Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016): 16 multiplies per 2x2
 * output tile and channel pair where the direct sum takes 36 (2.25x fewer), paid for by
 * three cheap linear transforms.
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
 * Included by fc_cgemm.h (fc_cgemm_run dispatches engine 2 here).
 */
#ifndef FASTCONV_FC_WINOGRAD_H
#define FASTCONV_FC_WINOGRAD_H

#include <stdint.h>
#include <string.h>

#define FCW_XI 16          /* transform positions of F(2x2, 3x3) */
#ifndef FCW_V_BYTES
#define FCW_V_BYTES ((int64_t)384 << 10)   /* one item's transformed input, per thread */
#endif
#ifndef FCW_TB_MAX
#define FCW_TB_MAX 96       /* tiles per item at most */
#endif
#ifndef FCW_KC
#define FCW_KC 256          /* input channels per micro-kernel call (panel in L1) */
#endif

/* Whether engine 2 serves this problem: 3x3 (1x3x3) kernels, unit strides, float32 on an
 * AVX2 + FMA CPU, the weight in its own layout. */
static int fc_wino_supported(const fc_cgeom *q)
{
    return FC_X86 && fc_cpu_has_avx2_fma() && q->KD == 1 && q->KH == 3 && q->KW == 3
           && q->sd == 1 && q->sh == 1 && q->sw == 1 && !q->w_trans;
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

/* U = G g G^T of 16 3x3 weights side by side: g[k][j] (k = 3*row + column of weight j)
 * -> u[xi][j] (xi = 4*i + j'). */
static void fcw_weight_tf16(const float g[9][FCI_NV], float u[FCW_XI][FCI_NV])
{
    float t[4][3][FCI_NV];
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < FCI_NV; j++) {
            const float a = g[c][j], b = g[3 + c][j], e = g[6 + c][j];
            t[0][c][j] = a;
            t[1][c][j] = 0.5f * (a + b + e);
            t[2][c][j] = 0.5f * (a - b + e);
            t[3][c][j] = e;
        }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < FCI_NV; j++) {
            const float a = t[i][0][j], b = t[i][1][j], e = t[i][2][j];
            u[4 * i + 0][j] = a;
            u[4 * i + 1][j] = 0.5f * (a + b + e);
            u[4 * i + 2][j] = 0.5f * (a - b + e);
            u[4 * i + 3][j] = e;
        }
}

/* V = B^T d B of one 4x4 patch d (row-major) into v[xi * ld]. */
static inline void fcw_input_tf(const float d[16], float *v, int64_t ld)
{
    float t[4][4];
    for (int j = 0; j < 4; j++) {   /* B^T d, column j */
        const float d0 = d[j], d1 = d[4 + j], d2 = d[8 + j], d3 = d[12 + j];
        t[0][j] = d0 - d2;
        t[1][j] = d1 + d2;
        t[2][j] = d2 - d1;
        t[3][j] = d1 - d3;
    }
    for (int i = 0; i < 4; i++) {   /* (B^T d) B, row i */
        const float d0 = t[i][0], d1 = t[i][1], d2 = t[i][2], d3 = t[i][3];
        v[(4 * i + 0) * ld] = d0 - d2;
        v[(4 * i + 1) * ld] = d1 + d2;
        v[(4 * i + 2) * ld] = d2 - d1;
        v[(4 * i + 3) * ld] = d1 - d3;
    }
}

#if FC_X86
/* The output transform of one tile for 16 channels: m[xi] at acc + xi * ld (16 floats
 * each, 32-byte aligned), y[a][b] = (A^T m A)[a][b] + bias into y (4 x 16 floats). */
FC_ATTR_AVX2 static void fcw_output_tf(const float *acc, int64_t ld, const float *bias,
                                       int nch, float y[4][FCI_NV])
{
    for (int h = 0; h < 2; h++) {
        __m256 s[4][2];
        for (int j = 0; j < 4; j++) {   /* A^T m, column j */
            const __m256 m0 = _mm256_load_ps(acc + (0 + j) * ld + 8 * h),
                         m1 = _mm256_load_ps(acc + (4 + j) * ld + 8 * h),
                         m2 = _mm256_load_ps(acc + (8 + j) * ld + 8 * h),
                         m3 = _mm256_load_ps(acc + (12 + j) * ld + 8 * h);
            s[j][0] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            s[j][1] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        __m256 b = _mm256_setzero_ps();
        if (bias) {
            float bb[8];
            for (int j = 0; j < 8; j++)
                bb[j] = 8 * h + j < nch ? bias[8 * h + j] : 0.0f;
            b = _mm256_loadu_ps(bb);
        }
        for (int a = 0; a < 2; a++) {   /* (A^T m) A, row a */
            const __m256 y0 = _mm256_add_ps(_mm256_add_ps(s[0][a], s[1][a]), s[2][a]);
            const __m256 y1 = _mm256_sub_ps(_mm256_sub_ps(s[1][a], s[2][a]), s[3][a]);
            _mm256_storeu_ps(y[2 * a + 0] + 8 * h, _mm256_add_ps(y0, b));
            _mm256_storeu_ps(y[2 * a + 1] + 8 * h, _mm256_add_ps(y1, b));
        }
    }
}
#endif

#if FC_X86
/* Even and odd elements of r[0 .. 16): (r0, r2, .., r14) and (r1, r3, .., r15). */
FC_ATTR_AVX2 static inline void fcw_deint(const float *r, __m256 *ev, __m256 *od)
{
    const __m256 a = _mm256_loadu_ps(r), b = _mm256_loadu_ps(r + 8);
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

/* The input transform of 8 tiles side by side (unit dilation along W): patch rows at
 * pl + (y0 + u*dh) * W, tile k's columns x0 + 2k .. x0 + 2k + 3, all inside the plane;
 * V[xi * xs + k]. */
FC_ATTR_AVX2 static void fcw_input_tf8(const float *pl, int64_t W, int64_t dh, float *v,
                                       int64_t xs, int k)
{
    __m256 w[4][4];
    for (int u = 0; u < 4; u++) {
        const float *r = pl + u * dh * W;
        __m256 d0, d1, d2, d3;
        fcw_deint(r, &d0, &d1);          /* columns 2k, 2k + 1 */
        fcw_deint(r + 2, &d2, &d3);      /* columns 2k + 2, 2k + 3 */
        w[u][0] = _mm256_sub_ps(d0, d2);
        w[u][1] = _mm256_add_ps(d1, d2);
        w[u][2] = _mm256_sub_ps(d2, d1);
        w[u][3] = _mm256_sub_ps(d1, d3);
    }
    if (k == 8) {
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_ps(v + (0 + j) * xs, _mm256_sub_ps(w[0][j], w[2][j]));
            _mm256_storeu_ps(v + (4 + j) * xs, _mm256_add_ps(w[1][j], w[2][j]));
            _mm256_storeu_ps(v + (8 + j) * xs, _mm256_sub_ps(w[2][j], w[1][j]));
            _mm256_storeu_ps(v + (12 + j) * xs, _mm256_sub_ps(w[1][j], w[3][j]));
        }
    } else {   /* the first k tiles only */
        const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k),
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int j = 0; j < 4; j++) {
            _mm256_maskstore_ps(v + (0 + j) * xs, mk, _mm256_sub_ps(w[0][j], w[2][j]));
            _mm256_maskstore_ps(v + (4 + j) * xs, mk, _mm256_add_ps(w[1][j], w[2][j]));
            _mm256_maskstore_ps(v + (8 + j) * xs, mk, _mm256_sub_ps(w[2][j], w[1][j]));
            _mm256_maskstore_ps(v + (12 + j) * xs, mk, _mm256_sub_ps(w[1][j], w[3][j]));
        }
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

/* The input transform of tiles [t0, t0 + nt) of one group's Cg channels (xc, cs floats
 * apart) into V[xi][c][i] (xi stride Cg * tbp, channel stride tbp); tiles nt .. tbp-1
 * zero. Tile t = (od, ty, tx) in row-major order over (OD, nty, ntx). Runs of up to 8
 * tiles of one tile row and chain go through one vector transform, read in place when
 * inside the plane at unit dilation, else from rows gathered with zeros outside. */
static void fcw_input_block(const fc_cgeom *q, const float *xc, int64_t cs, int64_t Cg,
                            const int64_t *ory, const int64_t *orx, const int8_t *run,
                            int64_t nty, int64_t ntx, int64_t t0, int64_t nt, int64_t tbp,
                            float *V)
{
#if FC_X86
    const int64_t H = q->H, W = q->W, HW = H * W, dh = q->dh, dw = q->dw;
    const int64_t xs = Cg * tbp;
    float buf[4 * 24];
    for (int64_t c = 0; c < Cg; c++) {
        float *vc = V + c * tbp;
        for (int64_t i = 0; i < nt;) {
            const int64_t t = t0 + i, tx = t % ntx, ty = (t / ntx) % nty, od = t / (ntx * nty);
            const int k = (int)fc_min(run[tx], nt - i);
            const int64_t iz = od - q->pd;   /* KD == 1, unit stride */
            const int64_t y0 = ory[ty] - q->ph, x0 = orx[tx] - q->pw;
            const int zplane = iz < 0 || iz >= q->D;
            if (!zplane && dw == 1 && y0 >= 0 && y0 + 3 * dh < H && x0 >= 0 && x0 + 18 <= W) {
                fcw_input_tf8(xc + c * cs + iz * HW + y0 * W + x0, W, dh, vc + i, xs, k);
            } else {
                const float *pl = xc + c * cs + (zplane ? 0 : iz) * HW;
                const int xin = x0 >= 0 && x0 + (2 * k + 1) * dw < W;
                for (int u = 0; u < 4; u++) {
                    const int64_t yy = y0 + u * dh;
                    float *br = buf + 24 * u;
                    if (zplane || yy < 0 || yy >= H) {
                        memset(br, 0, sizeof(float) * 24);
                        continue;
                    }
                    const float *r = pl + yy * W;
                    int m = 0;
                    if (xin) {   /* a dilated run inside the plane: strided reads */
                        const float *rx = r + x0;
                        for (; m < 2 * k + 2; m++)
                            br[m] = rx[m * dw];
                    } else {
                        for (; m < 2 * k + 2; m++) {
                            const int64_t xx = x0 + m * dw;
                            br[m] = xx >= 0 && xx < W ? r[xx] : 0.0f;
                        }
                    }
                    for (; m < 24; m++)
                        br[m] = 0.0f;
                }
                fcw_input_tf8(buf, 24, 1, vc + i, xs, k);
            }
            i += k;
        }
        for (int64_t i = nt; i < tbp; i++)
            for (int xi = 0; xi < FCW_XI; xi++)
                vc[xi * xs + i] = 0.0f;
    }
#else
    (void)q; (void)xc; (void)cs; (void)Cg; (void)ory; (void)orx; (void)run; (void)nty;
    (void)ntx; (void)t0; (void)nt; (void)tbp; (void)V;
#endif
}

#if FC_X86
/* The outputs of k <= 8 tiles of one run (fcw_run8), 16 channels (nch stored) from
 * M + i * 16 (xi stride ld): rows oy, oy + dh; tile j's columns ox + 2*j*dw, + dw; all
 * clipped to the output. o: channel m0's plane at (od, 0, 0); channel stride osm. */
FC_ATTR_AVX2 static void fcw_output_run(const fc_cgeom *q, const float *M, int64_t ld, int k,
                                        const float *bias, int nch, int64_t oy, int64_t ox,
                                        float *o, int64_t osm)
{
    const int64_t OH = q->OH, OW = q->OW, dh = q->dh, dw = q->dw;
    float Y[8][4][FCI_NV] __attribute__((aligned(32)));
    for (int j = 0; j < k; j++)
        fcw_output_tf(M + j * FCI_NV, ld, bias, nch, Y[j]);
    for (int j = k; j < 8; j++)
        memset(Y[j], 0, sizeof(Y[j]));
    const int64_t ncol = fc_min(2 * (int64_t)k, dw == 1 ? OW - ox : fc_cdiv(OW - ox, dw));
    for (int a = 0; a < 2; a++) {
        const int64_t yy = oy + a * dh;
        if (yy >= OH)
            break;
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
                    r[2 * j] = _mm256_load_ps(Y[4 * half + j][2 * a] + 8 * h);
                    r[2 * j + 1] = _mm256_load_ps(Y[4 * half + j][2 * a + 1] + 8 * h);
                }
                fci_tr8(r, cols);   /* cols[c] = channel 8h + c's 8 columns */
                const int64_t nc = fc_min(8, ncol - col0);
                for (int c = 0; c < c1; c++) {
                    float *row = o + (8 * h + c) * osm + yy * OW + ox + col0 * dw;
                    if (dw == 1 && nc == 8) {
                        _mm256_storeu_ps(row, cols[c]);
                    } else {
                        float tmp[8];
                        _mm256_storeu_ps(tmp, cols[c]);
                        for (int64_t e = 0; e < nc; e++)
                            row[e * dw] = tmp[e];
                    }
                }
            }
        }
    }
}
#endif

/* out[n, g, m, p] as fc_cgemm_run (engine 2). x: C-contiguous (N, G*Cg, D, H, W), image
 * stride q->x_sn; w (G*Cog, Cg, 1, 3, 3). Returns 0, or -1 when scratch could not be
 * allocated (nothing written then) or the problem is not one engine 2 serves. */
static int fc_wino_run(const fc_cgeom *q, const float *x, const float *w, const float *bias,
                       float *out, int nthreads)
{
#if FC_X86
    if (!fc_wino_supported(q))
        return -1;
    const int64_t N = q->N, G = q->G, Cg = q->Cg, Cog = q->Cog;
    const int64_t OD = q->OD, OH = q->OH, OW = q->OW;
    const int64_t njt = fc_cdiv(Cog, FCI_NV);
    const int64_t nty = fcw_origins(OH, q->dh, NULL), ntx = fcw_origins(OW, q->dw, NULL);
    const int64_t T = OD * nty * ntx;   /* tiles per image */
    if (N <= 0 || G <= 0 || Cog <= 0 || T <= 0)
        return 0;
    if (nthreads < 1)
        nthreads = 1;
    /* tiles per item: V (16 x Cg x tb floats) within FCW_V_BYTES, a multiple of 6, and
     * enough items for every thread */
    int64_t tb = FCW_V_BYTES / ((int64_t)sizeof(float) * FCW_XI * fc_max(Cg, 1));
    tb = fc_max(FCI_MP, fc_min(tb, FCW_TB_MAX)) / FCI_MP * FCI_MP;
    const int64_t want = 4 * (int64_t)nthreads;
    if (N * G * fc_cdiv(T, tb) < want)
        tb = fc_max(FCI_MP, fc_rup(fc_cdiv(T, fc_cdiv(want, N * G)), FCI_MP));
    /* near-equal blocks (49 tiles in blocks of 24 would pad to 72, in 18s to 54) */
    const int64_t nblk = fc_cdiv(T, tb), items = N * G * nblk;
    tb = fc_rup(fc_cdiv(T, nblk), FCI_MP);
    const int64_t cs = q->D * q->H * q->W;   /* one input channel */
    float *U = (float *)fc_alloc_aligned(sizeof(float)
                                         * (size_t)(FCW_XI * G * njt * Cg * FCI_NV));
    int64_t *ory = (int64_t *)malloc(sizeof(int64_t) * (size_t)nty);
    int64_t *orx = (int64_t *)malloc(sizeof(int64_t) * (size_t)ntx);
    int64_t *tap = (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(Cg, 1));
    int8_t *run = (int8_t *)malloc((size_t)ntx);
    if (!U || !ory || !orx || !tap || !run) {
        free(U); free(ory); free(orx); free(tap); free(run);
        return -1;
    }
    fcw_origins(OH, q->dh, ory);
    fcw_origins(OW, q->dw, orx);
    for (int64_t tx = 0; tx < ntx; tx++)
        run[tx] = (int8_t)fcw_run8(orx, ntx, tx, q->dw);
    for (int64_t c = 0; c < Cg; c++)
        tap[c] = c * tb;
    /* U[xi][g][jt][c][16]: panel (g, jt) of transform position xi, zero past Cog */
    const int64_t xis = G * njt * Cg * FCI_NV;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (G * Cog * Cg >= 4096)
#endif
    for (int64_t gc = 0; gc < G * njt * Cg; gc++) {
        const int64_t gj = gc / Cg, c = gc % Cg, g = gj / njt, jt = gj % njt;
        float gw[9][FCI_NV], u[FCW_XI][FCI_NV];
        for (int j = 0; j < FCI_NV; j++) {
            const int64_t m = jt * FCI_NV + j;
            for (int k = 0; k < 9; k++)
                gw[k][j] = m < Cog ? w[((g * Cog + m) * Cg + c) * 9 + k] : 0.0f;
        }
        fcw_weight_tf16(gw, u);
        float *d = U + (gj * Cg + c) * FCI_NV;
        for (int xi = 0; xi < FCW_XI; xi++)
            memcpy(d + xi * xis, u[xi], sizeof(float) * FCI_NV);
    }
    int failed = 0;
    if (items < nthreads)
        nthreads = (int)items;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
    {
        float *V = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(FCW_XI * Cg * tb));
        float *M = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(FCW_XI * tb * FCI_NV));
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
            fcw_input_block(q, x + n * q->x_sn + g * Cg * cs, cs, Cg, ory, orx, run, nty, ntx,
                            t0, nt, tb, V);
            float *og = out + n * q->o_sn + g * q->o_sg;
            for (int64_t jt = 0; jt < njt; jt++) {
                const int64_t m0 = jt * FCI_NV;
                const int nch = (int)fc_min(FCI_NV, Cog - m0);
                /* M[xi][tile][16] = U[xi] panel jt x V[xi] */
                for (int xi = 0; xi < FCW_XI; xi++) {
                    const float *Wp = U + xi * xis + (g * njt + jt) * Cg * FCI_NV;
                    const float *Vx = V + xi * Cg * tb;
                    for (int64_t t6 = 0; t6 < tb; t6 += FCI_MP) {
                        const float *px[FCI_MP];
                        for (int i = 0; i < FCI_MP; i++)
                            px[i] = Vx + t6 + i;
                        float *acc = M + (xi * tb + t6) * FCI_NV;
                        for (int64_t k0 = 0; k0 < Cg; k0 += FCW_KC)
                            fci_ukr_avx2(fc_min(FCW_KC, Cg - k0), Wp + k0 * FCI_NV, tap + k0,
                                         px, acc, k0 == 0);
                    }
                }
                /* each run's 2x2 output tiles */
                for (int64_t i = 0; i < nt;) {
                    const int64_t t = t0 + i, tx = t % ntx, ty = (t / ntx) % nty,
                                  od = t / (ntx * nty);
                    const int k = (int)fc_min(run[tx], nt - i);
                    fcw_output_run(q, M + i * FCI_NV, tb * FCI_NV, k,
                                   bias ? bias + g * Cog + m0 : NULL, nch, ory[ty], orx[tx],
                                   og + m0 * q->o_sm + od * OH * OW, q->o_sm);
                    i += k;
                }
            }
        }
        free(V);
        free(M);
    }
    free(U); free(ory); free(orx); free(tap); free(run);
    return failed ? -1 : 0;
#else
    (void)q; (void)x; (void)w; (void)bias; (void)out; (void)nthreads;
    return -1;
#endif
}

#endif /* FASTCONV_FC_WINOGRAD_H */
