"""fastconv GPU benchmark: fastconv on CuPy arrays vs cupyx.scipy and torch CUDA.

    python benchmarks/bench_gpu.py [--quick] [--json FILE]
    python -m fastconv bench --only gpu        (calls run(quick) below)

Workloads (fixed seeds, float32 unless noted): 1-D signal n = 1e6 with kernels 3..30001;
2-D image 2048^2 with kernels 3..63; 3-D volume 128^3 with kernels 3..9; deep-learning
layers (ResNet 3x3, 1x1, depthwise, strided, 3-D).  Competitors: cupyx.scipy.signal
convolve / fftconvolve / oaconvolve / convolve2d, cupyx.scipy.ndimage.convolve, torch CUDA
(cuDNN, TF32 disabled).  Each timing: 2 warm-up calls (kernel compilation, cuFFT plans,
cuDNN autotune), then the median of CUDA-event timings around single calls.  A column
`peak_MiB` gives the CuPy memory pool's growth during the call.  Without a GPU it prints
'no GPU' and exits 0.
"""
import argparse
import functools
import json
import sys
import time


def _gpu():
    """(cupy, None) when a CUDA device is usable, else (None, why)."""
    try:
        import cupy as cp
    except Exception as e:  # noqa: BLE001
        return None, f"CuPy not importable: {type(e).__name__}"
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy sees no CUDA device"
    except Exception as e:  # noqa: BLE001
        return None, f"CUDA: {type(e).__name__}: {e}"
    return cp, None


def _time(cp, fn, repeat):
    pool = cp.get_default_memory_pool()
    for _ in range(2):
        fn()
    cp.cuda.Device().synchronize()
    before = pool.total_bytes()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    times.sort()
    return times[len(times) // 2], (pool.total_bytes() - before) / 2**20


def _torch():
    try:
        import torch
        if not torch.cuda.is_available():
            return None
    except Exception:  # noqa: BLE001
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def _signal_cases(quick):
    n1 = 2**18 if quick else 10**6
    k1 = (3, 301, 30001) if quick else (3, 31, 301, 3001, 30001)
    n2 = 512 if quick else 2048
    k2 = (3, 15, 63) if quick else (3, 7, 15, 31, 63)
    n3 = 64 if quick else 128
    k3 = (3, 9) if quick else (3, 5, 9)
    return ([("1d", (n1,), (k,)) for k in k1] + [("2d", (n2, n2), (k, k)) for k in k2]
            + [("3d", (n3,) * 3, (k,) * 3) for k in k3])


def _signal_impls(cp, torch, ndim):
    import cupyx.scipy.ndimage as ndi
    import cupyx.scipy.signal as cps

    import fastconv

    impls = [
        ("fastconv.convolve(auto)", lambda a, b: fastconv.convolve(a, b, mode="same")),
        ("fastconv.convolve(direct)",
         lambda a, b: fastconv.convolve(a, b, mode="same", method="direct")),
        ("fastconv.fftconvolve", lambda a, b: fastconv.fftconvolve(a, b, mode="same")),
        ("fastconv.oaconvolve", lambda a, b: fastconv.oaconvolve(a, b, mode="same")),
        # cupyx's method='auto' raises NotImplementedError for ndim > 1
        ("cupyx.convolve(auto)" if ndim == 1 else "cupyx.convolve(direct)",
         lambda a, b: cps.convolve(a, b, mode="same",
                                   method="auto" if a.ndim == 1 else "direct")),
        ("cupyx.fftconvolve", lambda a, b: cps.fftconvolve(a, b, mode="same")),
        ("cupyx.oaconvolve", lambda a, b: cps.oaconvolve(a, b, mode="same")),
        ("cupyx.ndimage.convolve",
         lambda a, b: ndi.convolve(a, b, mode="constant")),
    ]
    if ndim == 2:
        impls += [("fastconv.convolve2d", lambda a, b: fastconv.convolve2d(a, b, mode="same")),
                  ("cupyx.convolve2d", lambda a, b: cps.convolve2d(a, b, mode="same"))]
    if torch is not None:
        f = [None, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
             torch.nn.functional.conv3d][ndim]

        def torch_same(a, b):
            ta = torch.as_tensor(a, device="cuda")[None, None]
            tb = torch.as_tensor(b, device="cuda")[None, None]
            return f(ta, tb, padding="same")
        impls.append(("torch (cuDNN)", torch_same))
    return impls


def _layer_cases(quick):
    # (name, N, C_in, C_out, spatial, kernel, stride, padding, groups)
    cases = [
        ("resnet 3x3", 32, 64, 64, (56, 56), (3, 3), 1, 1, 1),
        ("resnet 1x1", 32, 256, 64, (56, 56), (1, 1), 1, 0, 1),
        ("strided 3x3", 32, 128, 256, (28, 28), (3, 3), 2, 1, 1),
        ("depthwise 3x3", 32, 128, 128, (112, 112), (3, 3), 1, 1, 128),
        ("grouped 3x3 g=8", 16, 256, 256, (28, 28), (3, 3), 1, 1, 8),
        ("conv1d k=9", 32, 128, 128, (4096,), (9,), 1, 4, 1),
        ("conv3d 3x3x3", 4, 32, 32, (32, 32, 32), (3, 3, 3), 1, 1, 1),
    ]
    if quick:
        cases = [(n, max(1, b // 4), *rest) for n, b, *rest in cases]
    return cases


def _timed_row(cp, row, fn, repeat):
    try:
        row["ms"], row["peak_MiB"] = _time(cp, fn, repeat)
    except Exception as e:  # noqa: BLE001 - one failing impl must not stop the rest
        row["ms"] = f"error: {type(e).__name__}: {str(e)[:60]}"
    return row


def _signal_rows(cp, torch, rs, kind, shape, kshape, repeat):
    a = rs.standard_normal(shape, dtype=cp.float32)
    b = rs.standard_normal(kshape, dtype=cp.float32)
    rows = []
    for name, fn in _signal_impls(cp, torch, len(shape)):
        row = {"section": "signal", "workload": f"{kind} {shape}*{kshape}", "impl": name}
        big_direct = "direct" in name or "ndimage" in name or name == "cupyx.convolve2d"
        if big_direct and a.size * b.size > 3e11:
            row["ms"] = "skipped (direct too slow)"
            rows.append(row)
        else:
            rows.append(_timed_row(cp, row, functools.partial(fn, a, b), repeat))
    return rows


def _layer_rows(cp, torch, rs, case, repeat):
    import fastconv.nn
    from fastconv import _cupy

    name, n, cin, cout, sp, k, st, p, g = case
    x = rs.standard_normal((n, cin) + sp, dtype=cp.float32)
    w = rs.standard_normal((cout, cin // g) + k, dtype=cp.float32)
    nd = len(sp)
    st_, dl_, p_ = (st,) * nd, (1,) * nd, (p,) * nd
    fconv = getattr(fastconv.nn, f"conv{nd}d")
    impls = [("fastconv.nn", lambda: fconv(x, w, None, st, p, 1, g)),
             ("fastconv gemm engine", lambda: _cupy.gemm_conv(x, w, st_, dl_, p_, g))]
    out = []

    def direct():
        if not out:  # the output buffer, allocated at the first (warm-up) call
            out.append(_cupy.gemm_conv(x, w, st_, dl_, p_, g))
        return _cupy.correlate(x, w, out[0], st_, dl_, p_, g)
    impls.append(("fastconv direct engine", direct))
    if torch is not None:
        tf = getattr(torch.nn.functional, f"conv{nd}d")
        tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
        impls.append(("torch (cuDNN)", lambda: tf(tx, tw, None, st, p, 1, g)))
    return [_timed_row(cp, {"section": "nn", "workload": name, "impl": impl}, fn, repeat)
            for impl, fn in impls]


def run(quick=False):
    """Rows (dicts) of the GPU benchmark; [] when there is no GPU."""
    cp, why = _gpu()
    if cp is None:
        print(f"no GPU ({why})")
        return []
    torch = _torch()
    repeat = 5 if quick else 11
    rs = cp.random.RandomState(0)
    rows = []
    dev = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"]
    dev = dev.decode() if isinstance(dev, bytes) else dev
    for kind, shape, kshape in _signal_cases(quick):
        rows += _signal_rows(cp, torch, rs, kind, shape, kshape, repeat)
    for case in _layer_cases(quick):
        rows += _layer_rows(cp, torch, rs, case, repeat)
    for r in rows:
        r["device"] = dev
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(a.quick)
    if not rows:
        return 0
    keys = ["section", "workload", "impl", "ms", "peak_MiB"]
    widths = [max(len(k), *(len(f"{r.get(k, ''):.4g}" if isinstance(r.get(k), float)
                                else str(r.get(k, ""))) for r in rows)) for k in keys]
    print(f"device: {rows[0]['device']}")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for r in rows:
        cells = [f"{r.get(k, ''):.4g}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                 for k in keys]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print(f"gpu benchmark wall time: {time.perf_counter() - t0:.0f}s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
