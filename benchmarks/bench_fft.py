"""Benchmark of the FFT engine (fastconv._fft) against bare pyFFTW and scipy.signal.

For each problem and dtype it first checks ``convolve`` and ``oaconvolve`` against
``scipy.signal.fftconvolve`` (float64 reference), then prints median wall times of

* ``bare``   : two forward r2c and one inverse c2r transform of the padded shape that
               ``fastconv._fft.convolve`` uses, executed with cached pyFFTW plans on preallocated
               buffers (the best of in-place and out-of-place plans, same planner flag),
* ``conv``   : ``fastconv._fft.convolve`` (whole call: copy in, transforms, product, crop out),
* ``oa``     : ``fastconv._fft.oaconvolve``,
* ``sp_fft`` : ``scipy.signal.fftconvolve`` under ``scipy.fft.set_workers(threads)``,
* ``sp_oa``  : ``scipy.signal.oaconvolve`` likewise,

and the ratios ``conv/bare`` (target <= 1.25), ``conv/sp_fft``, ``oa/sp_oa``, plus the
tracemalloc peak (numpy/pyFFTW buffers; scipy's pocketfft scratch is not traced) of one call
of ``conv`` (cold cache) and of ``sp_fft``.

Both fastconv and the bare baseline use FFTW_ESTIMATE plans (the measured-plan upgrade is
switched off) so the ratio compares like with like; ``--measure`` lets fastconv measure.

Run::

    python benchmarks/bench_fft.py                 # all problems, float32 and float64
    python benchmarks/bench_fft.py --cases 2d31 --dtypes float64 --reps 5
    python benchmarks/bench_fft.py --ab 9 --threads 1   # interleaved conv-vs-bare minima only
"""
import argparse
import gc
import sys
import time
import tracemalloc

import numpy as np
import scipy.fft
import scipy.signal

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from fastconv import _fft  # noqa: E402

CASES = {
    # name: (in1 shape, in2 shape, mode)
    "1d3001": ((10**6,), (3001,), "same"),
    "1d30001": ((10**6,), (30001,), "same"),
    "1d1e7": ((10**7,), (1000,), "full"),
    "2d31": ((2048, 2048), (31, 31), "same"),
    "2d63": ((2048, 2048), (63, 63), "same"),
    "3d15": ((128, 128, 128), (15, 15, 15), "same"),
}


def window(n1, n2, mode):
    if mode == "full":
        return (0,) * len(n1), tuple(a + b - 1 for a, b in zip(n1, n2))
    if mode == "same":
        return tuple((b - 1) // 2 for b in n2), tuple(n1)
    return tuple(b - 1 for b in n2), tuple(a - b + 1 for a, b in zip(n1, n2))


STAT = np.median


def timeit(fn, reps, min_time=1.0):
    """Median (or, with --min, minimum) wall time of ``fn`` after one warm-up call."""
    fn()  # warm up (plans, caches)
    ts = []
    t_all = time.perf_counter()
    while len(ts) < reps or (time.perf_counter() - t_all < min_time and len(ts) < 3 * reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(STAT(ts))


def peak_bytes(fn):
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    r = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del r
    return peak


def bare_pyfftw(L, dtype, threads):
    """Best of in-place / out-of-place FFTW_ESTIMATE plans: two r2c + one c2r of shape L."""
    import pyfftw

    cdt = np.complex64 if dtype == np.float32 else np.complex128
    spec = L[:-1] + (L[-1] // 2 + 1,)
    axes = tuple(range(len(L)))
    kw = dict(axes=axes, threads=threads, flags=("FFTW_ESTIMATE",))
    # out of place
    r1 = pyfftw.empty_aligned(L, dtype)
    r2 = pyfftw.empty_aligned(L, dtype)
    c1 = pyfftw.empty_aligned(spec, cdt)
    c2 = pyfftw.empty_aligned(spec, cdt)
    f1 = pyfftw.FFTW(r1, c1, **kw)
    f2 = pyfftw.FFTW(r2, c2, **kw)
    ib = pyfftw.FFTW(c1, r1, direction="FFTW_BACKWARD", **kw)
    r1[...] = 1.0
    r2[...] = 1.0

    def oop():
        f1.execute()
        f2.execute()
        ib.execute()

    # in place
    w1 = pyfftw.empty_aligned(spec, cdt)
    w2 = pyfftw.empty_aligned(spec, cdt)
    v1 = w1.view(dtype)[..., : L[-1]]
    v2 = w2.view(dtype)[..., : L[-1]]
    g1 = pyfftw.FFTW(v1, w1, **kw)
    g2 = pyfftw.FFTW(v2, w2, **kw)
    jb = pyfftw.FFTW(w1, v1, direction="FFTW_BACKWARD", **kw)
    v1[...] = 1.0
    v2[...] = 1.0

    def inp():
        g1.execute()
        g2.execute()
        jb.execute()

    return oop, inp


def cases(args, rng):
    """Each (case name, mode, axes, start, shape, dtype, a, b) the command line asks for:
    random inputs of the case's sizes, the output window of its mode."""
    for name in args.cases:
        s1, s2, mode = CASES[name]
        axes = tuple(range(len(s1)))
        start, shape = window(s1, s2, mode)
        for dn in args.dtypes:
            dt = np.dtype(dn)
            a = rng.standard_normal(s1).astype(dt)
            b = rng.standard_normal(s2).astype(dt)
            yield name, mode, axes, start, shape, dt, a, b


def ab(args):
    """Interleaved A/B of ``convolve`` against the bare pyFFTW pair (minimum of ROUNDS each)."""
    _fft.MEASURE_AFTER = 10**9 if not args.measure else _fft.MEASURE_AFTER
    nt = args.threads
    rng = np.random.default_rng(0)
    print(f"interleaved A/B, {args.ab} rounds, threads={nt}, minima in ms")
    for name, mode, axes, start, shape, dt, a, b in cases(args, rng):
        L = _fft.padded_shape(a.shape, b.shape, axes, start, shape)
        oop, inp = bare_pyfftw(L, dt, nt)
        fns = {"oop": oop, "inp": inp, "conv": lambda: _fft.convolve(a, b, axes, start, shape, nthreads=nt)}
        for f in fns.values():
            f()
        ts = {key: [] for key in fns}
        for _ in range(args.ab):
            for key, f in fns.items():
                t = time.perf_counter()
                f()
                ts[key].append(time.perf_counter() - t)
        m = {key: min(v) * 1e3 for key, v in ts.items()}
        print(
            f"{name:>8} {dt.name:>7} {str(L):>16} | bare oop {m['oop']:8.2f} in-place {m['inp']:8.2f} | "
            f"conv {m['conv']:8.2f} | conv/bare {m['conv'] / min(m['oop'], m['inp']):6.3f}",
            flush=True,
        )
        del fns, oop, inp
        gc.collect()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--measure", action="store_true", help="allow FFTW_MEASURE upgrades")
    ap.add_argument("--no-scipy", action="store_true", help="skip the scipy timings")
    ap.add_argument("--no-mem", action="store_true", help="skip the memory figures")
    ap.add_argument("--min", action="store_true", help="report minima instead of medians (busy machines)")
    ap.add_argument(
        "--ab",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only conv vs bare: ROUNDS interleaved rounds (out-of-place bare, in-place bare, conv), minima",
    )
    args = ap.parse_args(argv)
    if args.ab:
        return ab(args)
    global STAT
    if args.min:
        STAT = np.min
    if not args.measure:
        _fft.MEASURE_AFTER = 10**9
    nt = args.threads
    rng = np.random.default_rng(0)
    print(f"pyfftw={_fft.HAVE_PYFFTW} threads={nt} numpy={np.__version__} scipy={scipy.__version__}")
    hdr = (
        f"{'case':>8} {'dtype':>7} {'padded':>14} | {'bare':>8} {'conv':>8} {'oa':>8} {'sp_fft':>8} "
        f"{'sp_oa':>8} | {'conv/bare':>9} {'conv/sp':>7} {'oa/sp_oa':>8} {'best/sp':>7} | "
        f"{'MB conv':>7} {'MB sp':>7} | err"
    )
    print(hdr)
    for name, mode, axes, start, shape, dt, a, b in cases(args, rng):
        # correctness first
        ref = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), mode=mode)
        scale = np.abs(ref).max()
        errs = []
        for fn in (_fft.convolve, _fft.oaconvolve):
            r = fn(a, b, axes, start, shape, nthreads=nt)
            assert r.shape == ref.shape and r.dtype == dt
            errs.append(float(np.abs(r - ref).max() / scale))
        tol = 1e-4 if dt == np.float32 else 1e-10
        if max(errs) > tol:
            raise SystemExit(f"{name} {dt.name}: wrong result, relative errors {errs}")
        del ref, r
        L = _fft.padded_shape(a.shape, b.shape, axes, start, shape)
        t = {}
        if _fft.HAVE_PYFFTW:
            oop, inp = bare_pyfftw(L, dt, nt)
            t["bare"] = min(timeit(oop, args.reps), timeit(inp, args.reps))
            del oop, inp
        else:
            t["bare"] = float("nan")
        gc.collect()
        t["conv"] = timeit(lambda: _fft.convolve(a, b, axes, start, shape, nthreads=nt), args.reps)
        t["oa"] = timeit(lambda: _fft.oaconvolve(a, b, axes, start, shape, nthreads=nt), args.reps)
        if args.no_scipy:
            t["sp_fft"] = t["sp_oa"] = float("nan")
        else:
            with scipy.fft.set_workers(nt):
                t["sp_fft"] = timeit(lambda: scipy.signal.fftconvolve(a, b, mode=mode), args.reps)
                t["sp_oa"] = timeit(lambda: scipy.signal.oaconvolve(a, b, mode=mode), args.reps)
        if args.no_mem:
            mc = ms = float("nan")
        else:
            _fft.clear_plan_cache()
            mc = peak_bytes(lambda: _fft.convolve(a, b, axes, start, shape, nthreads=nt)) / 2**20
            with scipy.fft.set_workers(nt):
                ms = peak_bytes(lambda: scipy.signal.fftconvolve(a, b, mode=mode)) / 2**20
        best = min(t["conv"], t["oa"])
        print(
            f"{name:>8} {dt.name:>7} {str(L):>14} | "
            + " ".join(f"{t[k] * 1e3:8.2f}" for k in ("bare", "conv", "oa", "sp_fft", "sp_oa"))
            + f" | {t['conv'] / t['bare']:9.3f} {t['conv'] / t['sp_fft']:7.3f} "
            f"{t['oa'] / t['sp_oa']:8.3f} {best / min(t['sp_fft'], t['sp_oa']):7.3f} | "
            f"{mc:7.1f} {ms:7.1f} | {max(errs):.1e}",
            flush=True,
        )
    print(f"times in ms ({'minima' if args.min else 'medians'}); ratios < 1 mean fastconv is faster")


if __name__ == "__main__":
    main()
