// fastconv im2col for the GEMM engine (any number of spatial axes).
//
//   cols[n, c, k, p] = x[n, c, o(p)*stride + k*dilation - pad]   (zero outside x)
//   with k the flat kernel tap and p the flat output position, so that for group gr
//   out[n, gr*Cout_g:(gr+1)*Cout_g, p] = W[gr] (Cout_g, Cin_g*KP) @ cols[n, gr*Cin_g:..., :, p]
// Geometry `g` as in fc_common.cuh (C_out and groups are not read).
#include "fc_common.cuh"

template <typename T>
FC_HD inline T fc_im2col_point(const T* __restrict__ x, const fc_idx* __restrict__ g, fc_idx i) {
    const fc_idx Cin = g[FC_G_CIN];
    const fc_geom_nd q = fc_read_geom_nd(g);
    const int nd = q.nd;
    const fc_idx *S = q.S, *K = q.K, *O = q.O, *st = q.st, *dl = q.dl, *pd = q.pd;
    const fc_idx P = q.P, KP = q.KP, SP = q.SP;
    fc_idx orem = i % P;
    fc_idx r = i / P;
    fc_idx kr = r % KP;
    r /= KP;
    const fc_idx c = r % Cin;
    const fc_idx n = r / Cin;
    fc_idx xoff = 0, mult = 1;
    for (int d = nd - 1; d >= 0; --d) {
        const fc_idx kd = kr % K[d];
        kr /= K[d];
        const fc_idx od = orem % O[d];
        orem /= O[d];
        const fc_idx pos = od * st[d] + kd * dl[d] - pd[d];
        if (pos < 0 || pos >= S[d]) return T();
        xoff += pos * mult;
        mult *= S[d];
    }
    return x[(n * Cin + c) * SP + xoff];
}

template <typename T>
__global__ void fc_im2col(const T* __restrict__ x, T* __restrict__ cols,
                          const fc_idx* __restrict__ g, fc_idx total) {
    const fc_idx step = (fc_idx)gridDim.x * blockDim.x;
    for (fc_idx i = (fc_idx)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step)
        cols[i] = fc_im2col_point<T>(x, g, i);
}

// The adjoint of fc_im2col (col2im), as a gather so that no two threads write one element:
//   x[n, c, s] = sum over taps k of cols[n, c, k, o]  where  o*stride + k*dilation - pad = s
// (taps whose o is not an integer in [0, O) contribute nothing). `x` is (N, C, *S), every
// element written; `pad` may be negative (the first -pad samples of a padded axis are cut).
template <typename T>
__global__ void fc_col2im(const T* __restrict__ cols, T* __restrict__ x,
                          const fc_idx* __restrict__ g, fc_idx total) {
    const fc_geom_nd q = fc_read_geom_nd(g);
    const int nd = q.nd;
    const fc_idx *S = q.S, *K = q.K, *O = q.O, *st = q.st, *dl = q.dl, *pd = q.pd;
    const fc_idx P = q.P, KP = q.KP, SP = q.SP;
    const fc_idx step = (fc_idx)gridDim.x * blockDim.x;
    for (fc_idx i = (fc_idx)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const fc_idx nc = i / SP;               // n * C + c
        const fc_idx srem = i % SP;
        const T* src = cols + nc * KP * P;
        T acc = T();
        for (fc_idx k = 0; k < KP; ++k) {
            fc_idx kr = k, sr = srem, ooff = 0, mult = 1;
            bool hit = true;
            for (int d = nd - 1; d >= 0; --d) {
                const fc_idx kd = kr % K[d];
                kr /= K[d];
                const fc_idx sd = sr % S[d];
                sr /= S[d];
                const fc_idx q = sd + pd[d] - kd * dl[d];   // = o * stride
                if (q < 0 || q % st[d] != 0 || q / st[d] >= O[d]) {
                    hit = false;
                    break;
                }
                ooff += (q / st[d]) * mult;
                mult *= O[d];
            }
            if (hit) acc = acc + src[k * P + ooff];
        }
        x[i] = acc;
    }
}

#ifdef FC_EXPLICIT_INSTANTIATE
#define FC_INST_IM2COL(T) \
    template __global__ void fc_im2col<T>(const T*, T*, const fc_idx*, fc_idx); \
    template __global__ void fc_col2im<T>(const T*, T*, const fc_idx*, fc_idx);
FC_INST_IM2COL(float)
FC_INST_IM2COL(double)
FC_INST_IM2COL(fc_complex<float>)
FC_INST_IM2COL(fc_complex<double>)
FC_INST_IM2COL(unsigned long long)
#endif
