// CPU harness: the CUDA kernels of fastconv/cuda compiled with g++ and run over the
// whole launch grid, exported with a C ABI for ctypes (see harness.py).
//
// Build: g++ -O2 -shared -fPIC -std=c++14 -x c++ -I fastconv/cuda harness.cpp -o h.so
//
// Every exported function has the signature
//     int fch_<kernel>_<dtype>(const long long* launch, void** ptrs, const long long* ints)
// launch = {grid, block, shared_mem_bytes}; ptrs = the kernel's pointer arguments in order;
// ints = its integer arguments in order.  Returns 0, or -1 when the launch is invalid
// (the limits the GPU enforces: block <= FC_MAX_THREADS (fc_common.cuh), shared
// memory <= 48 KiB without opt-in),
// or -2 when the kernel's block size does not match the launch.
#include <cstdlib>
#include <cstring>

#include "cuda_shim.h"

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
thread_local unsigned char* fc_shim_dyn_smem = nullptr;
thread_local int fc_shim_error = 0;

#include "direct.cu"
#include "im2col.cu"

namespace {

const long long kMaxThreads = FC_MAX_THREADS;  // fc_common.cuh
const long long kMaxSmem = 48 * 1024;

bool set_launch(const long long* L) {
    if (L[0] < 1 || L[0] > 2147483647LL || L[1] < 1 || L[1] > kMaxThreads || L[2] < 0 ||
        L[2] > kMaxSmem)
        return false;
    gridDim = dim3{(unsigned)L[0], 1u, 1u};
    blockDim = dim3{(unsigned)L[1], 1u, 1u};
    return true;
}

// one call per (block, thread): kernels without barriers
template <typename F>
int run_threads(const long long* L, F f) {
    if (!set_launch(L)) return -1;
    for (unsigned b = 0; b < gridDim.x; ++b) {
        blockIdx = dim3{b, 0u, 0u};
        for (unsigned t = 0; t < blockDim.x; ++t) {
            threadIdx = dim3{t, 0u, 0u};
            f();
        }
    }
    return 0;
}

// one call per block: phase-structured kernels (FC_THREAD_LOOP runs the block's threads)
template <typename F>
int run_blocks(const long long* L, F f) {
    if (!set_launch(L)) return -1;
    fc_shim_error = 0;
    // fresh, garbage-filled shared memory of exactly the launch's size (malloc aligns to
    // 16 bytes): a kernel that reads what it never wrote fails the comparison, and one that
    // overruns it is caught by AddressSanitizer (tests build an ASan harness too)
    const size_t bytes = L[2] > 0 ? (size_t)L[2] : 1;
    unsigned char* smem = static_cast<unsigned char*>(malloc(bytes));
    if (!smem) return -3;
    memset(smem, 0xA5, bytes);
    fc_shim_dyn_smem = smem;
    for (unsigned b = 0; b < gridDim.x; ++b) {
        blockIdx = dim3{b, 0u, 0u};
        threadIdx = dim3{0u, 0u, 0u};
        f();
    }
    fc_shim_dyn_smem = nullptr;
    free(smem);
    return fc_shim_error ? -2 : 0;
}

}  // namespace

#define FCH_CONV(KERNEL, RUNNER, T, TAG)                                                 \
    extern "C" int fch_##KERNEL##_##TAG(const long long* L, void** p, const long long* iv) { \
        return RUNNER(L, [&] {                                                          \
            fc_##KERNEL<T>((const T*)p[0], (const T*)p[1], (T*)p[2], (const fc_idx*)p[3], iv[0]); \
        });                                                                             \
    }
#define FCH_IM2COL(T, TAG)                                                             \
    extern "C" int fch_im2col_##TAG(const long long* L, void** p, const long long* iv) { \
        return run_threads(L, [&] {                                                     \
            fc_im2col<T>((const T*)p[0], (T*)p[1], (const fc_idx*)p[2], iv[0]);          \
        });                                                                             \
    }
#define FCH_COL2IM(T, TAG)                                                             \
    extern "C" int fch_col2im_##TAG(const long long* L, void** p, const long long* iv) { \
        return run_threads(L, [&] {                                                     \
            fc_col2im<T>((const T*)p[0], (T*)p[1], (const fc_idx*)p[2], iv[0]);          \
        });                                                                             \
    }
#define FCH_ALL(T, TAG)                         \
    FCH_CONV(corr_nd, run_threads, T, TAG)      \
    FCH_CONV(corr_tiled, run_blocks, T, TAG)    \
    FCH_CONV(depthwise, run_threads, T, TAG)    \
    FCH_IM2COL(T, TAG)                          \
    FCH_COL2IM(T, TAG)

FCH_ALL(float, float32)
FCH_ALL(double, float64)
FCH_ALL(fc_complex<float>, complex64)
FCH_ALL(fc_complex<double>, complex128)
FCH_ALL(unsigned long long, int64)
