/*
 * fc_cpu.h -- what every compiled kernel of fastconv shares: the CPU and its scratch.
 *
 * FC_X86        1 on x86-64 with a GNU-compatible compiler (AVX2 code can be compiled)
 * FC_ATTR_AVX2  the function attribute that compiles one function for AVX2+FMA
 * fc_cpu_has_avx2_fma()  whether this CPU runs it (run-time dispatch; no -march flags)
 * fc_alloc_aligned(bytes) 64-byte aligned scratch (whole cache lines), or NULL; free() it
 * fc_flag_failure(&failed) record, from inside an OpenMP team, that a thread failed
 *                          (e.g. its scratch could not be allocated)
 * fc_cdiv / fc_rup / fc_min / fc_max  int64 ceil-division, round-up, min, max
 */
#ifndef FASTCONV_FC_CPU_H
#define FASTCONV_FC_CPU_H

#include <stdint.h>
#include <stdlib.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FC_X86 1
#define FC_ATTR_AVX2 __attribute__((target("avx2,fma")))
/* The same 256-bit kernels compiled for AVX-512VL: 32 vector registers and embedded
 * broadcasts of the weights (no 512-bit vectors are written in the source). */
#define FC_ATTR_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))
#else
#define FC_X86 0
#endif

static inline int64_t fc_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t fc_rup(int64_t a, int64_t b) { return fc_cdiv(a, b) * b; }
static inline int64_t fc_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t fc_max(int64_t a, int64_t b) { return a > b ? a : b; }

static int fc_cpu_has_avx2_fma(void)
{
#if FC_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int fc_cpu_has_avx512vl(void)
{
#if FC_X86
    __builtin_cpu_init();
    return fc_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")
           && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
           && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

static void *fc_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0)
        return NULL;
    return p;
}

static inline void fc_flag_failure(int *failed)
{
#if defined(_OPENMP)
#pragma omp atomic write
#endif
    *failed = 1;
}

/* Handing out work items 0 .. items-1 inside an OpenMP parallel region (every thread
 * calls fc_items_begin once, then fc_items_next until it returns -1).
 * ``split``: thread tid owns one contiguous share, [tid*items/nt, (tid+1)*items/nt), and
 * takes its items front to back -- chosen when those shares match the rows of the
 * zero-padded copy that the same thread wrote (fc_cgemm_run splits both alike), so the
 * input stays in the cache of the core that copied it: GoogLeNet 5x5 and a 3x3 / 2 layer
 * (8 images, 2 threads) measured 1.27-1.28x faster than items handed out one at a time.
 * A thread whose share is done takes the remaining items of the other shares (each share
 * hands out its items through its own atomic counter), so a core slowed by other work
 * does not hold up the call. ``counters``: nt * FC_ITEMS_PAD int64 zeros, shared (one
 * cache line per share). Otherwise (dynamic) one item at a time from counters[0]. */
#define FC_ITEMS_PAD 8

typedef struct {
    int64_t items, nt, tid, first;   /* first share that may still have items */
    int64_t *counters;
    int split;
} fc_items;

static inline void fc_items_begin(fc_items *s, int64_t items, int split, int64_t *counters)
{
    s->nt = 1;
    s->tid = 0;
#if defined(_OPENMP)
    s->nt = omp_get_num_threads();
    s->tid = omp_get_thread_num();
#endif
    s->items = items;
    s->split = split;
    s->counters = counters;
    s->first = 0;
}

static inline int64_t fc_items_take(int64_t *counter)
{
    int64_t c;
#if defined(_OPENMP)
#pragma omp atomic capture
#endif
    c = (*counter)++;
    return c;
}

static inline int64_t fc_items_next(fc_items *s)
{
    if (!s->split) {
        const int64_t it = fc_items_take(&s->counters[0]);
        return it < s->items ? it : -1;
    }
    /* own share first (k = 0), then the others in turn */
    for (int64_t k = s->first; k < s->nt; k++) {
        const int64_t sh = (s->tid + k) % s->nt;
        const int64_t lo = s->items * sh / s->nt, hi = s->items * (sh + 1) / s->nt;
        const int64_t c = fc_items_take(&s->counters[sh * FC_ITEMS_PAD]);
        if (lo + c < hi)
            return lo + c;
        s->first = k + 1;
    }
    return -1;
}

#endif /* FASTCONV_FC_CPU_H */
