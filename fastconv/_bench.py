"""The signal benchmark behind ``python -m fastconv bench``: fastconv against its peers.

One process, one run: fastconv (``method='auto'``) against ``scipy.signal.convolve``
(``method='auto'``), ``scipy.signal.fftconvolve``, ``scipy.signal.oaconvolve``,
``scipy.ndimage.convolve`` and OpenCV ``cv2.filter2D`` on a fixed table of workloads
(``WORKLOADS``), float64 and float32, with the same number of threads everywhere it can be set
(fastconv, OpenCV, PyTorch, ``scipy.fft`` workers, OpenBLAS, pyFFTW). ``scipy.signal``'s
direct kernels and ``scipy.ndimage`` are single-threaded by construction.

Method (see ``benchmarks/README.md``):

* every output is checked against a float64 ``scipy.signal`` FFT reference before it is timed
  (relative tolerance per dtype, ``TOLERANCE``; error measured as ``max|out - ref| / max|ref|``);
* time = median of the timed repeats; the first (checked) call is not timed, except for a
  *peer* whose first call alone exceeds the slow limit (then that one call is the sample;
  peers have no plan caches). fastconv is never skipped and always timed warm;
* peak memory = Linux ``VmHWM`` (high-water resident set) reset through
  ``/proc/self/clear_refs`` just before one call and read just after, minus ``VmRSS`` before
  it, after ``malloc_trim``: every allocation (numpy, C, FFTW, OpenCV) that was touched counts,
  output included (fastconv's pool of released result buffers, ``fastconv._pool``, is emptied
  before that call, so its result counts as fresh memory as the peers' do; the other timed
  calls run in the steady state, reusing it). Caches a library keeps *between* calls (FFT
  plans and buffers) are reported
  separately as ``retained`` in the JSON. Without ``clear_refs``, a 0.5 ms sampling thread of
  ``VmRSS`` is used instead (may miss short peaks; the header says which).
"""
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import sys
import threading
import time

import numpy as np

from . import _pool

__all__ = ["WORKLOADS", "main", "print_signal", "run_signal"]

#: relative tolerance per dtype: max|out - ref| / max|ref|
TOLERANCE = {"float64": 1e-10, "float32": 2e-4}

PEERS = ("scipy.convolve", "fftconvolve", "oaconvolve", "ndimage", "cv2")


# ----------------------------------------------------------------------------- workloads
class Workload:
    """One row family: ``op`` (convolve|correlate) of an ``x_shape`` signal with a kernel."""

    def __init__(self, name, op, x_shape, k_shape, mode, kernel="random"):
        self.name, self.op, self.mode, self.kernel = name, op, mode, kernel
        self.x_shape, self.k_shape = tuple(x_shape), tuple(k_shape)

    @property
    def macs(self):
        """Multiply-adds of a direct evaluation of the requested output window."""
        return float(np.prod(self.out_shape, dtype=np.float64)) * float(np.prod(self.k_shape))

    @property
    def out_shape(self):
        if self.mode == "same":
            return self.x_shape
        if self.mode == "full":
            return tuple(n + k - 1 for n, k in zip(self.x_shape, self.k_shape))
        return tuple(n - k + 1 for n, k in zip(self.x_shape, self.k_shape))

    def inputs(self, dtype, seed):
        """(signal, kernel) of ``dtype``, random normal (seeded); 'gauss': normalised Gaussian
        outer product."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.x_shape).astype(dtype)
        if self.kernel == "gauss":
            g = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (n / 6)) ** 2) for n in self.k_shape]
            g = [v / v.sum() for v in g]
            k = np.multiply.outer(*g).astype(dtype) if len(g) == 2 else g[0].astype(dtype)
        else:
            k = rng.standard_normal(self.k_shape).astype(dtype)
        return x, k


def _workloads():
    w = [Workload(f"1d n=1e6 k={k} same", "convolve", (10**6,), (k,), "same")
         for k in (3, 31, 301, 3001, 30001)]
    w += [Workload(f"2d 2048^2 k={k}x{k} same", "convolve", (2048, 2048), (k, k), "same")
          for k in (3, 5, 11, 31, 63)]
    w += [Workload(f"3d 128^3 k={k}^3 same", "convolve", (128,) * 3, (k,) * 3, "same")
          for k in (3, 7, 15)]
    w += [Workload("1d n=1e7 k=1000 full", "convolve", (10**7,), (1000,), "full"),
          Workload("2d corr 2048^2 t=64^2 valid", "correlate", (2048, 2048), (64, 64), "valid"),
          Workload("2d 2048^2 gauss31 sep same", "convolve", (2048, 2048), (31, 31), "same",
                   kernel="gauss")]
    return w


WORKLOADS = _workloads()
DTYPES = ("float64", "float32")


# ----------------------------------------------------------------------------- peers
def _flip(k):
    return k[(slice(None, None, -1),) * k.ndim]


def peer_calls(spec):
    """{peer: callable(x, k) or None, ...} and {peer: note}; ``k`` is as the user passes it
    (a correlation template for ``op='correlate'``, a convolution kernel otherwise)."""
    import scipy.ndimage as ndi
    import scipy.signal as sps

    corr = spec.op == "correlate"
    conv_k = _flip if corr else (lambda k: k)          # kernel of the equivalent convolution
    calls, notes = {}, {}
    sfun = sps.correlate if corr else sps.convolve
    calls["scipy.convolve"] = lambda x, k: sfun(x, k, mode=spec.mode, method="auto")
    calls["fftconvolve"] = lambda x, k: sps.fftconvolve(x, conv_k(k), mode=spec.mode)
    calls["oaconvolve"] = lambda x, k: sps.oaconvolve(x, conv_k(k), mode=spec.mode)

    # ndimage.correlate(x, flip(kernel), mode='constant') equals scipy 'same' for every kernel
    # length (origin 0); 'valid' is its crop starting at K//2. 'full' would need a padded copy.
    if spec.kernel == "gauss" and len(spec.k_shape) == 2:
        def nd_call(x, k):                       # what gaussian_filter does: two 1-D passes
            col, row = _separable_factors(k)
            t = ndi.correlate1d(x, col[::-1], axis=0, mode="constant")
            return ndi.correlate1d(t, row[::-1], axis=1, mode="constant")
        calls["ndimage"] = nd_call
        notes["ndimage"] = "ndimage = two correlate1d passes (separable kernel given factored)"
    elif spec.mode in ("same", "valid"):
        def nd_call(x, k):
            w = k if corr else _flip(k)
            out = ndi.correlate(x, w, mode="constant", cval=0.0)
            if spec.mode == "valid":
                out = out[tuple(slice(K // 2, K // 2 + n - K + 1)
                                for n, K in zip(x.shape, k.shape))]
            return out
        calls["ndimage"] = nd_call
    else:
        calls["ndimage"] = None

    calls["cv2"] = None
    if len(spec.x_shape) == 2 and spec.mode == "same":
        try:
            import cv2
        except ImportError:
            cv2 = None
            notes["cv2"] = "cv2 not importable"
        if cv2 is not None and spec.kernel == "gauss":
            def cv_call(x, k):
                col, row = _separable_factors(k)
                return cv2.sepFilter2D(x, -1, np.ascontiguousarray(row[::-1], x.dtype),
                                       np.ascontiguousarray(col[::-1], x.dtype),
                                       borderType=cv2.BORDER_CONSTANT)
            calls["cv2"] = cv_call
            notes["cv2"] = "cv2 = sepFilter2D on the separable row (factors given)"
        elif cv2 is not None:
            def cv_call(x, k):
                # filter2D correlates: flip the kernel; anchor (col, row) = K//2 gives 'same'
                w = k if corr else _flip(k)
                anchor = (w.shape[1] // 2, w.shape[0] // 2)
                return cv2.filter2D(x, -1, np.ascontiguousarray(w), anchor=anchor,
                                    borderType=cv2.BORDER_CONSTANT)
            calls["cv2"] = cv_call
    return calls, notes


def _separable_factors(k):
    u, s, vt = np.linalg.svd(k.astype(np.float64))
    return u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])


def fastconv_call(spec, method):
    import fastconv

    fun = fastconv.correlate if spec.op == "correlate" else fastconv.convolve
    return lambda x, k: fun(x, k, mode=spec.mode, method=method)


def fastconv_choice(spec, x, k):
    import fastconv

    kk = _flip(k) if spec.op == "correlate" else k
    return fastconv.choose_conv_method(x, kk, mode=spec.mode)


# ----------------------------------------------------------------------------- memory
_libc = None


def _malloc_trim():
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _proc_status(*keys):
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _clear_refs_works():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM" in _proc_status("VmHWM")
    except OSError:
        return False


class PeakMemory:
    """Peak extra resident memory of the code inside ``with``: ``.peak`` bytes.

    Exact through the kernel's high-water mark where ``/proc/self/clear_refs`` accepts ``5``
    (Linux >= 4.0), else a 0.5 ms sampling thread (can miss peaks shorter than that).
    """

    exact = None

    def __init__(self):
        if PeakMemory.exact is None:
            PeakMemory.exact = _clear_refs_works()
        self.peak = None

    def __enter__(self):
        _malloc_trim()
        self.before = _proc_status("VmRSS").get("VmRSS")
        if self.exact:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self._stop = threading.Event()
            self._max = self.before or 0
            self._t = threading.Thread(target=self._sample, daemon=True)
            self._t.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, _proc_status("VmRSS").get("VmRSS", 0))
            time.sleep(0.0005)

    def __exit__(self, *exc):
        if self.exact:
            hwm = _proc_status("VmHWM").get("VmHWM")
        else:
            self._stop.set()
            self._t.join()
            hwm = max(self._max, _proc_status("VmRSS").get("VmRSS", 0))
        if hwm is not None and self.before is not None:
            self.peak = max(hwm - self.before, 0)
        return False


def _rss():
    _malloc_trim()
    return _proc_status("VmRSS").get("VmRSS", 0)


# ----------------------------------------------------------------------------- check + time
def check(out, ref, dtype):
    """Relative error ``max|out - ref| / max|ref|`` and whether it is within tolerance."""
    out = np.asarray(out)
    if out.shape != ref.shape:
        return math.inf, False, f"shape {out.shape} != {ref.shape}"
    scale = float(np.max(np.abs(ref))) or 1.0
    err = float(np.max(np.abs(out.astype(np.float64, copy=False) - ref))) / scale
    if not np.isfinite(err):
        err = math.inf
    return err, err <= TOLERANCE[dtype], ""


#: cheap calls: sampled until this many seconds are spent, at most CHEAP_MAX times
CHEAP_S = 0.05
CHEAP_MAX = 21


class Result(dict):
    """One measured call: ``t`` (median s), ``times``, ``mem``, ``retained``, ``err``, ``ok``,
    ``note``; ``t`` is None when skipped or wrong."""


def measure(fn, x, k, ref, dtype, *, repeats, budget_s, slow_s, warm):
    """Check ``fn(x, k)`` against ``ref``, then time it (median) and probe its peak memory.

    ``warm``: the first call may include one-time work (plan creation, and FFTW re-plans it
    starts in the background, which are waited for), so it is never a timing sample.
    Otherwise a first call longer than ``slow_s`` is the only sample.
    """
    r = Result(t=None, times=[], mem=None, retained=None, err=None, ok=False, note="")
    rss0 = _rss()
    try:
        with PeakMemory() as pm:
            t0 = time.perf_counter()
            out = fn(x, k)
            t_first = time.perf_counter() - t0
        r["err"], r["ok"], r["note"] = check(out, ref, dtype)
        del out
    except Exception as e:  # noqa: BLE001 - a failing peer is reported, not fatal
        r["note"] = f"{type(e).__name__}: {e}"[:120]
        return r
    r["retained"] = max(_rss() - rss0, 0)
    r["mem"] = pm.peak
    if warm:
        # steady state: the FFTW plans the first call started measuring in the background
        # (overlap-add blocks, once per machine: fastconv._fft.AUTO_MEASURE_BLOCKS) are
        # ready, and no re-plan runs beside the timed calls
        from . import _fft

        _fft.wait_measurements(60.0)
    if not r["ok"]:
        r["note"] = r["note"] or f"WRONG (rel err {r['err']:.1e})"
        return r
    if not warm and t_first >= slow_s:
        r["times"] = [t_first]
    else:
        # the memory probe: one untimed call that must get its result from fresh memory
        # (fastconv's idle result buffers are released first). It is not a timing sample:
        # the samples are repeated calls, where fastconv reuses the buffers that earlier
        # results gave back as the peers' allocators reuse freed heap memory.
        _pool.release()
        with PeakMemory() as pm:
            fn(x, k)
        r["mem"] = pm.peak if pm.peak is not None else r["mem"]
        t0 = time.perf_counter()
        fn(x, k)
        r["times"].append(time.perf_counter() - t0)
        # an odd count, so that one outlier (an FFT re-plan inside a call) is not averaged in;
        # calls shorter than a few ms are repeated until CHEAP_S has been spent (at most
        # CHEAP_MAX samples), every library alike: three samples of a 0.2 ms call are
        # mostly the first calls after the previous library's (a sleeping worker thread,
        # cold caches: 1-D n=1e6 k=3 read 642, 283, 227 us where the calls settle at ~200)
        while ((len(r["times"]) < repeats and sum(r["times"]) < budget_s)
               or len(r["times"]) == 2 < repeats
               or (sum(r["times"]) < CHEAP_S and len(r["times"]) < CHEAP_MAX)
               or len(r["times"]) % 2 == 0):
            t0 = time.perf_counter()
            fn(x, k)
            r["times"].append(time.perf_counter() - t0)
    r["t"] = float(np.median(r["times"]))
    return r


# ----------------------------------------------------------------------------- pairing
#: Rows whose ratio over the fastest peer is below this are re-timed in alternation
#: (fastconv and that peer, PAIR_ROUNDS rounds): the sequential medians come from different
#: stretches of time, and this VM's speed drifts by 20-50% between them.
PAIR_BELOW = 1.25
PAIR_ROUNDS = 7
#: each side of a round times calls for at least this long
PAIR_BLOCK_S = 0.02


def paired_ratio(peer_fn, fc_fn, x, k, t_peer, t_fc, rounds=PAIR_ROUNDS):
    """Per-round ratios (peer time / fastconv time) of the two calls timed in alternation:
    each round times a block of calls (>= PAIR_BLOCK_S) of one, then of the other, the order
    swapped every round so that neither always runs right after the other. Returns
    (median, min, max) of the rounds' ratios."""
    n_p = max(1, math.ceil(PAIR_BLOCK_S / max(t_peer, 1e-6)))
    n_f = max(1, math.ceil(PAIR_BLOCK_S / max(t_fc, 1e-6)))

    def block(fn, n):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x, k)
        return (time.perf_counter() - t0) / n

    ratios = []
    for r in range(rounds):
        if r % 2:
            tf = block(fc_fn, n_f)
            tp = block(peer_fn, n_p)
        else:
            tp = block(peer_fn, n_p)
            tf = block(fc_fn, n_f)
        ratios.append(tp / tf)
    return float(np.median(ratios)), float(min(ratios)), float(max(ratios))


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def all_threads(n):
    """Use ``n`` threads in fastconv, OpenCV, PyTorch, scipy.fft and BLAS inside the block."""
    import scipy.fft

    import fastconv

    old = fastconv.get_num_threads()
    fastconv.set_num_threads(n)
    stack = contextlib.ExitStack()
    stack.enter_context(scipy.fft.set_workers(n))
    try:
        import threadpoolctl
        stack.enter_context(threadpoolctl.threadpool_limits(n))
    except ImportError:
        pass
    try:
        import cv2
        old_cv = cv2.getNumThreads()
        cv2.setNumThreads(n)
        stack.callback(cv2.setNumThreads, old_cv)
    except ImportError:
        pass
    try:
        import torch
        old_t = torch.get_num_threads()
        torch.set_num_threads(n)
        stack.callback(torch.set_num_threads, old_t)
    except ImportError:
        pass
    with stack:
        try:
            yield n
        finally:
            fastconv.set_num_threads(old)


# ----------------------------------------------------------------------------- extras
#: untimed calls of ``paired`` before each timed triple in :func:`float32_peak`: after the
#: matmul (3 x 64 MB) and the wait the first calls run on cold caches and idle cores
SETTLE_PAIRED_S = 0.2


def float32_peak(n=4096, paired=None, rounds=3):
    """Measured float32 matmul rate (flop/s) of numpy's BLAS: the machine's practical peak
    (the best of ``rounds``). With ``paired`` (a callable), each round also times three
    calls of it after the matmul (once BLAS's spinning threads have gone idle, and after
    SETTLE_PAIRED_S of untimed calls), and the result is (peak, median seconds of ``paired``): both from the
    same stretch of time, so a share of the peak does not depend on how busy the machine
    was when each was measured."""
    a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    if paired is not None:
        paired()
    ts, tp = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
        if paired is not None:
            # OpenBLAS's threads keep spinning for ~0.1-0.2 s after the matmul and steal the
            # cores from the calls meanwhile (measured: a 2 ms call took 6-12 ms within
            # 0.1 s of the matmul): wait them out, then untimed calls for >= 20 ms
            time.sleep(0.25)
            t_settle = time.perf_counter()
            while time.perf_counter() - t_settle < SETTLE_PAIRED_S:
                paired()
            for _ in range(3):
                t0 = time.perf_counter()
                paired()
                tp.append(time.perf_counter() - t0)
    peak = 2.0 * n ** 3 / min(ts)
    return (peak, float(np.median(tp))) if paired is not None else peak


def bare_fft_time(shape1, shape2, mode, dtype, nthreads, repeats=5, plan_s=30.0,
                  effort="FFTW_ESTIMATE", paired=None):
    """Seconds of a bare pyFFTW rfftn x2 + irfftn x1 (cached plans) of the transform shape
    fastconv's FFT engine uses for this window; (seconds, padded shape), or (None, reason).
    With ``paired`` (a callable, e.g. fastconv's own FFT call), each repeat times one call
    of it right before the bare transforms and the result is ((bare s, paired s), padded
    shape): both medians come from the same stretch of time, so their ratio does not depend
    on what else the machine did between two separately timed rows.

    ``effort``: the planner flag. FFTW_ESTIMATE is pyFFTW's default (``pyfftw.builders`` and
    ``pyfftw.interfaces`` plan with ``pyfftw.config.PLANNER_EFFORT``) and fastconv's for a
    shape it has no wisdom for. FFTW_MEASURE plans are measured for at most ``plan_s``
    seconds each (FFTW's ``timelimit``); their wisdom then serves every later plan of the
    shape in this process, so measure the ESTIMATE baseline first."""
    try:
        import pyfftw
    except ImportError:
        return None, "pyfftw not importable"
    from . import _shapes

    axes = tuple(range(len(shape1)))
    win = [_shapes.window(mode, a, b) for a, b in zip(shape1, shape2)]
    try:
        from . import _fft
        padded = tuple(_fft.padded_shape(shape1, shape2, axes, tuple(w[0] for w in win),
                                         tuple(w[1] for w in win)))
    except (ImportError, AttributeError, TypeError):
        import scipy.fft
        padded = tuple(scipy.fft.next_fast_len(a + b - 1, real=True)
                       for a, b in zip(shape1, shape2))
    cdt = np.complex64 if dtype == "float32" else np.complex128
    spec_shape = padded[:-1] + (padded[-1] // 2 + 1,)
    rin = pyfftw.empty_aligned(padded, dtype=dtype)
    cout = pyfftw.empty_aligned(spec_shape, dtype=cdt)
    rback = pyfftw.empty_aligned(padded, dtype=dtype)
    flags = (effort,)
    fwd = pyfftw.FFTW(rin, cout, axes=axes, direction="FFTW_FORWARD", flags=flags,
                      threads=nthreads, planning_timelimit=plan_s)
    inv = pyfftw.FFTW(cout, rback, axes=axes, direction="FFTW_BACKWARD",
                      flags=flags + ("FFTW_DESTROY_INPUT",), threads=nthreads,
                      planning_timelimit=plan_s)
    rin[...] = np.random.default_rng(2).standard_normal(padded)
    ts, tp = [], []
    for _ in range(repeats):
        if paired is not None:
            t0 = time.perf_counter()
            paired()
            tp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fwd.execute()
        fwd.execute()
        inv.execute()
        ts.append(time.perf_counter() - t0)
    if paired is not None:
        return (float(np.median(ts)), float(np.median(tp))), padded
    return float(np.median(ts)), padded


def gil_check(nthreads_total=2, repeats=9):
    """Two Python threads, each a long direct convolution with 1 fastconv thread, against the
    same two run one after the other, in ``repeats`` paired rounds. Returns (sequential s,
    concurrent s) of the round with the median ratio, and the best round's ratio. (Each
    round pairs its two timings: on the shared 2-vCPU VM a stretch in which one vCPU is
    taken away makes a whole round serial; medians of the two lists taken apart had read
    1.02x in one benchmark run where rounds measured alone read 1.7-1.95x. Nine rounds,
    not five: with five, one run of session 14 read 1.03x and others 1.35-1.92x.)"""
    import fastconv

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2048, 2048))
    k = rng.standard_normal((9, 9))

    def work():
        with fastconv.threads(1):
            fastconv.convolve(x, k, mode="same", method="direct")

    # what ran before (the peak matmul: OpenBLAS threads spin ~0.1-0.2 s after a call) must
    # not share the cores with the two threads: after a matmul this check read 1.03-1.4x
    time.sleep(0.3)
    work()
    seq, par = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(nthreads_total):
            work()
        seq.append(time.perf_counter() - t0)
        ths = [threading.Thread(target=work) for _ in range(nthreads_total)]
        t0 = time.perf_counter()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        par.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(seq, par)]
    mid = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
    return float(seq[mid]), float(par[mid]), float(max(ratios))


def _ndimage_rate():
    """Seconds per multiply-add of scipy.ndimage.correlate by ndim (to skip hour-long rows)."""
    import scipy.ndimage as ndi

    rng = np.random.default_rng(4)
    rate = {}
    for nd, xs, ks in ((1, (1 << 18,), (63,)), (2, (256, 256), (9, 9)), (3, (48,) * 3, (5,) * 3)):
        x, w = rng.standard_normal(xs), rng.standard_normal(ks)
        ndi.correlate(x, w, mode="constant")
        t0 = time.perf_counter()
        ndi.correlate(x, w, mode="constant")
        rate[nd] = (time.perf_counter() - t0) / (x.size * w.size)
    return rate


def _peer_estimate(peer, spec, rate):
    """Predicted seconds for peers that are always direct; None when not predictable."""
    if peer == "ndimage" and spec.kernel != "gauss":
        return spec.macs * rate[len(spec.x_shape)]
    return None


# ----------------------------------------------------------------------------- the run
def _settings(quick):
    if quick:
        # fastconv's FFT paths: the median of their 2nd-4th calls, as the peers' 3 repeats
        # (the first call plans; FFTW_MEASURE re-planning is off unless asked for).
        # (5 repeats measured 110-118 s for the whole --quick run: too close to its 2 minutes)
        return {"repeats": 3, "warm_repeats": 3, "budget_s": 0.3, "slow_s": 0.15,
                "peer_skip_s": 0.6, "method_skip_s": 1.5, "fftw_plan_s": 2.0}
    return {"repeats": 7, "warm_repeats": 7, "budget_s": 5.0, "slow_s": 5.0,
            "peer_skip_s": 120.0, "method_skip_s": 10.0, "fftw_plan_s": 30.0}


def run_signal(quick=False, threads=2, workloads=None, dtypes=DTYPES, log=print):
    """Run the signal benchmark; returns ``(rows, summary)`` (plain dicts, JSON-ready)."""
    import scipy.signal as sps

    cfg = _settings(quick)
    workloads = WORKLOADS if workloads is None else workloads
    rows = []
    t_start = time.perf_counter()
    gc.collect()
    gc.freeze()          # later collections skip the (large) set of objects imported so far
    with all_threads(threads):
        rate = _ndimage_rate()
        for wi, spec in enumerate(workloads):
            t_spec = time.perf_counter()
            # one float64 reference per workload; the float32 row gets the same inputs rounded
            x64, k64 = spec.inputs(np.float64, seed=1000 + wi)
            reff = sps.correlate if spec.op == "correlate" else sps.convolve
            ref = reff(x64, k64, mode=spec.mode, method="fft")
            for dtype in dtypes:
                x, k = x64.astype(dtype), k64.astype(dtype)
                row = run_row(spec, dtype, x, k, ref, cfg, rate, threads, quick)
                row["seconds"] = time.perf_counter() - t_spec
                t_spec = time.perf_counter()
                rows.append(row)
                log(_row_line(row), flush=True)
            del x64, k64, ref, x, k
        from . import _fft

        _fft.wait_measurements(60.0)   # no FFTW re-plan beside the peak and GIL timings
        # the peak, and the direct 2-D 5x5 float32 call timed in alternation with it
        five = [(wi, w) for wi, w in enumerate(workloads) if w.name == "2d 2048^2 k=5x5 same"]
        if five and "float32" in dtypes:
            wi, spec = five[0]
            x64, k64 = spec.inputs(np.float64, seed=1000 + wi)
            x, k = x64.astype(np.float32), k64.astype(np.float32)
            call = fastconv_call(spec, "direct")
            peak, t5 = float32_peak(paired=lambda: call(x, k), rounds=5)
            extras = {"float32_peak_flops": peak, "direct_5x5_f32_paired_s": t5,
                      "direct_5x5_f32_paired_flops": 2.0 * spec.macs / t5}
            del x64, k64, x, k
        else:
            extras = {"float32_peak_flops": float32_peak()}
        (extras["gil_sequential_s"], extras["gil_concurrent_s"],
         extras["gil_best_speedup"]) = gil_check(threads)
    gc.unfreeze()
    extras["seconds"] = time.perf_counter() - t_start
    extras["memory_probe"] = "VmHWM via clear_refs" if PeakMemory.exact else "VmRSS sampling"
    summary = _summary(rows, extras)
    return rows, summary


def run_row(spec, dtype, x, k, ref, cfg, rate, threads, quick):
    """Check, time and probe every peer and fastconv (auto, direct, fft) on one row."""
    from . import _plan

    calls, notes = peer_calls(spec)
    timing = {"repeats": cfg["repeats"], "budget_s": cfg["budget_s"], "slow_s": cfg["slow_s"]}
    row = {"workload": spec.name, "dtype": dtype, "peers": {}, "fastconv": {},
           "notes": notes}
    for peer in PEERS:
        fn = calls.get(peer)
        est = _peer_estimate(peer, spec, rate) if fn is not None else None
        if fn is None:
            r = Result(t=None, note="n/a")
        elif est is not None and est > cfg["peer_skip_s"]:
            r = Result(t=None, est=est, note=f"skipped (~{est:.0f}s predicted)")
        else:
            r = measure(fn, x, k, ref, dtype, warm=False, **timing)
            if peer == "cv2" and not r["ok"]:
                notes["cv2"] = f"cv2 output differs from scipy 'same' here: skipped ({r['note']})"
        row["peers"][peer] = r
    # fastconv: auto (never skipped), and the two methods auto chooses between
    try:
        row["method"] = fastconv_choice(spec, x, k)
    except Exception as e:  # noqa: BLE001
        row["method"] = f"? ({type(e).__name__})"
    fc = row["fastconv"]
    planned = row["method"] not in ("direct", "separable")      # FFT plans on the first call
    warm = dict(timing, repeats=cfg["warm_repeats"])
    fc["auto"] = measure(fastconv_call(spec, "auto"), x, k, ref, dtype, warm=planned,
                         **(warm if planned else timing))
    kk = _flip(k) if spec.op == "correlate" else k
    for m in ("direct", "fft"):
        if row["method"] == m and fc["auto"]["t"] is not None:
            fc[m] = Result(fc["auto"], note="= auto")
            continue
        try:
            pred = _plan.predict_signal(x.shape, kk.shape, spec.out_shape, dtype, (m,),
                                        nthreads=threads)[m]
        except Exception:  # noqa: BLE001 - model unavailable: skip nothing
            pred = 0.0
        if pred > cfg["method_skip_s"]:
            fc[m] = Result(t=None, est=pred, note=f"skipped (~{pred:.0f}s predicted)")
            continue
        fc[m] = measure(fastconv_call(spec, m), x, k, ref, dtype, warm=(m != "direct"),
                        **(timing if m == "direct" else warm))
    if row["method"] == "fft" or (not quick and fc["fft"].get("t") is not None):
        try:
            # pyFFTW's default planner first (MEASURE wisdom would serve it afterwards)
            fft_call = fastconv_call(spec, "fft")
            (row["bare_fft"], row["fft_paired"]), row["padded"] = bare_fft_time(
                x.shape, kk.shape, spec.mode, dtype, threads, plan_s=cfg["fftw_plan_s"],
                repeats=max(5, cfg.get("repeats", 5)), paired=lambda: fft_call(x, k))
            row["bare_fft_measure"], _ = bare_fft_time(
                x.shape, kk.shape, spec.mode, dtype, threads, plan_s=cfg["fftw_plan_s"],
                effort="FFTW_MEASURE")
        except Exception as e:  # noqa: BLE001
            row["bare_fft"], row["padded"] = None, f"{type(e).__name__}: {e}"
    _finish_row(row, spec)
    if row["x_best"] is not None and row["x_best"] < PAIR_BELOW:
        peer = row["fastest_peer"]
        try:
            row["x_best_paired"] = paired_ratio(
                calls[peer], fastconv_call(spec, "auto"), x, k, row["peers"][peer]["t"],
                row["fastconv"]["auto"]["t"], rounds=cfg.get("pair_rounds", PAIR_ROUNDS))
        except Exception as e:  # noqa: BLE001 - the sequential ratio stands
            row["notes"]["paired"] = f"paired re-timing failed: {type(e).__name__}: {e}"
    return row


def _finish_row(row, spec):
    peers = {p: r["t"] for p, r in row["peers"].items() if r.get("t") is not None}
    t = row["fastconv"]["auto"].get("t")
    row["fastest_peer"] = min(peers, key=peers.get) if peers else None
    row["x_best"] = peers[row["fastest_peer"]] / t if (peers and t) else None
    ts = peers.get("scipy.convolve")
    row["x_scipy"] = ts / t if (ts and t) else None
    fc = row["fastconv"]
    cands = [fc[m]["t"] for m in ("direct", "fft") if fc.get(m, {}).get("t") is not None]
    row["auto_within_10pct"] = (t <= 1.1 * min(cands)) if (t and cands) else None
    row["flops_direct"] = (2.0 * spec.macs / fc["direct"]["t"]
                           if fc.get("direct", {}).get("t") else None)
    # fastconv's FFT call timed in the same repeats as the bare transforms (bare_fft_time)
    t_fft = row.get("fft_paired") or fc.get("fft", {}).get("t")
    if row.get("bare_fft") and t_fft:
        row["fft_vs_bare"] = t_fft / row["bare_fft"]
    if row.get("bare_fft_measure") and t_fft:
        row["fft_vs_bare_measure"] = t_fft / row["bare_fft_measure"]


def _geomean(v):
    v = [a for a in v if a]
    return float(np.exp(np.mean(np.log(v)))) if v else None


def _summary(rows, extras):
    s = dict(extras)
    s["geomean_x_best"] = _geomean([r["x_best"] for r in rows])
    s["geomean_x_scipy"] = _geomean([r["x_scipy"] for r in rows])
    rated = [r for r in rows if r["x_best"]]
    if rated:
        worst = min(rated, key=lambda r: r["x_best"])
        s["min_x_best"] = {"workload": worst["workload"], "dtype": worst["dtype"],
                           "ratio": worst["x_best"], "peer": worst["fastest_peer"]}
    s["rows_below_1"] = [f"{r['workload']} {r['dtype']} ({r['x_best']:.2f}x vs "
                         f"{r['fastest_peer']})" for r in rated if r["x_best"] < 1.0]
    s["paired"] = [(r["workload"], r["dtype"], r["fastest_peer"], r["x_best"])
                   + tuple(r["x_best_paired"]) for r in rows if r.get("x_best_paired")]
    s["rows_wrong"] = [f"{r['workload']} {r['dtype']}: {r['fastconv']['auto']['note']}"
                       for r in rows if not r["fastconv"]["auto"]["ok"]]
    five = [r for r in rows if r["workload"].startswith("2d 2048^2 k=5x5") and
            r["dtype"] == "float32" and r["flops_direct"]]
    if s.get("direct_5x5_f32_paired_flops"):   # timed in alternation with the peak
        s["direct_5x5_f32_flops"] = s["direct_5x5_f32_paired_flops"]
        s["direct_5x5_f32_pct_peak"] = 100.0 * s["direct_5x5_f32_flops"] / s["float32_peak_flops"]
    elif five:
        s["direct_5x5_f32_flops"] = five[0]["flops_direct"]
        s["direct_5x5_f32_pct_peak"] = 100.0 * five[0]["flops_direct"] / s["float32_peak_flops"]
    q = [r["auto_within_10pct"] for r in rows if r["auto_within_10pct"] is not None]
    s["auto_within_10pct"] = (sum(q), len(q))
    s["auto_misses"] = [f"{r['workload']} {r['dtype']}" for r in rows
                        if r["auto_within_10pct"] is False]
    fr = [r for r in rows if r.get("fft_vs_bare") and r["method"] == "fft"]
    s["fft_rows"] = [(r["workload"], r["dtype"], r["bare_fft"], r["fft_vs_bare"],
                      r.get("bare_fft_measure"), r.get("fft_vs_bare_measure"),
                      r.get("fft_paired")) for r in fr]
    s["fft_vs_bare_max"] = max((r["fft_vs_bare"] for r in fr), default=None)
    mem_bad = []
    for r in rows:
        if r["method"] in ("fft", "oa"):
            mf = r["fastconv"]["auto"].get("mem")
            ms = r["peers"]["fftconvolve"].get("mem")
            if mf is not None and ms is not None and mf > ms:
                mem_bad.append(f"{r['workload']} {r['dtype']} ({_mb(mf)} > {_mb(ms)})")
    s["fft_rows_mem_above_fftconvolve"] = mem_bad
    s["gil_speedup"] = extras["gil_sequential_s"] / extras["gil_concurrent_s"]
    s["gil_best_speedup"] = extras.get("gil_best_speedup", s["gil_speedup"])
    return s


# ----------------------------------------------------------------------------- printing
def _fmt_t(t):
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f}s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f}ms"
    return f"{t * 1e6:.0f}us"


def _mb(b):
    if b is None:
        return "?"
    return f"{b / 2**20:.0f}M"


def _cell(r):
    if r.get("t") is None:
        note = r.get("note", "")
        if note.startswith("skipped"):
            return f"(~{r['est']:.0f}s)"
        if note == "n/a":
            return "n/a"
        return "FAIL" if "WRONG" in note else "ERR"
    mark = "*" if len(r["times"]) == 1 else ""
    return f"{_fmt_t(r['t'])}{mark} {_mb(r['mem'])}"


_W = 27
_COLS = ("scipy.conv", "fftconv", "oaconv", "ndimage", "cv2")


def _header():
    h = f"{'workload':<{_W}} {'dt':<3} " + " ".join(f"{c:>14}" for c in _COLS)
    return h + f" {'fastconv':>14} {'method':>9} {'xbest':>6} {'xscipy':>6}"


def _row_line(row):
    dt = "f64" if row["dtype"] == "float64" else "f32"
    cells = " ".join(f"{_cell(row['peers'][p]):>14}" for p in PEERS)
    xb = f"{row['x_best']:.2f}" if row["x_best"] else "-"
    xs = f"{row['x_scipy']:.2f}" if row["x_scipy"] else "-"
    return (f"{row['workload']:<{_W}} {dt:<3} {cells} {_cell(row['fastconv']['auto']):>14} "
            f"{row['method']:>9} {xb:>6} {xs:>6}")


def print_signal(rows, summary, file=None):
    """The second table (auto quality, FFT cost) and the summary lines."""
    def p(*a):
        print(*a, file=file)

    p()
    p("auto quality and FFT path (fastconv methods; '= auto' reuses the auto timing):")
    p(f"{'workload':<{_W}} {'dt':<3} {'direct':>14} {'fft':>14} {'auto':>9} {'ok10%':>5} "
      f"{'bare fftw':>10} {'fft/bare':>8} {'padded':>18}")
    for r in rows:
        fc = r["fastconv"]
        dt = "f64" if r["dtype"] == "float64" else "f32"
        ok = {True: "yes", False: "NO", None: "-"}[r["auto_within_10pct"]]
        bare = _fmt_t(r.get("bare_fft")) if r.get("bare_fft") else "-"
        ratio = f"{r['fft_vs_bare']:.2f}" if r.get("fft_vs_bare") else "-"
        pad = "x".join(map(str, r["padded"])) if isinstance(r.get("padded"), tuple) else "-"
        p(f"{r['workload']:<{_W}} {dt:<3} {_cell(fc['direct']):>14} {_cell(fc['fft']):>14} "
          f"{_fmt_t(fc['auto'].get('t')):>9} {ok:>5} {bare:>10} {ratio:>8} {pad:>18}")
    notes = sorted({n for r in rows for n in r["notes"].values()})
    p()
    p("cells: median time, then peak extra resident memory of one call (output included; "
      f"{summary['memory_probe']}). '*' = a single timed call (slow); '(~Ns)' = predicted, "
      "not run; n/a = not applicable.")
    for n in notes:
        p("note: " + n)
    s = summary
    p()
    p("summary")

    def g(v, fmt="{:.2f}x"):
        return fmt.format(v) if v is not None else "n/a"
    p(f"  geo-mean speed-up over the fastest peer : {g(s['geomean_x_best'])}  (target >= 2x)")
    p(f"  geo-mean speed-up over scipy.convolve   : {g(s['geomean_x_scipy'])}  (target >= 4x)")
    if "min_x_best" in s:
        m = s["min_x_best"]
        p(f"  min ratio over the fastest peer         : {m['ratio']:.2f}x  ({m['workload']} "
          f"{m['dtype']}, vs {m['peer']})  (target >= 1.0)")
    for line in s["rows_below_1"]:
        p(f"    below 1.0: {line}")
    if s.get("paired"):
        p(f"  rows below {PAIR_BELOW}x re-timed in alternation with the fastest peer "
          f"({PAIR_ROUNDS} rounds, order swapped each round; median [min-max] of the rounds' "
          "ratios):")
        for w, dt, peer, seq, med, lo, hi in s["paired"]:
            p(f"    {w} {dt} vs {peer}: {med:.2f}x [{lo:.2f}-{hi:.2f}]  "
              f"(sequential medians {seq:.2f}x)")
    for line in s["rows_wrong"]:
        p(f"    WRONG OUTPUT: {line}")
    p(f"  float32 peak (numpy 4096^2 matmul)      : {s['float32_peak_flops'] / 1e9:.1f} GFLOP/s")
    if "direct_5x5_f32_flops" in s:
        p(f"  direct kernel, 2-D 5x5 float32          : {s['direct_5x5_f32_flops'] / 1e9:.1f} "
          f"GFLOP/s = {s['direct_5x5_f32_pct_peak']:.0f}% of peak  (target >= 40%)"
          + ("  [timed in alternation with the peak matmul]"
             if s.get("direct_5x5_f32_paired_flops") else ""))
    if s["fft_rows"]:
        p(f"  FFT rows, fastconv fft / bare pyFFTW    : max {s['fft_vs_bare_max']:.2f}x  "
          "(target <= 1.25x)")
        for w, dt, bare, ratio, bare_m, ratio_m, paired in s["fft_rows"]:
            mine = f"fastconv {_fmt_t(paired)} in the same repeats, " if paired else ""
            p(f"    {w} {dt}: bare 2 rfftn + 1 irfftn {_fmt_t(bare)} (pyFFTW's default "
              f"planner, FFTW_ESTIMATE), {mine}ratio {ratio:.2f}")
            if bare_m:
                p(f"      with FFTW_MEASURE plans (<= the planning limit each): "
                  f"{_fmt_t(bare_m)}, ratio {ratio_m:.2f}")
    else:
        p("  FFT rows, fastconv fft / bare pyFFTW    : no row chose 'fft'")
    n_ok, n = s["auto_within_10pct"]
    p(f"  'auto' within 10% of min(direct, fft)   : {n_ok}/{n} rows"
      + (f" = {100 * n_ok / n:.0f}%" if n else "") + "  (target >= 90%)")
    for line in s["auto_misses"]:
        p(f"    auto miss: {line}")
    if s["fft_rows_mem_above_fftconvolve"]:
        for line in s["fft_rows_mem_above_fftconvolve"]:
            p(f"    FFT-row memory above fftconvolve: {line}")
    else:
        p("  FFT/OA-row peak memory vs fftconvolve   : never above")
    p(f"  GIL release (2 threads x 1-thread direct): {s['gil_speedup']:.2f}x over sequential "
      f"(median of 9 paired rounds: {_fmt_t(s['gil_sequential_s'])} -> "
      f"{_fmt_t(s['gil_concurrent_s'])}; best round {s['gil_best_speedup']:.2f}x; "
      f"~2x expected)")
    p(f"  signal benchmark wall time              : {s['seconds']:.0f}s")


def header_lines(threads, quick):
    import scipy

    import fastconv

    try:
        import cv2
        cv = cv2.__version__
    except ImportError:
        cv = "not installed"
    lines = [(f"fastconv {fastconv.__version__} | numpy {np.__version__} | scipy "
              f"{scipy.__version__} | opencv {cv} | python {platform.python_version()} | "
              f"{os.cpu_count()} cpus | threads {threads} | {'quick' if quick else 'full'}"),
             f"fastconv from {os.path.dirname(fastconv.__file__)}"]
    from . import _plan

    tuned = _plan._tune_path()
    lines.append("cost model: " + (f"tuned constants from {tuned}" if os.path.isfile(tuned)
                                   else "built-in defaults (run `python -m fastconv tune`)"))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    if load is not None:
        lines.append(f"load average (1 min) at start: {load:.1f}"
                     + ("  WARNING: other processes are using the CPUs; timings are not "
                        "trustworthy" if load > 0.7 else ""))
    return lines


def bench_signal(quick=False, threads=2, file=None):
    """Run and print the signal benchmark; returns (rows, summary)."""
    for line in header_lines(threads, quick):
        print(line, file=file)
    print(_header(), file=file)
    rows, summary = run_signal(quick=quick, threads=threads,
                               log=lambda *a, **kw: print(*a, file=file, **kw))
    print_signal(rows, summary, file=file)
    return rows, summary


def to_json(obj):
    """JSON-ready copy (tuples -> lists, inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def main(argv=None):
    """``python benchmarks/bench_signal.py [--quick] [--threads N] [--json FILE]``."""
    import argparse

    ap = argparse.ArgumentParser(description="fastconv signal benchmark")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    rows, summary = bench_signal(a.quick, a.threads)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(to_json({"signal": rows, "signal_summary": summary}), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
