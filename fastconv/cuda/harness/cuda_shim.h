// Minimal CUDA shim so fastconv/cuda/*.cu compile with g++ -x c++ (harness mode).
//
// The harness runs a launch on the CPU, one block after another.  For kernels written
// with one thread per output element, harness.cpp calls the __global__ function once per
// (block, thread) with blockIdx/threadIdx set.  For kernels written in barrier-separated
// phases (FC_THREAD_LOOP, see fc_common.cuh) it calls the __global__ function once per
// block: each phase then runs all threads of the block in turn, and __syncthreads() is a
// no-op, which is exactly equivalent because no phase reads what another thread writes in
// the same phase.
#ifndef FASTCONV_CUDA_SHIM_H
#define FASTCONV_CUDA_SHIM_H

struct dim3 {
    unsigned int x, y, z;
};

extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
extern thread_local unsigned char* fc_shim_dyn_smem;  // dynamic shared memory of a launch

#define __host__
#define __device__
#define __global__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
inline void __syncthreads() {}

extern thread_local int fc_shim_error;  // set when a kernel's assumptions do not hold
inline int fc_shim_begin_phase(long long nthr) {
    if (nthr != (long long)blockDim.x) fc_shim_error = 1;
    return 0;
}

#endif  // FASTCONV_CUDA_SHIM_H
