// fastconv CUDA kernels: common definitions.
//
// Every kernel in fastconv/cuda is written so that the SAME source compiles
//   * with NVRTC (cupy.RawModule) / nvcc for the GPU  -> "device mode", and
//   * with g++ -x c++ plus harness/cuda_shim.h      -> "harness mode" (CPU tests).
// No standard headers are included (NVRTC has none); the harness shim provides what
// g++ needs.
//
// Thread-block phases.  Kernels that use shared memory are written as a sequence of
// phases separated by barriers:
//
//     FC_THREAD_LOOP(tid, nthr) { ...phase 1 work of thread tid... }
//     __syncthreads();
//     FC_THREAD_LOOP(tid, nthr) { ...phase 2 work of thread tid... }
//
// On the GPU FC_THREAD_LOOP runs its body once, with tid = threadIdx.x.  In the harness
// it runs the body for tid = 0 .. nthr-1 one after the other, and __syncthreads() is a
// no-op.  Because every phase only reads what earlier phases wrote (never what other
// threads write in the same phase), running the threads of a block phase by phase is
// exactly equivalent to the parallel execution.  Per-thread state that lives across a
// barrier must therefore be kept in shared memory (indexed by tid), never in a local
// variable.
#ifndef FASTCONV_FC_COMMON_CUH
#define FASTCONV_FC_COMMON_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FC_DEVICE_MODE 1
#define FC_THREAD_LOOP(tid, nthr) \
    for (int tid = (int)threadIdx.x, fc_once_ = 1; fc_once_; fc_once_ = 0)
#define FC_DYN_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#else
#define FC_DEVICE_MODE 0
// fc_shim_begin_phase (harness/cuda_shim.h) returns 0 and records an error when the
// block the kernel assumes (nthr threads) differs from the launched blockDim.x.
#define FC_THREAD_LOOP(tid, nthr) \
    for (int tid = fc_shim_begin_phase((long long)(nthr)); tid < (int)(nthr); ++tid)
#define FC_DYN_SMEM(name) unsigned char* name = fc_shim_dyn_smem
#endif

#define FC_HD __host__ __device__

typedef long long fc_idx;

// Largest block fastconv/_cupy.py launches.  Kernels use <= 255 registers per thread, so
// a block of 256 threads (<= 65536 registers) can always be launched.
#define FC_MAX_THREADS 256

// Complex numbers: a plain struct with the layout of numpy/cupy complex64/complex128
// (re, im), usable in both modes.
template <typename R>
struct alignas(2 * sizeof(R)) fc_complex {
    R re;
    R im;
};

template <typename R>
FC_HD inline fc_complex<R> operator+(fc_complex<R> a, fc_complex<R> b) {
    fc_complex<R> r;
    r.re = a.re + b.re;
    r.im = a.im + b.im;
    return r;
}

template <typename R>
FC_HD inline fc_complex<R> operator*(fc_complex<R> a, fc_complex<R> b) {
    fc_complex<R> r;
    r.re = a.re * b.re - a.im * b.im;
    r.im = a.re * b.im + a.im * b.re;
    return r;
}

// int64 is computed as unsigned long long: same bits, and wrapping modulo 2**64 is
// defined behaviour for unsigned arithmetic (signed overflow is not).

// Layout of the int64 geometry array `g` every convolution kernel receives:
//   g[0] = nd, g[1] = N, g[2] = C_in, g[3] = C_out, g[4] = groups,
//   then six arrays of nd values: S (input spatial), K (kernel), O (output),
//   stride, dilation, pad (zeros before each axis).
//   Kernels for nd == 3 (tiled, depthwise) find their extra parameters after these.
#define FC_G_ND 0
#define FC_G_N 1
#define FC_G_CIN 2
#define FC_G_COUT 3
#define FC_G_GROUPS 4
#define FC_G_ARRAYS 5

// The N-d part of a geometry: pointers to its six arrays and the products the kernels need
// (P output positions, KP kernel taps, SP input positions per image and channel).
struct fc_geom_nd {
    int nd;
    const fc_idx *S, *K, *O, *st, *dl, *pd;
    fc_idx P, KP, SP;
};

FC_HD inline fc_geom_nd fc_read_geom_nd(const fc_idx* __restrict__ g) {
    fc_geom_nd q;
    q.nd = (int)g[FC_G_ND];
    q.S = g + FC_G_ARRAYS;
    q.K = q.S + q.nd;
    q.O = q.K + q.nd;
    q.st = q.O + q.nd;
    q.dl = q.st + q.nd;
    q.pd = q.dl + q.nd;
    q.P = q.KP = q.SP = 1;
    for (int d = 0; d < q.nd; ++d) {
        q.P *= q.O[d];
        q.KP *= q.K[d];
        q.SP *= q.S[d];
    }
    return q;
}

#endif  // FASTCONV_FC_COMMON_CUH
