/*
 * cgemm_check.c -- the fused float32 GEMM engine (fastconv/src/fc_cgemm.h and fc_igemm.h)
 * on random geometries against a float64 direct sum, built with AddressSanitizer and
 * UndefinedBehaviorSanitizer by tests/test_sanitizers.py.
 *
 * Random per trial: 1-3 spatial axes, 1-3 images and groups, 1-5 input and 1-40 output
 * channels per group, extents 1-12, kernels 1-4, strides and dilations 1-3, pads 0-6,
 * engine -1/0/1 (auto, packed, implicit), phase -1/0/1, 1-4 OpenMP threads, bias; then
 * the weight gradient of the same geometry (fc_cgemm_wgrad_f32, same engine setting).
 * (The micro-kernels' own loads are inline assembly, which the sanitizers do not see;
 * every address they read is a pixel offset plus a tap offset computed in C.)
 * Usage: cgemm_check [trials] [seed]; prints "bad N" and exits non-zero on a mismatch.
 */
#include "fc_cgemm.h"
#include <stdio.h>
#include <math.h>
static unsigned long long st = 88172645463325252ULL;
static unsigned rnd(void){ st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (unsigned)(st >> 11); }
static int ri(int a, int b){ return a + (int)(rnd() % (unsigned)(b - a + 1)); }
int main(int argc, char **argv){
  int bad = 0, trials = argc > 1 ? atoi(argv[1]) : 1000;
  if (argc > 2) st = strtoull(argv[2], NULL, 10) | 1;
  for (int trial = 0; trial < trials; trial++) {
    fc_cgeom q; memset(&q, 0, sizeof q);
    int nd = ri(1, 3);
    q.N = ri(1, 3); q.G = ri(1, 3); q.Cg = ri(1, 5); q.Cog = ri(1, 40);
    int64_t in[3] = {1,1,1}, k[3] = {1,1,1}, s[3] = {1,1,1}, d[3] = {1,1,1}, p[3] = {0,0,0}, o[3];
    for (int a = 3 - nd; a < 3; a++) { in[a] = ri(1, 12); k[a] = ri(1, 4); s[a] = ri(1, 3); d[a] = ri(1, 3); p[a] = ri(0, 6); }
    int ok = 1;
    for (int a = 0; a < 3; a++) { o[a] = (in[a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) / s[a] + 1; if (in[a] + 2*p[a] - d[a]*(k[a]-1) - 1 < 0) ok = 0; }
    if (!ok) continue;
    q.D = in[0]; q.H = in[1]; q.W = in[2]; q.KD = k[0]; q.KH = k[1]; q.KW = k[2];
    q.OD = o[0]; q.OH = o[1]; q.OW = o[2]; q.sd = s[0]; q.sh = s[1]; q.sw = s[2];
    q.dd = d[0]; q.dh = d[1]; q.dw = d[2]; q.pd = p[0]; q.ph = p[1]; q.pw = p[2];
    int64_t C = q.G * q.Cg, Co = q.G * q.Cog, P = o[0] * o[1] * o[2], KT = k[0] * k[1] * k[2];
    q.x_sn = C * in[0] * in[1] * in[2]; q.o_sn = Co * P; q.o_sg = q.Cog * P; q.o_sm = P;
    q.phase = ri(-1, 1); q.engine = ri(-1, 1);
    size_t nx = q.N * q.x_sn, nw = Co * q.Cg * KT, no = q.N * Co * P;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(Co * 4), *out = malloc(no * 4);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(rnd() % 100) / 50 - 1;
    for (size_t i = 0; i < nw; i++) w[i] = (float)(rnd() % 100) / 50 - 1;
    for (int i = 0; i < Co; i++) b[i] = (float)(rnd() % 100) / 50 - 1;
    int nt = ri(1, 4);
    if (fc_cgemm_f32(&q, x, w, b, out, nt, 0) != 0) { printf("alloc fail\n"); return 1; }
    for (int64_t n = 0; n < q.N; n++) for (int64_t co = 0; co < Co; co++) {
      int64_t g = co / q.Cog;
      for (int64_t a = 0; a < o[0]; a++) for (int64_t bb = 0; bb < o[1]; bb++) for (int64_t e = 0; e < o[2]; e++) {
        double acc = b[co];
        for (int64_t c = 0; c < q.Cg; c++) for (int64_t u = 0; u < k[0]; u++) for (int64_t v = 0; v < k[1]; v++) for (int64_t z = 0; z < k[2]; z++) {
          int64_t id = a * s[0] + u * d[0] - p[0], ih = bb * s[1] + v * d[1] - p[1], iw = e * s[2] + z * d[2] - p[2];
          if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2]) continue;
          acc += (double)w[((co * q.Cg + c) * k[0] + u) * k[1] * k[2] + v * k[2] + z] * x[n * q.x_sn + (g * q.Cg + c) * in[0] * in[1] * in[2] + (id * in[1] + ih) * in[2] + iw];
        }
        float got = out[(n * Co + co) * P + (a * o[1] + bb) * o[2] + e];
        if (fabs(got - acc) > 1e-4 * (1 + fabs(acc)) + 1e-4 * sqrt((double)q.Cg * KT)) { if (bad++ < 5) printf("BAD trial %d: %f vs %f\n", trial, got, acc); }
      }
    }
    /* the weight gradient (both forms; the implicit one slices its reduction when the
     * columns are few): gw[co, c, u, v, z] = sum_{n, o} gy[n, co, o] x[n, g*Cg + c, ...] */
    float *gy = out, *gw = malloc(nw * 4);
    for (size_t i = 0; i < no; i++) gy[i] = (float)(rnd() % 100) / 50 - 1;
    if (fc_cgemm_wgrad_f32(&q, x, gy, gw, nt, 0) != 0) { printf("alloc fail\n"); return 1; }
    for (int64_t co = 0; co < Co; co++) {
      int64_t g = co / q.Cog;
      for (int64_t c = 0; c < q.Cg; c++) for (int64_t u = 0; u < k[0]; u++) for (int64_t v = 0; v < k[1]; v++) for (int64_t z = 0; z < k[2]; z++) {
        double acc = 0;
        for (int64_t n = 0; n < q.N; n++) for (int64_t a = 0; a < o[0]; a++) for (int64_t bb = 0; bb < o[1]; bb++) for (int64_t e = 0; e < o[2]; e++) {
          int64_t id = a * s[0] + u * d[0] - p[0], ih = bb * s[1] + v * d[1] - p[1], iw = e * s[2] + z * d[2] - p[2];
          if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2]) continue;
          acc += (double)gy[(n * Co + co) * P + (a * o[1] + bb) * o[2] + e] * x[n * q.x_sn + (g * q.Cg + c) * in[0] * in[1] * in[2] + (id * in[1] + ih) * in[2] + iw];
        }
        float got = gw[((co * q.Cg + c) * k[0] + u) * k[1] * k[2] + v * k[2] + z];
        if (fabs(got - acc) > 1e-4 * (1 + fabs(acc)) + 1e-4 * sqrt((double)q.N * P)) { if (bad++ < 5) printf("BAD wgrad trial %d: %f vs %f\n", trial, got, acc); }
      }
    }
    free(gw);
    free(x); free(w); free(b); free(out);
  }
  printf("bad %d\n", bad);
  return bad != 0;
}
