"""Benchmark of the direct engine ``fastconv._core.correlate`` against its peers.

Run:  python benchmarks/bench_core.py [--threads 2] [--repeat 15]

Every case first checks our output against the peer (scipy / OpenCV / PyTorch) and
aborts on a mismatch, then prints the median wall time of both and the ratio
(peer / ours: > 1 means fastconv is faster). All peers run in this process with the
same thread count. Seeds are fixed.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastconv import _core  # noqa: E402
from fastconv._bench import float32_peak  # noqa: E402


def median_time(fn, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def check(name, ours, ref, rtol):
    ours = np.asarray(ours, dtype=np.complex128)
    ref = np.asarray(ref, dtype=np.complex128)
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(ours - ref).max() / scale
    if not err <= rtol:
        raise SystemExit(f"{name}: MISMATCH vs peer, max rel err {err:.3g} > {rtol}")


def row(name, t_ours, peer_name=None, t_peer=None, extra=""):
    s = f"{name:<44s} fastconv {t_ours * 1e3:9.3f} ms"
    if t_peer is not None:
        s += f" | {peer_name:<22s} {t_peer * 1e3:9.3f} ms | ratio {t_peer / t_ours:6.2f}x"
    print(s + (" " + extra if extra else ""), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    nt, rep = args.threads, args.repeat

    import cv2
    import scipy.ndimage
    import scipy.signal
    import torch
    import torch.nn.functional as F

    cv2.setNumThreads(nt)
    torch.set_num_threads(nt)
    rng = np.random.default_rng(12345)
    print(f"fastconv._core: simd={_core.simd_info()} openmp={_core.openmp_enabled()} "
          f"threads={nt} loadavg={os.getloadavg()[0]:.2f} (other load skews timings)")
    peak = float32_peak(3072)
    print(f"float32 peak (numpy matmul 3072^3, fastest repeat): {peak / 1e9:.1f} GFLOP/s")

    # ---- large 2-D single image vs OpenCV filter2D ('same', zero border) ----
    for dt in (np.float32, np.float64):
        img = rng.standard_normal((2048, 2048)).astype(dt)
        for k in (3, 5):
            ker = rng.standard_normal((k, k)).astype(dt)
            x = img.reshape(1, 1, 2048, 2048)
            w = ker.reshape(1, 1, k, k)
            out = np.empty_like(x)
            p = k // 2

            def ours():
                _core.correlate(x, w, out, (1, 1), (1, 1), (p, p), 1, nt)

            def peer():
                return cv2.filter2D(img, -1, ker, borderType=cv2.BORDER_CONSTANT)

            ours()
            check(f"2d {k}x{k}", out[0, 0], peer(), 1e-5 if dt == np.float32 else 1e-12)
            t = median_time(ours, rep)
            tp = median_time(peer, rep)
            extra = ""
            if dt == np.float32:
                flops = 2.0 * k * k * 2048 * 2048
                extra = f"[{flops / t / 1e9:.1f} GFLOP/s = {100 * flops / t / peak:.0f}% of peak]"
            row(f"2d 2048^2 {k}x{k} pad {p} {np.dtype(dt).name}", t, "cv2.filter2D", tp, extra)

    # ---- 1-D, n = 1e6 vs numpy.correlate ('same') ----
    n = 1_000_000
    sig = rng.standard_normal(n).astype(np.float32)
    for k in (3, 31, 301):
        ker = rng.standard_normal(k).astype(np.float32)
        x = sig.reshape(1, 1, n)
        w = ker.reshape(1, 1, k)
        out = np.empty_like(x)
        p = (k - 1) // 2

        def ours():
            _core.correlate(x, w, out, (1,), (1,), (p,), 1, nt)

        def peer():
            return np.correlate(sig, ker, "same")

        ours()
        check(f"1d {k}", out[0, 0], peer(), 1e-4)
        row(f"1d n=1e6 {k} taps float32", median_time(ours, rep), "numpy.correlate",
            median_time(peer, max(3, rep // 3)))

    # ---- 3-D 128^3 vs scipy.ndimage.correlate (constant mode) ----
    vol = rng.standard_normal((128, 128, 128)).astype(np.float32)
    for k in (3, 7):
        ker = rng.standard_normal((k, k, k)).astype(np.float32)
        x = vol.reshape((1, 1) + vol.shape)
        w = ker.reshape((1, 1) + ker.shape)
        out = np.empty_like(x)
        p = k // 2

        def ours():
            _core.correlate(x, w, out, (1, 1, 1), (1, 1, 1), (p, p, p), 1, nt)

        def peer():
            return scipy.ndimage.correlate(vol, ker, mode="constant")

        ours()
        ref = peer()
        check(f"3d {k}", out[0, 0], ref, 1e-4)
        row(f"3d 128^3 {k}^3 float32", median_time(ours, rep), "scipy.ndimage",
            median_time(peer, 3, warmup=0))

    # ---- deep-learning shapes vs torch.nn.functional.conv2d ----
    dl_cases = [
        ("depthwise N8 C144 56^2 3x3 p1 g144", (8, 144, 56, 56), (144, 1, 3, 3), 1, 144),
        ("depthwise x2 N8 C64->128 56^2 3x3 g64", (8, 64, 56, 56), (128, 1, 3, 3), 1, 64),
        ("LeNet conv1 N64 1->6 32^2 5x5", (64, 1, 32, 32), (6, 1, 5, 5), 0, 1),
        ("dense N8 16->32 28^2 5x5 p2", (8, 16, 28, 28), (32, 16, 5, 5), 2, 1),
        ("dense N8 32->64 14^2 3x3 p1", (8, 32, 14, 14), (64, 32, 3, 3), 1, 1),
    ]
    for name, xs, ws, p, g in dl_cases:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        ref = F.conv2d(tx, tw, padding=p, groups=g).numpy()
        out = np.empty(ref.shape, np.float32)

        def ours():
            _core.correlate(x, w, out, (1, 1), (1, 1), (p, p), g, nt)

        def peer():
            with torch.no_grad():
                return F.conv2d(tx, tw, padding=p, groups=g)

        ours()
        check(name, out, ref, 1e-5)
        row(name, median_time(ours, rep), "torch conv2d", median_time(peer, rep))

    # ---- strided / dilated / complex / int64: absolute times only ----
    x = rng.standard_normal((8, 32, 56, 56)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    out = np.empty(ref.shape, np.float32)
    _core.correlate(x, w, out, (2, 2), (1, 1), (1, 1), 1, nt)
    check("stride 2", out, ref, 1e-5)
    row("dense N8 32->32 56^2 3x3 stride 2", median_time(
        lambda: _core.correlate(x, w, out, (2, 2), (1, 1), (1, 1), 1, nt), rep),
        "torch conv2d", median_time(lambda: F.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                                     stride=2, padding=1), rep))
    img = (rng.standard_normal((1, 1, 1024, 1024))
           + 1j * rng.standard_normal((1, 1, 1024, 1024))).astype(np.complex64)
    ker = (rng.standard_normal((1, 1, 3, 3)) + 1j * rng.standard_normal((1, 1, 3, 3))
           ).astype(np.complex64)
    out = np.empty_like(img)
    _core.correlate(img, ker, out, (1, 1), (1, 1), (1, 1), 1, nt)
    check("complex", out[0, 0], scipy.signal.correlate(img[0, 0], ker[0, 0].conj(), "same"),
          1e-5)
    row("2d 1024^2 3x3 complex64", median_time(
        lambda: _core.correlate(img, ker, out, (1, 1), (1, 1), (1, 1), 1, nt), rep),
        "scipy.signal (direct)", median_time(
            lambda: scipy.signal.correlate(img[0, 0], ker[0, 0].conj(), "same", "direct"), 3))


if __name__ == "__main__":
    main()
