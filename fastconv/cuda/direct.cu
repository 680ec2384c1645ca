// fastconv direct correlation kernels (see docs/internals.md for the contract):
//
//   out[n, co, o] = sum_{ci < C_in/groups} sum_k
//                   x[n, g*C_in/groups + ci, o*stride + k*dilation - pad] * w[co, ci, k]
//   with g = co // (C_out // groups) and x outside [0, S) read as zero.
//
// Kernels (T = float, double, fc_complex<float>, fc_complex<double>, unsigned long long):
//   fc_corr_nd<T>     any number of spatial axes, one thread per output element.
//   fc_corr_tiled<T>  3 spatial axes (1-D and 2-D are passed with leading unit axes):
//                     one block per (n, output-channel chunk, spatial tile); the input
//                     patch the tile needs is staged in shared memory, a chunk of input
//                     channels at a time, and each thread accumulates up to FC_RW outputs
//                     along W for up to FC_COB output channels from it.
//   fc_depthwise<T>   3 spatial axes, C_in/groups == 1 (depthwise, channel multiplier):
//                     one thread per output element, no reduction over channels.
#include "fc_common.cuh"

#define FC_COB 4  // most output channels one thread of fc_corr_tiled accumulates

// ---------------------------------------------------------------------------------------
// N-D generic: one output element
template <typename T>
FC_HD inline T fc_corr_nd_point(const T* __restrict__ x, const T* __restrict__ w,
                                const fc_idx* __restrict__ g, fc_idx i) {
    const fc_idx Cin = g[FC_G_CIN], Cout = g[FC_G_COUT], G = g[FC_G_GROUPS];
    const fc_geom_nd q = fc_read_geom_nd(g);
    const int nd = q.nd;
    const fc_idx *S = q.S, *K = q.K, *O = q.O, *st = q.st, *dl = q.dl, *pd = q.pd;
    const fc_idx P = q.P, KP = q.KP, SP = q.SP;
    const fc_idx op = i % P;
    const fc_idx t = i / P;
    const fc_idx co = t % Cout;
    const fc_idx n = t / Cout;
    const fc_idx cin_g = Cin / G;
    const fc_idx grp = co / (Cout / G);
    const T* xb = x + (n * Cin + grp * cin_g) * SP;
    const T* wb = w + co * cin_g * KP;
    T acc = T();
    for (fc_idx kf = 0; kf < KP; ++kf) {
        fc_idx xoff = 0, mult = 1, kr = kf, orem = op;
        bool inside = true;
        for (int d = nd - 1; d >= 0; --d) {
            const fc_idx kd = kr % K[d];
            kr /= K[d];
            const fc_idx od = orem % O[d];
            orem /= O[d];
            const fc_idx pos = od * st[d] + kd * dl[d] - pd[d];
            if (pos < 0 || pos >= S[d]) {
                inside = false;
                break;
            }
            xoff += pos * mult;
            mult *= S[d];
        }
        if (!inside) continue;
        const T* xp = xb + xoff;
        const T* wp = wb + kf;
        for (fc_idx ci = 0; ci < cin_g; ++ci) acc = acc + xp[ci * SP] * wp[ci * KP];
    }
    return acc;
}

template <typename T>
__global__ void fc_corr_nd(const T* __restrict__ x, const T* __restrict__ w,
                           T* __restrict__ out, const fc_idx* __restrict__ g, fc_idx total) {
    const fc_idx step = (fc_idx)gridDim.x * blockDim.x;
    for (fc_idx i = (fc_idx)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step)
        out[i] = fc_corr_nd_point<T>(x, w, g, i);
}

// ---------------------------------------------------------------------------------------
// Tiled 3-D.  Extra geometry after the nd == 3 arrays (index FC_G_ARRAYS + 18):
#define FC_T_TILE 23     // TD, TH, TW     threads per block = TD*TH*TW
#define FC_T_COB 26      // cob            output channels per block (<= FC_COB)
#define FC_T_CIC 27      // cic            input channels staged per phase
#define FC_T_EXT 28      // ED, EH, EW     staged patch extent (T-1)*stride + (K-1)*dil + 1
#define FC_T_NTILE 31    // nTD, nTH, nTW  tiles per axis
#define FC_T_NCOG 34     // nCOg           output-channel chunks per group
#define FC_T_RW 35       // rw             outputs per thread along W (<= FC_RW)
// A block's output tile is TD x TH x (TW*rw): thread (ld, lh, lw) computes the outputs
// (ld, lh, lw + r*TW) for r < rw, for each of the block's cob output channels (register
// blocking: every staged input value and every weight read serves several outputs).
// Dynamic shared memory: cic*ED*EH*EW values (patch) then cob*rw*TD*TH*TW values (sums).
#define FC_RW 4

template <typename T>
__device__ inline void fc_corr_tiled_block(const T* __restrict__ x, const T* __restrict__ w,
                                           T* __restrict__ out, const fc_idx* __restrict__ g,
                                           fc_idx b, T* patch, T* sums) {
    const fc_idx Cin = g[FC_G_CIN], Cout = g[FC_G_COUT], G = g[FC_G_GROUPS];
    const fc_idx* S = g + FC_G_ARRAYS;
    const fc_idx* K = S + 3;
    const fc_idx* O = K + 3;
    const fc_idx* st = O + 3;
    const fc_idx* dl = st + 3;
    const fc_idx* pd = dl + 3;
    const fc_idx TD = g[FC_T_TILE], TH = g[FC_T_TILE + 1], TW = g[FC_T_TILE + 2];
    const int nthr = (int)(TD * TH * TW);
    const fc_idx cob = g[FC_T_COB], cic = g[FC_T_CIC], rw = g[FC_T_RW];
    const fc_idx ED = g[FC_T_EXT], EH = g[FC_T_EXT + 1], EW = g[FC_T_EXT + 2];
    const fc_idx EP = ED * EH * EW;
    const fc_idx nTD = g[FC_T_NTILE], nTH = g[FC_T_NTILE + 1], nTW = g[FC_T_NTILE + 2];
    const fc_idx nCOg = g[FC_T_NCOG];
    const fc_idx cin_g = Cin / G, cout_g = Cout / G;
    const fc_idx KV = K[0] * K[1] * K[2];
    const fc_idx SV = S[0] * S[1] * S[2];
    const fc_idx OV = O[0] * O[1] * O[2];
    const fc_idx nsum = cob * rw;  // sums per thread

    // block -> (n, output-channel chunk, tile); the tile index varies fastest
    fc_idx r = b;
    const fc_idx tw = r % nTW; r /= nTW;
    const fc_idx th = r % nTH; r /= nTH;
    const fc_idx td = r % nTD; r /= nTD;
    const fc_idx chunk = r % (G * nCOg);
    const fc_idx n = r / (G * nCOg);
    const fc_idx grp = chunk / nCOg;
    const fc_idx co0 = grp * cout_g + (chunk % nCOg) * cob;
    fc_idx nco = (grp + 1) * cout_g - co0;
    if (nco > cob) nco = cob;
    const fc_idx od0 = td * TD, oh0 = th * TH, ow0 = tw * TW * rw;
    const fc_idx id0 = od0 * st[0] - pd[0], ih0 = oh0 * st[1] - pd[1], iw0 = ow0 * st[2] - pd[2];

    FC_THREAD_LOOP(tid, nthr) {
        for (fc_idx q = 0; q < nsum; ++q) sums[q * nthr + tid] = T();
    }
    for (fc_idx ci0 = 0; ci0 < cin_g; ci0 += cic) {
        const fc_idx ncic = (cin_g - ci0 < cic) ? cin_g - ci0 : cic;
        // phase 1: stage channels ci0 .. ci0+ncic-1 of the patch (zeros outside x)
        FC_THREAD_LOOP(tid, nthr) {
            const T* xc = x + (n * Cin + grp * cin_g + ci0) * SV;
            for (fc_idx e = tid; e < ncic * EP; e += nthr) {
                const fc_idx c = e / EP;
                const fc_idx q = e % EP;
                const fc_idx ew = q % EW;
                const fc_idx eh = (q / EW) % EH;
                const fc_idx ed = q / (EW * EH);
                const fc_idx id = id0 + ed, ih = ih0 + eh, iw = iw0 + ew;
                T v = T();
                if (id >= 0 && id < S[0] && ih >= 0 && ih < S[1] && iw >= 0 && iw < S[2])
                    v = xc[c * SV + (id * S[1] + ih) * S[2] + iw];
                patch[e] = v;
            }
        }
        __syncthreads();
        // phase 2: every thread correlates its rw output points with the staged channels
        FC_THREAD_LOOP(tid, nthr) {
            const fc_idx lw = tid % TW, lh = (tid / TW) % TH, ld = tid / (TW * TH);
            if (od0 + ld < O[0] && oh0 + lh < O[1] && ow0 + lw < O[2]) {
                T s[FC_COB][FC_RW];
#pragma unroll
                for (int c = 0; c < FC_COB; ++c)
#pragma unroll
                    for (int q = 0; q < FC_RW; ++q) s[c][q] = T();
                const fc_idx wstep = cin_g * KV;  // weight stride between output channels
                const fc_idx pstep = TW * st[2];  // patch stride between a thread's outputs
                for (fc_idx c = 0; c < ncic; ++c) {
                    const T* pc = patch + c * EP;
                    const T* wc = w + (co0 * cin_g + ci0 + c) * KV;
                    for (fc_idx kd = 0; kd < K[0]; ++kd) {
                        for (fc_idx kh = 0; kh < K[1]; ++kh) {
                            const T* prow =
                                pc + ((ld * st[0] + kd * dl[0]) * EH + lh * st[1] + kh * dl[1]) * EW +
                                lw * st[2];
                            const T* wrow = wc + (kd * K[1] + kh) * K[2];
                            for (fc_idx kw = 0; kw < K[2]; ++kw) {
                                T wv[FC_COB];
#pragma unroll
                                for (int cc = 0; cc < FC_COB; ++cc)
                                    wv[cc] = (cc < nco) ? wrow[cc * wstep + kw] : T();
                                const T* pk = prow + kw * dl[2];
#pragma unroll
                                for (int q = 0; q < FC_RW; ++q) {
                                    if (q < rw) {
                                        const T pv = pk[q * pstep];
#pragma unroll
                                        for (int cc = 0; cc < FC_COB; ++cc)
                                            s[cc][q] = s[cc][q] + pv * wv[cc];
                                    }
                                }
                            }
                        }
                    }
                }
                for (int c = 0; c < FC_COB; ++c)
                    for (int q = 0; q < FC_RW; ++q)
                        if (c < nco && q < rw)
                            sums[(c * rw + q) * nthr + tid] = sums[(c * rw + q) * nthr + tid] + s[c][q];
            }
        }
        __syncthreads();
    }
    // phase 3: write the tile
    FC_THREAD_LOOP(tid, nthr) {
        const fc_idx lw = tid % TW, lh = (tid / TW) % TH, ld = tid / (TW * TH);
        const fc_idx od = od0 + ld, oh = oh0 + lh;
        if (od < O[0] && oh < O[1]) {
            for (fc_idx q = 0; q < rw; ++q) {
                const fc_idx ow = ow0 + lw + q * TW;
                if (ow >= O[2]) break;
                for (fc_idx c = 0; c < nco; ++c)
                    out[(n * Cout + co0 + c) * OV + (od * O[1] + oh) * O[2] + ow] =
                        sums[(c * rw + q) * nthr + tid];
            }
        }
    }
    __syncthreads();  // the next block of the block-stride loop reuses shared memory
}

template <typename T>
__global__ void fc_corr_tiled(const T* __restrict__ x, const T* __restrict__ w,
                              T* __restrict__ out, const fc_idx* __restrict__ g, fc_idx nblocks) {
    FC_DYN_SMEM(fc_smem);
    const fc_idx EP = g[FC_T_EXT] * g[FC_T_EXT + 1] * g[FC_T_EXT + 2];
    T* patch = reinterpret_cast<T*>(fc_smem);
    T* sums = patch + g[FC_T_CIC] * EP;
    for (fc_idx b = blockIdx.x; b < nblocks; b += gridDim.x)
        fc_corr_tiled_block<T>(x, w, out, g, b, patch, sums);
}

// ---------------------------------------------------------------------------------------
// Depthwise 3-D (C_in/groups == 1): one output element, reads x through the cache.
// Geometry: the nd == 3 arrays, then g[FC_D_INDEX32]: 1 when every offset and index fits
// in 32-bit ints (fastconv/_cupy.py checks the sizes), and the index arithmetic (a chain of
// divisions per output, the bounds tests per tap) then runs in 32 bits, several times
// cheaper than 64-bit integer division on the GPU.
#define FC_D_INDEX32 23
template <typename T, typename I>
FC_HD inline T fc_depthwise_point(const T* __restrict__ x, const T* __restrict__ w,
                                  const fc_idx* __restrict__ g, I i) {
    const I Cin = (I)g[FC_G_CIN], Cout = (I)g[FC_G_COUT], G = (I)g[FC_G_GROUPS];
    const fc_idx* g3 = g + FC_G_ARRAYS;
    const I S0 = (I)g3[0], S1 = (I)g3[1], S2 = (I)g3[2];
    const I K0 = (I)g3[3], K1 = (I)g3[4], K2 = (I)g3[5];
    const I O0 = (I)g3[6], O1 = (I)g3[7], O2 = (I)g3[8];
    const I st0 = (I)g3[9], st1 = (I)g3[10], st2 = (I)g3[11];
    const I dl0 = (I)g3[12], dl1 = (I)g3[13], dl2 = (I)g3[14];
    const I pd0 = (I)g3[15], pd1 = (I)g3[16], pd2 = (I)g3[17];
    const I ow = i % O2;
    I r = i / O2;
    const I oh = r % O1; r /= O1;
    const I od = r % O0; r /= O0;
    const I co = r % Cout;
    const I n = r / Cout;
    const I ci = co / (Cout / G);  // C_in / groups == 1: group index == input channel
    const T* xc = x + (n * Cin + ci) * S0 * S1 * S2;
    const T* wc = w + co * K0 * K1 * K2;
    const I iw0 = ow * st2 - pd2;
    T acc = T();
    for (I kd = 0; kd < K0; ++kd) {
        const I id = od * st0 + kd * dl0 - pd0;
        if (id < 0 || id >= S0) continue;
        for (I kh = 0; kh < K1; ++kh) {
            const I ih = oh * st1 + kh * dl1 - pd1;
            if (ih < 0 || ih >= S1) continue;
            const T* xrow = xc + (id * S1 + ih) * S2;
            const T* wrow = wc + (kd * K1 + kh) * K2;
            for (I kw = 0; kw < K2; ++kw) {
                const I iw = iw0 + kw * dl2;
                if (iw >= 0 && iw < S2) acc = acc + xrow[iw] * wrow[kw];
            }
        }
    }
    return acc;
}

template <typename T>
__global__ void fc_depthwise(const T* __restrict__ x, const T* __restrict__ w,
                             T* __restrict__ out, const fc_idx* __restrict__ g, fc_idx total) {
    const fc_idx step = (fc_idx)gridDim.x * blockDim.x;
    const fc_idx i0 = (fc_idx)blockIdx.x * blockDim.x + threadIdx.x;
    if (g[FC_D_INDEX32]) {
        for (fc_idx i = i0; i < total; i += step)
            out[i] = fc_depthwise_point<T, int>(x, w, g, (int)i);
    } else {
        for (fc_idx i = i0; i < total; i += step)
            out[i] = fc_depthwise_point<T, fc_idx>(x, w, g, i);
    }
}

#ifdef FC_EXPLICIT_INSTANTIATE  // for the nvcc compile test; NVRTC uses name expressions
#define FC_INST_DIRECT(T)                                                                 \
    template __global__ void fc_corr_nd<T>(const T*, const T*, T*, const fc_idx*, fc_idx); \
    template __global__ void fc_corr_tiled<T>(const T*, const T*, T*, const fc_idx*, fc_idx); \
    template __global__ void fc_depthwise<T>(const T*, const T*, T*, const fc_idx*, fc_idx);
FC_INST_DIRECT(float)
FC_INST_DIRECT(double)
FC_INST_DIRECT(fc_complex<float>)
FC_INST_DIRECT(fc_complex<double>)
FC_INST_DIRECT(unsigned long long)
#endif
