"""fastconv GPU benchmark: fastconv on CuPy arrays vs cupyx.scipy and torch CUDA.

    python benchmarks/bench_gpu.py [--quick] [--json FILE]
    python -m fastconv bench --only gpu        (calls run(quick) below)

Workloads: the CPU benchmark's, on the device.
- signal: ``fastconv._bench.WORKLOADS`` (1-D n=1e6 k=3..30001, 2-D 2048^2 k=3..63, 3-D 128^3
  k=3..15, 1-D 1e7 * 1000 'full', 2-D correlate 64x64 'valid', separable Gaussian 31x31),
  float32 and float64.  Peers: cupyx.scipy.signal convolve/correlate (method 'auto' where
  cupyx has it for that ndim, else 'direct'), fftconvolve, oaconvolve, convolve2d/correlate2d,
  cupyx.scipy.ndimage.convolve ('same' with odd kernels; the Gaussian as two convolve1d
  passes, like gaussian_filter), and torch CUDA (cuDNN, informational).
- nn: ``fastconv.nn._bench.LAYERS`` (L1-L14), float32, against torch.nn.functional on CUDA
  (cuDNN, TF32 off, cudnn.benchmark on).

Every output is checked before it is timed: signal rows against cupyx.scipy.signal.fftconvolve
of the float64 inputs (tolerance ``fastconv._bench.TOLERANCE``), nn rows against torch CUDA
in float64.  A wrong output is reported as WRONG and not timed.  Each timing: 2 warm-up calls
(kernel compilation, cuFFT plans, cuDNN autotune), then the median of CUDA-event timings
around single calls (the host-side work of each call is inside the events).  ``peak_MiB`` is
the CuPy memory pool's growth over the timed calls.  Without a GPU it prints 'no GPU' and
returns [].
"""
import argparse
import json
import math
import sys
import time

SLOW_S = 1.0            # a call slower than this is timed once (after its warm-up)
DIRECT_MACS_MAX = 1e11  # direct peers above this many multiply-adds are not run


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
    """(median ms, pool growth MiB) of ``fn()`` timed with CUDA events, after 2 warm-ups."""
    pool = cp.get_default_memory_pool()
    t0 = time.perf_counter()
    fn()
    cp.cuda.Device().synchronize()
    if time.perf_counter() - t0 > SLOW_S:
        repeat = 1
    else:
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


def _rel_err(cp, out, ref):
    out = cp.asarray(out)
    if out.shape != ref.shape:
        return math.inf
    scale = float(cp.max(cp.abs(ref))) or 1.0
    err = float(cp.max(cp.abs(out.astype(ref.dtype) - ref))) / scale
    return err if math.isfinite(err) else math.inf


# ----------------------------------------------------------------------------- signal
def _signal_impls(cp, torch, spec):
    """[(name, is_cupyx_peer, fn(x, k))] for one workload; ``k`` as the user passes it."""
    import cupyx.scipy.ndimage as ndi
    import cupyx.scipy.signal as cps

    import fastconv

    nd, mode, corr = len(spec.x_shape), spec.mode, spec.op == "correlate"
    fc = fastconv.correlate if corr else fastconv.convolve
    sp = cps.correlate if corr else cps.convolve

    def flip(k):
        return k[(slice(None, None, -1),) * k.ndim]
    kk = flip if corr else (lambda k: k)          # the convolution kernel of the call
    impls = [("fastconv(auto)", False, lambda x, k: fc(x, k, mode=mode)),
             ("fastconv(fft)", False, lambda x, k: fc(x, k, mode=mode, method="fft"))]
    if spec.macs <= DIRECT_MACS_MAX:
        impls.append(("fastconv(direct)", False,
                      lambda x, k: fc(x, k, mode=mode, method="direct")))
    # cupyx's convolve(method='auto') is 1-D only (NotImplementedError otherwise)
    if nd == 1:
        impls.append(("cupyx.%s(auto)" % sp.__name__, True,
                      lambda x, k: sp(x, k, mode=mode, method="auto")))
    elif spec.macs <= DIRECT_MACS_MAX:
        impls.append(("cupyx.%s(direct)" % sp.__name__, True,
                      lambda x, k: sp(x, k, mode=mode, method="direct")))
    impls += [("cupyx.fftconvolve", True, lambda x, k: cps.fftconvolve(x, kk(k), mode=mode)),
              ("cupyx.oaconvolve", True, lambda x, k: cps.oaconvolve(x, kk(k), mode=mode))]
    if nd == 2 and spec.macs <= DIRECT_MACS_MAX:
        f2 = cps.correlate2d if corr else cps.convolve2d
        impls.append((f"cupyx.{f2.__name__}", True, lambda x, k: f2(x, k, mode=mode)))
    odd_same = mode == "same" and all(n % 2 == 1 for n in spec.k_shape)
    if odd_same and not corr:
        if spec.kernel == "gauss":
            def gauss(x, k):
                # the exact rank-1 factors of the normalised Gaussian outer product
                c = k.sum(axis=1)
                r = k.sum(axis=0)
                r = r / r.sum()
                return ndi.convolve1d(ndi.convolve1d(x, c, axis=0, mode="constant"),
                                      r, axis=1, mode="constant")
            impls.append(("cupyx.ndimage(2x convolve1d)", True, gauss))
        elif spec.macs <= DIRECT_MACS_MAX:
            impls.append(("cupyx.ndimage.convolve", True,
                          lambda x, k: ndi.convolve(x, k, mode="constant")))
    if torch is not None and odd_same and not corr and nd <= 3:
        f = [None, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
             torch.nn.functional.conv3d][nd]

        def torch_same(x, k):
            # cross-correlation in torch: flip to convolve
            ta = torch.as_tensor(x, device="cuda")[None, None]
            tb = torch.as_tensor(flip(k).copy(), device="cuda")[None, None]
            return cp.asarray(f(ta, tb, padding="same")[0, 0])
        impls.append(("torch(cuDNN)", False, torch_same))
    return impls


def _signal_rows(cp, torch, spec, dtype, repeat, log):
    import cupyx.scipy.signal as cps

    from fastconv import _bench

    import fastconv

    x, k = spec.inputs(dtype, seed=0)
    xg, kg = cp.asarray(x), cp.asarray(k)
    kc = kg[(slice(None, None, -1),) * kg.ndim] if spec.op == "correlate" else kg
    ref = cps.fftconvolve(xg.astype(cp.float64), kc.astype(cp.float64), mode=spec.mode)
    method = fastconv.choose_conv_method(xg, kc, mode=spec.mode)
    rows = []
    for name, peer, fn in _signal_impls(cp, torch, spec):
        row = {"section": "signal", "workload": spec.name, "dtype": dtype, "impl": name,
               "peer": peer}
        try:
            out = fn(xg, kg)
            row["err"] = _rel_err(cp, out, ref)
            del out
            if not row["err"] <= _bench.TOLERANCE[dtype]:
                row["ms"] = "WRONG"
            else:
                row["ms"], row["peak_MiB"] = _time(cp, lambda: fn(xg, kg), repeat)
        except Exception as e:  # noqa: BLE001 - one failing impl must not stop the rest
            row["ms"] = f"error: {type(e).__name__}: {str(e)[:80]}"
        if name == "fastconv(auto)":
            row["method"] = method
        rows.append(row)
    cp.get_default_memory_pool().free_all_blocks()
    _print_signal_group(rows, log)
    return rows


def _print_signal_group(rows, log):
    ours = rows[0]
    peers = [r for r in rows if r["peer"] and isinstance(r.get("ms"), float)]
    best = min(peers, key=lambda r: r["ms"]) if peers else None
    if isinstance(ours.get("ms"), float) and best is not None:
        ours["speedup"] = best["ms"] / ours["ms"]
        ours["best_peer"] = best["impl"]
    cells = []
    for r in rows:
        t = r.get("ms")
        cells.append(f"{r['impl']}={t:.3f}" if isinstance(t, float) else f"{r['impl']}={t}")
    sp = f"{ours['speedup']:.2f}x vs {ours['best_peer']}" if "speedup" in ours else "n/a"
    log(f"{ours['workload']:30} {ours['dtype']:8} {ours.get('method', ''):6} {sp}")
    log("    " + "  ".join(cells))


# ----------------------------------------------------------------------------- nn
def _layer_row(cp, torch, layer, log):
    from fastconv.nn import _bench as nb

    name, desc, xs, ws, kw, kind = layer
    rs = cp.random.RandomState(0)
    x = rs.standard_normal(xs, dtype=cp.float32)
    w = rs.standard_normal(ws, dtype=cp.float32) / math.sqrt(math.prod(ws[1:]))
    row = {"section": "nn", "row": name, "layer": desc}
    tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
    tfn = nb._torch_fn(torch, kind, tx, tw, kw)
    with torch.no_grad():
        ref = cp.asarray(nb._torch_fn(torch, kind, tx.double(), tw.double(), kw)())
        try:
            out = nb._fc(kind, x, w, kw)
            row["err"] = _rel_err(cp, out, ref)
            row["macs"] = nb._macs(kind, xs, ws, out.shape, kw)
            del out
            if not row["err"] <= 1e-4:
                row["fastconv_ms"] = "WRONG"
            else:
                row["fastconv_ms"], row["peak_MiB"] = _time(
                    cp, lambda: nb._fc(kind, x, w, kw), 11)
        except Exception as e:  # noqa: BLE001
            row["fastconv_ms"] = f"error: {type(e).__name__}: {str(e)[:80]}"
        row["torch_ms"], _ = _time(cp, tfn, 11)
    del ref
    cp.get_default_memory_pool().free_all_blocks()
    if isinstance(row["fastconv_ms"], float):
        row["speedup"] = row["torch_ms"] / row["fastconv_ms"]
        row["tflops"] = 2 * row["macs"] / row["fastconv_ms"] / 1e9
        log(f"{name:4} {desc:34} {row['fastconv_ms']:9.3f} {row['torch_ms']:9.3f} "
            f"{row['tflops']:8.2f} {row['speedup']:7.2f}x {row['peak_MiB']:8.1f}")
    else:
        log(f"{name:4} {desc:34} {row['fastconv_ms']}  torch {row['torch_ms']:.3f} ms")
    return row


# ----------------------------------------------------------------------------- driver
def summary(rows):
    """The issue's targets as measured: signal speed-up of fastconv(auto) over the fastest
    cupyx.scipy function per row, nn speed-up over torch CUDA per layer."""
    from fastconv._bench import _geomean

    sig = [r for r in rows if r["section"] == "signal" and r["impl"] == "fastconv(auto)"]
    sp = [r["speedup"] for r in sig if "speedup" in r]
    nn = [r for r in rows if r["section"] == "nn"]
    nsp = [r["speedup"] for r in nn if "speedup" in r]
    return {
        "signal_rows": len(sig), "signal_measured": len(sp),
        "signal_geomean": _geomean(sp), "signal_min": min(sp) if sp else float("nan"),
        "signal_below_1": [f"{r['workload']} {r['dtype']} {r['speedup']:.2f}x"
                           for r in sig if r.get("speedup", 0) < 1.0],
        "nn_rows": len(nn), "nn_measured": len(nsp), "nn_geomean": _geomean(nsp),
        "nn_min": min(nsp) if nsp else float("nan"),
        "nn_beyond_1.5x": [f"{r['row']} {r['speedup']:.2f}x" for r in nn
                           if r.get("speedup", 0) < 1 / 1.5],
    }


def run(quick=False, log=print, layers=True, signal=True):
    """Rows (dicts) of the GPU benchmark, printed as they come; [] when there is no GPU."""
    cp, why = _gpu()
    if cp is None:
        log(f"no GPU ({why})")
        return []
    from fastconv import _bench
    from fastconv.nn import _bench as nb

    torch = _torch()
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    dev = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    log(f"device: {dev}; CuPy {cp.__version__}"
        + (f"; torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}, TF32 off)"
           if torch is not None else "; torch CUDA not available"))
    rows = []
    if signal:
        log("signal: fastconv(auto) speed-up over the fastest cupyx.scipy function; "
            "then every impl's median ms")
        for spec in _bench.WORKLOADS:
            for dtype in (("float32",) if quick else ("float32", "float64")):
                try:
                    rows += _signal_rows(cp, torch, spec, dtype, 5 if quick else 11, log)
                except Exception as e:  # noqa: BLE001 - report, go on with the next row
                    log(f"{spec.name} {dtype}: error {type(e).__name__}: {e}")
    if layers and torch is not None:
        log("nn (float32): fastconv ms, torch ms, fastconv TFLOP/s, speed-up over torch, "
            "pool MiB")
        for layer in nb.LAYERS:
            try:
                rows.append(_layer_row(cp, torch, layer, log))
            except Exception as e:  # noqa: BLE001
                log(f"{layer[0]}: error {type(e).__name__}: {e}")
    for r in rows:
        r["device"] = dev
    s = summary(rows)
    log("summary: " + json.dumps(s))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="float32 only, fewer repeats")
    ap.add_argument("--only", choices=["signal", "nn"], help="one section")
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(a.quick, signal=a.only != "nn", layers=a.only != "signal")
    print(f"gpu benchmark wall time: {time.perf_counter() - t0:.0f}s")
    if a.json and rows:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "summary": summary(rows)}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
