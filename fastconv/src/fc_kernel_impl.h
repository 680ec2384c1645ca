/*
 * fc_kernel_impl.h -- typed kernels of the direct engine (a "template" header).
 *
 * Included by fc_conv.h once per (element type, ISA) with
 *   FC_T     element type (float, double, uint64_t: int64 wraps mod 2**64)
 *   FC_SFX   name suffix (f32_avx2, ...)
 *   FC_ATTR  function attribute selecting the ISA (target("avx2,fma") or empty)
 *   FC_FLOAT 1 for floating types (denormals are flushed while running)
 *   FC_ISA_VEC 1 when FC_ATTR enables 256-bit vector registers (AVX2)
 *   FC_ISA_512 defined when FC_ATTR also enables AVX-512VL (32 registers)
 * No include guard on purpose; the macros are #undef'd at the end.
 *
 * Panel layout (per task and input-channel chunk), in elements:
 *   panel[ci][kp][pr][ph][t] = x[n, c0+ci, plane(kp), row0 + pr, (ow0 + t)*sW + ph - pW]
 * (zero outside x), ci_pitch = KP*slab, slab = prow*row_pitch, phases ph < nph of
 * pcols elements each.  Column tap kw reads phase (kw*dW) % sW at offset
 * (kw*dW) / sW, i.e. toff[kw]; the strided column gather makes every tap a unit
 * stride vector load.  Row tap kh of register row r reads panel row r*sH + kh*dH.
 */

#define FC_CAT2_(a, b) a##_##b
#define FC_CAT2(a, b) FC_CAT2_(a, b)
#define FN(name) FC_CAT2(name, FC_SFX)
#define FC_VL ((int)(32 / sizeof(FC_T)))

typedef FC_T FN(fc_vec) __attribute__((vector_size(32)));
typedef FC_T FN(fc_vecu) __attribute__((vector_size(32), aligned(sizeof(FC_T)), may_alias));

/* Keep a vector in a register: GCC otherwise folds a load into every FMA that uses it, and
 * with AVX-512VL a weight broadcast too ({1to8} memory operands: one load per FMA instead
 * of one per tap). "v": any of the 32 registers where AVX-512VL is enabled. */
#if FC_ISA_VEC
#define FC_PIN(x) __asm__("" : "+v"(x))
#else
#define FC_PIN(x) ((void)0)
#endif
/* FC_WSPLAT(name, value): the weight (or input) scalar that multiplies vectors.  In the
 * AVX-512VL build it is broadcast once into a pinned register, or GCC folds it into every
 * FMA as a {1to8} memory operand; elsewhere a plain scalar (pinning it in the AVX2 build
 * measured slower: it constrains GCC's scheduling). */
/* The vector of ``value`` in every lane, spelled -0 + value, which GCC folds into a plain
 * broadcast (+0 + value is not value for value = -0, so that spelling kept a scalar add
 * before every broadcast: 5-8% of a 5x5 call). */
#define FC_SPLAT(value) ((FN(fc_vec)){0} * (FC_T)-1 + (value))
#ifdef FC_ISA_512
#define FC_WSPLAT(name, value) FN(fc_vec) name = FC_SPLAT(value); FC_PIN(name)
#else
#define FC_WSPLAT(name, value) const FC_T name = (value)
#endif

#define FC_LOADU(p) (*(const FN(fc_vecu) *)(p))
#define FC_STOREU(p, v) (*(FN(fc_vecu) *)(p) = (v))

/* Store (or add) the R x V register tile into dst (row pitch dp), clipped to rows x cols. */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_store)(const int R, const int V, FN(fc_vec) acc[4][8], FC_T *restrict dst, ptrdiff_t dp,
             int rows, int cols, int accum)
{
    int r, v;
    if (rows == R && cols == V * FC_VL) {
#ifdef FC_NT_STORE
        /* accum == 2: streaming stores (large outputs: no read-for-ownership traffic) */
        if (accum == 2 && (((uintptr_t)dst | (uintptr_t)(dp * (ptrdiff_t)sizeof(FC_T))) & 31) == 0) {
#pragma GCC unroll 4
            for (r = 0; r < R; r++)
#pragma GCC unroll 8
                for (v = 0; v < V; v++)
                    FC_NT_STORE(dst + r * dp + v * FC_VL, acc[r][v]);
            return;
        }
#endif
#pragma GCC unroll 4
        for (r = 0; r < R; r++)
#pragma GCC unroll 8
            for (v = 0; v < V; v++) {
                FC_T *d = dst + r * dp + v * FC_VL;
                FN(fc_vec) a = acc[r][v];
                if (accum == 1)
                    a += FC_LOADU(d);
                FC_STOREU(d, a);
            }
    } else {
        FC_T tmp[4 * 8 * FC_VL];
        int c;
#pragma GCC unroll 4
        for (r = 0; r < R; r++)
#pragma GCC unroll 8
            for (v = 0; v < V; v++)
                FC_STOREU(tmp + (r * V + v) * FC_VL, acc[r][v]);
        for (r = 0; r < rows; r++) {
            FC_T *d = dst + r * dp;
            const FC_T *t = tmp + r * V * FC_VL;
            if (accum == 1)
                for (c = 0; c < cols; c++) d[c] += t[c];
            else
                for (c = 0; c < cols; c++) d[c] = t[c];
        }
    }
}

/*
 * Microkernel: dst[r, c] (+)= sum_t p[offs[t] + r*rp + c] * w[t], where the tap table
 * offs[t] = ci*cip + kp*slabp + kh*khp + toff[kw] flattens (ci, kp, kh, kw) into one loop
 * for r < rows <= R, c < cols <= V*VL.  R and V are compile-time after inlining.
 */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_mk)(const int R, const int V, const FC_T *restrict p, ptrdiff_t rp,
          const int64_t *restrict offs, ptrdiff_t ntaps, const FC_T *restrict w,
          FC_T *restrict dst, ptrdiff_t dp, int rows, int cols, int accum)
{
    FN(fc_vec) acc[4][8];
    ptrdiff_t t;
    int r, v;
#pragma GCC unroll 4
    for (r = 0; r < R; r++)
#pragma GCC unroll 8
        for (v = 0; v < V; v++)
            acc[r][v] = (FN(fc_vec)){0};
    for (t = 0; t < ntaps; t++) {
        const FC_T *q = p + offs[t];
        FC_WSPLAT(wk, w[t]);
#pragma GCC unroll 4
        for (r = 0; r < R; r++)
#pragma GCC unroll 8
            for (v = 0; v < V; v++)
                acc[r][v] += FC_LOADU(q + r * rp + v * FC_VL) * wk;
    }
    FN(fc_store)(R, V, acc, dst, dp, rows, cols, accum);
}

/*
 * A run of one-row tiles read in place (1-D signals: one input channel, unit stride and
 * dilation, no padding within the run): dst[c] = sum_{t < K} w[t] x[c + t] for c < ncols,
 * ncols a multiple of 8 vectors.  The tiles of fc_mk(1, 8) without the tap table and in a
 * function of their own, so nothing of fc_task's state spills into the loop (in fc_task the
 * tap loop reloaded the table, weight and bound pointers from the stack on every tap: a
 * 1-D 3-tap float64 correlation ran at ~1.8 cycles per output on one thread).
 * smode 2: streaming stores where dst is 32-byte aligned.
 */
static __attribute__((noinline)) FC_ATTR void
FN(fc_row1)(const FC_T *restrict x, const FC_T *restrict w, ptrdiff_t K, FC_T *restrict dst,
            ptrdiff_t ncols, int smode)
{
    ptrdiff_t j, t;
    int v;
    (void)smode;
    for (j = 0; j + 8 * FC_VL <= ncols; j += 8 * FC_VL) {
        FN(fc_vec) a[8];
#pragma GCC unroll 8
        for (v = 0; v < 8; v++)
            a[v] = (FN(fc_vec)){0};
        for (t = 0; t < K; t++) {
            FC_WSPLAT(wk, w[t]);
            const FC_T *q = x + j + t;
#pragma GCC unroll 8
            for (v = 0; v < 8; v++)
                a[v] += FC_LOADU(q + v * FC_VL) * wk;
        }
        FC_T *d = dst + j;
#ifdef FC_NT_STORE
        if (smode == 2 && ((uintptr_t)d & 31) == 0) {
#pragma GCC unroll 8
            for (v = 0; v < 8; v++)
                FC_NT_STORE(d + v * FC_VL, a[v]);
            continue;
        }
#endif
#pragma GCC unroll 8
        for (v = 0; v < 8; v++)
            FC_STOREU(d + v * FC_VL, a[v]);
    }
}

/* acc[r][:V] += x[row b, taps kw] * wr[kw - r*KW] for the rows LO <= r <= HI. */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_rows_kw)(const int V, const int LO, const int HI, const int KWC, FN(fc_vec) acc[4][8],
               const FC_T *restrict b, const FC_T *restrict wr, ptrdiff_t KW,
               const int64_t *restrict toff)
{
    ptrdiff_t kw;
    int r, v;
    if (KWC > 0)
        KW = KWC;
#pragma GCC unroll 8
    for (kw = 0; kw < KW; kw++) {
        const FC_T *q = b + (KWC > 0 ? kw : toff[kw]);
        FN(fc_vec) xv[8];
#pragma GCC unroll 8
        for (v = 0; v < V; v++) {
            xv[v] = FC_LOADU(q + v * FC_VL);
            /* one load per input row, not one per output row that uses it */
            FC_PIN(xv[v]);
        }
#pragma GCC unroll 4
        for (r = LO; r <= HI; r++) {
            FC_WSPLAT(wk, wr[kw - r * KW]);
#pragma GCC unroll 8
            for (v = 0; v < V; v++)
                acc[r][v] += xv[v] * wk;
        }
    }
}

/*
 * Row-sharing microkernel for unit row stride and dilation (the common case): the same
 * result as fc_mk, but each panel row is loaded once per column tap and feeds the (up to
 * R) output rows that use it, with row tap kh = ir - r.  Loads per FMA drop from about 1
 * to about (V + R) / (R * V).
 */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_mk_rows)(const int R, const int V, const int KWC, const FC_T *restrict p, ptrdiff_t rp,
               ptrdiff_t slabp, ptrdiff_t cip, ptrdiff_t cc, ptrdiff_t KP, ptrdiff_t KH,
               ptrdiff_t KW, const int64_t *restrict toff, const FC_T *restrict w,
               FC_T *restrict dst, ptrdiff_t dp, int rows, int cols, int accum)
{
    FN(fc_vec) acc[4][8];
    ptrdiff_t ci, kp, ir;
    const ptrdiff_t KHW = KH * (KWC > 0 ? KWC : KW);
    int r, v;
#pragma GCC unroll 4
    for (r = 0; r < R; r++)
#pragma GCC unroll 8
        for (v = 0; v < V; v++)
            acc[r][v] = (FN(fc_vec)){0};
    for (ci = 0; ci < cc; ci++) {
        for (kp = 0; kp < KP; kp++) {
            const FC_T *s = p + ci * cip + kp * slabp;
            const FC_T *wc = w + (ci * KP + kp) * KHW;
            for (ir = 0; ir < R + KH - 1; ir++) {
                const FC_T *b = s + ir * rp;
                const FC_T *wr = wc + ir * (KWC > 0 ? KWC : KW); /* row r: wr - r*KW */
                /* output rows lo..hi use this input row; one unrolled loop per range */
                const int lo = ir - KH + 1 > 0 ? (int)(ir - KH + 1) : 0;
                const int hi = ir < R - 1 ? (int)ir : R - 1;
                switch (lo * 4 + hi) {
#define FC_RK(LO, HI)                                                            \
                case LO * 4 + HI:                                                \
                    if (HI < R) FN(fc_rows_kw)(V, LO, HI, KWC, acc, b, wr, KW, toff); \
                    break;
                FC_RK(0, 0) FC_RK(0, 1) FC_RK(0, 2) FC_RK(0, 3)
                FC_RK(1, 1) FC_RK(1, 2) FC_RK(1, 3)
                FC_RK(2, 2) FC_RK(2, 3)
                FC_RK(3, 3)
#undef FC_RK
                default: break;
                }
            }
        }
    }
    FN(fc_store)(R, V, acc, dst, dp, rows, cols, accum);
}

/* One block of the diagonal microkernel below: Q taps u0 .. u0+Q-1 of one phase, their
 * weights wq[0..Q) held in registers; panel vector y_s (s < P+Q-1) feeds acc[p], p = s - u. */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_diag_blk)(const int P, const int Q, FN(fc_vec) acc[8], const FC_T *restrict b,
                const FC_T *restrict wq)
{
    FN(fc_vec) wr[8];
    int s, p, q;
#pragma GCC unroll 8
    for (q = 0; q < Q; q++) {
        wr[q] = FC_SPLAT(wq[q]);
        FC_PIN(wr[q]);
    }
#pragma GCC unroll 16
    for (s = 0; s < P + Q - 1; s++) {
        FN(fc_vec) y = FC_LOADU(b + s * FC_VL);
        FC_PIN(y);  /* one load per panel vector, not one per FMA */
#pragma GCC unroll 8
        for (p = 0; p < P; p++) {
            const int u = s - p;
            if (u >= 0 && u < Q)
                acc[p] += y * wr[u];
        }
    }
}

/*
 * Diagonal microkernel for long rows of taps at unit column stride and dilation (1-D
 * signals, short images): acc[p] holds output columns [p*VL, (p+1)*VL) of a P*VL-column
 * tile.  Tap t = v + VL*u (phase v < VL, step u) adds x[VL*(p+u) + v ..] * w[t] to acc[p],
 * so within one phase the panel vector y_s = x[VL*s + v ..] serves every (p, u) with
 * p + u = s: DQ weights are held in registers at a time and each loaded vector feeds up
 * to min(P, DQ) FMAs (fc_mk with one row loads one vector per FMA).  wd holds each tap row's
 * weights sorted by phase (see fc_plan_init); rowoff[r * KW] is tap row r's panel offset
 * (the tap table of fc_task).
 */
#define FC_DQ 7  /* 8 accumulators + 7 weights + 1 panel vector = 16 registers */
/* Full blocks of FC_DQ taps after which the accumulators are added into a running total
 * and restart: a float32 sum over thousands of taps in one register chain had ~13x the
 * error of scipy's (20000 taps: 4.9e-6 of the output's largest value, scipy 3.6e-7);
 * chains of at most 16 * 7 taps plus one addition per flush cut it to ~1/10, at ~1 %
 * more instructions (a flush is 8 additions per 16 blocks of up to 56 FMAs). */
#define FC_DFLUSH 16
static __attribute__((noinline)) FC_ATTR void  /* out of line: fc_task's register use */
FN(fc_mk_diag)(const FC_T *restrict p, const int64_t *restrict rowoff, ptrdiff_t nrows,
               ptrdiff_t KW, const FC_T *restrict wd, FC_T *restrict dst, int cols, int accum)
{
    FN(fc_vec) acc[4][8];
    FN(fc_vec) tot[8];   /* the flushed partial sums (memory: touched once per flush) */
    ptrdiff_t r, v, u;
    int i, nblk = 0, flushed = 0;
#pragma GCC unroll 8
    for (i = 0; i < FC_DP; i++)
        acc[0][i] = (FN(fc_vec)){0};
    for (r = 0; r < nrows; r++) {
        const FC_T *b0 = p + rowoff[r * KW];
        const FC_T *w = wd + r * KW;
        for (v = 0; v < FC_VL && v < KW; v++) {
            const ptrdiff_t U = (KW - v + FC_VL - 1) / FC_VL;
            const FC_T *b = b0 + v;
            for (u = 0; u + FC_DQ <= U; u += FC_DQ) {
                FN(fc_diag_blk)(FC_DP, FC_DQ, acc[0], b + u * FC_VL, w + u);
                if (++nblk == FC_DFLUSH) {
#pragma GCC unroll 8
                    for (i = 0; i < FC_DP; i++) {
                        tot[i] = flushed ? tot[i] + acc[0][i] : acc[0][i];
                        acc[0][i] = (FN(fc_vec)){0};
                    }
                    flushed = 1;
                    nblk = 0;
                }
            }
            switch (U - u) {   /* the last block: fewer than FC_DQ taps */
            case 6: FN(fc_diag_blk)(FC_DP, 6, acc[0], b + u * FC_VL, w + u); break;
            case 5: FN(fc_diag_blk)(FC_DP, 5, acc[0], b + u * FC_VL, w + u); break;
            case 4: FN(fc_diag_blk)(FC_DP, 4, acc[0], b + u * FC_VL, w + u); break;
            case 3: FN(fc_diag_blk)(FC_DP, 3, acc[0], b + u * FC_VL, w + u); break;
            case 2: FN(fc_diag_blk)(FC_DP, 2, acc[0], b + u * FC_VL, w + u); break;
            case 1: FN(fc_diag_blk)(FC_DP, 1, acc[0], b + u * FC_VL, w + u); break;
            default: break;
            }
            w += U;
        }
    }
    if (flushed) {
#pragma GCC unroll 8
        for (i = 0; i < FC_DP; i++)
            acc[0][i] += tot[i];
    }
    FN(fc_store)(1, FC_DP, acc, dst, 0, 1, cols, accum);
}

/*
 * Channel-vectorised microkernel for dense convolutions: the vector lanes hold CV*VL
 * consecutive output channels, P consecutive output pixels of one row are register
 * blocked; each input value is broadcast once per tap and feeds CV FMAs, each packed
 * weight vector (wk: [ci][kp][kh][kw][CV*VL]) feeds P FMAs.
 */
static inline __attribute__((always_inline)) FC_ATTR void
FN(fc_mk_ch)(const int P, const int CV, const FC_T *restrict p,
             const int64_t *restrict offs, ptrdiff_t ntaps, const FC_T *restrict wk,
             FC_T *restrict dst, ptrdiff_t cstride, int npix, int nch, int accum)
{
    FN(fc_vec) acc[12][2];
    FC_T tmp[12 * 2 * FC_VL];
    ptrdiff_t t;
    int i, v, ch;
#pragma GCC unroll 12
    for (i = 0; i < P; i++)
#pragma GCC unroll 2
        for (v = 0; v < CV; v++)
            acc[i][v] = (FN(fc_vec)){0};
    for (t = 0; t < ntaps; t++) {
        const FC_T *q = p + offs[t];
        FN(fc_vec) wv[2];
#pragma GCC unroll 2
        for (v = 0; v < CV; v++)
            wv[v] = FC_LOADU(wk + v * FC_VL);
        wk += CV * FC_VL;
#pragma GCC unroll 12
        for (i = 0; i < P; i++) {
            FC_WSPLAT(xs, q[i]);
#pragma GCC unroll 2
            for (v = 0; v < CV; v++)
                acc[i][v] += wv[v] * xs;
        }
    }
#pragma GCC unroll 12
    for (i = 0; i < P; i++)
#pragma GCC unroll 2
        for (v = 0; v < CV; v++)
            FC_STOREU(tmp + (i * CV + v) * FC_VL, acc[i][v]);
    for (ch = 0; ch < nch; ch++) {
        FC_T *d = dst + ch * cstride;
        const FC_T *t = tmp + ch;
        if (accum)
            for (i = 0; i < npix; i++) d[i] += t[i * CV * FC_VL];
        else
            for (i = 0; i < npix; i++) d[i] = t[i * CV * FC_VL];
    }
}

/* Gather the panel for input channels [c0, c0 + ccur) of group g, image n.
 * (Loops stay loops: rows are often short, where memcpy/memset calls cost more.) */
static FC_ATTR FC_NO_LDP void
FN(fc_build_panel)(const fc_plan *restrict pl, FC_T *restrict panel, int64_t n,
                   int64_t g, int64_t c0, int64_t ccur, int64_t op, int64_t oh0,
                   int64_t prow, int64_t ow0, int64_t wneed)
{
    const FC_T *X = (const FC_T *)pl->x;
    const int64_t H = pl->H, W = pl->W, sW = pl->sW;
    int64_t oidx[FC_MAXD], kidx[FC_MAXD];
    int64_t d, ci, kp, pr, ph, tmp;
    tmp = op;
    for (d = pl->NPD - 1; d >= 0; d--) {
        oidx[d] = tmp % pl->O[d];
        tmp /= pl->O[d];
    }
    for (ci = 0; ci < ccur; ci++) {
        const FC_T *xc = X + (n * pl->Cin + g * pl->Cig + c0 + ci) * pl->SP * H * W;
        for (kp = 0; kp < pl->KP; kp++) {
            FC_T *slab = panel + ci * pl->ci_pitch + kp * pl->slab;
            int valid = 1;
            int64_t poff = 0;
            tmp = kp;
            for (d = pl->NPD - 1; d >= 0; d--) {
                kidx[d] = tmp % pl->K[d];
                tmp /= pl->K[d];
            }
            for (d = 0; d < pl->NPD; d++) {
                int64_t ip = oidx[d] * pl->st[d] + kidx[d] * pl->di[d] - pl->pa[d];
                if (ip < 0 || ip >= pl->S[d])
                    valid = 0;
                poff = poff * pl->S[d] + ip;
            }
            for (pr = 0; pr < prow; pr++) {
                FC_T *dst = slab + pr * pl->row_pitch;
                const int64_t ir = oh0 * pl->sH - pl->pH + pr;
                const FC_T *src;
                if (!valid || ir < 0 || ir >= H) {
                    int64_t t;
                    for (t = 0; t < pl->row_pitch; t++)
                        dst[t] = 0;
                    continue;
                }
                src = xc + (poff * H + ir) * W;
                for (ph = 0; ph < pl->nph; ph++) {
                    FC_T *dd = dst + ph * pl->pcols;
                    /* element t reads column a + t*sW, valid when 0 <= a + t*sW < W */
                    const int64_t a = ow0 * sW + ph - pl->pW;
                    int64_t lo = a >= 0 ? 0 : fc_cdiv(-a, sW);
                    int64_t hi = W - a > 0 ? fc_cdiv(W - a, sW) : 0;
                    int64_t t;
                    lo = fc_min(lo, wneed);
                    hi = fc_max(lo, fc_min(hi, wneed));
                    /* inline loops (vectorised by the compiler): rows are often short,
                     * where memcpy/memset call overhead would dominate */
                    for (t = 0; t < lo; t++)
                        dd[t] = 0;
                    if (sW == 1) {
                        const FC_T *restrict sp = src + a;
                        if (hi - lo >= 512)
                            memcpy(dd + lo, sp + lo, sizeof(FC_T) * (size_t)(hi - lo));
                        else
                            for (t = lo; t < hi; t++)
                                dd[t] = sp[t];
                    } else if (sW == 2) {   /* a constant stride: vectorised */
                        const FC_T *restrict sp = src + a;
                        for (t = lo; t < hi; t++)
                            dd[t] = sp[2 * t];
                    } else {
                        const FC_T *restrict sp = src + a;
                        for (t = lo; t < hi; t++)
                            dd[t] = sp[t * sW];
                    }
                    for (t = hi; t < wneed; t++)
                        dd[t] = 0;
                }
            }
        }
    }
}

#ifndef FC_MAX_EDGE
#define FC_MAX_EDGE 8  /* most edge tiles of one task that get their own small panel */
#endif

#define FC_MK_CALL(RR, VV)                                                      \
    FN(fc_mk)(RR, VV, pp, rp, offs, ntaps, wp, dst, pl->OW, rows, cols, smode)

#define FC_MKR_CALL(RR, VV)                                                  \
    do {                                                                         \
        if (kwc == 3) FC_MKR_CALL2(RR, VV, 3);                                   \
        else if (kwc == 5) FC_MKR_CALL2(RR, VV, 5);                              \
        else if (kwc == 1) FC_MKR_CALL2(RR, VV, 1);                              \
        else FC_MKR_CALL2(RR, VV, 0);                                            \
    } while (0)
#define FC_MKR_CALL2(RR, VV, KWC)                                              \
    FN(fc_mk_rows)(RR, VV, KWC, pp, srp, pl->slab, scp, ccur, pl->KP, pl->KH, \
                   pl->KW, pl->toff, wp, dst, pl->OW, rows, cols, smode)

/* One task: (n, g, output plane, row tile, column tile). */
static FC_ATTR void FN(fc_task)(const fc_plan *restrict pl, int64_t t, void *scratch)
{
    const int64_t VL = FC_VL, R = pl->R;
    const int64_t ct = t % pl->nct;
    int64_t rt, op, g, n, c0, co;
    FC_T *panel = (FC_T *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int64_t *offs = (int64_t *)((char *)panel + fc_rup(pl->cc * pl->ci_pitch * pl->elsize, 64));
    const FC_T *Wt = (const FC_T *)pl->w;
    FC_T *Out = (FC_T *)pl->out;
#if FC_X86 && FC_FLOAT
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
#endif
    t /= pl->nct;
    rt = t % pl->nrt; t /= pl->nrt;
    op = t % pl->OP; t /= pl->OP;
    g = t % pl->G;
    n = t / pl->G;
    {
        const int64_t oh0 = rt * pl->RT, ow0 = ct * pl->TW;
        const int64_t nrows = fc_min(pl->RT, pl->OH - oh0);
        const int64_t ncols = fc_min(pl->TW, pl->OW - ow0);
        const int64_t rows_pad = fc_rup(nrows, R);
        const int64_t prow = (rows_pad - 1) * pl->sH + (pl->KH - 1) * pl->dH + 1;
        const int64_t wneed = fc_rup(ncols, pl->colq) + pl->qmax;
        const ptrdiff_t rp = pl->sH * pl->row_pitch, khp = pl->dH * pl->row_pitch;
        const int rowshare = pl->sH == 1 && pl->dH == 1;
        /* unit column stride and dilation with a common width: taps fully unrolled */
        const int kwc = (pl->sW == 1 && pl->dW == 1
                         && (pl->KW == 1 || pl->KW == 3 || pl->KW == 5))
                        ? (int)pl->KW : 0;
        for (c0 = 0; c0 < pl->Cig; c0 += pl->cc) {
            const int64_t ccur = fc_min(pl->cc, pl->Cig - c0);
            const int accum = c0 > 0;
            /* store mode of the spatial kernels: 1 add, 2 stream, 0 store */
            const int smode = accum ? 1 : (pl->ntstore && ccur == pl->Cig ? 2 : 0);
            const int64_t ntaps = ccur * pl->ktot;
            /* Panel-free reads: with unit strides and dilations on a 2-D image, and no zero
             * rows in this task, a register tile whose columns lie inside the image reads the
             * image itself (row pitch W, channel pitch H*W); only the edge tiles, whose reads
             * leave the image, get a small zero-padded panel each, side by side in the scratch
             * (eoff).  Saves the full panel copy: ~25% of a 2048^2 5x5 float32 call on one
             * thread.  One-row tiles do the same when they read a single row of taps (one
             * input channel, a kernel one row high: 1-D signals, the row pass of a separable
             * filter). */
            const int onerow = R == 1 && pl->Cig == 1 && pl->KP == 1 && pl->KH == 1;
            int direct = !pl->chk && (R == 4 || onerow) && rowshare && pl->sW == 1 && pl->dW == 1
                         && pl->NPD == 0 && oh0 - pl->pH >= 0
                         && oh0 - pl->pH + rows_pad + pl->KH - 2 <= pl->H - 1;
            int64_t ej0[FC_MAX_EDGE], eoff[FC_MAX_EDGE], ewid[FC_MAX_EDGE];
            int nedge = 0;
            if (direct) {
                int64_t j0, used = 0;
                for (j0 = 0; j0 < ncols;) {
                    const int64_t rem = ncols - j0;
                    const int64_t V = fc_tile_vecs(pl, rem);
                    const int64_t cs = ow0 + j0 - pl->pW;
                    if (cs < 0 || cs + V * VL + pl->KW - 1 > pl->W) {
                        const int64_t width = V * VL + pl->qmax;
                        if (nedge == FC_MAX_EDGE || used + width > pl->pcols) {
                            direct = 0;  /* too many edge tiles: one full panel instead */
                            break;
                        }
                        ej0[nedge] = j0;
                        ewid[nedge] = width;
                        eoff[nedge++] = used;
                        used += width;
                    }
                    j0 += fc_min(rem, V * VL);
                }
            }
            if (direct) {
                int e;
                for (e = 0; e < nedge; e++)
                    FN(fc_build_panel)(pl, panel + eoff[e], n, g, c0, ccur, op, oh0, prow,
                                       ow0 + ej0[e], ewid[e]);
            } else {
                FN(fc_build_panel)(pl, panel, n, g, c0, ccur, op, oh0, prow, ow0, wneed);
            }
            {   /* tap table: (ci, kp, kh, kw) -> panel offset, in weight order */
                int64_t ci, kp, kh, kw, tt = 0;
                for (ci = 0; ci < ccur; ci++)
                    for (kp = 0; kp < pl->KP; kp++)
                        for (kh = 0; kh < pl->KH; kh++)
                            for (kw = 0; kw < pl->KW; kw++)
                                offs[tt++] = ci * pl->ci_pitch + kp * pl->slab + kh * khp
                                             + pl->toff[kw];
            }
            if (pl->chk) {
                /* channel-vectorised path: blocks of CB output channels */
                const int64_t CB = pl->CB, cstride = pl->OP * pl->OH * pl->OW;
                int64_t b, r, j0;
                for (b = 0; b < pl->nblk; b++) {
                    const int nch = (int)fc_min(CB, pl->Cog - b * CB);
                    const FC_T *wk = (const FC_T *)pl->wpk
                                     + ((g * pl->nblk + b) * pl->Cig + c0) * pl->ktot * CB;
                    FC_T *obase = Out + (((n * pl->Cout + g * pl->Cog + b * CB) * pl->OP + op)
                                         * pl->OH + oh0) * pl->OW + ow0;
                    for (r = 0; r < nrows; r++) {
                        for (j0 = 0; j0 < ncols; j0 += (pl->chk == 2 ? 6 : 12)) {
                            const FC_T *pp = panel + r * rp + j0;
                            FC_T *dst = obase + r * pl->OW + j0;
                            if (pl->chk == 2)
                                FN(fc_mk_ch)(6, 2, pp, offs, ntaps, wk, dst, cstride,
                                             (int)fc_min(6, ncols - j0), nch, accum);
                            else
                                FN(fc_mk_ch)(12, 1, pp, offs, ntaps, wk, dst, cstride,
                                             (int)fc_min(12, ncols - j0), nch, accum);
                        }
                    }
                }
                continue;
            }
            for (co = 0; co < pl->Cog; co++) {
                const int64_t oc = g * pl->Cog + co;
                const FC_T *wp0 = Wt + (oc * pl->Cig + c0) * pl->ktot;
                FC_T *obase = Out + (((n * pl->Cout + oc) * pl->OP + op) * pl->OH + oh0) * pl->OW + ow0;
                const FC_T *xb = (const FC_T *)pl->x
                                 + ((n * pl->Cin + g * pl->Cig + c0) * pl->H + oh0 - pl->pH)
                                   * pl->W + ow0 - pl->pW;
                int64_t r0, j0;
                /* 1-D signals: runs of full interior tiles in one fc_row1 call */
                const int row1 = direct && onerow && pl->wdg == NULL && smode != 1;
                for (r0 = 0; r0 < nrows; r0 += R) {
                    const int rows = (int)fc_min(R, nrows - r0);
                    int e = 0;
                    for (j0 = 0; j0 < ncols;) {
                        const int64_t rem = ncols - j0;
                        if (row1 && rem >= 8 * VL && !(e < nedge && ej0[e] == j0)) {
                            int64_t j1 = j0 + 8 * VL;
                            while (ncols - j1 >= 8 * VL && !(e < nedge && ej0[e] == j1))
                                j1 += 8 * VL;
                            FN(fc_row1)(xb + r0 * pl->W + j0, wp0, ntaps,
                                        obase + r0 * pl->OW + j0, j1 - j0, smode);
                            j0 = j1;
                            continue;
                        }
                        const FC_T *pp = panel + r0 * rp + j0;
                        ptrdiff_t srp = rp, scp = pl->ci_pitch;  /* source row / channel pitch */
                        const FC_T *wp = wp0;
                        if (direct) {
                            if (e < nedge && ej0[e] == j0) {
                                pp = panel + eoff[e++] + r0 * rp;
                            } else {
                                pp = xb + r0 * pl->W + j0;
                                srp = pl->W;
                                scp = pl->H * pl->W;
                            }
                        }
                        FC_T *dst = obase + r0 * pl->OW + j0;
                        const int V = (int)fc_tile_vecs(pl, rem);
                        const int cols = (int)fc_min(rem, V * VL);
                        if (R == 4) {
                            if (rowshare) {
                                if (V == 3) FC_MKR_CALL(4, 3);
                                else if (V == 2) FC_MKR_CALL(4, 2);
                                else FC_MKR_CALL(4, 1);
                            } else {
                                if (V == 3) FC_MK_CALL(4, 3);
                                else if (V == 2) FC_MK_CALL(4, 2);
                                else FC_MK_CALL(4, 1);
                            }
                        } else if (pl->wdg != NULL) {
                            FN(fc_mk_diag)(pp, offs, ccur * pl->KP * pl->KH, pl->KW,
                                           (const FC_T *)pl->wdg
                                           + (wp0 - Wt), dst, cols, smode);
                        } else {
                            if (V == 8) FC_MK_CALL(1, 8);
                            else if (V == 4) FC_MK_CALL(1, 4);
                            else if (V == 2) FC_MK_CALL(1, 2);
                            else FC_MK_CALL(1, 1);
                        }
                        j0 += cols;
                    }
                }
            }
        }
    }
#ifdef FC_NT_STORE
    if (pl->ntstore)
        _mm_sfence();
#endif
#if FC_X86 && FC_FLOAT
    _mm_setcsr(csr);
#endif
}

#undef FC_MK_CALL
#undef FC_MKR_CALL
#undef FC_MKR_CALL2
#undef FC_LOADU
#undef FC_STOREU
#undef FC_VL
#undef FN
#undef FC_T
#undef FC_SFX
#undef FC_ATTR
#undef FC_FLOAT
#undef FC_NT_STORE
#undef FC_ISA_VEC
#undef FC_PIN
#undef FC_WSPLAT
#undef FC_SPLAT
#undef FC_ISA_512
