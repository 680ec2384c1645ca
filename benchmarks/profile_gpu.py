"""Where the time of a fastconv call on CuPy arrays goes: host (Python) versus device.

    python benchmarks/profile_gpu.py [--cprofile]

For a few representative calls (small direct 1-D/2-D/3-D, FFT 2-D, nn layers) prints
cupyx.profiler.benchmark's CPU and GPU times for fastconv and its cupyx / torch peer, and
whether the call synchronises with the device (cupyx.allow_synchronize(False)).  With
``--cprofile``, also the functions with the most own time in 200 calls of each.
Needs CuPy and a GPU.
"""
import cProfile
import io
import os
import pstats
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    import cupy as cp
    import cupyx
    import cupyx.scipy.ndimage as ndi
    import cupyx.scipy.signal as cps
    from cupyx.profiler import benchmark

    import fastconv
    import fastconv.nn as fnn

    rs = cp.random.RandomState(0)
    f32 = cp.float32
    x1, k1 = rs.standard_normal(10**6, dtype=f32), rs.standard_normal(3, dtype=f32)
    x2, k2 = rs.standard_normal((2048, 2048), dtype=f32), rs.standard_normal((5, 5), dtype=f32)
    k63 = rs.standard_normal((63, 63), dtype=f32)
    x3, k3 = rs.standard_normal((128,) * 3, dtype=f32), rs.standard_normal((3,) * 3, dtype=f32)
    xl1, wl1 = rs.standard_normal((64, 1, 32, 32), dtype=f32), rs.standard_normal((6, 1, 5, 5), dtype=f32)
    xl10 = rs.standard_normal((8, 144, 56, 56), dtype=f32)
    wl10 = rs.standard_normal((24, 144, 1, 1), dtype=f32)
    cases = [
        ("1d 1e6 k=3 same", lambda: fastconv.convolve(x1, k1, mode="same"),
         lambda: ndi.convolve(x1, k1, mode="constant")),
        ("1d 1e6 k=3 same direct", lambda: fastconv.convolve(x1, k1, "same", "direct"), None),
        ("2d 2048^2 5x5 same", lambda: fastconv.convolve(x2, k2, mode="same"),
         lambda: ndi.convolve(x2, k2, mode="constant")),
        ("2d 2048^2 5x5 same direct", lambda: fastconv.convolve(x2, k2, "same", "direct"),
         None),
        ("2d 2048^2 63x63 same", lambda: fastconv.convolve(x2, k63, mode="same"),
         lambda: cps.fftconvolve(x2, k63, mode="same")),
        ("3d 128^3 3^3 same", lambda: fastconv.convolve(x3, k3, mode="same"),
         lambda: ndi.convolve(x3, k3, mode="constant")),
        ("nn L1 lenet", lambda: fnn.conv2d(xl1, wl1), None),
        ("nn L10 pointwise", lambda: fnn.conv2d(xl10, wl10), None),
    ]
    for name, ours, peer in cases:
        for who, fn in (("fastconv", ours), ("peer", peer)):
            if fn is None:
                continue
            r = benchmark(fn, n_repeat=50, n_warmup=3)
            cpu = float(r.cpu_times.mean() * 1e3)
            gpu = float(r.gpu_times.mean() * 1e3)
            sync = "no"
            try:
                with cupyx.allow_synchronize(False):
                    fn()
            except Exception as e:  # noqa: BLE001
                sync = f"YES ({type(e).__name__})"
            print(f"{name:24} {who:8} cpu {cpu:8.3f} ms  gpu {gpu:8.3f} ms  syncs: {sync}",
                  flush=True)
        if "--cprofile" in argv:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(200):
                ours()
            cp.cuda.Device().synchronize()
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
            print("\n".join(s.getvalue().splitlines()[6:30]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
