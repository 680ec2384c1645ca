/*
 * fc_cpu.h -- what every compiled kernel of fastconv needs to know about the CPU.
 *
 * FC_X86        1 on x86-64 with a GNU-compatible compiler (AVX2 code can be compiled)
 * FC_ATTR_AVX2  the function attribute that compiles one function for AVX2+FMA
 * fc_cpu_has_avx2_fma()  whether this CPU runs it (run-time dispatch; no -march flags)
 */
#ifndef FASTCONV_FC_CPU_H
#define FASTCONV_FC_CPU_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FC_X86 1
#define FC_ATTR_AVX2 __attribute__((target("avx2,fma")))
#else
#define FC_X86 0
#endif

static int fc_cpu_has_avx2_fma(void)
{
#if FC_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#endif /* FASTCONV_FC_CPU_H */
