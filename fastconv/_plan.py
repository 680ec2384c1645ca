"""The cost model: predicted seconds of each engine, its calibration, and the choice.

Each engine's time is modelled as a few features times per-machine constants:

* direct     : ``macs * direct_s_per_mac[dtype] * rel[ndim] / threads + bytes * mem_s_per_byte
  + overhead``, where ``rel`` is 1 for 2-D problems and ``direct_rel_1d`` /
  ``direct_rel_3d`` for 1-D / 3-D and more (the register tiles reuse loads less there)
* FFT        : ``fft_flops(padded shape) * fft_s_per_flop[dtype] / threads + bytes * mem + overhead``
* overlap-add: the FFT model applied to its block plan (``_fft.oa_plan``)
* separable  : the direct model with ``sum(kernel lengths)`` taps instead of ``prod``
* GEMM (nn)  : ``macs * gemm_s_per_mac[dtype] / threads + im2col bytes * mem``

The constants are per thread. Built-in defaults were measured on a 2-core AVX2 machine;
``fastconv.tune()`` (``python -m fastconv tune``) re-measures them on the running machine in
well under a minute and stores them in ``get_cache_dir()/tune.json``, which later processes
load. Nothing here knows scipy or PyTorch conventions: fronts pass plain features.
"""
import json
import math
import os
import threading
import time

import numpy as np

from ._config import get_cache_dir, get_num_threads

__all__ = ["constants", "tune", "predict_signal", "choose_signal_method"]

#: Per-thread constants (seconds per unit), measured by ``tune()`` on a quiet 2-core AVX2+FMA
#: machine (AMD EPYC, 2 threads) on 2026-11-23.
DEFAULTS = {
    "direct_s_per_mac_float32": 3.2e-11,
    "direct_s_per_mac_float64": 6.2e-11,
    "direct_s_per_mac_int64": 3.7e-10,
    "gemm_s_per_mac_float32": 3.0e-11,
    "gemm_s_per_mac_float64": 6.2e-11,
    "fft_s_per_flop": 1.9e-10,
    "fft_s_per_flop_float32": 1.7e-10,
    "mem_s_per_byte": 1.1e-10,
    "call_overhead_s": 2.0e-5,
    # cost per MAC of 1-D and of 3-D (and higher) direct problems relative to 2-D ones
    # (measured, 2 threads: 1-D n=2**20 k=101 with the diagonal kernel (>= 24 taps; below
    # that direct wins against any FFT anyway) 3.1-3.2e-11 s/MAC, i.e. 1.0x; 3-D 64^3
    # and 128^3 k=3^3..9^3 1.5-2x)
    "direct_rel_1d": 1.0,
    "direct_rel_3d": 1.6,
}

_lock = threading.Lock()
_loaded = None
#: memoised choices of choose_signal_method: the model is deterministic per shape
_choice_cache = {}


def _tune_path():
    return os.path.join(get_cache_dir(), "tune.json")


def constants():
    """The cost-model constants in force (tuned ones if ``fastconv.tune()`` ran here)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                c = dict(DEFAULTS)
                try:
                    with open(_tune_path()) as f:
                        tuned = json.load(f)
                    c.update({k: float(v) for k, v in tuned.get("constants", {}).items()
                              if k in DEFAULTS and float(v) > 0})
                except (OSError, ValueError, TypeError, AttributeError):
                    pass
                _loaded = c
    return _loaded


def _reset():
    """Forget loaded constants (tests; after tune)."""
    global _loaded, _gpu_loaded
    with _lock:
        _loaded = None
        _gpu_loaded = None
        _choice_cache.clear()


_gpu_loaded = None


def gpu_constants():
    """Constants of the same model for CuPy arrays (GPU engines), in the CPU model's keys.

    ``_cupy.default_constants()`` gives estimates for a data-center GPU; ``tune()`` on a
    machine with a GPU stores measured ones (``"gpu"`` in tune.json). The GPU's parallelism
    is folded into the constants, so GPU predictions are made with ``nthreads=1``.
    """
    global _gpu_loaded
    if _gpu_loaded is None:
        from . import _cupy
        g = dict(_cupy.default_constants())
        try:
            with open(_tune_path()) as f:
                tuned = json.load(f).get("gpu", {})
            g.update({k[4:]: float(v) for k, v in tuned.items()
                      if k.startswith("gpu_") and k[4:] in g and float(v) > 0})
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        # the FFT constant is per n*log2(n) of one transform; ours counts 7.5 n log2 n flops
        per_flop = g["fft_s_per_flop"] / 7.5
        _gpu_loaded = {
            "direct_s_per_mac_float32": g["direct_s_per_mac"],
            "direct_s_per_mac_float64": 2 * g["direct_s_per_mac"],
            "direct_s_per_mac_int64": 2 * g["direct_s_per_mac"],
            "gemm_s_per_mac_float32": g["gemm_s_per_mac"],
            "gemm_s_per_mac_float64": 2 * g["gemm_s_per_mac"],
            "fft_s_per_flop": 2 * per_flop,
            "fft_s_per_flop_float32": per_flop,
            "mem_s_per_byte": 5e-13,
            "call_overhead_s": g["call_overhead_s"],
            "direct_rel_1d": 1.0,
            "direct_rel_3d": 1.0,
        }
    return _gpu_loaded


def _kind(dtype):
    dt = np.dtype(dtype)
    if dt.kind in "biu":
        return "int64", 1
    if dt.kind == "c":
        return ("float32" if dt.itemsize <= 8 else "float64"), 4
    return ("float32" if dt.itemsize <= 4 else "float64"), 1


def direct_time(out_elems, taps, dtype, in_elems=0, nthreads=None, c=None, ndim=2):
    """Predicted seconds of the direct engine on an ``ndim``-dimensional problem."""
    c = c or constants()
    t = nthreads or get_num_threads()
    kind, mult = _kind(dtype)
    per_mac = c["direct_s_per_mac_" + kind] * mult
    if ndim == 1:
        per_mac *= c.get("direct_rel_1d", 1.0)
    elif ndim >= 3:
        per_mac *= c.get("direct_rel_3d", 1.0)
    itemsize = np.dtype(dtype).itemsize
    return (c["call_overhead_s"] + out_elems * taps * per_mac / t
            + (in_elems + out_elems) * itemsize * c["mem_s_per_byte"] / t)


def fft_flops(padded_shape, real=True, batch=1):
    """Flops of one FFT convolution of ``padded_shape`` (see ``_fft.flops``)."""
    from . import _fft
    return _fft.flops(tuple(padded_shape), real, batch)


def _fft_per_flop(dtype, c):
    dt = np.dtype(dtype)
    single = dt.kind in "fc" and dt.itemsize <= (8 if dt.kind == "c" else 4)
    return c["fft_s_per_flop_float32"] if single else c["fft_s_per_flop"], (8 if single else 16)


def fft_time(padded_shape, dtype, batch=1, nthreads=None, c=None, flops=None):
    """Predicted seconds of the FFT engine on ``padded_shape`` (times ``batch``)."""
    c = c or constants()
    t = nthreads or get_num_threads()
    real = np.dtype(dtype).kind != "c"
    per, itemsize = _fft_per_flop(dtype, c)
    if flops is None:
        flops = fft_flops(padded_shape, real, batch)
    n = float(np.prod(padded_shape, dtype=np.float64)) * batch
    # spectra of both inputs + output, each touched a few times
    return (c["call_overhead_s"] * 3 + flops * per / t
            + 4 * n * itemsize * c["mem_s_per_byte"] / t)


def predict_signal(shape1, shape2, out_shape, dtype, methods=("direct", "fft", "oa"),
                   separable=False, nthreads=None, c=None):
    """Predicted seconds of each signal method for a convolution of ``shape1`` x ``shape2``.

    ``out_shape`` is the shape of the requested window; ``separable`` says whether the
    smaller input is an exactly separable 2-D kernel.
    """
    from . import _fft

    c = c or constants()
    n1 = int(np.prod(shape1, dtype=np.int64))
    n2 = int(np.prod(shape2, dtype=np.int64))
    kshape = shape2 if n2 <= n1 else shape1
    taps = int(np.prod(kshape, dtype=np.int64))
    nout = int(np.prod(out_shape, dtype=np.int64))
    nin = max(n1, n2)
    res = {}
    if "direct" in methods:
        res["direct"] = direct_time(nout, taps, dtype, nin, nthreads, c, len(shape1))
    if separable and "separable" in methods:
        res["separable"] = (direct_time(nout, sum(kshape), dtype, nin, nthreads, c)
                            + direct_time(nin, 0, dtype, 0, nthreads, c))
    axes = tuple(range(len(shape1)))
    if "fft" in methods:
        padded = _fft.padded_shape(shape1, shape2, axes)
        res["fft"] = fft_time(padded, dtype, 1, nthreads, c)
    if "oa" in methods:
        real = np.dtype(dtype).kind != "c"
        x, k = (shape1, shape2) if n2 <= n1 else (shape2, shape1)
        if any(a > b for a, b in zip(k, x)):
            pass   # overlap-add needs the kernel to be the smaller input on every axis
        else:
            plan = _fft.oa_plan(tuple(x), tuple(k), axes, real=real)
            nblocks = int(np.prod(plan["nblocks"]))
            res["oa"] = (fft_time(plan["block"], dtype, nblocks, nthreads, c, plan["flops"])
                         + c["call_overhead_s"] * nblocks / 10)
    if np.dtype(dtype).kind == "c":
        # complex transforms run ~1.6x faster against the direct sum than the real-data
        # constants say (60 random complex problems, measured / predicted: direct 1.04,
        # FFT 0.56, against real data's 0.75 and 0.65): 'auto' took the direct sum where
        # the FFT was up to 3x faster
        for m in ("fft", "oa"):
            if m in res:
                res[m] *= COMPLEX_FFT_FACTOR
    return res


#: see predict_signal
COMPLEX_FFT_FACTOR = 0.62


def choose_signal_method(shape1, shape2, out_shape, dtype, separable=False, nthreads=None,
                         device="cpu"):
    """Fastest predicted method among 'direct', 'fft', 'oa' (and 'separable' if allowed).

    ``device='gpu'`` uses :func:`gpu_constants` (CuPy arrays)."""
    methods = ("direct", "fft", "oa", "separable")
    key = (tuple(shape1), tuple(shape2), tuple(out_shape), np.dtype(dtype).str, bool(separable),
           nthreads, device)
    hit = _choice_cache.get(key)
    if hit is not None:
        return hit[0], dict(hit[1])
    c = None
    if device == "gpu":
        c, nthreads = gpu_constants(), 1
    times = predict_signal(shape1, shape2, out_shape, dtype, methods, separable, nthreads, c)
    best = min(times, key=times.get)
    with _lock:
        if len(_choice_cache) >= 4096:
            _choice_cache.clear()
        _choice_cache[key] = (best, dict(times))
    return best, times


# ----------------------------------------------------------------------------- tuning
def _best_time(fn, repeat=5):
    """Minimum of ``repeat`` timings after a warm-up (the least noisy estimate)."""
    fn()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _clamp(key, value):
    """Keep a fitted constant within a factor 30 of its default (guards against noise)."""
    d = DEFAULTS[key]
    return float(min(max(value, d / 30), d * 30))


def _fit(features, times):
    """Non-negative least squares of times (s) on feature columns, rows weighted 1/time."""
    from scipy.optimize import nnls

    A = np.asarray(features, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    w = 1.0 / t
    coef, _ = nnls(A * w[:, None], t * w)
    return coef


def tune(save=True, verbose=False):
    """Measure this machine's cost-model constants and store them in the cache directory.

    Runs the direct, FFT and GEMM engines on a few representative problems (well under a
    minute), fits the model's constants by non-negative least squares (relative error) and
    keeps each within a factor 30 of its built-in default. Later processes load them
    automatically from ``get_cache_dir()/tune.json``.

    Returns
    -------
    dict
        The constants now in force.
    """
    from . import _core, _fft

    nt = get_num_threads()
    rng = np.random.default_rng(0)
    c = dict(DEFAULTS)
    # direct: t = overhead + macs*m/nt + bytes*mem/nt, over kernel sizes 1..15
    for dt in ("float32", "float64"):
        x = rng.standard_normal((1, 1, 1024, 1024)).astype(dt)
        out = np.empty_like(x)
        feats, times = [], []
        for k in (1, 3, 5, 9, 15):
            w = rng.standard_normal((1, 1, k, k)).astype(dt)
            p = (k // 2, k // 2)
            t = _best_time(lambda: _core.correlate(x, w, out, (1, 1), (1, 1), p, 1, nt))
            feats.append([1.0, x.size * k * k / nt, 2 * x.nbytes / nt])
            times.append(t)
        o, m, mem = _fit(feats, times)
        c["direct_s_per_mac_" + dt] = _clamp("direct_s_per_mac_" + dt, m)
        if dt == "float32":
            c["mem_s_per_byte"] = _clamp("mem_s_per_byte", mem)
            c["call_overhead_s"] = _clamp("call_overhead_s", o)
    # 1-D and 3-D relative to 2-D (float32): what their MACs cost beyond the 2-D rate
    for key, xs, k in (("direct_rel_1d", (1, 1, 1 << 20), (101,)),
                       ("direct_rel_3d", (1, 1, 96, 96, 96), (5, 5, 5))):
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal((1, 1) + k).astype(np.float32)
        out = np.empty_like(x)
        p = tuple(kk // 2 for kk in k)
        t = _best_time(lambda: _core.correlate(x, w, out, (1,) * len(k), (1,) * len(k), p, 1,
                                               nt))
        rest = direct_time(x.size, 0, np.float32, x.size, nt, c)   # overhead + memory
        mac = x.size * math.prod(k) * c["direct_s_per_mac_float32"] / nt   # at the 2-D rate
        c[key] = _clamp(key, max(t - rest, 0.1 * t) / mac)
    xi = rng.integers(-100, 100, (1, 1, 512, 512)).astype(np.int64)
    wi = rng.integers(-100, 100, (1, 1, 7, 7)).astype(np.int64)
    oi = np.empty_like(xi)
    ti = _best_time(lambda: _core.correlate(xi, wi, oi, (1, 1), (1, 1), (3, 3), 1, nt))
    c["direct_s_per_mac_int64"] = _clamp("direct_s_per_mac_int64", ti * nt / (xi.size * 49))
    # FFT: t = 3*overhead + flops*f/nt + 4*n*itemsize*mem/nt, overhead and mem known
    for dt, key in (("float64", "fft_s_per_flop"), ("float32", "fft_s_per_flop_float32")):
        ratios = []
        for n, k in ((1000, 25), (700, 101), (100000, 0)):
            if k == 0:   # a 1-D problem
                a = rng.standard_normal(n).astype(dt)
                b = rng.standard_normal(3001).astype(dt)
                axes, start, shape = (0,), (1500,), (n,)
            else:
                a = rng.standard_normal((n, n)).astype(dt)
                b = rng.standard_normal((k, k)).astype(dt)
                axes, start, shape = (0, 1), (k // 2, k // 2), (n, n)
            t = _best_time(lambda: _fft.convolve(a, b, axes, start, shape, nt), 3)
            padded = _fft.padded_shape(a.shape, b.shape, axes, start, shape)
            rest = fft_time(padded, dt, 1, nt, {**c, key: 0.0})
            ratios.append(max(t - rest, 0.1 * t) * nt / fft_flops(padded, True))
        c[key] = _clamp(key, float(np.median(ratios)))
    # GEMM: a large matmul
    for dt in ("float32", "float64"):
        a = rng.standard_normal((512, 1152)).astype(dt)
        b = rng.standard_normal((1152, 1024)).astype(dt)
        t = _best_time(lambda: a @ b, 3)
        c["gemm_s_per_mac_" + dt] = _clamp("gemm_s_per_mac_" + dt, t * nt / (512 * 1152 * 1024))
    gpu = {}
    try:
        from . import _cupy
        if _cupy.gpu_available():
            gpu = {"gpu_" + k: float(v) for k, v in _cupy.tune_gpu().items()}
    except Exception:  # noqa: BLE001 - GPU tuning is optional
        gpu = {}
    if verbose:
        for k in sorted(c):
            print(f"{k:>28}: {c[k]:.3e}  (default {DEFAULTS[k]:.3e})")
    if save:
        os.makedirs(get_cache_dir(), exist_ok=True)
        with open(_tune_path(), "w") as f:
            json.dump({"threads": nt, "constants": {k: c[k] for k in DEFAULTS}, "gpu": gpu},
                      f, indent=1)
        _reset()
    return c
