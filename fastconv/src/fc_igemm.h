/*
 * fc_igemm.h — the forward correlation of fc_cgemm.h without packing the input: the
 * "implicit" GEMM with the output channels in the vector lanes.
 *
 * fc_cgemm.h puts pixels in the vector lanes, so every tap's 16 pixels must be copied
 * into a contiguous panel first (the B pack: 3-12% of a dense layer; for strided layers
 * also a phase-split copy of the whole input). Here the roles are swapped, as in oneDNN's
 * direct convolutions:
 *
 *   tile = FCI_MP (6) output pixels x FCI_NV (16) output channels, 12 AVX2 accumulators;
 *   per tap k:  two vector loads of the packed weight row  W[k, m0 .. m0+16)
 *               six scalar broadcasts of the input          x[pix_i + tap_k], i < 6
 *               twelve FMAs.
 *
 * The broadcasts read the (zero-padded, if padding is asked for) input in place at any
 * stride and dilation: pix_i is pixel i's tap-(0,0,0) offset and tap_k the tap's offset,
 * both from fc_cgemm_run's tables. Nothing is packed but the weight (once per call, into
 * K x 16 panels). The six pixels of a tile are any six consecutive output pixels (rows may
 * change inside a tile); the last tile of a block repeats its last pixel (never stored).
 *
 * The tile is pixel-major, the output channel-major (NCHW): partial sums live in a
 * per-thread buffer of tiles, and after the last K block each tile is transposed into the
 * output (plus bias) with AVX2 shuffles.
 *
 * Loops (work item = (image, group, block of pixels); threads take contiguous shares of
 * the items that match the padded copy's rows they wrote, or one at a time -- fc_items):
 *   for each K block (<= FCI_KC taps; one block when K <= 3 FCI_KC): for each 16-channel
 *     panel (its kc x 16 weights stay in L1): for each 6-pixel tile of the block: the
 *     micro-kernel, once per range of the tile's taps (kernel rows reading only padding
 *     skipped, see fci_run)
 * Included by fc_cgemm.h, which owns the geometry, the padded copy and the tables.
 *
 * The weight gradient runs the same fci_run with the operands' roles swapped (see
 * fc_cgemm_run): its "pixels" are the Cg*KT taps, its reduction the (image, position)
 * pairs, its "weight" grad_output packed by fcg_pack_gy, its output gw (row pitch K);
 * kstride lets a call reduce over one slice of a longer reduction.
 */
#ifndef FASTCONV_FC_IGEMM_H
#define FASTCONV_FC_IGEMM_H

#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fc_cpu.h"

#define FCI_MP 6        /* pixels per tile */
#define FCI_NV 16       /* output channels per tile (two AVX2 vectors) */
#define FCI_TILE (FCI_MP * FCI_NV)
/* Blocking (overridable with -D for experiments). K blocks of at most FCI_KC taps keep a
 * panel's kc x 16 weights (10 KiB) and the block's input rows near L1; measured against
 * 256 and unblocked K on the benchmark layers, 160 was never worse by more than noise. */
#ifndef FCI_KC
#define FCI_KC 160
#endif
#ifndef FCI_CT_BYTES
#define FCI_CT_BYTES ((int64_t)96 << 10)   /* per-thread partial sums of one pixel block */
#endif
#ifndef FCI_NB_MAX
#define FCI_NB_MAX 384                      /* pixels per work item at most */
#endif
#ifndef FCI_FUSE_MAX_P
#define FCI_FUSE_MAX_P 256   /* calls of up to this many pixels (all images) pack per item (fc_cgemm_run) */
#endif

#if FC_X86
/* One tap (offset o of the unrolled loop): the tap offset into %[t], W row in ymm12/13,
 * pixel i's input value broadcast, accumulators (2i, 2i+1) = channels 0-7, 8-15. */
#define FCI_P2(i0, i1, a0, a1, a2, a3)                                              \
    "vbroadcastss (%[p" #i0 "],%[t],4), %%ymm14\n\t"                                \
    "vbroadcastss (%[p" #i1 "],%[t],4), %%ymm15\n\t"                                \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm" #a0 "\n\t"                                \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm" #a1 "\n\t"                                \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm" #a2 "\n\t"                                \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm" #a3 "\n\t"
#define FCI_STEP(o)                                                                 \
    "mov " #o "*8(%[tap]), %[t]\n\t"                                                \
    "vmovaps " #o "*64(%[W]), %%ymm12\n\t"                                          \
    "vmovaps " #o "*64+32(%[W]), %%ymm13\n\t"                                       \
    FCI_P2(0, 1, 0, 1, 2, 3) FCI_P2(2, 3, 4, 5, 6, 7) FCI_P2(4, 5, 8, 9, 10, 11)
#define FCI_LD(i) "vmovaps " #i "*32(%[src]), %%ymm" #i "\n\t"
#define FCI_ST(i) "vmovaps %%ymm" #i ", " #i "*32(%[acc])\n\t"

static const float fci_zero_tile[FCI_TILE] __attribute__((aligned(64))) = {0.0f};

/* acc[0 .. 96) (32-byte aligned; pixel i's channels at acc[16 i ..]) = (first ? 0 : acc)
 * + sum over kc taps of W[k, 0:16] * px[i][tap[k]]. W: kc x 16 floats, 32-byte aligned. */
FC_ATTR_AVX2 static void fci_ukr_avx2(int64_t kc, const float *W, const int64_t *tap,
                                      const float *const *px, float *acc, int first)
{
    const float *src = first ? fci_zero_tile : acc;
    int64_t k4 = kc >> 2, kr = kc & 3, t;
    const float *p0 = px[0], *p1 = px[1], *p2 = px[2], *p3 = px[3], *p4 = px[4],
                *p5 = px[5];
    __asm__ volatile(
        FCI_LD(0) FCI_LD(1) FCI_LD(2) FCI_LD(3) FCI_LD(4) FCI_LD(5)
        FCI_LD(6) FCI_LD(7) FCI_LD(8) FCI_LD(9) FCI_LD(10) FCI_LD(11)
        "test %[k4], %[k4]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n\t"
        "1:\n\t"
        "prefetcht0 512(%[W])\n\t"
        FCI_STEP(0) FCI_STEP(1)
        "prefetcht0 576(%[W])\n\t"
        FCI_STEP(2) FCI_STEP(3)
        "add $256, %[W]\n\t"
        "add $32, %[tap]\n\t"
        "dec %[k4]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "test %[kr], %[kr]\n\t"
        "jz 4f\n\t"
        "3:\n\t"
        FCI_STEP(0)
        "add $64, %[W]\n\t"
        "add $8, %[tap]\n\t"
        "dec %[kr]\n\t"
        "jnz 3b\n\t"
        "4:\n\t"
        FCI_ST(0) FCI_ST(1) FCI_ST(2) FCI_ST(3) FCI_ST(4) FCI_ST(5)
        FCI_ST(6) FCI_ST(7) FCI_ST(8) FCI_ST(9) FCI_ST(10) FCI_ST(11)
        : [W] "+r"(W), [tap] "+r"(tap), [k4] "+r"(k4), [kr] "+r"(kr), [t] "=&r"(t)
        : [acc] "r"(acc), [src] "r"(src), [p0] "r"(p0), [p1] "r"(p1), [p2] "r"(p2), [p3] "r"(p3),
          [p4] "r"(p4), [p5] "r"(p5)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
}
#undef FCI_P2
#undef FCI_STEP
#undef FCI_LD
#undef FCI_ST

/* 8x8 transpose in registers: out[c][i] = r[i][c]. */
FC_ATTR_AVX2 static inline __attribute__((always_inline)) void fci_tr8(const __m256 r[8],
                                                                      __m256 out[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    out[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    out[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    out[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    out[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    out[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    out[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    out[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    out[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* A finished tile (pixel-major, acc[16 i + c]) into the channel-major output: channel
 * c < nch of pixel i < npx at dst[c * ldo + i], plus bias[c] (bias may be NULL). Two 8x8
 * transposes (pixels 6, 7 of each are padding). */
FC_ATTR_AVX2 static void fci_store_avx2(const float *acc, int npx, int nch,
                                        const float *bias, float *dst, int64_t ldo)
{
    for (int h = 0; h < 2; h++) {
        if (h * 8 >= nch)
            break;
        __m256 r[8];
        for (int i = 0; i < FCI_MP; i++)
            r[i] = _mm256_load_ps(acc + i * FCI_NV + h * 8);
        r[6] = r[7] = _mm256_setzero_ps();
        __m256 s[8];
        fci_tr8(r, s);   /* s[c][i] = r[i][c] */
        const int c1 = nch - h * 8 < 8 ? nch - h * 8 : 8;
        for (int c = 0; c < c1; c++) {
            float *d = dst + (int64_t)(h * 8 + c) * ldo;
            __m256 v = s[c];
            if (bias)
                v = _mm256_add_ps(v, _mm256_set1_ps(bias[h * 8 + c]));
            if (npx == FCI_MP) {
                _mm_storeu_ps(d, _mm256_castps256_ps128(v));
                _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
            } else {
                float tmp[8] __attribute__((aligned(32)));
                _mm256_store_ps(tmp, v);
                for (int i = 0; i < npx; i++)
                    d[i] = tmp[i];
            }
        }
    }
}
#endif /* FC_X86 */

/* Per axis, the taps a of an output coordinate o that read inside the input (not the zero
 * padding): [lo, hi) with pad <= o*s + a*d < pad + n (padded coordinates). */
static inline void fci_valid(int64_t o, int64_t s, int64_t d, int64_t pad, int64_t n,
                             int64_t ka, int64_t *lo, int64_t *hi)
{
    const int64_t z = o * s;                                  /* tap 0's padded coordinate */
    int64_t l = z >= pad ? 0 : fc_cdiv(pad - z, d);
    int64_t h = z > pad + n - 1 ? 0 : (pad + n - 1 - z) / d + 1;
    *lo = fc_min(l, ka);
    *hi = fc_max(*lo, fc_min(h, ka));
}

#if FC_X86
/* 8 rows x 8 columns (row i at s + i * ld) -> out[c] = column c (8 rows' values). */
FC_ATTR_AVX2 static inline void fci_t8x8(const float *s, int64_t ld, int nrows, __m256 out[8])
{
    __m256 r[8];
    for (int i = 0; i < 8; i++)
        r[i] = i < nrows ? _mm256_loadu_ps(s + i * ld) : _mm256_setzero_ps();
    fci_tr8(r, out);
}

/* The destination tap of each source column k of a weight row (fci_pack_w's order): the
 * kernel-row-major position (r*Cg + c)*KW + e with ``rowmaj``, else k itself. dst[K]. */
static void fci_dst_taps(int64_t Cg, int64_t KR, int64_t KW, int rowmaj, int64_t *dst)
{
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t r = 0; r < KR; r++)
            for (int64_t e = 0; e < KW; e++)
                dst[(c * KR + r) * KW + e] = rowmaj ? (r * Cg + c) * KW + e
                                                    : (c * KR + r) * KW + e;
}

/* One 16-channel panel of fci_pack_w (weight in its own layout, rows ``base + j * K``, the
 * first ``nch`` of 16 present, the others zero): 8 columns of 8 rows at a time, contiguous
 * loads, transposed 8x8 in registers, each column's channels stored to its destination
 * tap dst[k] of d (K x 16 floats, 32-byte aligned). Against the scalar loop of fci_pack_w
 * (about 1 ns per weight: 18% of a 128 -> 64 3x3 14x14 batch-1 layer) and against two
 * 8-lane gathers per tap (0.33 ms for a 256 x 2304 weight; this: 0.19 ms). */
FC_ATTR_AVX2 static void fci_pack_panel_avx2(const float *base, int64_t K, int nch,
                                             const int64_t *dst, float *d)
{
    const int64_t K8 = K & ~(int64_t)7;
    for (int h = 0; h < 2; h++) {
        const int nr = nch - 8 * h < 0 ? 0 : (nch - 8 * h > 8 ? 8 : nch - 8 * h);
        const float *sh = base + (int64_t)8 * h * K;
        for (int64_t k = 0; k < K8; k += 8) {
            __m256 col[8];
            fci_t8x8(sh + k, K, nr, col);
            for (int i = 0; i < 8; i++)
                _mm256_store_ps(d + dst[k + i] * FCI_NV + 8 * h, col[i]);
        }
        for (int64_t k = K8; k < K; k++)
            for (int j = 0; j < 8; j++)
                d[dst[k] * FCI_NV + 8 * h + j] = j < nr ? sh[j * K + k] : 0.0f;
    }
}

#endif /* FC_X86 */

/* The implicit engine's share of fc_cgemm_run (AVX2 CPUs; the weight gradient calls it with
 * its operands' roles swapped, see fc_cgemm_run). x: the input as
 * the tables address it (zero-padded copy or the caller's array, image stride x_sn, one
 * group's channels Cg_CS elements apart); tap[K]: fc_cgemm_run's tap offsets (reordered
 * by fci_taps_rowmajor when ``rowmaj``); pix[P]; Wq: the weight packed by fci_pack_w in
 * the same order. In row-major order, kernel rows (kd, kh) that read only zero padding
 * for all six pixels of a tile are skipped: a dilated 3x3 with pad 6 on 64x64 spends 6%
 * of its multiply-adds on padding rows otherwise (and as much on padding columns, which
 * are not skipped). Wq's panels are kstride taps apart (K, or more when this call reduces
 * over a slice of a longer reduction: tap and Wq then point at the slice's first tap).
 * Returns 0, or -1 when a thread's scratch could not be allocated. */
static int fci_run(const fc_cgeom *q, int rowmaj, int split, const float *x, int64_t x_sn,
                   int64_t Cg_CS, int64_t K, int64_t kstride, int64_t P, const int64_t *tap,
                   const int64_t *pix, const float *Wq, const float *bias, float *out,
                   int nthreads, const float *wsrc)
{
#if FC_X86
    const int64_t N = q->N, G = q->G, Cg = q->Cg, Cog = q->Cog;
    const int64_t njt = fc_cdiv(Cog, FCI_NV);
    /* pixel blocks: their partial sums (tiles x njt x 96 floats) within FCI_CT_BYTES, and
     * enough work items for every thread; with ``wsrc`` (the weight unpacked, see
     * fci_fuse_pack) one block holds all the pixels and each item packs its own panels */
    int64_t nb_max = FCI_CT_BYTES / ((int64_t)sizeof(float) * FCI_TILE * njt) * FCI_MP;
    nb_max = fc_max(FCI_MP, fc_min(nb_max, FCI_NB_MAX));
    int64_t per = fc_max(fc_cdiv(4 * (int64_t)nthreads, N * G), fc_cdiv(P, nb_max));
    per = fc_max(1, fc_min(per, fc_cdiv(P, 4 * FCI_MP)));
    if (wsrc)
        per = 1;
    const int64_t nb = fc_rup(fc_cdiv(P, per), FCI_MP);
    const int64_t nblk = fc_cdiv(P, nb);
    /* few pixel blocks (a batch-1 layer on a 7x7 or 14x14 map: 512 -> 512 3x3 on 7x7 made
     * 3 items for 2 threads): the items also split the 16-channel panels, so that every
     * thread gets a near-equal share */
    int64_t nmc = 1;
#ifndef FCI_NO_PANEL_SPLIT
    if (nthreads > 1 && N * G * nblk < 4 * (int64_t)nthreads)
        nmc = fc_min(njt, fc_cdiv(4 * (int64_t)nthreads, N * G * nblk));
#endif
    const int64_t items = N * G * nblk * nmc;
    /* near-equal K blocks; a short K (<= 3 blocks' worth) in one: each block costs every
     * tile a kernel call (~50 cycles of accumulator loads and stores; GoogLeNet 5x5, K =
     * 400: 6% in 3 blocks) */
    const int64_t nkb = K <= 3 * FCI_KC ? 1 : fc_cdiv(K, FCI_KC), kcs = fc_cdiv(K, nkb);
    /* unpadded extents (rows past them read zeros too) */
    const int64_t Din = q->D, Hin = q->H;
    /* taps of one (kd, kh) row in row-major order; channel-major: all of K is one "row" */
    const int64_t CgKW = rowmaj ? Cg * q->KW : K;
    int failed = 0;
    /* contiguous shares of the items (those of the copy's rows this thread wrote, see
     * fc_cgemm_run), unless the team shrinks to fewer threads than the copy had */
    split = split && items >= nthreads;
    if (items < nthreads)
        nthreads = (int)items;
    /* shared item counters (fc_items), one cache line per thread's share */
    int64_t *counters = (int64_t *)calloc((size_t)nthreads * FC_ITEMS_PAD, sizeof(int64_t));
    /* packing per item: the destination tap of every weight column */
    int64_t *dst = wsrc ? (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(K, 1)) : NULL;
    if (!counters || (wsrc && !dst)) {
        free(counters);
        free(dst);
        return -1;
    }
    if (wsrc)
        fci_dst_taps(Cg, q->KD * q->KH, q->KW, rowmaj, dst);
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
    {
        const int64_t ntl = nb / FCI_MP;
        float *Ct = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(ntl * njt * FCI_TILE));
        /* per tile: the kernel rows that read inside the input, [lo, hi) per axis (d, h) */
        int64_t *box = (int64_t *)fc_alloc_aligned(sizeof(int64_t) * (size_t)(ntl * 4));
        /* packing per item: one panel at a time (K x 16 floats, used while in L2) */
        float *Wt = wsrc ? (float *)fc_alloc_aligned(sizeof(float) * (size_t)(K * FCI_NV))
                         : NULL;
        if (!Ct || !box || (wsrc && !Wt))
            fc_flag_failure(&failed);
        fc_items work;
        fc_items_begin(&work, items, split, counters);
        for (int64_t it; (it = fc_items_next(&work)) >= 0;) {
            if (!Ct || !box || (wsrc && !Wt))
                continue;
            const int64_t mc = it % nmc, jb = (it / nmc) % nblk, ng = it / nmc / nblk;
            const int64_t g = ng % G, n = ng / G;
            const int64_t jt0 = njt * mc / nmc, jt1 = njt * (mc + 1) / nmc;
            const int64_t p0 = jb * nb, pn = fc_min(nb, P - p0);
            const int64_t nt = fc_cdiv(pn, FCI_MP);
            const float *xg = x + n * x_sn + g * Cg_CS;
            float *og = out + n * q->o_sn + g * q->o_sg + p0;
            for (int64_t t = 0; t < nt; t++) {
                int64_t *b = box + t * 4;
                b[0] = b[2] = INT64_MAX;
                b[1] = b[3] = 0;
                for (int64_t i = t * FCI_MP; i < fc_min((t + 1) * FCI_MP, pn); i++) {
                    const int64_t p = p0 + i;
                    const int64_t oh = (p / q->OW) % q->OH, od = p / (q->OW * q->OH);
                    int64_t lo, hi;
                    if (!rowmaj) {   /* nothing skipped: one row covering all of K */
                        b[0] = b[2] = 0;
                        b[1] = b[3] = 1;
                        break;
                    }
                    fci_valid(od, q->sd, q->dd, q->pd, Din, q->KD, &lo, &hi);
                    if (lo < hi) { b[0] = fc_min(b[0], lo); b[1] = fc_max(b[1], hi); }
                    fci_valid(oh, q->sh, q->dh, q->ph, Hin, q->KH, &lo, &hi);
                    if (lo < hi) { b[2] = fc_min(b[2], lo); b[3] = fc_max(b[3], hi); }
                }
            }
            /* with wsrc one panel at a time, packed first; else all of them per K block */
            for (int64_t jq = jt0; jq < jt1; jq += wsrc ? 1 : jt1 - jt0) {
                if (wsrc)
                    fci_pack_panel_avx2(wsrc + (g * Cog + jq * FCI_NV) * K, K,
                                        (int)fc_min(FCI_NV, Cog - jq * FCI_NV), dst, Wt);
                for (int64_t k0 = 0; k0 < K; k0 += kcs) {
                    const int64_t k1 = fc_min(K, k0 + kcs);
                    for (int64_t jt = jq; jt < (wsrc ? jq + 1 : jt1); jt++) {
                        const float *Wj = wsrc ? Wt : Wq + (g * njt + jt) * kstride * FCI_NV;
                        for (int64_t t = 0; t < nt; t++) {
                            const int64_t *b = box + t * 4;
                            const float *px[FCI_MP];
                            for (int i = 0; i < FCI_MP; i++)
                                px[i] = xg + pix[p0 + fc_min(t * FCI_MP + i, pn - 1)];
                            float *acc = Ct + (t * njt + jt) * FCI_TILE;
                            /* the tile's valid taps: the (kd, kh) rows in its box, each one
                             * range of k (all channels and kw's), adjacent rows merged; the
                             * first call on a tile starts from zero (``fresh``) */
                            int fresh = k0 == 0;
                            int64_t ka = -1, kb = -1;
                            for (int64_t a = b[0]; a < b[1]; a++)
                                for (int64_t e = b[2]; e < b[3]; e++) {
                                    const int64_t r0 = fc_max(k0, (a * q->KH + e) * CgKW),
                                                  r1 = fc_min(k1, (a * q->KH + e + 1) * CgKW);
                                    if (r0 >= r1)
                                        continue;
                                    if (r0 == kb) {
                                        kb = r1;
                                        continue;
                                    }
                                    if (ka < kb) {
                                        fci_ukr_avx2(kb - ka, Wj + ka * FCI_NV, tap + ka, px, acc,
                                                     fresh);
                                        fresh = 0;
                                    }
                                    ka = r0;
                                    kb = r1;
                                }
                            if (ka < kb)
                                fci_ukr_avx2(kb - ka, Wj + ka * FCI_NV, tap + ka, px, acc, fresh);
                            else if (fresh)   /* every row of this tile reads padding only */
                                memset(acc, 0, sizeof(float) * FCI_TILE);
                            /* after its last K block the tile goes to the output at once: its
                             * stores (cold output lines) overlap the next tiles' arithmetic
                             * instead of stalling in one burst at the end of the item */
                            if (k1 == K) {
                                const int64_t m0 = jt * FCI_NV;
                                fci_store_avx2(acc, (int)fc_min(FCI_MP, pn - t * FCI_MP),
                                               (int)fc_min(FCI_NV, Cog - m0),
                                               bias ? bias + g * Cog + m0 : NULL,
                                               og + m0 * q->o_sm + t * FCI_MP, q->o_sm);
                            }
                        }
                    }
                }
            }
        }
        free(Ct);
        free(box);
        free(Wt);
    }
    free(counters);
    free(dst);
    return failed ? -1 : 0;
#else
    (void)q; (void)x; (void)x_sn; (void)Cg_CS; (void)K; (void)P; (void)tap; (void)pix;
    (void)Wq; (void)bias; (void)out; (void)nthreads; (void)wsrc;
    return -1;
#endif
}

/* The share of (output pixel, kernel row (kd, kh)) pairs whose row reads only zero
 * padding, in 1/1000 -- what skipping those rows saves. */
static int64_t fci_pad_rows_permille(const fc_cgeom *q)
{
    int64_t skip = 0;
    for (int64_t od = 0; od < q->OD; od++)
        for (int64_t oh = 0; oh < q->OH; oh++) {
            int64_t l0, h0, l1, h1;
            fci_valid(od, q->sd, q->dd, q->pd, q->D, q->KD, &l0, &h0);
            fci_valid(oh, q->sh, q->dh, q->ph, q->H, q->KH, &l1, &h1);
            skip += q->KD * q->KH - (h0 - l0) * (h1 - l1);
        }
    return 1000 * skip / fc_max(1, q->OD * q->OH * q->KD * q->KH);
}

/* Kernel-row-major order (fci_run skips padding rows) when it saves at least this much
 * (permille). Below, the channel-major order wins: per K block it touches fewer input rows
 * (neighbouring kernel rows share them), measured 4-10% faster on VGG 3x3 and a 3x3 / 2
 * layer (1.2% padding rows), while row-major was 5-6% faster on AlexNet conv2 and a
 * dilated 3x3 d6 (4.4% and 6.3%). Strided layers keep the channel-major order whatever
 * their padding (fc_cgemm_run). */
#define FCI_ROWMAJOR_PERMILLE 30

/* fc_cgemm_run's tap table (channel-major: k = (c*KD*KH + r)*KW + kw, the weight's own
 * order) reordered in place to the kernel-row-major order of fci_run: k = (r*Cg + c)*KW
 * + kw, r = kd*KH + kh, so one kernel row of every channel is one contiguous range of k,
 * skipped whole when it reads only padding. Returns -1 when its scratch (K offsets) could
 * not be allocated. */
static int fci_taps_rowmajor(const fc_cgeom *q, int64_t *tap)
{
    const int64_t KR = q->KD * q->KH, KW = q->KW, K = q->Cg * KR * KW;
    int64_t *t = (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(K, 1));
    if (!t)
        return -1;
    for (int64_t c = 0; c < q->Cg; c++)
        for (int64_t r = 0; r < KR; r++)
            for (int64_t e = 0; e < KW; e++)
                t[(r * q->Cg + c) * KW + e] = tap[(c * KR + r) * KW + e];
    memcpy(tap, t, sizeof(int64_t) * (size_t)K);
    free(t);
    return 0;
}

#if FC_X86
/* fci_pack_w for a weight in its own layout (not w_trans), panel by panel. Returns -1
 * when its table could not be allocated (the caller packs with the scalar loop). */
FC_ATTR_AVX2 static int fci_pack_w_avx2(const float *w, int64_t G, int64_t Cog, int64_t Cg,
                                        int64_t KR, int64_t KW, int rowmaj, float *Wq,
                                        int nthreads)
{
    const int64_t njt = fc_cdiv(Cog, FCI_NV), K = Cg * KR * KW;
    int64_t *dst = (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(K, 1));
    if (!dst)
        return -1;
    fci_dst_taps(Cg, KR, KW, rowmaj, dst);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (G * njt * K >= 4096)
#endif
    for (int64_t gj = 0; gj < G * njt; gj++) {
        const int64_t g = gj / njt, m0 = (gj % njt) * FCI_NV;
        fci_pack_panel_avx2(w + (g * Cog + m0) * K, K, (int)fc_min(FCI_NV, Cog - m0), dst,
                            Wq + gj * K * FCI_NV);
    }
    free(dst);
    return 0;
}
#endif

/* The weight of group g, panel jt, in fci_run's tap order k: Wq[((g*njt + jt)*K + k)*16 + j] =
 * w[g*Cog + jt*16 + j, c, r, e] (r = kd*KH + kh; zero past Cog); w (G*Cog, Cg, KR, KW)
 * row-major, or with w_trans (G, Cg, Cog) (1x1 kernels). */
static void fci_pack_w(const float *w, int64_t G, int64_t Cog, int64_t Cg, int64_t KR,
                       int64_t KW, int rowmaj, int w_trans, float *Wq, int nthreads)
{
    const int64_t njt = fc_cdiv(Cog, FCI_NV), K = Cg * KR * KW;
#if FC_X86
    if (!w_trans && fc_cpu_has_avx2_fma()
        && fci_pack_w_avx2(w, G, Cog, Cg, KR, KW, rowmaj, Wq, nthreads) == 0)
        return;
#endif
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (G * njt * K >= 4096)
#endif
    for (int64_t gj = 0; gj < G * njt; gj++) {
        const int64_t g = gj / njt, m0 = (gj % njt) * FCI_NV;
        const int64_t nch = fc_min(FCI_NV, Cog - m0);
        float *d = Wq + gj * K * FCI_NV;
        if (w_trans) {
            for (int64_t k = 0; k < K; k++) {
                const float *s = w + (g * K + k) * Cog + m0;
                for (int64_t j = 0; j < FCI_NV; j++)
                    d[k * FCI_NV + j] = j < nch ? s[j] : 0.0f;
            }
        } else {
            /* by chunks of input channels (>= 64 source columns: the destination lines
             * they hit stay in L1 while the 16 rows are read), then row by row:
             * contiguous reads; source column k = (c*KR + r)*KW + e */
            const int64_t KRW = KR * KW, cstep = fc_max(1, 64 / KRW);
            for (int64_t c0 = 0; c0 < Cg; c0 += cstep) {
                const int64_t c1 = fc_min(Cg, c0 + cstep);
                for (int64_t j = 0; j < FCI_NV; j++) {
                    const float *s = w + (g * Cog + m0 + j) * K;
                    for (int64_t c = c0; c < c1; c++)
                        for (int64_t r = 0; r < KR; r++) {
                            const int64_t k = (c * KR + r) * KW;
                            float *dd = d + (rowmaj ? (r * Cg + c) * KW : k) * FCI_NV + j;
                            for (int64_t e = 0; e < KW; e++)
                                dd[e * FCI_NV] = j < nch ? s[k + e] : 0.0f;
                        }
                }
            }
        }
    }
}

#endif /* FASTCONV_FC_IGEMM_H */
