/*
 * fc_cgemm.h — float32 convolution as a GEMM with the im2col fused into the packing.
 *
 * For image n and group g:   OUT_g (Cog x P)  =  A_g (Cog x K)  @  B_g (K x P)  (+ bias)
 *   A_g = the group's weights, K = Cg * KD*KH*KW (order: channel, then taps),
 *   B_g = the patch ("im2col") matrix of the zero-padded input, P = OD*OH*OW pixels:
 *         B[k, p] = x[n, g*Cg + c, od*sd + kd*dd, oh*sh + kh*dh, ow*sw + kw*dw]
 * B is never materialised: BLIS-style blocks of it (KC x NC) are packed straight from the
 * padded input into micro-panels of FC_NR pixels, the form the micro-kernel reads, and
 * consumed while they are in cache. A is packed once per call into micro-panels of FC_MR
 * output channels. The micro-kernel computes an FC_MR x FC_NR tile of OUT in registers
 * (6 x 16 floats = 12 AVX2 accumulators, one FMA per accumulator per k).
 *
 * Loops (per work item = (image, group, block of NC pixels), OpenMP dynamic over items):
 *   for each KC block of K:  pack B block -> for each MC block of A rows ->
 *     for each NR micro-panel of B (L1-resident) -> for each MR panel of A -> micro-kernel
 * Output rows are addressed by (n, g, m) element strides, so a channel shuffle
 * (ShuffleNet) costs nothing: it is just another row order. Bias is added in registers.
 *
 * Padding and strides: the packer reads x itself when it can (no padding, unit stride),
 * otherwise a copy built once per call in parallel -- zero-padded and, for strided
 * problems, split into stride phases so that every tap reads unit-stride runs again.
 * Panels whose 16 pixels are one run are copied with vector loads, two runs (an output row
 * boundary) with masked loads, anything else gathered.
 *
 * Weight-gradient mode (fc_cgemm_wgrad_f32): the same loops with the tap and pixel tables
 * swapped -- columns = the K taps, reduction = every (image, pixel) pair, A = grad_output.
 *
 * ISA: the AVX2+FMA micro-kernel and packer are compiled with gcc target attributes and
 * chosen at run time (__builtin_cpu_supports); other CPUs take portable C loops.
 */
#ifndef FASTCONV_FC_CGEMM_H
#define FASTCONV_FC_CGEMM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fc_cpu.h"

#define FC_MR 6
#define FC_NR 16
#define FCG_KC 256       /* K block: an A panel (6 x KC) + a B panel (KC x 16) fit in L1 */
#define FCG_MC 120       /* rows of A per block: MC x KC floats (~120 KB) stay in L2 */
#define FCG_NC_MAX 384   /* pixels per work item: a KC x NC block of B (<= 384 KiB) stays in L2 */

typedef struct {
    int64_t N, G, Cg, Cog;          /* images, groups, channels per group (in, out) */
    int64_t D, H, W;                /* padded input extents (3-D; 1-D/2-D use 1s) */
    int64_t KD, KH, KW;             /* kernel */
    int64_t OD, OH, OW;             /* output */
    int64_t sd, sh, sw, dd, dh, dw; /* stride, dilation */
    int64_t x_sn;                   /* elements between images of x (>= G*Cg*D*H*W) */
    int64_t o_sn, o_sg, o_sm;       /* output element strides: image, group, channel-in-group */
    int64_t phase;                  /* strided problems: -1 auto, 0 gather, 1 phase split */
    int64_t pd, ph, pw;             /* zeros before each axis (>= 0); zeros past the end too */
    int64_t w_trans;                /* 1: w is stored (G, K, Cog) -- each group's A transposed
                                     * (a transposed convolution's W_g^T without a copy) */
    int64_t engine;                 /* forward, AVX2: -1 auto, 0 packed (pixels in the vector
                                     * lanes), 1 implicit (channels in the lanes, fc_igemm.h),
                                     * 2 Winograd F(2x2, 3x3) / F(2x2, 5x5) (fc_winograd.h;
                                     * 3x3, 3x3x3, 5x5, stride 1) */
} fc_cgeom;

#include "fc_igemm.h"   /* the implicit forward engine: needs fc_cgeom */
#include "fc_winograd.h"   /* engine 2: Winograd on fc_igemm.h's micro-kernel */

/* Strided problems are computed on a phase-split copy of the input (each of the
 * sd*sh*sw phase images holds x[r + s*i]), where every tap reads unit-stride runs again,
 * unless that copy would exceed this many bytes (then the packer gathers). */
#define FCG_PHASE_MAX_BYTES ((int64_t)256 << 20)


/* ---------------------------------------------------------------------------------------
 * micro-kernels: C[0:6, 0:16] (row stride ldc) = (first ? bias : C) + A_panel @ B_panel
 * A panel: kc x 6 (k-major), B panel: kc x 16 (k-major, 32-byte aligned)
 * ------------------------------------------------------------------------------------- */
static void fcg_ukr_generic(int64_t kc, const float *A, const float *B, float *C,
                            int64_t ldc, int first, const float *bias, int rows)
{
    float acc[FC_MR][FC_NR];
    for (int r = 0; r < FC_MR; r++)
        for (int j = 0; j < FC_NR; j++)
            acc[r][j] = r >= rows ? 0.0f : first ? (bias ? bias[r] : 0.0f) : C[r * ldc + j];
    for (int64_t k = 0; k < kc; k++) {
        const float *a = A + k * FC_MR, *b = B + k * FC_NR;
        for (int r = 0; r < FC_MR; r++)
            for (int j = 0; j < FC_NR; j++)
                acc[r][j] += a[r] * b[j];
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < FC_NR; j++)
            C[r * ldc + j] = acc[r][j];
}

#if FC_X86
/* One step k of the R-row kernels: B row k (16 floats) in ymm12/13, A[k, r] broadcast
 * (the A panel keeps its stride of FC_MR floats per k whatever R), accumulator pair
 * (2r, 2r+1) for row r. */
#define FCG_B(o)                                                                    \
    "vmovaps " #o "*64(%[B]), %%ymm12\n\t"                                          \
    "vmovaps " #o "*64+32(%[B]), %%ymm13\n\t"
#define FCG_R2(o, r0, r1, a0, a1, a2, a3)                                           \
    "vbroadcastss " #o "*24+" #r0 "*4(%[A]), %%ymm14\n\t"                           \
    "vbroadcastss " #o "*24+" #r1 "*4(%[A]), %%ymm15\n\t"                           \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm" #a0 "\n\t"                                \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm" #a1 "\n\t"                                \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm" #a2 "\n\t"                                \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm" #a3 "\n\t"
#define FCG_S6(o) FCG_B(o) FCG_R2(o, 0, 1, 0, 1, 2, 3) FCG_R2(o, 2, 3, 4, 5, 6, 7)      \
    FCG_R2(o, 4, 5, 8, 9, 10, 11)
#define FCG_S4(o) FCG_B(o) FCG_R2(o, 0, 1, 0, 1, 2, 3) FCG_R2(o, 2, 3, 4, 5, 6, 7)
#define FCG_S2(o) FCG_B(o) FCG_R2(o, 0, 1, 0, 1, 2, 3)
/* The 2-row kernel alternates two accumulator sets between even and odd k (ymm0-3,
 * ymm4-7, summed at the end): with only 4 chains it was bound by the FMA latency (4
 * cycles, 2 ports) and ran at half speed -- perf: 9.4% of a GoogLeNet 5x5 call (32 output
 * channels = 5 panels + 2 rows) for 1/16 of its FMAs. */
#define FCG_S2B(o) FCG_B(o) FCG_R2(o, 0, 1, 4, 5, 6, 7)
#define FCG_S2X_0 FCG_S2(0)
#define FCG_S2X_1 FCG_S2B(1)
#define FCG_S2X_2 FCG_S2(2)
#define FCG_S2X_3 FCG_S2B(3)
#define FCG_S2X(o) FCG_S2X_##o
#define FCG_LD(i) "vmovaps " #i "*32(%[acc]), %%ymm" #i "\n\t"
#define FCG_ST(i) "vmovaps %%ymm" #i ", " #i "*32(%[acc])\n\t"
#define FCG_LD4 FCG_LD(0) FCG_LD(1) FCG_LD(2) FCG_LD(3)
#define FCG_ST4 FCG_ST(0) FCG_ST(1) FCG_ST(2) FCG_ST(3)
#define FCG_LD8 FCG_LD4 FCG_LD(4) FCG_LD(5) FCG_LD(6) FCG_LD(7)
#define FCG_ST8 FCG_ST4 FCG_ST(4) FCG_ST(5) FCG_ST(6) FCG_ST(7)
#define FCG_LD12 FCG_LD8 FCG_LD(8) FCG_LD(9) FCG_LD(10) FCG_LD(11)
#define FCG_ST12 FCG_ST8 FCG_ST(8) FCG_ST(9) FCG_ST(10) FCG_ST(11)

/* The k loop of the kernels below: STEP(0..3) four times unrolled (B and A advanced after
 * them, a packed B panel's lines 8 and 9 rows ahead prefetched), then the kc % 4 rest; it
 * ends at label 4. Operands: A, B (advanced), k4 = kc / 4, kr = kc % 4 (counted down). */
#define FCG_KLOOP(STEP)                                                             \
        "test %[k4], %[k4]\n\t"                                                     \
        "jz 2f\n\t"                                                                 \
        ".p2align 4\n\t"                                                            \
        "1:\n\t"                                                                    \
        "prefetcht0 512(%[B])\n\t"                                                  \
        STEP(0) STEP(1)                                                             \
        "prefetcht0 576(%[B])\n\t"                                                  \
        STEP(2) STEP(3)                                                             \
        "add $256, %[B]\n\t"                                                        \
        "add $96, %[A]\n\t"                                                         \
        "dec %[k4]\n\t"                                                             \
        "jnz 1b\n\t"                                                                \
        "2:\n\t"                                                                    \
        "test %[kr], %[kr]\n\t"                                                     \
        "jz 4f\n\t"                                                                 \
        "3:\n\t"                                                                    \
        STEP(0)                                                                     \
        "add $64, %[B]\n\t"                                                         \
        "add $24, %[A]\n\t"                                                         \
        "dec %[kr]\n\t"                                                             \
        "jnz 3b\n\t"                                                                \
        "4:\n\t"

/* The R-row AVX2 kernel (R = 6, 4 or 2; ``rows`` <= R): C[0:rows, 0:16] as in
 * fcg_ukr_generic. A tail panel of 1-4 rows thus costs 2 or 4 rows of FMAs, not 6.
 * The k loop is inline assembly: gcc's register allocation of the intrinsics version
 * spilled accumulators to the stack (measured 58-70 GFLOP/s per core). Accumulators
 * travel through ``acc`` into ymm0 .. ymm(2R-1). */
#define FCG_UKR_AVX2(NAME, R, NACC, STEP, LOADS, STORES)                            \
FC_ATTR_AVX2 static void NAME(int64_t kc, const float *A, const float *B, float *C,     \
                              int64_t ldc, int first, const float *bias, int rows)      \
{                                                                                   \
    /* NACC accumulator registers; past the 2R of the rows: a second set (summed) */  \
    float acc[NACC * 8] __attribute__((aligned(32)));                               \
    for (int r = rows; r < NACC / 2; r++) {                                         \
        _mm256_store_ps(acc + r * FC_NR, _mm256_setzero_ps());                      \
        _mm256_store_ps(acc + r * FC_NR + 8, _mm256_setzero_ps());                  \
    }                                                                               \
    for (int r = 0; r < rows; r++) {                                                \
        __m256 v = first && bias ? _mm256_set1_ps(bias[r]) : _mm256_setzero_ps();   \
        _mm256_store_ps(acc + r * FC_NR, v);                                        \
        _mm256_store_ps(acc + r * FC_NR + 8, v);                                    \
        if (!first) {                                                               \
            _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T0);                 \
            _mm_prefetch((const char *)(C + r * ldc + FC_NR - 1), _MM_HINT_T0);     \
        }                                                                           \
    }                                                                               \
    int64_t k4 = kc >> 2, kr = kc & 3;                                              \
    __asm__ volatile(                                                               \
        LOADS                                                                       \
        FCG_KLOOP(STEP)                                                             \
        STORES                                                                      \
        : [A] "+r"(A), [B] "+r"(B), [k4] "+r"(k4), [kr] "+r"(kr)                    \
        : [acc] "r"(acc)                                                            \
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",    \
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc",       \
          "memory");                                                                \
    for (int i = 2 * R; i < NACC; i++)                                              \
        _mm256_store_ps(acc + (i - 2 * R) * 8,                                      \
                        _mm256_add_ps(_mm256_load_ps(acc + (i - 2 * R) * 8),        \
                                      _mm256_load_ps(acc + i * 8)));                \
    if (first) {                                                                    \
        for (int r = 0; r < rows; r++) {                                            \
            _mm256_storeu_ps(C + r * ldc, _mm256_load_ps(acc + r * FC_NR));         \
            _mm256_storeu_ps(C + r * ldc + 8, _mm256_load_ps(acc + r * FC_NR + 8)); \
        }                                                                           \
    } else {                                                                        \
        for (int r = 0; r < rows; r++) {                                            \
            _mm256_storeu_ps(C + r * ldc, _mm256_add_ps(_mm256_loadu_ps(C + r * ldc), \
                                                        _mm256_load_ps(acc + r * FC_NR))); \
            _mm256_storeu_ps(C + r * ldc + 8,                                       \
                             _mm256_add_ps(_mm256_loadu_ps(C + r * ldc + 8),        \
                                           _mm256_load_ps(acc + r * FC_NR + 8)));   \
        }                                                                           \
    }                                                                               \
}
/* The full-tile 6-row kernel: C[0:6, 0:16] as fcg_ukr_generic with rows = 6, its
 * accumulators set (zero, the bias, or C) and stored to C from registers, with no pass
 * through a stack array (the R-row kernels above do that for any ``rows``). On the 2-core
 * Zen 4 VM, alternated in one process: ShuffleNet's 240 -> 240 / 3 1x1 on 8 x 28x28
 * (K = 80) 1.27 -> 1.19-1.24 ms (three runs), MobileNetV2's 144 -> 24 1x1 1.00-1.03x;
 * K >= 256 layers 0.97-1.05x (ResNet's 256 -> 64 1x1: 1.05x over 25 alternated rounds). */
FC_ATTR_AVX2 static void fcg_ukr6_full_avx2(int64_t kc, const float *A, const float *B,
                                            float *C, int64_t ldc, int first,
                                            const float *bias)
{
    float *C3 = C + 3 * ldc;
    const int64_t ldc4 = ldc * 4;
    int64_t mode = !first ? 2 : bias ? 1 : 0;
    int64_t k4 = kc >> 2, kr = kc & 3;
    __asm__ volatile(
        "cmp $1, %[mode]\n\t"
        "jb 10f\n\t"
        "je 11f\n\t"
        /* accumulate into C */
        "vmovups (%[C]), %%ymm0\n\t"
        "vmovups 32(%[C]), %%ymm1\n\t"
        "vmovups (%[C],%[ldc]), %%ymm2\n\t"
        "vmovups 32(%[C],%[ldc]), %%ymm3\n\t"
        "vmovups (%[C],%[ldc],2), %%ymm4\n\t"
        "vmovups 32(%[C],%[ldc],2), %%ymm5\n\t"
        "vmovups (%[C3]), %%ymm6\n\t"
        "vmovups 32(%[C3]), %%ymm7\n\t"
        "vmovups (%[C3],%[ldc]), %%ymm8\n\t"
        "vmovups 32(%[C3],%[ldc]), %%ymm9\n\t"
        "vmovups (%[C3],%[ldc],2), %%ymm10\n\t"
        "vmovups 32(%[C3],%[ldc],2), %%ymm11\n\t"
        "jmp 12f\n\t"
        "11:\n\t"   /* the bias */
        "vbroadcastss 0(%[bias]), %%ymm0\n\t"
        "vbroadcastss 4(%[bias]), %%ymm2\n\t"
        "vbroadcastss 8(%[bias]), %%ymm4\n\t"
        "vbroadcastss 12(%[bias]), %%ymm6\n\t"
        "vbroadcastss 16(%[bias]), %%ymm8\n\t"
        "vbroadcastss 20(%[bias]), %%ymm10\n\t"
        "vmovaps %%ymm0, %%ymm1\n\t"
        "vmovaps %%ymm2, %%ymm3\n\t"
        "vmovaps %%ymm4, %%ymm5\n\t"
        "vmovaps %%ymm6, %%ymm7\n\t"
        "vmovaps %%ymm8, %%ymm9\n\t"
        "vmovaps %%ymm10, %%ymm11\n\t"
        "jmp 12f\n\t"
        "10:\n\t"   /* zeros */
        "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
        "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
        "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
        "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
        "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
        "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
        "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
        "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
        "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
        "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
        "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "12:\n\t"
        FCG_KLOOP(FCG_S6)
        "vmovups %%ymm0, (%[C])\n\t"
        "vmovups %%ymm1, 32(%[C])\n\t"
        "vmovups %%ymm2, (%[C],%[ldc])\n\t"
        "vmovups %%ymm3, 32(%[C],%[ldc])\n\t"
        "vmovups %%ymm4, (%[C],%[ldc],2)\n\t"
        "vmovups %%ymm5, 32(%[C],%[ldc],2)\n\t"
        "vmovups %%ymm6, (%[C3])\n\t"
        "vmovups %%ymm7, 32(%[C3])\n\t"
        "vmovups %%ymm8, (%[C3],%[ldc])\n\t"
        "vmovups %%ymm9, 32(%[C3],%[ldc])\n\t"
        "vmovups %%ymm10, (%[C3],%[ldc],2)\n\t"
        "vmovups %%ymm11, 32(%[C3],%[ldc],2)\n\t"
        : [A] "+r"(A), [B] "+r"(B), [k4] "+r"(k4), [kr] "+r"(kr)
        : [C] "r"(C), [C3] "r"(C3), [ldc] "r"(ldc4), [bias] "r"(bias), [mode] "r"(mode)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
}
FCG_UKR_AVX2(fcg_ukr_avx2, 6, 12, FCG_S6, FCG_LD12, FCG_ST12)
FCG_UKR_AVX2(fcg_ukr_avx2_r4, 4, 8, FCG_S4, FCG_LD8, FCG_ST8)
FCG_UKR_AVX2(fcg_ukr_avx2_r2, 2, 8, FCG_S2X, FCG_LD8, FCG_ST8)
#undef FCG_UKR_AVX2
#endif

typedef void (*fcg_ukr_fn)(int64_t, const float *, const float *, float *, int64_t, int,
                           const float *, int);

/* ---------------------------------------------------------------------------------------
 * B packing: the block of rows k0 .. k0+kc (taps ``tap[0..kc)``) and pixels p0 .. p0+pn
 * (tap-(0,0,0) offsets ``pix[0..pn)``) of B into micro-panels of FC_NR pixels,
 * dst[jp][k][j] (panel stride kc*FC_NR). Columns past pn repeat the last pixel (never
 * stored). A panel whose 16 offsets are consecutive is copied with plain vector loads,
 * others are gathered. Rows are taken FCG_KCHUNK at a time across all panels, so the
 * input is read in long runs (prefetcher-friendly when it comes from DRAM).
 * ------------------------------------------------------------------------------------- */
#define FCG_KCHUNK 8
#define FCG_MAXPAN (FCG_NC_MAX / FC_NR)

static void fcg_pack_generic(const float *x, const int64_t *tap, int64_t kc,
                             const int64_t *pix, int64_t pn, float *dst)
{
    const int64_t njp = fc_cdiv(pn, FC_NR);
    for (int64_t jp = 0; jp < njp; jp++) {
        int64_t off[FC_NR];
        for (int j = 0; j < FC_NR; j++)
            off[j] = pix[fc_min(jp * FC_NR + j, pn - 1)];
        float *d = dst + jp * kc * FC_NR;
        for (int64_t k = 0; k < kc; k++) {
            const float *s = x + tap[k];
            for (int j = 0; j < FC_NR; j++)
                d[k * FC_NR + j] = s[off[j]];
        }
    }
}

#if FC_X86
FC_ATTR_AVX2 static void fcg_pack_avx2(const float *x, const int64_t *tap, int64_t kc,
                                   const int64_t *pix, int64_t pn, float *dst)
{
    /* per panel: kind 0 = one run of 16 (plain loads), 1 = two runs split at lane a
     * (masked loads, e.g. a panel crossing an output row), 2 = anything else (gather) */
    const int64_t njp = fc_cdiv(pn, FC_NR);
    int64_t base[FCG_MAXPAN], base2[FCG_MAXPAN];
    int kind[FCG_MAXPAN];
    __m256i i0[FCG_MAXPAN], i1[FCG_MAXPAN];   /* gather offsets, or second-run lane masks */
    for (int64_t jp = 0; jp < njp; jp++) {
        int off[FC_NR];
        const int64_t b0 = pix[jp * FC_NR];
        /* offsets relative to the panel's first pixel fit int32 (checked by the caller) */
        for (int j = 0; j < FC_NR; j++)
            off[j] = (int)(pix[fc_min(jp * FC_NR + j, pn - 1)] - b0);
        base[jp] = b0;
        int a = 1;
        while (a < FC_NR && off[a] == a)
            a++;
        int b = a + 1;
        while (b < FC_NR && off[b] - off[a] == b - a)
            b++;
        if (a == FC_NR) {
            kind[jp] = 0;
        } else if (b == FC_NR && off[a] > off[a - 1]) {
            int32_t m[FC_NR];
            for (int j = 0; j < FC_NR; j++)
                m[j] = j >= a ? -1 : 0;
            kind[jp] = 1;
            base2[jp] = b0 + off[a] - a;
            i0[jp] = _mm256_loadu_si256((const __m256i *)m);
            i1[jp] = _mm256_loadu_si256((const __m256i *)(m + 8));
        } else {
            kind[jp] = 2;
            i0[jp] = _mm256_loadu_si256((const __m256i *)off);
            i1[jp] = _mm256_loadu_si256((const __m256i *)(off + 8));
        }
    }
    const __m256i ones = _mm256_set1_epi32(-1);
    for (int64_t k0 = 0; k0 < kc; k0 += FCG_KCHUNK) {
        const int64_t k1 = fc_min(kc, k0 + FCG_KCHUNK);
        for (int64_t jp = 0; jp < njp; jp++) {
            float *d = dst + jp * kc * FC_NR;
            const float *xb = x + base[jp];
            if (kind[jp] == 0) {
                for (int64_t k = k0; k < k1; k++) {
                    const float *s = xb + tap[k];
                    /* the same pixels of the next chunk's tap: its rows lie in other
                     * channels, far from this one, and come from L3 unless fetched early */
                    if (k + FCG_KCHUNK < kc) {
                        const float *sn = xb + tap[k + FCG_KCHUNK];
                        _mm_prefetch((const char *)sn, _MM_HINT_T0);
                        _mm_prefetch((const char *)(sn + FC_NR - 1), _MM_HINT_T0);
                    }
                    _mm256_store_ps(d + k * FC_NR, _mm256_loadu_ps(s));
                    _mm256_store_ps(d + k * FC_NR + 8, _mm256_loadu_ps(s + 8));
                }
            } else if (kind[jp] == 1) {
                /* lanes of the first run from xb, of the second from x + base2 (masked
                 * loads never touch the lanes they skip) */
                const float *xc = x + base2[jp];
                const __m256i m0 = i0[jp], m1 = i1[jp];
                const __m256i n0 = _mm256_xor_si256(m0, ones), n1 = _mm256_xor_si256(m1, ones);
                for (int64_t k = k0; k < k1; k++) {
                    const float *s = xb + tap[k], *t = xc + tap[k];
                    _mm256_store_ps(d + k * FC_NR,
                                    _mm256_or_ps(_mm256_maskload_ps(s, n0),
                                                 _mm256_maskload_ps(t, m0)));
                    _mm256_store_ps(d + k * FC_NR + 8,
                                    _mm256_or_ps(_mm256_maskload_ps(s + 8, n1),
                                                 _mm256_maskload_ps(t + 8, m1)));
                }
            } else {
                for (int64_t k = k0; k < k1; k++) {
                    const float *s = xb + tap[k];
                    _mm256_store_ps(d + k * FC_NR, _mm256_i32gather_ps(s, i0[jp], 4));
                    _mm256_store_ps(d + k * FC_NR + 8, _mm256_i32gather_ps(s, i1[jp], 4));
                }
            }
        }
    }
}
#endif

typedef void (*fcg_pack_fn)(const float *, const int64_t *, int64_t, const int64_t *,
                            int64_t, float *);

/* A packing: rows [m0, m0+6) of the group's weight (Cog x K, row stride K) -> K x 6 */
static void fcg_pack_a(const float *w, int64_t K, int64_t rows, float *dst)
{
    for (int64_t r = 0; r < FC_MR; r++) {   /* row by row: contiguous reads of w */
        const float *src = w + r * K;
        if (r < rows)
            for (int64_t k = 0; k < K; k++)
                dst[k * FC_MR + r] = src[k];
        else
            for (int64_t k = 0; k < K; k++)
                dst[k * FC_MR + r] = 0.0f;
    }
}

/* The same panel from a transposed weight: row r, column k at w[k * ld + r] */
static void fcg_pack_a_trans(const float *w, int64_t K, int64_t ld, int64_t rows, float *dst)
{
    for (int64_t k = 0; k < K; k++) {
        const float *src = w + k * ld;
        for (int64_t r = 0; r < FC_MR; r++)
            dst[k * FC_MR + r] = r < rows ? src[r] : 0.0f;
    }
}

/* One image's rows of one panel of fcg_pack_gy: d[p*width + j] = s[j*P + p], zero for
 * j >= rows; 64 positions at a time, so the width source rows' lines stay in L1. Inlined
 * with a constant width (a run-time one made the implicit form's pack 1.16x slower). */
static inline __attribute__((always_inline)) void
fcg_pack_gy_rows(const float *s, float *d, int64_t P, int64_t rows, const int64_t width)
{
    for (int64_t p0 = 0; p0 < P; p0 += 64) {
        const int64_t p1 = fc_min(P, p0 + 64);
        for (int64_t j = 0; j < width; j++) {
            if (j < rows) {
                const float *sj = s + j * P;
                for (int64_t p = p0; p < p1; p++)
                    d[p * width + j] = sj[p];
            } else {
                for (int64_t p = p0; p < p1; p++)
                    d[p * width + j] = 0.0f;
            }
        }
    }
}

/* grad_output as the A operand of the weight gradient, in panels of ``width`` rows (FC_MR
 * for the packed form, FCI_NV for the implicit one): reduction index r = n*P + p,
 * A[((g*npan + ip)*N*P + r)*width + j] = gy[n, g*Cog + ip*width + j, p] (zero past Cog);
 * gy (N, G*Cog, P) C-contiguous. In parallel over (panel, image). */
static void fcg_pack_gy(const float *gy, int64_t N, int64_t G, int64_t Cog, int64_t P,
                        int64_t width, float *A, int nthreads)
{
    const int64_t npan = fc_cdiv(Cog, width), NP = N * P;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (G * npan * NP >= 16384)
#endif
    for (int64_t gn = 0; gn < G * npan * N; gn++) {
        const int64_t gi = gn / N, n = gn % N;
        const int64_t g = gi / npan, m0 = (gi % npan) * width;
        const int64_t rows = fc_min(width, Cog - m0);
        const float *s = gy + (n * G * Cog + g * Cog + m0) * P;
        float *d = A + (gi * NP + n * P) * width;
        if (width == FCI_NV)
            fcg_pack_gy_rows(s, d, P, rows, FCI_NV);
        else if (width == FC_MR)
            fcg_pack_gy_rows(s, d, P, rows, FC_MR);
        else
            fcg_pack_gy_rows(s, d, P, rows, width);
    }
}

#ifndef FCI_1X1_MAX_P
#define FCI_1X1_MAX_P 100   /* 1x1 layers on maps of at most this many pixels: implicit */
#endif

/* Whether the implicit engine (fc_igemm.h) is chosen for a forward problem: at least 16
 * output channels per group, at most 1/8 of them padding lanes of the last panel, and a
 * spatial kernel -- or a 1x1 kernel with at least 128 input channels per group on a small
 * map (P output pixels per image): 1x1 layers otherwise read contiguous runs that cost
 * little to pack, but the packed form's 16-pixel panels are then mostly padding (49 pixels
 * fill 64 lanes) and its per-image GEMMs short. Measured, 2 threads, 1x1 on 7x7: 512 ->
 * 512 x4 1.24 -> 0.67 ms, 1024 -> 256 x8 1.87 -> 1.39, 960 -> 160 x8 1.12 -> 0.87; 0.27-1.04x
 * the time for 16-100 pixels and >= 128 input channels, 0.87-1.09x at 144, and up to 1.18x
 * with 64 input channels. */
static int fc_igemm_pays_dims(int64_t KT, int64_t Cog, int64_t Cg, int64_t P)
{
    if (Cog < FCI_NV || 8 * (fc_rup(Cog, FCI_NV) - Cog) > Cog)
        return 0;
    return KT > 1 || (P > 0 && P <= FCI_1X1_MAX_P && Cg >= 128);
}

static int fc_igemm_pays(const fc_cgeom *q)
{
    return fc_igemm_pays_dims(q->KD * q->KH * q->KW, q->Cog, q->Cg, q->OD * q->OH * q->OW);
}

/* A forward call on at most FCI_FUSE_MAX_P output pixels in all (batch 1 on a small map,
 * or a few images of a smaller one): the implicit form, whatever the kernel, with each
 * work item -- one image's pixels, a share of the 16-channel panels -- packing its own
 * weight panels (see ``fuse`` in fc_cgemm_run; 1x1 2048 -> 512 on 7x7 1.27 -> 0.91 ms,
 * 256 -> 1024 on 14x14 0.78 -> 0.56 ms against the packed form; 512 -> 512 3x3 on
 * 2 x 7x7 4.4 -> 2.6 ms, 4 x 7x7 6.6 -> 5.2 ms, where every pixel block had read back
 * the 9 MiB packed weight). Items that run all the images through each packed panel
 * (each panel packed once) measured slower: 2.9 and 5.4 ms, 256 -> 256 on 8 x 7x7 3.1
 * against 2.7 ms. */
static int fc_igemm_small_map(int64_t N, int64_t P)
{
    return N >= 1 && N * P <= FCI_FUSE_MAX_P;
}

/* Bytes of scratch a call allocates (packed A, tap table, pixel table, per-thread B). */
static int64_t fc_cgemm_scratch_bytes(const fc_cgeom *q, int nthreads)
{
    int64_t K = q->Cg * q->KD * q->KH * q->KW, P = q->OD * q->OH * q->OW;
    int64_t npan = fc_cdiv(q->Cog, FC_MR);
    /* packed A: the weight (K per row) or, for the weight gradient, grad_output (N*P) */
    const int64_t Ka = fc_max(K, q->N * P);
    /* the padded / phase-split copy of the input (an upper bound) */
    int64_t ph = (int64_t)sizeof(float) * q->N * q->G * q->Cg
                 * (q->sd * (fc_cdiv((q->OD - 1) * q->sd + (q->KD - 1) * q->dd + 1, q->sd)))
                 * (q->sh * (fc_cdiv((q->OH - 1) * q->sh + (q->KH - 1) * q->dh + 1, q->sh)))
                 * (q->sw * (fc_cdiv((q->OW - 1) * q->sw + (q->KW - 1) * q->dw + 1, q->sw)));
    const int64_t packed = (int64_t)sizeof(float) * q->G * npan * FC_MR * Ka
                           + (int64_t)nthreads * (int64_t)sizeof(float) * FCG_KC * FCG_NC_MAX;
    const int64_t impl = (int64_t)sizeof(float) * q->G * fc_rup(q->Cog, FCI_NV) * Ka
                         + (int64_t)nthreads * (FCI_CT_BYTES + (int64_t)sizeof(float) * FCI_TILE
                                                * fc_cdiv(q->Cog, FCI_NV));
    if (q->engine == 2) {   /* fc_wino_run: U, and per thread V and M */
        /* the larger form: U and per-thread V and M, or the transformed input of every
         * image (at most FCW_PANELS_MAX_BYTES) and per-thread weight panels and M */
        const int64_t tb = FCW_TB_MAX, nxi = fcw_nxi(q);
        const int64_t blocks = (int64_t)sizeof(float) * nxi
                               * (q->G * fc_rup(q->Cog, FCI_NV) * q->Cg
                                  + (int64_t)nthreads * tb * (q->Cg + FCI_NV));
        const int64_t va = fc_min(FCW_PANELS_MAX_BYTES,
                                  (int64_t)sizeof(float) * nxi * q->N * q->G * q->Cg
                                  * fc_rup(q->OD * q->OH * q->OW, FCI_MP));
        const int64_t panels = va + (int64_t)sizeof(float) * nxi * nthreads
                                    * (q->Cg * FCI_NV + fc_rup(q->OD * q->OH * q->OW, FCI_MP)
                                                        * FCI_NV);
        /* per thread the weight transform's transposed rows (fcw_weight_panel) */
        const int64_t wt = (int64_t)sizeof(float) * nthreads * q->Cg * q->KD * q->KH * q->KW
                           * FCI_NV;
        /* the xi strides' padding (fcw_xstride) */
        const int64_t xpad = (int64_t)sizeof(float) * 16 * nxi * (q->N * q->G + 2 * nthreads + 2);
        return fc_max(blocks, panels) + wt + xpad + 8 * (q->Cg + q->OD + q->OH + q->OW);
    }
    return fc_max(packed, impl) + 8 * (K + P + FC_NR) + ph;
}

/* Rows r0 .. r1-1 of the engine's zero-padded / phase-split copy (see fc_cgemm_run):
 * row r = (((n*C + c)*nph + phase)*Dp + i)*Hp + j of Wp floats,
 * xph[n, c, (rd, rh, rw), i, j, l] = x[n, c, rd + fd*i - pd, rh + fh*j - ph,
 * rw + fw*l - pw], zero outside x. */
static void fcg_copy_rows(const fc_cgeom *q, const float *x, float *xph, int64_t r0,
                          int64_t r1, int64_t C, int64_t Dp, int64_t Hp, int64_t Wp,
                          int64_t fd, int64_t fh, int64_t fw)
{
    const int64_t nph = fd * fh * fw;
    const int64_t HWin = q->H * q->W, DHWin = q->D * HWin;
    /* every index is stepped, not divided out per row (divisions dominated the copy of
     * small images) */
    int64_t t = r0;
    int64_t j = t % Hp; t /= Hp;
    int64_t i = t % Dp; t /= Dp;
    int64_t ph = t % nph; t /= nph;   /* t = n*C + c */
    int64_t c = t % C, n = t / C;
    int64_t rw = ph % fw, rh = (ph / fw) % fh, rd = ph / (fw * fh);
    const float *xc = x + n * q->x_sn + c * DHWin;
    /* columns l0 <= l < l1 read x (column l reads x[.., fw*l + rw - pw]) */
    int64_t l0 = 0, l1 = 0;
#define FCG_COLS()                                                                      \
    l0 = fc_min(Wp, q->pw > rw ? fc_cdiv(q->pw - rw, fw) : 0);                          \
    l1 = fc_max(l0, fc_min(Wp, fc_cdiv(q->W + q->pw - rw, fw)))
    FCG_COLS();
    for (int64_t r = r0; r < r1; r++) {
        const int64_t zd = rd + fd * i - q->pd, zh = rh + fh * j - q->ph;
        float *dst = xph + r * Wp;
        if (zd < 0 || zd >= q->D || zh < 0 || zh >= q->H) {
            for (int64_t l = 0; l < Wp; l++)
                dst[l] = 0.0f;
        } else {
            const float *src = xc + zd * HWin + zh * q->W + (rw - q->pw);
            for (int64_t l = 0; l < l0; l++)
                dst[l] = 0.0f;
            if (fw == 1) {
                for (int64_t l = l0; l < l1; l++)
                    dst[l] = src[l];
            } else if (fw == 2) {   /* a constant stride: vectorised */
                for (int64_t l = l0; l < l1; l++)
                    dst[l] = src[2 * l];
            } else {
                for (int64_t l = l0; l < l1; l++)
                    dst[l] = src[l * fw];
            }
            for (int64_t l = l1; l < Wp; l++)
                dst[l] = 0.0f;
        }
        if (++j == Hp) {
            j = 0;
            if (++i == Dp) {
                i = 0;
                if (++ph == nph) {
                    ph = 0;
                    if (++c == C) {
                        c = 0;
                        n++;
                    }
                    xc = x + n * q->x_sn + c * DHWin;
                }
                if (++rw == fw) {   /* phase = (rd*fh + rh)*fw + rw */
                    rw = 0;
                    if (++rh == fh) {
                        rh = 0;
                        if (++rd == fd)
                            rd = 0;
                    }
                }
                FCG_COLS();
            }
        }
    }
#undef FCG_COLS
}

/*
 * out[n, g, m, p] (strides o_sn, o_sg, o_sm; pixels contiguous) = bias[g*Cog+m] +
 *     sum_k w[g*Cog + m, k] * B_{n,g}[k, p]
 * B reading x[n, g*Cg + c, o*s + k*d - pad] (zero outside x: pd/ph/pw zeros before each
 * axis, as many as needed after). x: C-contiguous per image (N, G*Cg, D, H, W) with image
 * stride x_sn; w: (G*Cog, Cg, KD, KH, KW) C-contiguous; bias: G*Cog floats or NULL.
 * Returns 0, or -1 when scratch memory could not be allocated (nothing written then).
 */
static int fc_cgemm_run(const fc_cgeom *q, const float *x, const float *w,
                        const float *bias, float *out, int nthreads, int force_generic,
                        int wgrad)
{
    const int64_t N = q->N, G = q->G, Cg = q->Cg, Cog = q->Cog;
    const int64_t KT = q->KD * q->KH * q->KW, K = Cg * KT;
    const int64_t P = q->OD * q->OH * q->OW;
    if (N <= 0 || G <= 0 || Cog <= 0 || P <= 0)
        return 0;
    /* The GEMM as the blocked loops see it. Forward: per image, columns = the P pixels,
     * reduction = the K taps, A = the weights. Weight gradient (wgrad): one "image",
     * columns = the K taps, reduction = the N*P (image, pixel) pairs, A = grad_output. */
    const int64_t Kr = wgrad ? N * P : K;      /* reduction length */
    const int64_t Pc = wgrad ? K : P;          /* output columns */
    const int64_t Ni = wgrad ? 1 : N;          /* images */
    /* The packer reads either x itself (unit stride or gathered strides, no padding) or a
     * copy made here in parallel: zero-padded (pd, ph, pw before; zeros past the end) and,
     * for strided problems, split into stride phases (fd x fh x fw phase images per
     * channel, each holding x[r + f*i]) so that every tap reads unit-stride runs again. */
    const int strided = q->sd > 1 || q->sh > 1 || q->sw > 1;
    const int64_t Ed = (q->OD - 1) * q->sd + (q->KD - 1) * q->dd + 1,
                  Eh = (q->OH - 1) * q->sh + (q->KH - 1) * q->dh + 1,
                  Ew = (q->OW - 1) * q->sw + (q->KW - 1) * q->dw + 1;  /* extents read */
    const int64_t C = G * Cg;
    int use_avx2 = !force_generic && fc_cpu_has_avx2_fma();
    /* the implicit engine (fc_igemm.h; AVX2): it reads strided taps in place, so its copy
     * (if any) is only zero-padded, never phase-split. The weight gradient takes it
     * whenever it may: its columns are the Cg*KT taps, its reduction every (image,
     * position) pair read in place, so no patch matrix is packed, where the packed form
     * packs one patch element per Cog multiply-adds (measured, 2 threads: 1.1-2.4x on
     * every layer tried, 1 to 256 grad_output channels per group; 96 -> 32 3x3x3 on
     * 4 x 16^3 27.6 -> 15.3 ms, VGG 3x3 20.2 -> 17.8 ms, 64 -> 8 3x3 5.8 -> 3.1 ms, 1x1
     * 144 -> 24 4.9 -> 2.4 ms) */
    /* ... and a batch-1 forward call on a small map whatever its kernel */
    const int small1 = !wgrad && !q->w_trans && fc_igemm_small_map(q->N, P);
    const int implicit = FC_X86 && use_avx2
                         && (q->engine == 1
                             || (q->engine < 0 && (wgrad || small1 || fc_igemm_pays(q))));
    int phased = strided && q->phase != 0 && !implicit;
    if (phased && q->phase < 0
        && (int64_t)sizeof(float) * N * C * fc_cdiv(Ed, q->sd) * fc_cdiv(Eh, q->sh)
           * fc_cdiv(Ew, q->sw) * q->sd * q->sh * q->sw > FCG_PHASE_MAX_BYTES)
        phased = 0;
    const int padded = q->pd > 0 || q->ph > 0 || q->pw > 0 || Ed > q->D || Eh > q->H
                       || Ew > q->W;
    const int copy = phased || padded;
    const int64_t fd = phased ? q->sd : 1, fh = phased ? q->sh : 1, fw = phased ? q->sw : 1;
    const int64_t Dp = copy ? fc_cdiv(Ed, fd) : q->D, Hp = copy ? fc_cdiv(Eh, fh) : q->H,
                  Wp = copy ? fc_cdiv(Ew, fw) : q->W, nph = fd * fh * fw;
    const int64_t PS = Dp * Hp * Wp;   /* one (phase) image */
    const int64_t CS = nph * PS;       /* one channel */
    const int64_t npan = fc_cdiv(Cog, FC_MR);
    /* ukr_rows[r]: the kernel for a panel of r rows (a tail panel of 1-4 rows runs the
     * 2- or 4-row kernel) */
    fcg_ukr_fn ukr = fcg_ukr_generic, ukr_rows[FC_MR + 1];
    fcg_pack_fn pack = fcg_pack_generic;
#if FC_X86
    if (use_avx2 && Cg * CS < ((int64_t)1 << 31)) {
        ukr = fcg_ukr_avx2;
        pack = fcg_pack_avx2;
    } else if (use_avx2) {
        ukr = fcg_ukr_avx2;
    }
#endif
    for (int r = 0; r <= FC_MR; r++)
        ukr_rows[r] = ukr;
#if FC_X86
    int full6 = 0;   /* full 6 x 16 tiles take fcg_ukr6_full_avx2 */
    if (ukr == fcg_ukr_avx2) {
        ukr_rows[1] = ukr_rows[2] = fcg_ukr_avx2_r2;
        ukr_rows[3] = ukr_rows[4] = fcg_ukr_avx2_r4;
        full6 = 1;
    }
#endif
    if (nthreads < 1)
        nthreads = 1;

    if (wgrad && K == 0)
        return 0;
    /* K == 0 (no input channels): the result is the bias */
    if (K == 0) {
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++)
                for (int64_t m = 0; m < Cog; m++) {
                    float *row = out + n * q->o_sn + g * q->o_sg + m * q->o_sm;
                    float v = bias ? bias[g * Cog + m] : 0.0f;
                    for (int64_t p = 0; p < P; p++)
                        row[p] = v;
                }
        return 0;
    }
    if (q->engine == 2 && !wgrad)   /* Winograd (fc_winograd.h) */
        return fc_wino_run(q, x, w, bias, out, nthreads);

    /* a forward call on few small maps: each of fci_run's items packs its own panels of
     * the weight (every panel is used by one item per image), instead of all of them
     * being packed first and read back (512 -> 512 3x3 on 7x7: a 9 MiB weight packed,
     * written and read three times) */
    const int fuse = implicit && small1;
    float *Ap = (float *)fc_alloc_aligned(
        sizeof(float) * (size_t)(fuse ? 1 : implicit ? G * fc_rup(Cog, FCI_NV) * Kr
                                                     : G * npan * FC_MR * Kr));
    int64_t *tap = (int64_t *)fc_alloc_aligned(sizeof(int64_t) * (size_t)(wgrad ? N * P : K));
    int64_t *pix = (int64_t *)fc_alloc_aligned(sizeof(int64_t) * (size_t)(wgrad ? K : P));
    float *xph = copy ? (float *)fc_alloc_aligned(sizeof(float) * (size_t)(N * C * CS)) : NULL;
    if (!Ap || !tap || !pix || (copy && !xph)) {
        free(Ap); free(tap); free(pix); free(xph);
        return -1;
    }
    /* kernel-row-major order (padding rows skipped) for unit strides only: a strided
     * layer's tiles share no input rows within one kernel row's K block, so there the
     * channel-major order's locality wins even with many padding rows (96 -> 16 5^3 / 2
     * dilated 2 on 8 x 16^3, 7.8% padding rows: 1.27x; 64 -> 32 3^3 / 2 on 32^3: 1.28x) */
    const int rowmaj = implicit && !wgrad && !strided
                       && fci_pad_rows_permille(q) >= FCI_ROWMAJOR_PERMILLE;
    if (wgrad) {
        fcg_pack_gy(w, N, G, Cog, P, implicit ? FCI_NV : FC_MR, Ap, nthreads);
    } else if (implicit) {
        if (!fuse)   /* else fci_run's items pack their own panels */
            fci_pack_w(w, G, Cog, Cg, q->KD * q->KH, q->KW, rowmaj, (int)q->w_trans, Ap,
                       nthreads);
    } else {
        /* in parallel: a serial pack of a VGG-sized weight (256 x 2304) took ~0.6 ms while
         * the other threads waited */
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nthreads) if (G * npan * K >= 65536)
#endif
        for (int64_t gi = 0; gi < G * npan; gi++) {
            const int64_t g = gi / npan, ip = gi % npan;
            if (q->w_trans)
                fcg_pack_a_trans(w + g * K * Cog + ip * FC_MR, K, Cog,
                                 fc_min(FC_MR, Cog - ip * FC_MR), Ap + gi * FC_MR * K);
            else
                fcg_pack_a(w + (g * Cog + ip * FC_MR) * K, K, fc_min(FC_MR, Cog - ip * FC_MR),
                           Ap + gi * FC_MR * K);
        }
    }
    int64_t x_sn = q->x_sn;
    /* How threads share the work items (image, group, pixel block) and the copy's rows:
     * the same share of both, so each core reads input it wrote itself (its own cache; on
     * the 2-core development VM a 3x3 / 2 layer and GoogLeNet 5x5 ran 1.25-1.34x faster
     * than with items handed out one at a time). At least as many images as threads, or
     * one image whose groups split evenly: contiguous shares of both (when the images do
     * not split evenly, a share boundary falls inside one image for both alike: 3 images
     * on 2 threads measured 1.04-1.28x against dynamic); one image and one group: each
     * thread the same rows of every channel plane and the pixel blocks computed from them
     * (the kernel's halo rows come from the other share); otherwise items one at a time
     * (dynamic). */
    const int split = !wgrad && (N >= nthreads || (N == 1 && (G % nthreads == 0
                                                               || G == 1)));
    const int rowsplit = split && N == 1 && G == 1 && nthreads > 1;
    if (copy) {
        /* xph[n, c, (rd, rh, rw), i, j, l] = x[n, c, rd + fd*i - pd, rh + fh*j - ph,
         * rw + fw*l - pw], zero outside x */
        const int64_t rows = N * C * nph * Dp * Hp;
        /* each thread copies its rows, their indices (j, i, phase, channel) stepped
         * rather than divided out per row. Rows split as the work items will be (see
         * ``split`` below): one contiguous range per thread (images, or channels = groups,
         * in order), or -- one image, one group -- the same range of (i, j) rows of every
         * channel plane, the rows whose output pixels the thread will compute. */
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
        {
            int64_t nt = 1, tid = 0;
#if defined(_OPENMP)
            nt = omp_get_num_threads();
            tid = omp_get_thread_num();
#endif
            if (!rowsplit) {
                fcg_copy_rows(q, x, xph, rows * tid / nt, rows * (tid + 1) / nt, C, Dp, Hp,
                              Wp, fd, fh, fw);
            } else {
                const int64_t DH = Dp * Hp, ij0 = DH * tid / nt, ij1 = DH * (tid + 1) / nt;
                for (int64_t pl = 0; pl < rows / DH; pl++)
                    fcg_copy_rows(q, x, xph, pl * DH + ij0, pl * DH + ij1, C, Dp, Hp, Wp,
                                  fd, fh, fw);
            }
        }
        x = xph;
        x_sn = C * CS;
    }
    {
        /* forward tables: tap offsets (K) and pixel offsets (P); in wgrad mode the taps
         * become the columns and the (image, pixel) offsets the reduction */
        int64_t *ttab = wgrad ? pix : tap, *ptab = wgrad ? tap : pix;
        int64_t k = 0;
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t a = 0; a < q->KD; a++)
                for (int64_t b = 0; b < q->KH; b++)
                    for (int64_t e = 0; e < q->KW; e++) {
                        const int64_t ed = a * q->dd, eh = b * q->dh, ew = e * q->dw;
                        ttab[k++] = c * CS + (((ed % fd) * fh + eh % fh) * fw + ew % fw) * PS
                                    + ((ed / fd) * Hp + eh / fh) * Wp + ew / fw;
                    }
        int64_t p = 0;
        for (int64_t a = 0; a < q->OD; a++)
            for (int64_t b = 0; b < q->OH; b++)
                for (int64_t e = 0; e < q->OW; e++)
                    ptab[p++] = ((a * q->sd / fd) * Hp + b * q->sh / fh) * Wp + e * q->sw / fw;
        if (wgrad)  /* reduction index n*P + p: image n's pixel p */
            for (int64_t n = 1; n < N; n++)
                for (int64_t pp = 0; pp < P; pp++)
                    ptab[n * P + pp] = n * x_sn + ptab[pp];
    }

    if (implicit && wgrad) {
        /* the roles of fci_run's operands swapped: its "pixels" are the K taps (columns of
         * gw, table pix), its reduction the N*P (image, position) pairs (table tap, image
         * offsets included), its "weight" grad_output packed by fcg_pack_gy, its output gw
         * (G*Cog, K): one image, row pitch K */
        fc_cgeom qw = *q;
        qw.N = 1;
        qw.o_sn = 0;
        qw.o_sg = Cog * K;
        qw.o_sm = K;
        /* few columns (a small kernel of few channels) leave threads idle: then each
         * thread reduces its own slice of the (image, position) pairs into a private
         * gw, and the slices are summed (8 x 1 -> 16 7x7 on 128^2, 49 columns: 2.6 ms on
         * column blocks alone) */
        const int64_t GCK = G * Cog * K;
        int nsl = 1;
        if (nthreads > 1 && G * fc_cdiv(K, 4 * FCI_MP) < 2 * (int64_t)nthreads
            && Kr >= 2 * (int64_t)nthreads * FCI_KC)
            nsl = nthreads;
        int rc = 0;
        if (nsl == 1) {
            rc = fci_run(&qw, 0, 0, x, 0, Cg * CS, Kr, Kr, Pc, tap, pix, Ap, NULL, out,
                         nthreads, NULL);
        } else {
            float *part = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(nsl * GCK));
            if (!part) {
                rc = -1;
            } else {
                int failed_sl = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(nsl)
#endif
                for (int sl = 0; sl < nsl; sl++) {
                    const int64_t r0 = Kr * sl / nsl, r1 = Kr * (sl + 1) / nsl;
                    if (fci_run(&qw, 0, 0, x, 0, Cg * CS, r1 - r0, Kr, Pc, tap + r0, pix,
                                Ap + r0 * FCI_NV, NULL, part + sl * GCK, 1, NULL) != 0)
                        fc_flag_failure(&failed_sl);
                }
                for (int64_t i = 0; i < GCK; i++) {
                    float acc = part[i];
                    for (int sl = 1; sl < nsl; sl++)
                        acc += part[sl * GCK + i];
                    out[i] = acc;
                }
                free(part);
                rc = failed_sl ? -1 : 0;
            }
        }
        free(Ap); free(tap); free(pix); free(xph);
        return rc;
    }
    if (implicit) {
        if (rowmaj && fci_taps_rowmajor(q, tap) != 0) {
            free(Ap); free(tap); free(pix); free(xph);
            return -1;
        }
        const int rc = fci_run(q, rowmaj, split, x, x_sn, Cg * CS, K, K, P, tap, pix, Ap,
                               bias, out, nthreads, fuse ? w : NULL);
        free(Ap); free(tap); free(pix); free(xph);
        return rc;
    }
    /* pixel blocks: near-equal, at most NC_MAX, and enough work items for every thread */
    int64_t nc;
    /* K blocks of near-equal size, at most FCG_KC */
    const int64_t nkb = fc_cdiv(Kr, FCG_KC);
    const int64_t kcs = fc_cdiv(Kr, nkb);
    const int64_t nc_max = FCG_NC_MAX;
    {
        int64_t want = 4 * (int64_t)nthreads;
        int64_t per = fc_max(fc_cdiv(want, Ni * G), fc_cdiv(Pc, nc_max));
        per = fc_max(1, fc_min(per, fc_cdiv(Pc, 4 * FC_NR)));
        /* few items: make their count a multiple of the threads (17 items on 2 threads
         * leave one thread idle for a whole item) */
        const int64_t total = Ni * G * per;
        if (nthreads > 1 && total < 16 * (int64_t)nthreads && total % nthreads) {
            int64_t p2 = per;
            while (p2 < per + nthreads && (Ni * G * p2) % nthreads)
                p2++;
            if ((Ni * G * p2) % nthreads == 0 && p2 <= fc_cdiv(Pc, 2 * FC_NR))
                per = p2;
        }
        nc = fc_cdiv(fc_cdiv(Pc, per), FC_NR) * FC_NR;
    }
    const int64_t nblk = fc_cdiv(Pc, nc);
    const int64_t items = Ni * G * nblk;
    int failed = 0;
    const int split_items = split && items >= nthreads;   /* else the team shrinks */
    if (items < nthreads)
        nthreads = (int)items;
    /* shared item counters (fc_items), one cache line per thread's share */
    int64_t *counters = (int64_t *)calloc((size_t)nthreads * FC_ITEMS_PAD, sizeof(int64_t));
    if (!counters) {
        free(Ap); free(tap); free(pix); free(xph);
        return -1;
    }

#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads)
#endif
    {
        float *Bp = (float *)fc_alloc_aligned(sizeof(float) * (size_t)(kcs * nc));
        if (!Bp) {
            fc_flag_failure(&failed);
        }
        fc_items work;
        fc_items_begin(&work, items, split_items, counters);
        for (int64_t it; (it = fc_items_next(&work)) >= 0;) {
            if (!Bp)
                continue;
            const int64_t jb = it % nblk, ng = it / nblk;
            const int64_t g = ng % G, n = ng / G;
            const int64_t p0 = jb * nc, pn = fc_min(nc, Pc - p0);
            const int64_t njp = fc_cdiv(pn, FC_NR);
            const float *xg = x + n * x_sn + g * Cg * CS;
            float *og = wgrad ? out + g * Cog * K + p0 : out + n * q->o_sn + g * q->o_sg + p0;
            const int64_t ldo = wgrad ? K : q->o_sm;
            const float *bg = bias ? bias + g * Cog : NULL;
            for (int64_t k0 = 0; k0 < Kr; k0 += kcs) {
                const int64_t kc = fc_min(kcs, Kr - k0);
                pack(xg, tap + k0, kc, pix + p0, pn, Bp);
                const int first = k0 == 0;
                for (int64_t i0 = 0; i0 < npan; i0 += FCG_MC / FC_MR) {
                    const int64_t i1 = fc_min(npan, i0 + FCG_MC / FC_MR);
                    for (int64_t jp = 0; jp < njp; jp++) {
                        const int64_t cols = fc_min(FC_NR, pn - jp * FC_NR);
                        const float *bpan = Bp + jp * kc * FC_NR;
                        for (int64_t ip = i0; ip < i1; ip++) {
                            const int64_t rows = fc_min(FC_MR, Cog - ip * FC_MR);
                            const float *apan = Ap + ((g * npan + ip) * Kr + k0) * FC_MR;
                            float *c = og + ip * FC_MR * ldo + jp * FC_NR;
                            const float *bb = bg ? bg + ip * FC_MR : NULL;
                            if (cols == FC_NR) {
#if FC_X86
                                if (full6 && rows == FC_MR)
                                    fcg_ukr6_full_avx2(kc, apan, bpan, c, ldo, first, bb);
                                else
#endif
                                    ukr_rows[rows](kc, apan, bpan, c, ldo, first, bb,
                                                   (int)rows);
                            } else {
                                float tmp[FC_MR * FC_NR];
                                ukr_rows[rows](kc, apan, bpan, tmp, FC_NR, 1, NULL, (int)rows);
                                for (int64_t r = 0; r < rows; r++)
                                    for (int64_t j = 0; j < cols; j++) {
                                        float prev = first ? (bb ? bb[r] : 0.0f)
                                                           : c[r * ldo + j];
                                        c[r * ldo + j] = prev + tmp[r * FC_NR + j];
                                    }
                            }
                        }
                    }
                }
            }
        }
        free(Bp);
    }
    free(counters);
    free(Ap); free(tap); free(pix); free(xph);
    return failed ? -1 : 0;
}

/* The forward correlation (see above). */
static int fc_cgemm_f32(const fc_cgeom *q, const float *x, const float *w,
                        const float *bias, float *out, int nthreads, int force_generic)
{
    return fc_cgemm_run(q, x, w, bias, out, nthreads, force_generic, 0);
}

/*
 * Weight gradient of the same correlation: gw[g*Cog + m, k] = sum_{n, p} gy[n, g*Cog + m, p]
 * * B_{n,g}[k, p], i.e. the GEMM with the roles of taps and pixels swapped (columns = the
 * K taps, reduction = all N*P (image, pixel) pairs, A = gy packed once). gy: (N, G*Cog, P)
 * C-contiguous, gw: (G*Cog, K) C-contiguous, overwritten; q->o_* are not used.
 */
static int fc_cgemm_wgrad_f32(const fc_cgeom *q, const float *x, const float *gy, float *gw,
                              int nthreads, int force_generic)
{
    return fc_cgemm_run(q, x, gy, NULL, gw, nthreads, force_generic, 1);
}

#endif /* FASTCONV_FC_CGEMM_H */
