"""The Winograd engine (``algorithm='winograd'``, fastconv/src/fc_winograd.h) against the
implicit GEMM (``algorithm='gemm'``), the direct kernel and torch.nn.functional on 3x3,
3x3x3 (F(2x2, 3x3), F(2x2x2, 3x3x3)) and 5x5 (F(2x2, 5x5)) layers of common CNNs at batch
1, 2 and 8 (float32, same thread count for every library).

Every output is checked against a float64 torch reference first; then each engine is
timed in alternation with torch (``fastconv.nn._bench._time_pair``: median of blocks,
each block's first call untimed). Columns: median ms of each engine and of torch, the
engine 'auto' takes, and the speed-ups of Winograd over the faster of GEMM and direct and
of 'auto' over torch. The summary prints their geometric means and the rows where 'auto'
is more than 10% slower than the fastest engine.

Run: ``python benchmarks/bench_winograd.py [--quick] [--threads 2]``.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastconv  # noqa: E402
import fastconv.nn as fnn  # noqa: E402
from fastconv.nn import _algorithms  # noqa: E402
from fastconv.nn._bench import _time_pair  # noqa: E402

# (name, channels in, channels out, spatial size, dilation, kernel side, groups); 'same'
# padding
LAYERS = [
    ("ResNet stage 1", 64, 64, (56, 56), 1, 3, 1),
    ("ResNet stage 2", 128, 128, (28, 28), 1, 3, 1),
    ("ResNet stage 3", 256, 256, (14, 14), 1, 3, 1),
    ("ResNet stage 4", 512, 512, (7, 7), 1, 3, 1),
    ("VGG conv3", 256, 256, (56, 56), 1, 3, 1),
    ("VGG conv4", 512, 512, (28, 28), 1, 3, 1),
    ("Inception 3x3", 96, 96, (35, 35), 1, 3, 1),
    ("DeepLab ASPP d6", 256, 256, (64, 64), 6, 3, 1),
    ("DeepLab ASPP d12", 256, 256, (64, 64), 12, 3, 1),
    ("3-D 3x3x3", 64, 64, (8, 28, 28), 1, 3, 1),
    ("AlexNet conv2 5x5", 96, 256, (27, 27), 1, 5, 2),
    ("GoogLeNet 3a 5x5", 16, 32, (28, 28), 1, 5, 1),
    ("GoogLeNet 4a 5x5", 16, 48, (14, 14), 1, 5, 1),
    ("GoogLeNet 5b 5x5", 48, 128, (7, 7), 1, 5, 1),
    ("Inception-v3 5x5", 48, 64, (35, 35), 1, 5, 1),
]


def _conv(x, w, d, g, alg):
    nd = x.ndim - 2
    f = fnn.conv2d if nd == 2 else fnn.conv3d
    return f(x, w, padding=d * (w.shape[-1] // 2), dilation=d, groups=g, algorithm=alg)


def run(quick=False, threads=2, batches=(1, 2, 8), file=sys.stdout):
    import torch

    F = torch.nn.functional
    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    min_time = 0.15 if quick else 0.6
    rows = []
    print(f"float32, {threads} threads; ms (median), 'auto' = the engine fastconv.nn takes",
          file=file)
    print(f"{'layer':18} {'N':>2} {'winograd':>9} {'gemm':>8} {'direct':>8} {'torch':>8} "
          f"{'auto':>9} {'wino/best':>9} {'auto vs torch':>13}", file=file)
    for name, cin, cout, sp, d, k, g in LAYERS:
        for n in batches:
            macs = n * cin * cout // g * math.prod(sp) * k ** len(sp)
            if quick and macs > 4e9:
                continue
            x = rng.standard_normal((n, cin) + sp).astype(np.float32)
            w = (rng.standard_normal((cout, cin // g) + (k,) * len(sp))
                 / math.sqrt(cin // g * k ** len(sp))).astype(np.float32)
            xt, wt = torch.from_numpy(x), torch.from_numpy(w)
            tconv = F.conv2d if len(sp) == 2 else F.conv3d
            kw = dict(padding=d * (k // 2), dilation=d, groups=g)
            ref = tconv(xt.double(), wt.double(), **kw).numpy()
            t = {}
            for alg in ("winograd", "gemm", "direct"):
                got = _conv(x, w, d, g, alg)
                err = float(np.abs(got - ref).max() / np.abs(ref).max())
                if not err < 1e-4:
                    raise SystemExit(f"{name} N={n} {alg}: relative error {err:.2e}")
                t[alg], t_torch = _time_pair(lambda a=alg: _conv(x, w, d, g, a),
                                             lambda: tconv(xt, wt, **kw), min_time)
                t.setdefault("torch", t_torch)
            auto = _algorithms.choose(x.shape, w.shape, sp, (1,) * len(sp), (d,) * len(sp),
                                      g, np.float32)
            best = min(t["gemm"], t["direct"])
            row = dict(layer=name, n=n, **{k: v * 1e3 for k, v in t.items()}, auto=auto,
                       wino_vs_best=best / t["winograd"],
                       auto_vs_torch=t["torch"] / t[auto],
                       auto_vs_fastest=t[auto] / min(t["winograd"], best))
            rows.append(row)
            print(f"{name:18} {n:>2} {row['winograd']:9.3f} {row['gemm']:8.3f} "
                  f"{row['direct']:8.3f} {row['torch']:8.3f} {auto:>9} "
                  f"{row['wino_vs_best']:8.2f}x {row['auto_vs_torch']:12.2f}x", file=file,
                  flush=True)
    if rows:
        def geo(k):
            return math.exp(sum(math.log(r[k]) for r in rows) / len(rows))
        print(f"geo-mean: Winograd over the faster of GEMM and direct {geo('wino_vs_best'):.2f}x;"
              f" 'auto' over torch {geo('auto_vs_torch'):.2f}x", file=file)
        slow = [r for r in rows if r["auto_vs_fastest"] > 1.1]
        print("'auto' > 10% slower than the fastest engine: "
              + (", ".join(f"{r['layer']} N={r['n']} ({r['auto_vs_fastest']:.2f}x)"
                           for r in slow) or "none"), file=file)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter timings, small layers only")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    run(a.quick, a.threads)


if __name__ == "__main__":
    main()
