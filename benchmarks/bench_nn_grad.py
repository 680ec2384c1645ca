"""fastconv.nn.grad against torch.nn.grad on the CPU: input and weight gradients of the
benchmark layers L1-L14 (float32, 2 threads, same thread count for both).

Every gradient is checked against torch first (float64 reference), then both are timed in
alternation (median of repeats). Columns: median ms of fastconv and torch and the
speed-up (torch / fastconv) for the input gradient (``conv*d_input``; the transposed layer
L13 is skipped: its gradient is a forward convolution) and the weight gradient
(``conv*d_weight``). Grouped 1x1 + shuffle (L11) is timed as the grouped 1x1 layer.

Run: ``python benchmarks/bench_nn_grad.py [--quick] [--layers L1,L9]``.
"""
import argparse
import math
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastconv  # noqa: E402
import fastconv.nn as fnn  # noqa: E402
import fastconv.nn.grad as G  # noqa: E402
from fastconv.nn._bench import LAYERS, _time_pair  # noqa: E402


def _check(got, want, scale, what):
    err = float(np.abs(np.asarray(got, np.float64) - want).max()) / max(scale, 1e-30)
    if not err < 1e-4:
        raise SystemExit(f"{what}: relative error {err:.2e} against torch")


def run(quick=False, threads=2, layers=None, file=sys.stdout):
    import torch

    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    min_time = 0.2 if quick else 1.0
    print(f"float32, {threads} threads; ms and speed-up (torch / fastconv)", file=file)
    print(f"{'row':4} {'layer':30} {'dX fc':>8} {'dX torch':>9} {'x':>6} "
          f"{'dW fc':>8} {'dW torch':>9} {'x':>6}", file=file)
    rows = []
    for name, desc, xs, ws, kw, kind in LAYERS:
        if layers and name not in layers:
            continue
        if kind == "transpose":
            continue
        nd = len(xs) - 2
        kw = {k: v for k, v in kw.items()}
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        conv = getattr(fnn, f"conv{nd}d")
        y = conv(x, w, **kw)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))
        fin, fwt = getattr(G, f"conv{nd}d_input"), getattr(G, f"conv{nd}d_weight")
        tin = getattr(torch.nn.grad, f"conv{nd}d_input")
        twt = getattr(torch.nn.grad, f"conv{nd}d_weight")
        targs = (kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1),
                 kw.get("groups", 1))
        want_x = tin(tx.shape, tw.double(), tgy.double(), *targs).numpy()
        want_w = twt(tx.double(), tw.shape, tgy.double(), *targs).numpy()
        sx = float(np.abs(want_x).max())
        sw = float(np.abs(want_w).max())
        _check(fin(xs, w, gy, **kw), want_x, sx, f"{name} input gradient")
        _check(fwt(x, ws, gy, **kw), want_w, sw, f"{name} weight gradient")
        fx, tx_ = _time_pair(lambda: fin(xs, w, gy, **kw),
                             lambda: tin(tx.shape, tw, tgy, *targs), min_time, max_reps=100)
        fw, tw_ = _time_pair(lambda: fwt(x, ws, gy, **kw),
                             lambda: twt(tx, tw.shape, tgy, *targs), min_time, max_reps=100)
        rows.append(dict(row=name, layer=desc, dx_ms=fx * 1e3, dx_torch_ms=tx_ * 1e3,
                         dw_ms=fw * 1e3, dw_torch_ms=tw_ * 1e3))
        print(f"{name:4} {desc[:30]:30} {fx * 1e3:8.2f} {tx_ * 1e3:9.2f} {tx_ / fx:5.2f}x "
              f"{fw * 1e3:8.2f} {tw_ * 1e3:9.2f} {tw_ / fw:5.2f}x", file=file, flush=True)
    if rows:
        gx = math.exp(statistics.mean(math.log(r["dx_torch_ms"] / r["dx_ms"]) for r in rows))
        gw = math.exp(statistics.mean(math.log(r["dw_torch_ms"] / r["dw_ms"]) for r in rows))
        print(f"geometric-mean speed-up: input gradient {gx:.2f}x, weight gradient {gw:.2f}x",
              file=file)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", default="", help="comma-separated row names, e.g. L1,L9")
    a = ap.parse_args(argv)
    run(a.quick, a.threads, [s for s in a.layers.split(",") if s] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
