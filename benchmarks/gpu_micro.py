"""A/B of GPU engine variants in one process (needs CuPy and a GPU).

    python benchmarks/gpu_micro.py

For each case, the outputs of the two variants are compared first, then
cupyx.profiler.benchmark's host (cpu) and device (gpu) times are printed:
- GEMM dispatch of the nn GEMM engine: cuBLAS strided-batched (``_cupy._USE_CUBLAS``)
  versus cupy.matmul with broadcast weights;
- fc_depthwise index arithmetic: 32-bit (``_cupy._INDEX32``) versus 64-bit.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    import cupy as cp
    from cupyx.profiler import benchmark

    import fastconv
    import fastconv.nn as fnn
    from fastconv import _cupy

    rs = cp.random.RandomState(0)

    def t(fn):
        r = benchmark(fn, n_repeat=30, n_warmup=3)
        return float(r.cpu_times.mean() * 1e3), float(r.gpu_times.mean() * 1e3)

    def ab(name, flag, fn):
        setattr(_cupy, flag, False)
        ref = fn()
        old = t(fn)
        setattr(_cupy, flag, True)
        new_out = fn()
        new = t(fn)
        err = float(cp.max(cp.abs(new_out - ref)) / (cp.max(cp.abs(ref)) + 1e-30))
        print(f"{name:34} {flag}=False cpu {old[0]:7.3f} gpu {old[1]:7.3f} ms | True cpu "
              f"{new[0]:7.3f} gpu {new[1]:7.3f} ms | rel diff {err:.1e}", flush=True)

    for dt in ("float32", "float64"):
        for name, xs, ws, kw in [
                ("L10 pointwise", (8, 144, 56, 56), (24, 144, 1, 1), {}),
                ("L6 1x1", (8, 256, 56, 56), (64, 256, 1, 1), {}),
                ("L11 grouped 1x1 g3", (8, 240, 28, 28), (240, 80, 1, 1), dict(groups=3)),
                ("L4 VGG 3x3", (1, 256, 56, 56), (256, 256, 3, 3), dict(padding=1)),
                ("L3 5x5 g2", (8, 96, 27, 27), (256, 48, 5, 5), dict(padding=2, groups=2))]:
            x = rs.standard_normal(xs, dtype=dt)
            w = rs.standard_normal(ws, dtype=dt)
            ab(f"{name} {dt}", "_USE_CUBLAS",
               lambda: fnn.conv2d(x, w, algorithm="gemm", **kw))
    for name, xs, ks in [("1d 1e6 k=3", (10**6,), (3,)), ("2d 2048^2 3x3", (2048, 2048), (3, 3)),
                         ("2d 2048^2 5x5", (2048, 2048), (5, 5)),
                         ("3d 128^3 3^3", (128,) * 3, (3,) * 3)]:
        a = rs.standard_normal(xs, dtype="float32")
        k = rs.standard_normal(ks, dtype="float32")
        ab(name, "_INDEX32", lambda: fastconv.convolve(a, k, mode="same", method="direct"))
    x = rs.standard_normal((8, 144, 56, 56), dtype="float32")
    w = rs.standard_normal((144, 1, 3, 3), dtype="float32")
    ab("L9 depthwise", "_INDEX32", lambda: fnn.conv2d(x, w, padding=1, groups=144))
    return 0


if __name__ == "__main__":
    sys.exit(main())
