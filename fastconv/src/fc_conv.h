/*
 * fc_conv.h -- the direct convolution engine of fastconv (C part).
 *
 * Contract (see docs/internals.md, "Direct engine"):
 *
 *   out[n, co, o] = sum_ci sum_k x[n, g*Cig + ci, o*stride + k*dilation - pad] * w[co, ci, k]
 *
 * with implicit zeros outside x.  Everything here is plain C99 + GCC vector
 * extensions; the Cython module (_core.pyx) validates the arguments, fills an
 * fc_plan with fc_plan_init() and runs fc_run_task(plan, t, scratch) for every
 * task t in [0, fc_plan_ntasks(plan)) under an OpenMP prange.
 *
 * Geometry.  The spatial axes are split into
 *   - "plane" axes 0 .. D-3 (none for 1-D and 2-D),
 *   - the "row" axis D-2 (a dummy axis of length 1 for 1-D),
 *   - the "column" axis D-1 (vectorised).
 * A task is (n, group, output plane, tile of output rows, tile of output columns).
 * For each chunk of input channels it gathers the input it needs into a small
 * zero-padded, stride-decimated "panel" (thread-local scratch, L2 resident; see
 * fc_kernel_impl.h), then runs a register-blocked microkernel over the panel for
 * every output channel of the group: an R x (V*L) tile of the output stays in
 * vector registers across all input channels and taps and is stored once.
 *
 * Threads: there is no global mutable state; the plan is read-only during the
 * run and each thread owns its scratch buffer.
 *
 * ISA dispatch: the kernels are compiled three times (fc_kernel_impl.h included with
 * different target attributes): "avx2,fma" plus AVX-512VL (the same 256-bit vectors, with
 * 32 registers; weight broadcasts pinned in registers), "avx2,fma", and the baseline ISA,
 * chosen at run time with __builtin_cpu_supports.  No -march flags are needed.
 */
#ifndef FASTCONV_FC_CONV_H
#define FASTCONV_FC_CONV_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fc_cpu.h"

#if defined(__GNUC__) && !defined(__clang__)
#define FC_NO_LDP __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FC_NO_LDP
#endif

#define FC_MAXD 32
/* Panel (scratch) budget per thread, bytes: fits in L2 next to the weights. */
#define FC_PANEL_BUDGET (160 * 1024)
/* Outputs at least this large (bytes) are written with streaming stores.  Off for now:
 * measured on Zen 3, the 4 x 96-byte register tiles write partial cache lines and the
 * write-combining flushes made 2048^2 5x5 float32 ~1.6x slower on one thread (no gain on
 * two).  On Zen 4 (2 threads, -DFC_NT_MIN_BYTES=8388608, 2048^2 3x3-11x11 float32/64):
 * 1.00-1.05x, no gain either.  Worth re-enabling once tiles write whole 64-byte lines.
 * 3-D and higher (planes of taps) are another matter: there the output's read-for-
 * ownership traffic evicts the input planes the next output plane reads again.  Zen 4,
 * -DFC_NT_MIN_BYTES=8388608 against off, same process: 128^3 3^3 float32 1.14-1.26x,
 * float64 1.15x, 2^3 1.36-1.38x, 64x128x256 and 32x256x256 3^3 1.18-1.22x, 5^3 1.05x,
 * 160^3 3^3 0.98-1.04x, on 2 threads and on 1 alike; the 2-D rows of the same run
 * 0.99-1.04x. */
#ifndef FC_NT_MIN_BYTES
#define FC_NT_MIN_BYTES INT64_MAX
#endif
#ifndef FC_NT_MIN_BYTES_3D
#define FC_NT_MIN_BYTES_3D ((int64_t)8 << 20)
#endif
/* Shortest row of taps that takes the diagonal kernel (fc_kernel_impl.h: fc_mk_diag); the
 * measured crossover with fc_mk on 2 threads was 20-28 taps, float32 and float64. */
#ifndef FC_DIAG_MIN_KW
#define FC_DIAG_MIN_KW 24
#endif
/* The diagonal kernel's tile width in vectors (its accumulators). */
#define FC_DP 8
/* Widest column tile of one task. */
#define FC_COLMAX 4096

enum { FC_F32 = 0, FC_F64 = 1, FC_I64 = 2 };
enum { FC_ISA_GENERIC = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };
/* most taps (input channels per group x kernel taps) that take the AVX-512VL kernels
 * (the diagonal kernel takes them at any length); see fc_plan_init */
#define FC_AVX512_MAX_TAPS 32
/* fc_plan_init's isa_cap: the best the CPU has, or at most the baseline / AVX2 (tests) */
enum { FC_CAP_BEST = 0, FC_CAP_GENERIC = 1, FC_CAP_AVX2 = 2 };

typedef struct {
    int dtype, isa, D, R, Vmax, L, elsize;
    int64_t N, G, Cin, Cout, Cig, Cog;
    int64_t S[FC_MAXD], K[FC_MAXD], O[FC_MAXD];
    int64_t st[FC_MAXD], di[FC_MAXD], pa[FC_MAXD];
    int64_t NPD;             /* number of plane axes (D - 2, or 0)        */
    int64_t OP, KP, SP;      /* products over the plane axes              */
    int64_t H, W, OH, OW, KH, KW, sH, sW, dH, dW, pH, pW;
    int64_t ktot;            /* KP * KH * KW                              */
    int64_t TW, nct;         /* output columns per task, column tiles     */
    int64_t RT, nrt;         /* output rows per task, row tiles           */
    int64_t cc;              /* input channels per panel chunk            */
    int64_t nph, qmax, pcols, row_pitch, slab, ci_pitch;  /* panel layout */
    int64_t *toff;           /* per column tap: offset inside a panel row */
    int ntstore;             /* stream (non-temporal) stores: output >> caches     */
    int chk;                 /* channel-vectorised path: 0 (off), 1 or 2 vectors */
    int64_t CB, nblk;        /* channels per block (chk * L), blocks per group    */
    void *wpk;               /* packed weights [g][blk][ci][ktot][CB] (chk only)  */
    void *wdg;               /* diagonal kernel: weights, each tap row by phase, or NULL */
    int64_t colq;            /* panel columns are a multiple of this (every tile width) */
    const void *x, *w;
    void *out;
} fc_plan;

static const char *fc_isa_name(int isa)
{
    return isa == FC_ISA_AVX512 ? "avx512vl+avx2+fma" : isa == FC_ISA_AVX2 ? "avx2+fma"
                                                                           : "generic";
}

static int fc_openmp_enabled(void)
{
#if defined(_OPENMP)
    return 1;
#else
    return 0;
#endif
}

/* Vectors (of L lanes) in the register tile that starts rem columns before the end of its
 * task's columns -- one rule for the kernel call and for finding the edge tiles whose reads
 * leave the image: 4-row tiles 3 (2 / 1 for the last ones), the diagonal kernel FC_DP,
 * other one-row tiles 8 (4 / 2 / 1). */
static inline int64_t fc_tile_vecs(const fc_plan *pl, int64_t rem)
{
    const int64_t L = pl->L;
    if (pl->R == 4)
        return rem >= 3 * L ? 3 : rem >= 2 * L ? 2 : 1;
    if (pl->wdg != NULL)
        return FC_DP;
    return rem >= 8 * L ? 8 : rem >= 4 * L ? 4 : rem >= 2 * L ? 2 : 1;
}

/* aligned scratch with a cache line of slack past its end */
static void *fc_alloc(size_t nbytes) { return fc_alloc_aligned(nbytes + 64); }

static void fc_free(void *p) { free(p); }

static void fc_plan_free(fc_plan *pl)
{
    free(pl->toff);
    pl->toff = NULL;
    fc_free(pl->wpk);
    pl->wpk = NULL;
    fc_free(pl->wdg);
    pl->wdg = NULL;
}

/*
 * Fill *pl.  Shapes: xs = (N, C_in, *S), ws = (C_out, C_in/groups, *K),
 * os = (N, C_out, *O); st/di/pa have D entries.  The caller (Cython) has
 * validated them.  force_generic != 0 selects the baseline kernels.
 * Returns 0, or -1 (bad D / out of memory).
 */
static int fc_plan_init(fc_plan *pl, int dtype, int D, const int64_t *xs,
                        const int64_t *ws, const int64_t *os, const int64_t *st,
                        const int64_t *di, const int64_t *pa, int64_t groups,
                        int nthreads, int isa_cap, const void *x,
                        const void *w, void *out)
{
    int64_t d, kw, i;
    int diag;
    memset(pl, 0, sizeof(*pl));
    if (D < 1 || D > FC_MAXD || groups < 1)
        return -1;
    pl->dtype = dtype;
    pl->elsize = dtype == FC_F32 ? 4 : 8;
    pl->L = 32 / pl->elsize;
    pl->isa = isa_cap == FC_CAP_GENERIC || !fc_cpu_has_avx2_fma() ? FC_ISA_GENERIC
              : isa_cap == FC_CAP_BEST && fc_cpu_has_avx512vl()  ? FC_ISA_AVX512
                                                                 : FC_ISA_AVX2;
    pl->D = D;
    pl->x = x; pl->w = w; pl->out = out;
    pl->N = xs[0]; pl->Cin = xs[1]; pl->Cout = ws[0]; pl->G = groups;
    pl->Cig = pl->Cin / groups; pl->Cog = pl->Cout / groups;
    for (d = 0; d < D; d++) {
        pl->S[d] = xs[2 + d]; pl->K[d] = ws[2 + d]; pl->O[d] = os[2 + d];
        pl->st[d] = st[d]; pl->di[d] = di[d]; pl->pa[d] = pa[d];
    }
    if (D == 1) {
        pl->NPD = 0;
        pl->H = 1; pl->OH = 1; pl->KH = 1; pl->sH = 1; pl->dH = 1; pl->pH = 0;
    } else {
        pl->NPD = D - 2;
        pl->H = pl->S[D - 2]; pl->OH = pl->O[D - 2]; pl->KH = pl->K[D - 2];
        pl->sH = pl->st[D - 2]; pl->dH = pl->di[D - 2]; pl->pH = pl->pa[D - 2];
    }
    pl->W = pl->S[D - 1]; pl->OW = pl->O[D - 1]; pl->KW = pl->K[D - 1];
    pl->sW = pl->st[D - 1]; pl->dW = pl->di[D - 1]; pl->pW = pl->pa[D - 1];
    pl->OP = pl->KP = pl->SP = 1;
    for (d = 0; d < pl->NPD; d++) {
        pl->OP *= pl->O[d]; pl->KP *= pl->K[d]; pl->SP *= pl->S[d];
    }
    pl->ktot = pl->KP * pl->KH * pl->KW;
    pl->ntstore = pl->N * pl->Cout * pl->OP * pl->OH * pl->OW * pl->elsize
                  >= (pl->NPD > 0 ? FC_NT_MIN_BYTES_3D : FC_NT_MIN_BYTES);

    /* the diagonal kernel (fc_kernel_impl.h) for long rows of taps: floating point, unit
     * column stride and dilation, not the channel-vectorised path; one-row register tiles,
     * so only for short images or kernels one row high (where the 4-row kernel shares no
     * loads between rows) */
    diag = pl->dtype != FC_I64 && pl->sW == 1 && pl->dW == 1 && pl->KW >= FC_DIAG_MIN_KW
           && (pl->OH < 4 || pl->ktot == pl->KW)
           && !(pl->Cog >= pl->L && pl->Cig * pl->ktot >= 16);

    /* AVX-512VL (32 registers) pays for the diagonal kernel and for small kernels (same
     * process alternating with the AVX2 build, 2 threads, Zen 4: 128^3 3^3 1.12-1.22x, 1-D
     * k=31 1.11-1.20x, k=301 1.06-1.19x, 2048^2 5x5 0.99-1.21x, 3x3 0.99-1.06x); with many
     * taps per output the AVX2 build was as fast or faster (11x11 0.86-0.91x, 16 channels
     * x 5x5 0.77-0.81x), so those plans keep it */
    if (pl->isa == FC_ISA_AVX512 && !diag && pl->Cig * pl->ktot > FC_AVX512_MAX_TAPS)
        pl->isa = FC_ISA_AVX2;

    /* register tile: 4 rows x 3 vectors, or 1 row x 8 vectors (short images, diagonal) */
    pl->R = pl->OH >= 4 && !diag ? 4 : 1;
    pl->Vmax = pl->R == 4 ? 3 : 8;

    if (nthreads < 1) nthreads = 1;
    {
        const int64_t L = pl->L, tile = (int64_t)pl->Vmax * L;
        const int64_t target = nthreads > 1 ? 4 * (int64_t)nthreads : 1;
        const int64_t base = pl->N * pl->G * pl->OP * fc_max(1, pl->OH / pl->R);
        int64_t colmax = fc_max(tile, (FC_COLMAX / tile) * tile);
        int64_t TW = pl->OW, TWpad, outer, rt_budget, rt_par, RT, per_row, rows_pad, prow;
        if (base < target) {  /* too few row tiles: split columns as well */
            int64_t want = fc_cdiv(target, base);
            TW = fc_max(tile, fc_rup(fc_cdiv(pl->OW, want), tile));
        }
        TW = fc_max(1, fc_min(TW, colmax));
        TW = fc_min(TW, fc_max(pl->OW, 1));
        {   /* tall kernels: narrow the column tile so one panel holds several times the
             * kernel's height of rows; otherwise each 4-row task re-gathers KH+3 rows */
            const int64_t span = (pl->KH - 1) * pl->dH;
            if (span >= 24) {
                const int64_t q = ((pl->KW - 1) * pl->dW) / pl->sW;
                const int64_t nph = fc_min(pl->sW, (pl->KW - 1) * pl->dW + 1);
                const int64_t want_rows = 4 * span + 1;
                int64_t maxw = FC_PANEL_BUDGET
                               / fc_max(1, want_rows * pl->KP * nph * pl->elsize) - q;
                maxw = (maxw / tile) * tile;
                if (maxw >= 2 * tile && maxw < TW)
                    TW = maxw;
            }
        }
        pl->TW = TW;
        pl->nct = fc_cdiv(pl->OW, TW);

        pl->qmax = ((pl->KW - 1) * pl->dW) / pl->sW;
        pl->nph = fc_min(pl->sW, (pl->KW - 1) * pl->dW + 1);
        /* multiple of every tile width (8, 6, 12, 4 lanes; the diagonal kernel's 8 vectors) */
        pl->colq = diag ? 24 * FC_DP : 24;
        TWpad = fc_rup(TW, pl->colq);
        pl->pcols = TWpad + pl->qmax;
        /* 64-byte aligned rows, but never a pitch close to a multiple of 4 KiB: the rows
         * a register tile reads would then share L1 sets (conflict misses). */
        {
            int64_t bytes = fc_rup(pl->nph * pl->pcols * pl->elsize, 64);
            int64_t m = bytes % 4096;
            if (bytes >= 2048 && (m < 384 || m > 4096 - 384))
                bytes += 320;
            pl->row_pitch = bytes / pl->elsize;
        }

        pl->toff = (int64_t *)malloc(sizeof(int64_t) * (size_t)fc_max(pl->KW, 1));
        if (pl->toff == NULL)
            return -1;
        for (kw = 0; kw < pl->KW; kw++) {
            int64_t m = kw * pl->dW;
            pl->toff[kw] = (m % pl->sW) * pl->pcols + m / pl->sW;
        }

        /* rows per task: bounded by the panel budget and by the parallelism wanted */
        outer = pl->N * pl->G * pl->OP * pl->nct;
        per_row = pl->KP * pl->row_pitch * pl->elsize;
        i = FC_PANEL_BUDGET / fc_max(per_row, 1) - (pl->KH - 1) * pl->dH - 1;
        rt_budget = i > 0 ? i / pl->sH + 1 : 1;
        rt_budget = fc_max(pl->R, (rt_budget / pl->R) * pl->R);
        rt_par = fc_rup(fc_cdiv(pl->OH, fc_cdiv(target, fc_max(outer, 1))), pl->R);
        RT = fc_min(pl->OH, fc_min(rt_budget, rt_par));
        if (RT < pl->OH)
            RT = fc_max(pl->R, (RT / pl->R) * pl->R);
        RT = fc_max(RT, 1);
        pl->RT = RT;
        pl->nrt = fc_cdiv(pl->OH, RT);

        rows_pad = fc_rup(RT, pl->R);
        prow = (rows_pad - 1) * pl->sH + (pl->KH - 1) * pl->dH + 1;
        pl->slab = prow * pl->row_pitch;
        pl->ci_pitch = pl->KP * pl->slab;
        pl->cc = fc_max(1, fc_min(pl->Cig, FC_PANEL_BUDGET / fc_max(1, pl->ci_pitch * pl->elsize)));
    }

    if (diag) {  /* each row of KW taps sorted by phase: t = v + L*u in (v, u) order */
        const int64_t rows = pl->Cout * pl->Cig * pl->ktot / pl->KW, es = pl->elsize;
        int64_t r, v, t, j;
        pl->wdg = fc_alloc((size_t)(rows * pl->KW * es));
        if (pl->wdg == NULL)
            return -1;
        for (r = 0; r < rows; r++)
            for (v = 0, j = 0; v < pl->L; v++)
                for (t = v; t < pl->KW; t += pl->L, j++)
                    memcpy((char *)pl->wdg + (r * pl->KW + j) * es,
                           (const char *)w + (r * pl->KW + t) * es, (size_t)es);
    }

    /* Dense convolutions (>= L output channels per group, floating point): vectorise over
     * output channels instead of columns; weights packed once per call. */
    if (pl->dtype != FC_I64 && pl->Cog >= pl->L && pl->Cig * pl->ktot >= 16) {
        const int64_t es = pl->elsize;
        int64_t g, b, lane, ci, t;
        pl->chk = pl->Cog > pl->L ? 2 : 1;
        pl->CB = pl->chk * pl->L;
        pl->nblk = fc_cdiv(pl->Cog, pl->CB);
        i = pl->G * pl->nblk * pl->Cig * pl->ktot * pl->CB * es;
        pl->wpk = fc_alloc((size_t)i);
        if (pl->wpk == NULL)
            return -1;
        memset(pl->wpk, 0, (size_t)i);
        for (g = 0; g < pl->G; g++)
            for (b = 0; b < pl->nblk; b++)
                for (lane = 0; lane < pl->CB && b * pl->CB + lane < pl->Cog; lane++) {
                    const int64_t co = g * pl->Cog + b * pl->CB + lane;
                    for (ci = 0; ci < pl->Cig; ci++)
                        for (t = 0; t < pl->ktot; t++)
                            memcpy((char *)pl->wpk
                                   + ((((g * pl->nblk + b) * pl->Cig + ci) * pl->ktot + t)
                                      * pl->CB + lane) * es,
                                   (const char *)w + ((co * pl->Cig + ci) * pl->ktot + t) * es,
                                   (size_t)es);
                }
    }
    return 0;
}

static int64_t fc_plan_ntasks(const fc_plan *pl)
{
    return pl->N * pl->G * pl->OP * pl->nrt * pl->nct;
}

static size_t fc_plan_scratch_bytes(const fc_plan *pl)
{
    /* panel, then the tap table of one channel chunk */
    return (size_t)(fc_rup(pl->cc * pl->ci_pitch * pl->elsize, 64)
                    + pl->cc * pl->ktot * (int64_t)sizeof(int64_t)) + 128;
}

/* ---- the typed kernels: each included once per (type, ISA) ---------------- */

#if FC_X86
#define FC_T float
#define FC_SFX f32_avx2
#define FC_ISA_VEC 1
#define FC_ATTR FC_ATTR_AVX2
#define FC_FLOAT 1
#define FC_NT_STORE(p, v) _mm256_stream_ps((float *)(p), (__m256)(v))
#include "fc_kernel_impl.h"
#define FC_T double
#define FC_SFX f64_avx2
#define FC_ISA_VEC 1
#define FC_ATTR FC_ATTR_AVX2
#define FC_FLOAT 1
#define FC_NT_STORE(p, v) _mm256_stream_pd((double *)(p), (__m256d)(v))
#include "fc_kernel_impl.h"
#define FC_T uint64_t
#define FC_SFX i64_avx2
#define FC_ISA_VEC 1
#define FC_ATTR FC_ATTR_AVX2
#define FC_FLOAT 0
#define FC_NT_STORE(p, v) _mm256_stream_si256((__m256i *)(p), (__m256i)(v))
#include "fc_kernel_impl.h"
#define FC_T float
#define FC_SFX f32_avx512
#define FC_ISA_VEC 1
#define FC_ISA_512 1
#define FC_ATTR FC_ATTR_AVX512
#define FC_FLOAT 1
#define FC_NT_STORE(p, v) _mm256_stream_ps((float *)(p), (__m256)(v))
#include "fc_kernel_impl.h"
#define FC_T double
#define FC_SFX f64_avx512
#define FC_ISA_VEC 1
#define FC_ISA_512 1
#define FC_ATTR FC_ATTR_AVX512
#define FC_FLOAT 1
#define FC_NT_STORE(p, v) _mm256_stream_pd((double *)(p), (__m256d)(v))
#include "fc_kernel_impl.h"
#define FC_T uint64_t
#define FC_SFX i64_avx512
#define FC_ISA_VEC 1
#define FC_ISA_512 1
#define FC_ATTR FC_ATTR_AVX512
#define FC_FLOAT 0
#define FC_NT_STORE(p, v) _mm256_stream_si256((__m256i *)(p), (__m256i)(v))
#include "fc_kernel_impl.h"
#endif

#define FC_T float
#define FC_SFX f32_gen
#define FC_ISA_VEC 0
#define FC_ATTR
#define FC_FLOAT 1
#include "fc_kernel_impl.h"
#define FC_T double
#define FC_SFX f64_gen
#define FC_ISA_VEC 0
#define FC_ATTR
#define FC_FLOAT 1
#include "fc_kernel_impl.h"
#define FC_T uint64_t
#define FC_SFX i64_gen
#define FC_ISA_VEC 0
#define FC_ATTR
#define FC_FLOAT 0
#include "fc_kernel_impl.h"

/* Run task t (0 <= t < fc_plan_ntasks) with a scratch of fc_plan_scratch_bytes. */
static void fc_run_task(const fc_plan *pl, int64_t t, void *scratch)
{
#if FC_X86
    if (pl->isa == FC_ISA_AVX512) {
        switch (pl->dtype) {
        case FC_F32: fc_task_f32_avx512(pl, t, scratch); return;
        case FC_F64: fc_task_f64_avx512(pl, t, scratch); return;
        default: fc_task_i64_avx512(pl, t, scratch); return;
        }
    }
    if (pl->isa == FC_ISA_AVX2) {
        switch (pl->dtype) {
        case FC_F32: fc_task_f32_avx2(pl, t, scratch); return;
        case FC_F64: fc_task_f64_avx2(pl, t, scratch); return;
        default: fc_task_i64_avx2(pl, t, scratch); return;
        }
    }
#endif
    switch (pl->dtype) {
    case FC_F32: fc_task_f32_gen(pl, t, scratch); return;
    case FC_F64: fc_task_f64_gen(pl, t, scratch); return;
    default: fc_task_i64_gen(pl, t, scratch); return;
    }
}

#endif /* FASTCONV_FC_CONV_H */
