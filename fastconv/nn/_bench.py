"""fastconv.nn against torch.nn.functional on the CPU: the layers of classic CNNs (L1-L14).

Every row is checked against torch first, then timed (median of repeats in alternating
blocks, each block's first call untimed -- see :func:`_time_pair`; float32, the same
thread count for both: ``torch.set_num_threads``). Columns: median time, GFLOP/s (2 flops
per multiply-add), % of the float32 peak (a large float32 numpy matmul measured in the same
run), speed-up over torch, peak scratch memory of fastconv (beyond the output: the larger
of tracemalloc's numpy peak and the VmHWM rise, which sees the compiled engines' buffers),
GB/s (compulsory input+weight+output bytes over time) and the engine 'auto' took.

Run: ``python benchmarks/bench_nn.py [--quick]``; ``run(quick)`` returns the rows as dicts
(used by ``python -m fastconv bench``).
"""
import argparse
import math
import statistics
import sys
import time
import tracemalloc

import numpy as np

import fastconv  # noqa: E402
import fastconv.nn as fnn  # noqa: E402

# name, description, input shape, weight shape, kwargs, kind
LAYERS = [
    ("L1", "LeNet-5 conv1", (64, 1, 32, 32), (6, 1, 5, 5), {}, "conv"),
    ("L2", "AlexNet conv1", (8, 3, 227, 227), (96, 3, 11, 11), dict(stride=4), "conv"),
    ("L3", "AlexNet conv2 (groups 2)", (8, 96, 27, 27), (256, 48, 5, 5),
     dict(padding=2, groups=2), "conv"),
    ("L4", "VGG16 conv3_2", (1, 256, 56, 56), (256, 256, 3, 3), dict(padding=1), "conv"),
    ("L5", "ResNet-50 stem", (1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3),
     "conv"),
    ("L6", "ResNet-50 1x1", (8, 256, 56, 56), (64, 256, 1, 1), {}, "conv"),
    ("L7", "3x3 stride 2", (8, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1),
     "conv"),
    ("L8", "GoogLeNet 5x5 branch", (8, 16, 28, 28), (32, 16, 5, 5), dict(padding=2), "conv"),
    ("L9", "MobileNetV2 depthwise", (8, 144, 56, 56), (144, 1, 3, 3),
     dict(padding=1, groups=144), "conv"),
    ("L10", "MobileNetV2 pointwise", (8, 144, 56, 56), (24, 144, 1, 1), {}, "conv"),
    ("L11", "ShuffleNet grouped 1x1 + shuffle", (8, 240, 28, 28), (240, 80, 1, 1),
     dict(groups=3), "shuffle"),
    ("L12", "dilated 3x3 d6", (1, 256, 64, 64), (256, 256, 3, 3), dict(padding=6, dilation=6),
     "conv"),
    ("L13", "transposed 4x4 s2", (8, 256, 16, 16), (256, 128, 4, 4), dict(stride=2, padding=1),
     "transpose"),
    ("L14", "3-D 3x3x3", (1, 64, 16, 56, 56), (64, 64, 3, 3, 3), dict(padding=1), "conv3d"),
]


def _fc(kind, x, w, kw):
    if kind == "conv":
        return fnn.conv2d(x, w, **kw)
    if kind == "conv3d":
        return fnn.conv3d(x, w, **kw)
    if kind == "transpose":
        return fnn.conv_transpose2d(x, w, **kw)
    return fnn.shuffled_group_conv2d(x, w, kw["groups"])


def _torch_fn(torch, kind, x, w, kw):
    F = torch.nn.functional
    if kind == "conv":
        return lambda: F.conv2d(x, w, **kw)
    if kind == "conv3d":
        return lambda: F.conv3d(x, w, **kw)
    if kind == "transpose":
        return lambda: F.conv_transpose2d(x, w, **kw)
    return lambda: F.channel_shuffle(F.conv2d(x, w, **kw), kw["groups"])


#: calls per timed block of :func:`_time_pair`
BLOCK = 5
#: untimed calls before each block, at least one and at least this many seconds
SETTLE_S = 0.02


def _time_pair(fa, fb, min_time, max_reps=200, block=BLOCK, settle=SETTLE_S):
    """Median seconds of ``fa`` and ``fb``, timed in alternating blocks (fair under load).

    Each block is ``block`` timed calls after untimed ones lasting at least ``settle``
    seconds. torch and fastconv each run their own OpenMP runtime, whose worker threads
    spin for milliseconds after a parallel region (libgomp's default spin count); on a
    2-core machine the calls right after a switch share the cores with the other runtime's
    spinning threads. Users call one library at a time, so the switch is not timed.
    (Call-by-call alternation, as before, measured in one process with 2 threads: LeNet
    conv1 ours 0.40 ms vs 0.26-0.27 ms in blocks after one untimed call; VGG conv3_2 ours
    21.9-23.0 vs 21.6-22.0 ms, torch 21.1-21.2 vs 22.2-22.3 ms.)"""
    def settle_then_time(f, acc):
        t_end = time.perf_counter() + settle
        f()
        while time.perf_counter() < t_end:
            f()
        for _ in range(block):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)

    fa(), fb()
    ta, tb = [], []
    t_end = time.perf_counter() + 2 * min_time
    while len(ta) < 5 or (time.perf_counter() < t_end and len(ta) < max_reps):
        settle_then_time(fa, ta)
        settle_then_time(fb, tb)
    return statistics.median(ta), statistics.median(tb)


def _engine(kind, x, w, out, kw):
    """The engine 'auto' takes for the row (fastconv.nn._algorithms' choice), for the
    table: 'winograd' rows do fewer multiplies than the direct sum their GFLOP/s counts."""
    from . import _algorithms
    nd = x.ndim - 2

    def tup(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd
    try:
        if kind == "transpose":
            pad = tup(kw.get("padding", 0))
            return _algorithms.choose_adjoint(x.shape, w.shape, out.shape[2:],
                                              tup(kw.get("stride", 1)), (1,) * nd, pad, 1,
                                              np.float32)
        groups = kw.get("groups", 1)
        return _algorithms.choose(x.shape, w.shape, out.shape[2:], tup(kw.get("stride", 1)),
                                  tup(kw.get("dilation", 1)), groups, np.float32)
    except Exception:  # noqa: BLE001 - a label only
        return "-"


def _macs(kind, xs, ws, out_shape, kw):
    if kind == "transpose":
        # the forward convolution it is the adjoint of: input xs, out-channels ws[1]*g
        return math.prod(xs) * ws[1] * math.prod(ws[2:])
    return math.prod(out_shape) * ws[1] * math.prod(ws[2:])


def peak_gflops(nthreads, quick=False):
    """float32 peak estimate in GFLOP/s: :func:`fastconv._bench.float32_peak` (the fastest
    repeat of a large numpy matmul, as the signal benchmark measures it) on a 1536^2
    (quick) or 2048^2 matrix."""
    from .._bench import float32_peak
    return float32_peak(1536 if quick else 2048) / 1e9


def _scratch(fn, out_bytes):
    """Peak scratch of one call beyond its output: the larger of what NumPy allocated
    (tracemalloc) and the rise of the resident set (VmHWM, which also sees the compiled
    engines' own buffers, e.g. the fused GEMM's padded copy and packed panels). Measured
    with fastconv's result pool off, so the output is a fresh allocation in both (a pooled
    one would not show, and subtracting its size would hide as much scratch)."""
    from .. import _pool
    from .._bench import PeakMemory
    saved = _pool.POOL_BYTES
    _pool.POOL_BYTES = 0
    try:
        tracemalloc.start()
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with PeakMemory() as pm:
            fn()
        rss = (pm.peak or 0)
    finally:
        _pool.POOL_BYTES = saved
    return max(0, peak - out_bytes, rss - out_bytes)


def run(quick=False, threads=2, layers=None, file=sys.stdout):
    """Run the benchmark; return one dict per layer (and print the table to ``file``)."""
    import torch

    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)
    from .. import _fft
    _fft.wait_measurements(60.0)   # no FFTW re-plan left from the signal rows beside these
    peak = peak_gflops(threads, quick)
    rng = np.random.default_rng(0)
    rows = []
    min_time = 0.2 if quick else 1.0
    if file is not None:
        print(f"float32, {threads} threads, peak (numpy sgemm) {peak:.1f} GFLOP/s", file=file)
        print(f"{'row':4} {'layer':34} {'fastconv ms':>11} {'torch ms':>9} {'GFLOP/s':>8} "
              f"{'%peak':>6} {'speedup':>8} {'scratch MiB':>11} {'GB/s':>6} engine",
              file=file)
    for name, desc, xs, ws, kw, kind in LAYERS:
        if layers and name not in layers:
            continue
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal(ws) / math.sqrt(math.prod(ws[1:]))).astype(np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        tfn = _torch_fn(torch, kind, xt, wt, kw)
        with torch.no_grad():
            ref = tfn().numpy()
        got = _fc(kind, x, w, kw)
        err = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-30))
        if got.shape != ref.shape or not err < 1e-4:
            raise AssertionError(f"{name}: fastconv differs from torch (rel err {err:.2e})")
        with torch.no_grad():
            def ours(kind=kind, x=x, w=w, kw=kw):
                return _fc(kind, x, w, kw)
            t_fc, t_t = _time_pair(ours, tfn, min_time)
        macs = _macs(kind, xs, ws, got.shape, kw)
        gflops = 2 * macs / t_fc / 1e9
        scratch = _scratch(ours, got.nbytes)
        nbytes = x.nbytes + w.nbytes + got.nbytes
        row = dict(row=name, layer=desc, fastconv_ms=t_fc * 1e3, torch_ms=t_t * 1e3,
                   gflops=gflops, pct_peak=100 * gflops / peak, speedup=t_t / t_fc,
                   scratch_mib=scratch / 2 ** 20, gbps=nbytes / t_fc / 1e9, rel_err=err,
                   peak_gflops=peak, threads=threads, engine=_engine(kind, x, w, got, kw))
        rows.append(row)
        if file is not None:
            print(f"{name:4} {desc:34} {row['fastconv_ms']:11.3f} {row['torch_ms']:9.3f} "
                  f"{gflops:8.1f} {row['pct_peak']:6.1f} {row['speedup']:7.2f}x "
                  f"{row['scratch_mib']:11.1f} {row['gbps']:6.1f} {row['engine']}", file=file,
                  flush=True)
    if file is not None and rows:
        gm = math.exp(sum(math.log(r["speedup"]) for r in rows) / len(rows))
        worst = min(rows, key=lambda r: r["speedup"])
        print(f"geometric-mean speed-up {gm:.2f}x; lowest {worst['row']} "
              f"{worst['speedup']:.2f}x", file=file)
        if any(r["engine"] == "winograd" for r in rows):
            print("GFLOP/s and %peak count the direct sum's multiply-adds; 'winograd' rows "
                  "do 2.25x (3x3x3: 3.4x, 5x5: 2.8x) fewer multiplies, so they can pass the peak",
                  file=file)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter timings")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", nargs="*", help="rows to run, e.g. L1 L9")
    a = p.parse_args(argv)
    run(a.quick, a.threads, a.layers)


if __name__ == "__main__":
    main()
