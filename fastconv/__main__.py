"""Command line: ``python -m fastconv {bench,tune,info}`` (also the ``fastconv`` script).

bench  [--quick] [--only signal|nn|gpu|all] [--threads N] [--json FILE]
       fastconv against scipy.signal / scipy.ndimage / OpenCV (signal), PyTorch (nn) and the
       GPU engines; prints tables and summary lines (benchmarks/README.md explains them).
tune   measure this machine's cost-model constants and save them (fastconv.tune).
info   how fastconv was built and what it will use (fastconv.show_config).
"""
import argparse
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time


def _load_file_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _repo_benchmark(filename):
    """``benchmarks/<filename>`` next to the package (source checkout), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "benchmarks", filename)
    return path if os.path.isfile(path) else None


def _locate(package_module, filename):
    """A benchmark module: the package-internal one if it exists, else the repository's
    ``benchmarks/`` script when this is a source checkout. Returns (module, where) or
    (None, why)."""
    try:
        return importlib.import_module(package_module), package_module
    except ModuleNotFoundError as e:
        if e.name != package_module and not package_module.startswith(e.name + "."):
            return None, f"{package_module} failed to import: {e}"
    except Exception as e:  # noqa: BLE001 - report, don't die
        return None, f"{package_module} failed to import: {type(e).__name__}: {e}"
    path = _repo_benchmark(filename)
    if path is None:
        return None, (f"neither {package_module} nor benchmarks/{filename} (source checkout) "
                      "is available")
    try:
        return _load_file_module("_fastconv_" + os.path.splitext(filename)[0], path), path
    except Exception as e:  # noqa: BLE001
        return None, f"{path} failed to import: {type(e).__name__}: {e}"


def _print_rows(rows):
    """A plain table of row dicts (union of their keys, in first-seen order)."""
    if not rows:
        print("(no rows)")
        return
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    cells = [[fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))


def _bench_nn(quick, threads):
    """Rows of the nn benchmark, or None (with a printed note) when it is not available."""
    try:
        import fastconv.nn  # noqa: F401
    except Exception as e:  # noqa: BLE001
        print(f"nn: skipped (fastconv.nn not importable: {type(e).__name__}: {e})")
        return None
    mod, where = _locate("fastconv.nn._bench", "bench_nn.py")
    if mod is None or not hasattr(mod, "run"):
        print(f"nn: skipped ({where if mod is None else where + ' has no run()'})")
        return None
    from fastconv._bench import all_threads

    print(f"nn benchmark ({where}):", flush=True)
    t0 = time.perf_counter()
    params = inspect.signature(mod.run).parameters
    kw = {"threads": threads} if "threads" in params else {}
    with all_threads(threads):
        try:
            rows = mod.run(quick=quick, **kw)
        except Exception as e:  # noqa: BLE001
            print(f"nn: FAILED ({type(e).__name__}: {e})")
            return None
    if "file" not in params:          # a run() with a file argument prints its own table
        _print_rows(rows)
    print(f"nn benchmark wall time: {time.perf_counter() - t0:.0f}s")
    return rows


def _gpu_missing():
    """None when CuPy sees a CUDA device, else why not (never raises)."""
    try:
        from fastconv import _cupy
        cp = _cupy._cupy_module()
    except Exception as e:  # noqa: BLE001 - fastconv._cupy absent or broken
        return f"fastconv._cupy not importable: {type(e).__name__}"
    if cp is None:
        return "CuPy not importable"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no driver, no device
        return f"CUDA: {type(e).__name__}: {e}"
    return None if n >= 1 else "CuPy sees no CUDA device"


def _bench_gpu(quick):
    """Run the GPU benchmark when a GPU and its benchmark exist; print 'no GPU' otherwise."""
    why = _gpu_missing()
    if why:
        print(f"gpu: no GPU ({why})")
        return None
    mod, where = _locate("fastconv._bench_gpu", "bench_gpu.py")
    if mod is None:
        print(f"gpu: a GPU is present but no GPU benchmark: {where}")
        return None
    print(f"gpu benchmark ({where}):", flush=True)
    if hasattr(mod, "run"):
        return mod.run(quick=quick)  # prints its table as it goes
    old = sys.argv
    sys.argv = [where] + (["--quick"] if quick else [])
    try:
        mod.main()
    finally:
        sys.argv = old
    return None


def cmd_bench(a):
    from fastconv import _bench

    t0 = time.perf_counter()
    out = {"threads": a.threads, "quick": a.quick}
    if a.only in ("signal", "all"):
        out["signal"], out["signal_summary"] = _bench.bench_signal(a.quick, a.threads)
        print()
    if a.only in ("nn", "all"):
        out["nn"] = _bench_nn(a.quick, a.threads)
        print()
    if a.only in ("gpu", "all"):
        out["gpu"] = _bench_gpu(a.quick)
    out["seconds"] = time.perf_counter() - t0
    print(f"total bench wall time: {out['seconds']:.0f}s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(_bench.to_json(out), f, indent=1)
        print(f"rows written to {a.json}")
    return 0


def cmd_tune(a):
    import fastconv
    from fastconv import _plan

    fastconv.tune(verbose=True)
    print(f"saved to {_plan._tune_path()}")
    return 0


def cmd_info(a):
    import fastconv

    fastconv.show_config()
    return 0


def _positive_int(s):
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def parser():
    ap = argparse.ArgumentParser(prog="python -m fastconv",
                                 description="fastconv: fast convolution for NumPy and CuPy")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="benchmark fastconv against its peers")
    b.add_argument("--quick", action="store_true",
                   help="fewer repeats, slowest peers predicted instead of run (< 2 minutes)")
    b.add_argument("--only", choices=("signal", "nn", "gpu", "all"), default="all")
    b.add_argument("--threads", type=_positive_int, default=2,
                   help="threads for every library (default 2)")
    b.add_argument("--json", metavar="FILE", help="also write every row to FILE")
    b.set_defaults(func=cmd_bench)
    t = sub.add_parser("tune", help="measure and save this machine's cost-model constants")
    t.set_defaults(func=cmd_tune)
    i = sub.add_parser("info", help="show how fastconv was built and what it will use")
    i.set_defaults(func=cmd_info)
    return ap


def main(argv=None):
    a = parser().parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
