"""FFT engine on the CPU: convolution theorem and overlap-save/overlap-add blocks.

Contract (docs/internals.md)
----------------------------
``convolve(in1, in2, axes, start, shape, nthreads)`` returns the linear (true) convolution of
``in1`` and ``in2`` along ``axes`` cropped to ``full[start[i]:start[i] + shape[i]]`` on each
``axes[i]``; the other axes broadcast as in numpy (sizes equal or 1), like
``scipy.signal.fftconvolve(..., axes=...)``.  Real float32/float64 inputs use real-to-complex
transforms (the last of ``axes`` is halved) and return the same real dtype; complex64/complex128
use complex transforms.  float32 is computed in single precision, float64 in double (as scipy).
``oaconvolve`` has the same contract, computed by blocks.

How a call runs
---------------
1. *Canonical layout.*  The arrays are viewed (no copy) with the broadcast ("batch") axes first
   and the convolution axes last, so every transform is over the trailing, contiguous axes of a
   C-ordered buffer and the plan cache only sees ``(batch shape, padded shape)``.
2. *Padded length.*  Along each axis the cyclic length ``L`` only has to avoid aliasing inside
   the requested window: ``L >= max(start + shape, full - start, n1, n2)``.  That is
   ``n1 + n2 - 1`` for 'full' but only about ``n1 + n2/2`` for 'same' and ``n1`` for 'valid';
   ``L`` is then the fast length (:func:`next_fast_len`) within 8 % above that bound with the
   least predicted FFTW time (the smallest is often an odd 3**a 7 11 length that is slower).
3. *Pruned kernel transform.*  When ``in2`` is small against the transform (N-d), its forward
   transform skips the all-zero lines: the last axis is transformed only on the lines that hold
   data, then the next axis only on the planes that hold data, and so on (for a 31x31 kernel in
   a 2160x2160 transform this halves that transform; the inputs are swapped first so that the
   smaller is ``in2``).
4. *Work sets.*  A work set holds two spectrum buffers (aligned with ``pyfftw.empty_aligned``)
   and the FFTW plans on them: forward for ``in1``, forward for ``in2`` and one inverse on the
   buffer that receives the product.  Where out-of-place FFTW_ESTIMATE plans are faster
   (:func:`_layout`: N-d real transforms, and the inverse of 1-D real transforms up to a few
   MiB; in-place r2c plans were measured up to 1.75x slower, c2r up to 2x) the real data go
   through one shared real scratch buffer: ``in1`` is copied into it and transformed out of
   place into the first spectrum, then ``in2`` likewise into the second, and the inverse writes
   the product back into it; otherwise the real data live in the real view of the spectrum
   buffer (in place).  A call copies (zero padding only the margin) the inputs in, runs the two
   forward transforms, multiplies the spectra in place, runs the inverse and returns the
   cropped window (see :func:`convolve`).  Peak memory is therefore two spectra plus at most
   one real buffer plus the result, against about four spectra plus the result for
   ``scipy.signal.fftconvolve``.
5. *Plan cache.*  Work sets are cached in a bounded LRU keyed by
   ``(direction, dtype, batch shapes, padded shape, threads)`` (a byte budget: their buffers are
   the dominant memory).  Each work set belongs to one caller at a time: a caller takes one from
   the pool of its key, or builds a new one when all are busy, so the same FFTW object is never
   executed by two threads, while callers on the same or different shapes run in parallel (FFTW
   execution releases the GIL).  FFTW planning is not thread-safe, so every plan is created under
   one module lock.
6. *Planning policy.*  A first plan uses FFTW wisdom when there is some for the problem
   (``FFTW_MEASURE | FFTW_WISDOM_ONLY``: instant), otherwise ``FFTW_ESTIMATE`` (a few
   milliseconds), so a one-off call never pays for measuring.  N-d overlap-add blocks are the
   exception (:data:`AUTO_MEASURE_BLOCKS`, on unless ``FASTCONV_FFTW_MEASURE=0``): a block key
   that has run :data:`BLOCK_MEASURE_AFTER_S` is re-planned with FFTW_MEASURE in a background
   thread right away (block plans are small and shared by many problem shapes; measuring one
   costs under a second, once per machine).  For other keys, only when :data:`AUTO_MEASURE` is on
   (environment ``FASTCONV_FFTW_MEASURE=1``; off by default, because measuring competes with
   the caller's own work on small machines) are hot keys measured, in a background thread
   (:data:`BACKGROUND_MEASURE`): when the same key has been used
   :data:`MEASURE_AFTER` times and has cost at least :data:`MEASURE_MIN_SECONDS`, its plans are
   re-planned with ``FFTW_MEASURE`` under a time limit equal to the time already spent on the key
   (clamped to [:data:`MEASURE_MIN_LIMIT`, :data:`MEASURE_MAX_LIMIT`]), so measuring at most
   doubles what the key has cost so far and is amortised over the later calls.  (Measuring is
   slow: ~0.1 s for a 100-point plan, seconds for 10**4 points, a minute for 2-D 2100**2 on
   2 cores; it pays 1.5-3x on small block transforms, less on large ones.  A time-limited
   measurement still improves the plan; its partial wisdom speeds up the next one.)  The
   wisdom is saved to ``get_cache_dir()/fftw_wisdom.pkl`` after each measured plan and at exit,
   and loaded lazily before the first plan; an unreadable or corrupt file is ignored.
7. *Threads.*  FFTW plans use ``nthreads`` threads; the element-wise passes (copy in, spectrum
   product, crop out) are split across the same number of Python threads (numpy releases the
   GIL).  ``nthreads=None`` means :func:`fastconv._config.get_num_threads`.
8. *Memory guard.*  The bytes a call must allocate are computed first; a request larger than
   the memory available (``MemAvailable``) or than numpy can index raises ``MemoryError`` naming
   the size in GiB before anything is allocated.
9. *Fallback.*  Without pyFFTW (or with ``USE_PYFFTW = False``) the same algorithm runs on
   ``scipy.fft`` (``rfftn``/``irfftn`` with ``workers=nthreads``).

Overlap blocks
--------------
:func:`oaconvolve` computes each output block of ``step`` samples per axis from an input segment
of ``L = step + n2 - 1`` samples (overlap-save: segments overlap, output blocks are disjoint, so
blocks can be computed by different threads without any accumulation pass; the result is the
overlap-add result exactly).  ``L`` is chosen by :func:`oa_plan` to minimise the predicted cost
per output sample, ``(flops(L) + per-block overhead) / step``; with two or more convolution
axes only among lengths 2**a, 3*2**a, 5*2**a and blocks of at most :data:`OA_ND_MAX_POINTS`
points (FFTW_ESTIMATE plans of other lengths are often slow, and larger blocks miss the
cache: see :data:`OA_ND_ODD_PARTS`).  Blocks are distributed over
``nthreads`` Python threads, each with single-threaded plans and its own work set; the kernel
spectrum is computed once and shared read-only.

Cost helpers for the planner
----------------------------
:func:`padded_shape`, :func:`flops` and :func:`oa_plan` give the padded transform shape and the
predicted floating-point operation counts (``5 N log2 N`` per complex transform, half for real
ones), which ``fastconv._plan`` multiplies by calibrated seconds-per-flop constants.
"""
import atexit
import collections
import functools
import math
import os
import pickle
import threading
import time

import numpy as np

from . import _pool as _mempool

try:  # pragma: no cover - depends on the environment
    import pyfftw

    HAVE_PYFFTW = True
except ImportError:  # pragma: no cover
    pyfftw = None
    HAVE_PYFFTW = False

__all__ = [
    "clear_plan_cache",
    "convolve",
    "flops",
    "load_wisdom",
    "next_fast_len",
    "oa_plan",
    "oaconvolve",
    "padded_shape",
    "plan_cache_info",
    "save_wisdom",
]

#: Use pyFFTW when importable.  Set to False (tests do) to force the scipy.fft path.
USE_PYFFTW = HAVE_PYFFTW
#: Uses of one plan key after which its plans may be re-made with FFTW_MEASURE ...
MEASURE_AFTER = 3
#: re-plan hot shapes with FFTW_MEASURE at all (env FASTCONV_FFTW_MEASURE=1). Off by
#: default: measuring costs seconds of planning that compete with the caller's own work on
#: small machines, for a modest steady-state gain; wisdom loaded from the cache is always used.
AUTO_MEASURE = os.environ.get("FASTCONV_FFTW_MEASURE", "") not in ("", "0")
#: N-d overlap-add block plans ("oa" keys of 2 or more axes: single-threaded, at most
#: OA_ND_MAX_POINTS points) are measured whatever AUTO_MEASURE says, unless
#: FASTCONV_FFTW_MEASURE=0 (1-D blocks are not: measuring 34560 points took 6-7 s): in
#: the background, as soon as a key has run BLOCK_MEASURE_AFTER_S seconds in this process,
#: under FFTW's planning limit BLOCK_MEASURE_LIMIT_S. Measured on a 2-core AVX2 machine,
#: FFTW_ESTIMATE block plans run 1.2-1.45x slower than measured ones (320x768: 0.53/0.52 ms
#: forward/inverse float32 against 0.46/0.40) and measuring one costs 0.3-0.9 s, once per
#: machine: the wisdom is saved. (A time limit that stops FFTW early gives no gain: 320x768
#: limited to 0.1 or 0.3 s planned as ESTIMATE does, hence a limit well above the cost.)
AUTO_MEASURE_BLOCKS = os.environ.get("FASTCONV_FFTW_MEASURE", "") != "0"
BLOCK_MEASURE_AFTER_S = 0.02
BLOCK_MEASURE_LIMIT_S = 5.0
#: measure hot shapes in a background thread (False: inside the call that makes them hot)
BACKGROUND_MEASURE = True
#: ... once this many seconds have been spent executing them; FFTW's planning time limit is
#: then the time already spent (at least MEASURE_MIN_LIMIT, at most MEASURE_MAX_LIMIT).
MEASURE_MIN_SECONDS = 0.05
MEASURE_MIN_LIMIT = 0.05
MEASURE_MAX_LIMIT = 30.0
#: Byte budget of the cached work sets (their buffers dominate).
CACHE_BYTES = 512 * 2**20
#: Most work sets cached in total.
CACHE_ENTRIES = 64
#: Element-wise passes smaller than this run on one thread.
_PAR_MIN = 1 << 16
#: Predicted cost of the fixed per-block work of oaconvolve, in flop equivalents (blocks
#: looped over in Python); the 1-D unbatched case batches its blocks (``_oa_batched_1d``).
OA_BLOCK_OVERHEAD = 1.5e5
OA_BATCHED_BLOCK_OVERHEAD = 5e3

_REAL = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}
_COMPLEX = {np.dtype(np.complex64), np.dtype(np.complex128)}
#: long double (where it is wider than float64): transformed by scipy.fft, as
#: scipy.signal.fftconvolve does (FFTW's plans here go to float64 at most)
_LONG = ({np.dtype(np.longdouble), np.dtype(np.clongdouble)}
         if np.dtype(np.longdouble).itemsize > 8 else set())
#: Problems of at most this many transform points in all (padded lengths times the broadcast
#: batch) run in one scipy.fft pass (:func:`_convolve_scipy`) instead of on FFTW plans: the
#: plan cache, buffers and threads are then most of the call. Measured (1 thread): 100 by 5
#: samples 54 -> 29 us for the transforms' part (scipy.signal.fftconvolve 39 us in all),
#: 32x32 by 5x5 81 -> 47 us; even at 4000 by 100 and 128x128 by 9x9.
SMALL_POINTS = 6144


def _scipy_route(p, L):
    """Whether problem ``p`` padded to ``L`` takes the one-pass scipy.fft route even where
    pyFFTW is at hand: long double, or at most :data:`SMALL_POINTS` transform points."""
    return p.dtype in _LONG or math.prod(p.b) * math.prod(L) <= SMALL_POINTS


# --------------------------------------------------------------------------------------------
# sizes and costs
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _next_smooth(n, primes):
    """Smallest m >= n whose prime factors are all in ``primes`` (a sorted tuple)."""
    if n <= 1:
        return 1
    best = None
    # enumerate products of all primes but the first, then fill with powers of the first
    p0 = primes[0]

    def rec(i, prod):
        nonlocal best
        if best is not None and prod >= best:
            return
        if i == len(primes):
            m = prod
            if m < n:
                m *= 1 << (((n + m - 1) // m - 1).bit_length()) if p0 == 2 else 1
                while m < n:
                    m *= p0
            if best is None or m < best:
                best = m
            return
        p = primes[i]
        while True:
            rec(i + 1, prod)
            if prod >= n:
                break
            prod *= p

    rec(1, 1)
    return best


@functools.lru_cache(maxsize=4096)
def next_fast_len(n, real=True):
    """Smallest length ``m >= n`` that FFTW transforms fast.

    Parameters
    ----------
    n : int
        Minimum length (>= 0).
    real : bool, optional
        Accepted for ``scipy.fft.next_fast_len`` compatibility.  FFTW's real-to-complex and
        complex transforms are fast on the same lengths, so the answer does not depend on it.

    Returns
    -------
    int
        The smallest ``m >= n`` of the form ``2**a 3**b 5**c 7**d 11**e 13**f`` with
        ``e + f <= 1`` (FFTW has hard-coded codelets for these radices).

    Examples
    --------
    >>> next_fast_len(1000), next_fast_len(1021), next_fast_len(2079)
    (1000, 1024, 2079)
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n <= 6:
        return max(n, 1) if n != 0 else 0
    best = _next_smooth(n, (2, 3, 5, 7))
    for f in (11, 13):
        best = min(best, f * _next_smooth(-(-n // f), (2, 3, 5, 7)))
    return best


_RADIX_COST = {2: 1.0, 3: 1.6, 5: 2.3, 7: 4.0, 11: 5.0, 13: 5.5}


def _len_cost(m):
    """Relative FFTW time of a length-m transform: m * sum(exponent * radix cost), odd x1.25."""
    w, x = 0.0, m
    for p, c in _RADIX_COST.items():
        while x % p == 0:
            x //= p
            w += c
    return m * max(w, 1.0) * (1.25 if m % 2 else 1.0)


@functools.lru_cache(maxsize=4096)
def _good_len(n, even=False):
    """The fast length in [n, 1.08 n] with the least predicted transform time (``even``:
    the least even one, for the last axis, which the real transforms halve).

    Smallest is not fastest: e.g. 2079 = 3**3 7 11 and 1002375 (odd) transform 1.3-2x slower
    per point than 2160 or 1008000 on FFTW. An odd last axis is worse: FFTW_ESTIMATE's
    2-thread r2c/c2r plans of (1500, 35), (48, 8, 35) or (2000, 75) ran 5-10x slower than
    its 1-thread ones (0.33 -> 2.4 ms), where (1500, 36) ran 1.35x faster with 2 threads.
    """
    m = next_fast_len(n)
    while even and m % 2 and m > 1:       # (a length-1 axis needs no transform)
        m = next_fast_len(m + 1)
    if n < 64:
        return m
    best, hi = (_len_cost(m), m), max(m, int(n * 1.08))
    while True:
        m = next_fast_len(m + 1)
        if m > hi:
            return best[1]
        if not (even and m % 2):
            best = min(best, (_len_cost(m), m))


@functools.lru_cache(maxsize=4096)
def _fast_lengths(lo, hi):
    """Sorted 2**a 3**b 5**c lengths in [lo, hi] (candidates for overlap block sizes)."""
    out = []
    p2 = 1
    while p2 <= hi:
        p3 = p2
        while p3 <= hi:
            p5 = p3
            while p5 <= hi:
                if p5 >= lo:
                    out.append(p5)
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return tuple(sorted(out))


def _window_len(n1, n2, start, m):
    """Least cyclic length that computes full[start:start+m] of an n1-by-n2 convolution."""
    full = n1 + n2 - 1
    return max(start + m, full - start, n1, n2, 1)


def _norm_window(in1_shape, in2_shape, axes, start, shape):
    if start is None:
        start = (0,) * len(axes)
    if shape is None:
        shape = tuple(in1_shape[a] + in2_shape[a] - 1 for a in axes)
    return tuple(int(s) for s in start), tuple(int(s) for s in shape)


def padded_shape(in1_shape, in2_shape, axes, start=None, shape=None):
    """Transform shape (along ``axes``) used by :func:`convolve`.

    Parameters
    ----------
    in1_shape, in2_shape : tuple of int
        Shapes of the two inputs (same length).
    axes : tuple of int
        Convolution axes.
    start, shape : tuple of int, optional
        Requested window of the full convolution (default: all of it).  A window smaller than
        'full' allows a shorter cyclic length (e.g. about ``n1 + n2/2`` for 'same').

    Returns
    -------
    tuple of int
        Per axis, among the fast lengths (see :func:`next_fast_len`) within 8 % of the least
        alias-free length, the one with the least predicted FFTW time (radix costs, odd lengths
        penalised).

    Examples
    --------
    >>> padded_shape((1000,), (31,), (0,))
    (1080,)
    >>> padded_shape((2048, 2048), (31, 31), (0, 1), start=(15, 15), shape=(2048, 2048))
    (2160, 2160)
    """
    start, shape = _norm_window(in1_shape, in2_shape, axes, start, shape)
    k = len(axes)
    return tuple(
        _good_len(_window_len(in1_shape[a], in2_shape[a], s, m), i == k - 1)
        for i, (a, s, m) in enumerate(zip(axes, start, shape))
    )


def _transform_flops(n, real):
    if n <= 1:
        return 0.0
    f = 5.0 * n * math.log2(n)
    return 0.5 * f if real else f


def flops(padded_shape, real=True, batch=1, batch2=None):
    """Predicted floating-point operations of one :func:`convolve` call.

    Two forward transforms, the spectrum product and one inverse transform of
    ``padded_shape`` (``5 N log2 N`` per complex transform of ``N`` points, half that for
    real ones, 6 per complex product).

    Parameters
    ----------
    padded_shape : tuple of int
        Transform shape (see :func:`padded_shape`).
    real : bool
        Real-to-complex transforms (real input) or complex ones.
    batch : int, optional
        Number of transforms of ``in1`` (product of its broadcast axes) and of the result.
    batch2 : int, optional
        Number of transforms of ``in2`` (default ``batch``).

    Returns
    -------
    float

    Examples
    --------
    >>> flops((1024,), real=False)
    159744.0
    """
    n = math.prod(padded_shape)
    t = _transform_flops(n, real)
    b2 = batch if batch2 is None else batch2
    nspec = n // 2 + 1 if real else n
    return float((2 * batch + b2) * t + 6 * batch * nspec)


#: N-d overlap blocks (two or more convolution axes) use transform lengths 2**a, 3*2**a and
#: 5*2**a only, of at most OA_ND_MAX_POINTS points per block.  FFTW_ESTIMATE plans (what a
#: first call gets) of lengths with larger odd parts are irregular and often slow (a
#: 480 x 480 forward+inverse pair took 1.7-2.2 ms on one thread, 512 x 512 1.3-1.5 ms), and
#: blocks beyond ~640 x 640 lose to cache misses with one block per worker thread.  Measured
#: on 2048^2 images, kernels 15, 31, 63 ('same') and 64 ('valid'), float32 and float64, 2
#: threads, every block length from 192 to 1024 forced in turn in one process (7 rounds):
#: this rule's choices took 30.6 ms (geometric mean) against 39.7 ms for the plain
#: flop model's and 27.3 ms for the best length of each case.
OA_ND_ODD_PARTS = (1, 3, 5)
OA_ND_MAX_POINTS = 2**19


def _odd_part(n):
    n = int(n)
    while n > 1 and n % 2 == 0:
        n //= 2
    return n


def oa_plan(in1_shape, in2_shape, axes, start=None, shape=None, real=True, batch=1):
    """Block sizes :func:`oaconvolve` uses and their predicted cost.

    Parameters
    ----------
    in1_shape, in2_shape : tuple of int
        Input shapes.  (:func:`oaconvolve` swaps the inputs first when ``in2`` is the larger
        along ``axes``; this function plans for the order it is given.)
    axes : tuple of int
        Convolution axes.
    start, shape : tuple of int, optional
        Requested window (default 'full').
    real : bool, optional
        Real-to-complex transforms.
    batch : int, optional
        Number of broadcast transforms per block.

    Returns
    -------
    dict
        ``block`` (transform length per axis), ``step`` (output samples per block per axis),
        ``nblocks`` (per axis), ``flops`` (predicted total, including the kernel transform) and
        ``overhead_flops`` (the per-block fixed cost term included in ``flops``).

    Examples
    --------
    >>> p = oa_plan((10**7,), (1000,), (0,))
    >>> p["block"][0] > 4 * 1000
    True
    """
    start, shape = _norm_window(in1_shape, in2_shape, axes, start, shape)
    n2s = [in2_shape[a] for a in axes]
    nd_rule = len(axes) >= 2
    cands = []
    for i, (n2, m) in enumerate(zip(n2s, shape)):
        # the last axis even (see _good_len: odd real transforms plan badly on 2 threads)
        last = i == len(n2s) - 1
        lmax = _good_len(m + n2 - 1, True) if last else next_fast_len(m + n2 - 1)
        lo = max(n2, 2 * (n2 - 1), 8)
        c = [L for L in _fast_lengths(lo, lmax) if L < lmax
             and (not nd_rule or _odd_part(L) in OA_ND_ODD_PARTS)
             and not (last and L % 2)] + [lmax]
        # per-axis cost per output sample: keep the best few candidates
        c.sort(key=lambda L: (L * math.log2(max(L, 2)) + 64) / (L - n2 + 1))
        cands.append(sorted(set(c[:6] + [lmax])))

    over = OA_BATCHED_BLOCK_OVERHEAD if len(axes) == 1 and batch == 1 else OA_BLOCK_OVERHEAD

    def cost(Ls):
        nb = math.prod(-(-m // (L - n2 + 1)) for L, n2, m in zip(Ls, n2s, shape))
        per = flops(Ls, real, batch, 0) + over
        return nb * per + flops(Ls, real, 0, 1), nb

    def rank(Ls):
        # N-d: blocks within the point cap first, then the least predicted cost (a huge
        # kernel whose every block exceeds the cap still gets the cheapest one)
        return (nd_rule and math.prod(Ls) > OA_ND_MAX_POINTS, cost(Ls)[0])

    if math.prod(len(c) for c in cands) <= 4096:
        import itertools

        Ls = min(itertools.product(*cands), key=rank)
    else:  # many axes: coordinate search from the single-block sizes
        cur = [c[-1] for c in cands]
        for _ in range(3):
            for i, c in enumerate(cands):
                cur[i] = min(c, key=lambda L, i=i: rank(cur[:i] + [L] + cur[i + 1 :]))
        Ls = tuple(cur)
    c, nb = cost(Ls)
    steps = tuple(L - n2 + 1 for L, n2 in zip(Ls, n2s))
    return {
        "block": tuple(Ls),
        "step": steps,
        "nblocks": tuple(-(-m // s) for m, s in zip(shape, steps)),
        "flops": float(c),
        "overhead_flops": float(nb * over),
    }


# --------------------------------------------------------------------------------------------
# memory guard
# --------------------------------------------------------------------------------------------
def _available_bytes():
    from ._config import available_memory
    return available_memory()


_INTP_MAX = int(np.iinfo(np.intp).max)


def _check_memory(nbytes, what, elems=()):
    """Raise MemoryError, before allocating, when ``nbytes`` cannot be had."""
    from . import _config
    too_big = any(e > _INTP_MAX for e in elems) or nbytes > _INTP_MAX
    if not too_big and nbytes < _config.CHECK_ALLOC_FROM:
        return  # small: not worth reading /proc/meminfo for (a third of a tiny call)
    gib = nbytes / 2**30
    if not too_big:
        avail = _available_bytes()
        if nbytes <= avail:
            return
        clear_plan_cache()  # cached buffers may be what is in the way
        avail = _available_bytes()
        if nbytes <= avail:
            return
        msg = f"{what} needs {gib:.3g} GiB of buffers but only {avail / 2**30:.3g} GiB is available"
    else:
        msg = f"{what} needs {gib:.3g} GiB of buffers, more than numpy can index"
    raise MemoryError(msg)


# --------------------------------------------------------------------------------------------
# parallel element-wise passes
# --------------------------------------------------------------------------------------------
_pool = None
_pool_lock = threading.Lock()


def _executor():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from concurrent.futures import ThreadPoolExecutor

                _pool = ThreadPoolExecutor(
                    max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="fastconv-fft"
                )
    return _pool


def _run_parallel(fn, items):
    """Run ``fn(item)`` for each item; the first in the calling thread."""
    if len(items) == 1:
        fn(items[0])
        return
    # numpy's floating-point error handling is per thread: the workers take the caller's
    # (an overflow inside a block warned from a worker though the caller had silenced it)
    err_state = np.geterr()

    def in_callers_errstate(it):
        with np.errstate(**err_state):
            return fn(it)
    futs = [_executor().submit(in_callers_errstate, it) for it in items[1:]]
    err = None
    try:
        fn(items[0])
    except BaseException as e:  # noqa: BLE001 - re-raised after the others finish
        err = e
    for f in futs:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            err = err or e
    if err is not None:
        raise err


def _elementwise(op, out, ins, nthreads):
    """``op(out_part, *in_parts)`` over slabs of ``out`` (inputs broadcast against it)."""
    if nthreads > 1 and out.size >= 2 * _PAR_MIN:
        for ax, s in enumerate(out.shape):
            if s >= nthreads:
                break
        else:
            ax = None
        if ax is not None:
            nch = min(nthreads, max(1, out.size // _PAR_MIN), out.shape[ax])
            bounds = [out.shape[ax] * i // nch for i in range(nch + 1)]
            pre = (slice(None),) * ax

            def part(i):
                sl = pre + (slice(bounds[i], bounds[i + 1]),)
                op(out[sl], *[a if a.shape[ax] == 1 else a[sl] for a in ins])

            _run_parallel(part, list(range(nch)))
            return
    op(out, *ins)


def _copy(out, src):
    np.copyto(out, src)


def _zero(out):
    out[...] = 0


def _mul(out, a, b):
    np.multiply(a, b, out=out)


# --------------------------------------------------------------------------------------------
# wisdom
# --------------------------------------------------------------------------------------------
_plan_lock = threading.RLock()  # FFTW planning (not thread-safe) and wisdom import/export
_wisdom_loaded = False
_wisdom_dirty = False


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # only plain tuples of bytes are accepted
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a wisdom file")


def _wisdom_path():
    from ._config import get_cache_dir

    return os.path.join(get_cache_dir(), "fftw_wisdom.pkl")


def load_wisdom(path=None):
    """Import FFTW wisdom from ``path`` (default ``get_cache_dir()/fftw_wisdom.pkl``).

    Returns
    -------
    bool
        True when wisdom was read and imported; False when the file is missing, unreadable or
        corrupt (never raises for those).
    """
    global _wisdom_loaded
    if not HAVE_PYFFTW:
        return False
    with _plan_lock:
        _wisdom_loaded = True
        try:
            path = path or _wisdom_path()
            with open(path, "rb") as f:
                w = _SafeUnpickler(f).load()
            if not (isinstance(w, tuple) and len(w) == 3 and all(isinstance(x, bytes) for x in w)):
                return False
            ok = pyfftw.import_wisdom(w)
            return bool(any(ok))
        except Exception:  # noqa: BLE001 - a bad cache file must never break a convolution
            return False


def save_wisdom(path=None):
    """Write the process' FFTW wisdom to ``path`` (default in the cache directory).

    Written atomically (temporary file then rename).  Returns True on success, False when the
    directory cannot be written (never raises for that).
    """
    global _wisdom_dirty
    if not HAVE_PYFFTW:
        return False
    with _plan_lock:
        try:
            path = path or _wisdom_path()
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                pickle.dump(tuple(pyfftw.export_wisdom()), f, protocol=4)
            os.replace(tmp, path)
            _wisdom_dirty = False
            return True
        except Exception:  # noqa: BLE001
            return False


def _save_wisdom_at_exit():  # pragma: no cover - runs at interpreter exit
    if _wisdom_dirty:
        save_wisdom()


atexit.register(_save_wisdom_at_exit)


# --------------------------------------------------------------------------------------------
# work sets and the plan cache
# --------------------------------------------------------------------------------------------
def _buffer(shape, dtype):
    """A transform buffer: large ones from the result pool (:mod:`fastconv._pool`, page
    aligned), since any of them may leave as a result (donated) and a buffer the caller has
    dropped is then reused instead of faulting in fresh pages; small ones SIMD-aligned."""
    return _mempool.empty(shape, dtype, small=pyfftw.empty_aligned)


#: Complex N-d transforms of whole problems (not overlap blocks) run on buffers with padded
#: line pitches (:func:`_spec_pitch`): FFTW_ESTIMATE's strided passes along the leading axes
#: otherwise step through memory by a multiple of many cache lines (all lines in a few
#: cache sets). Transforms alone, 2 threads: complex128 1024x1024 24.5 -> 3.1 ms (scipy.fft
#: 6.8), 384x384 2.6 -> 0.5, 120x96x128 27 -> 4.8. Convolutions: complex64 1000^2 by 25^2
#: 71 -> 10 ms, complex128 96x100x120 by 9^3 68 -> 27 ms, 525x736 by 262x368 37 -> 19 ms.
#: Real spectra (lines of L/2+1 elements) measured 0.8-1.15x (2-D gained, 3-D and overlap
#: blocks lost), and complex overlap blocks (in cache) 0.96-1.2x: those keep their layout.
PAD_PITCH = True
#: Lines (the last axis) shorter than this many bytes keep their length (padding them
#: would cost proportionally more memory than the conflicts they avoid).
PAD_MIN_LINE_BYTES = 256


def _spec_pitch(spec, itemsize):
    """Allocated extents of a spectrum buffer of extents ``spec`` (k >= 2 transform axes):
    the last axis to an odd number of 64-byte cache lines, the middle ones to odd lengths,
    so that no transform axis steps through memory by a multiple of two lines."""
    if len(spec) < 2 or spec[-1] * itemsize < PAD_MIN_LINE_BYTES:
        return spec
    line = max(1, 64 // itemsize)
    last = -(-spec[-1] // line)
    last = (last + 1 - last % 2) * line
    mids = tuple(n + 1 - n % 2 for n in spec[1:-1])
    return (spec[0],) + mids + (last,)


def _spec_buffer(batch, spec, dtype, pad=True):
    """A spectrum buffer of shape ``batch + spec``: with ``pad``, a view into an allocation
    with the padded line pitches of :func:`_spec_pitch`."""
    alloc = _spec_pitch(spec, np.dtype(dtype).itemsize) if pad else spec
    buf = _buffer(batch + alloc, dtype)
    if alloc == spec:
        return buf
    return buf[(slice(None),) * len(batch) + tuple(slice(0, n) for n in spec)]


def _pads(kind, dtype):
    """Whether a work set of ``kind`` ('conv' or 'oa') and ``dtype`` pads its spectrum
    buffers (:data:`PAD_PITCH`)."""
    return PAD_PITCH and kind == "conv" and np.dtype(dtype).kind == "c"


def _spec_alloc_bytes(w, k, pad):
    """Bytes allocated for spectrum buffer ``w`` (its padded extents over the last k axes)."""
    nb = w.ndim - k
    spec = w.shape[nb:]
    return math.prod(w.shape[:nb] + (_spec_pitch(spec, w.itemsize) if pad else spec)) \
        * w.itemsize


class _WorkSet:
    """In-place transform buffers and the FFTW plans on them (one owner at a time).

    ``w1``: spectrum buffer of in1 (batch ``b1``), ``w2``: of in2 (batch ``b2``), ``wp``: the
    product (batch ``b``), which is ``w1`` or ``w2`` when one of them has the broadcast batch.
    ``r1``, ``r2``, ``rp`` are their real views (the arrays themselves for complex data).
    """

    def __init__(self, key):
        (_, dtype, b1, b2, b, L, threads, prune2) = key
        self.prune2 = prune2
        self.key = key
        self.real = dtype.kind == "f"
        cdt = _REAL[dtype] if self.real else dtype
        spec = L[:-1] + (L[-1] // 2 + 1,) if self.real else L
        self.L = L
        self.b1, self.b2, self.b = b1, b2, b
        self.threads = threads
        self.fwd_oop, self.inv_oop = _layout(dtype, L, threads)
        self.pad = _pads(key[0], dtype)
        self.w1 = _spec_buffer(b1, spec, cdt, self.pad)
        self.w2 = _spec_buffer(b2, spec, cdt, self.pad)
        if b1 == b:
            self.wp = self.w1
        elif b2 == b:
            self.wp = self.w2
        else:
            self.wp = _spec_buffer(b, spec, cdt, self.pad)
        self.scratch = None
        self.scratch_size = _scratch_elems(b1, b2, b, L, self.fwd_oop, self.inv_oop)
        if self.scratch_size:
            self.scratch = _buffer(self.scratch_size, dtype)
        self._views()
        self.nbytes = sum({id(w): _spec_alloc_bytes(w, len(L), self.pad)
                           for w in (self.w1, self.w2, self.wp)}.values())
        self.nbytes += self.scratch_size * dtype.itemsize
        self.measured = False
        self.f1 = self.f2 = self.inv = None
        self.steps2 = None

    def _sview(self, batch):
        n = math.prod(batch + self.L)
        return self.scratch[:n].reshape(batch + self.L)

    def _views(self):
        """``r1``, ``r2``: real inputs of the forward transforms; ``rp``: real output of the
        inverse (views of the spectrum buffers, or of the shared real scratch buffer for the
        out-of-place ones)."""
        if self.fwd_oop:
            self.r1, self.r2 = self._sview(self.b1), self._sview(self.b2)
        else:
            self.r1, self.r2 = self._rview(self.w1), self._rview(self.w2)
        self.rp = self._sview(self.b) if self.inv_oop else self._rview(self.wp)

    def ready(self):
        """Re-allocate the scratch buffer after it was donated and re-point the plans."""
        if self.scratch is not None or not self.scratch_size:
            return
        # the last one went out as a result: reuse a released one
        self.scratch = _buffer(self.scratch_size, _real_of(self.w1.dtype))
        self._views()
        if self.f1 is None:
            return
        self.f1.update_arrays(self.r1, self.w1)
        self.f2.update_arrays(self.r2, self.w2)
        self.inv.update_arrays(self.wp, self.rp)
        if self.steps2 is not None:
            sub = self.steps2_sub
            self.steps2[0][1].update_arrays(self.r2[sub], self.w2[sub])

    def _pruned_steps(self, r, w, n, kw):
        """Plans of a forward transform that skips the all-zero lines of a small input.

        ``n`` are the input's extents along the first k-1 transform axes.  The last axis is
        transformed only on the ``prod(n)`` lines that hold data, then axis k-2 only on the
        ``prod(n[:-1])`` planes that hold data, and so on; each step zeroes the margin it
        brings in just before it runs.  Returns ``[(zero_index or None, plan), ...]``.
        """
        k = len(self.L)
        pre = (slice(None),) * (w.ndim - k)
        kw = dict(kw)
        del kw["axes"]
        sub = pre + tuple(slice(0, x) for x in n)
        self.steps2_sub = sub
        steps = [(None, pyfftw.FFTW(r[sub], w[sub], axes=(-1,), direction="FFTW_FORWARD", **kw))]
        for i in range(k - 2, -1, -1):
            zero = pre + tuple(slice(0, x) for x in n[:i]) + (slice(n[i], None),)
            sub = pre + tuple(slice(0, x) for x in n[:i])
            steps.append((zero, pyfftw.FFTW(w[sub], w[sub], axes=(i - k,), direction="FFTW_FORWARD", **kw)))
        return steps

    def forward2(self, src, nthreads, scale):
        """Fill and transform the second buffer (pruned when planned so)."""
        if self.steps2 is None:
            _fill_k(self.r2, src, len(self.L), nthreads, scale)
            self.f2.execute()
            return
        k = len(self.L)
        pre = (slice(None),) * (self.w2.ndim - k)
        n = src.shape[-k:]
        rows = pre + tuple(slice(0, x) for x in n[:-1])
        if n[-1] < self.L[-1]:
            _elementwise(_zero, self.r2[rows + (slice(n[-1], None),)], [], nthreads)
        _elementwise(_scale_copy_fn(scale), self.r2[rows + (slice(0, n[-1]),)], [src], nthreads)
        for zero, plan in self.steps2:
            if zero is not None:
                # the margin the next axis brings in (most of the buffer for the first axis)
                _elementwise(_zero, self.w2[zero], [], nthreads)
            plan.execute()

    def donate_product(self):
        """Hand the product's real buffer over to the caller; the plans get a fresh one."""
        if self.inv_oop:  # the result lives in the scratch buffer: re-allocated on next use
            self.scratch = None
            self.r1 = self.r2 = self.rp = None
            return
        old = self.wp
        nb = old.ndim - len(self.L)
        new = _spec_buffer(old.shape[:nb], old.shape[nb:], old.dtype, self.pad)
        rnew = self._rview(new)
        if old is self.w1:
            self.w1 = new
            if not self.fwd_oop:
                self.r1 = rnew
            self.f1.update_arrays(self.r1, new)
        elif old is self.w2:
            assert self.steps2 is None  # pruning is only planned when w2 is not the product
            self.w2 = new
            if not self.fwd_oop:
                self.r2 = rnew
            self.f2.update_arrays(self.r2, new)
        self.wp, self.rp = new, rnew
        self.inv.update_arrays(new, rnew)

    def _rview(self, w):
        if not self.real:
            return w
        return w.view(_real_of(w.dtype))[..., : self.L[-1]]

    def plan(self, flags, timelimit=None):
        """(Re)create the three plans; FFTW_MEASURE overwrites the buffers."""
        k = len(self.L)
        axes = tuple(range(-k, 0))
        kw = {"axes": axes, "threads": self.threads, "flags": flags}
        self.ready()
        if timelimit is not None:
            kw["planning_timelimit"] = float(timelimit)
        with _plan_lock:
            if not _wisdom_loaded:
                load_wisdom()
            f1 = pyfftw.FFTW(self.r1, self.w1, direction="FFTW_FORWARD", **kw)
            f2 = pyfftw.FFTW(self.r2, self.w2, direction="FFTW_FORWARD", **kw)
            inv = pyfftw.FFTW(self.wp, self.rp, direction="FFTW_BACKWARD", **kw)
            steps2 = None
            if self.prune2 is not None:
                steps2 = self._pruned_steps(self.r2, self.w2, self.prune2, kw)
        self.f1, self.f2, self.inv, self.steps2 = f1, f2, inv, steps2
        self.measured = "FFTW_MEASURE" in flags


#: 1-D real transforms up to this many bytes of real data use an out-of-place inverse
#: (FFTW_ESTIMATE c2r plans are 1.1-2x faster out of place there, slower beyond).
OOP_1D_INV_BYTES = 17 * 2**20
#: 1-D real transforms up to this many bytes use out-of-place forward transforms.
OOP_1D_FWD_BYTES = 0


def _layout(dtype, L, threads=1):
    """(forward out of place, inverse out of place) for a work set of transform shape ``L``.

    Measured with FFTW_ESTIMATE plans (float32/float64, 1 and 2 threads): N-d real transforms
    are up to 1.3x faster out of place (3-D 96**3..216**3, 2-D 2160**2 float32), never
    clearly slower; 1-D r2c is as fast or faster in place, while 1-D c2r on one thread is
    1.1-2x faster out of place up to ~4M float32 / ~1M float64 points and 1.6x slower at 8M.
    On more threads the 1-D inverse stays in place: multi-threaded out-of-place c2r plans
    made whole 1-D convolutions 1.1-1.5x slower (float32 30000-500000 points 1.3-1.46x; a
    2-thread call had then run slower than a 1-thread one).
    """
    if dtype.kind != "f":
        return False, False
    if len(L) >= 2:
        return True, True
    nbytes = L[0] * dtype.itemsize
    inv_oop = threads <= 1 and nbytes <= OOP_1D_INV_BYTES // (2 if dtype.itemsize == 8 else 1)
    return nbytes <= OOP_1D_FWD_BYTES, inv_oop


def _scratch_elems(b1, b2, b, L, fwd_oop, inv_oop):
    """Elements of the shared real scratch buffer of the out-of-place transforms (0: none)."""
    n = 0
    if fwd_oop:
        n = max(math.prod(b1), math.prod(b2))
    if inv_oop:
        n = max(n, math.prod(b))
    return n * math.prod(L)


def _real_of(cdt):
    return np.dtype(np.float32) if cdt == np.complex64 else np.dtype(np.float64)


class _KeyStats:
    __slots__ = ("calls", "measured", "measuring", "seconds")

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0
        self.measured = False
        self.measuring = False


_cache_lock = threading.Lock()
_idle = collections.OrderedDict()  # key -> list of idle _WorkSet (LRU order over keys)
_idle_bytes = 0
_idle_count = 0
_stats = collections.OrderedDict()  # key -> _KeyStats (bounded)
_counters = {"plans_built": 0, "worksets_built": 0, "hits": 0, "measured": 0}


def plan_cache_info():
    """Counters of the plan cache (``plans_built``, ``worksets_built``, ``hits``, ``measured``,
    ``cached_worksets``, ``cached_bytes``)."""
    with _cache_lock:
        d = dict(_counters)
        d["cached_worksets"] = _idle_count
        d["cached_bytes"] = _idle_bytes
    return d


def clear_plan_cache():
    """Drop every cached FFTW plan and work buffer (FFTW wisdom is kept)."""
    global _idle_bytes, _idle_count
    with _cache_lock:
        _idle.clear()
        _stats.clear()
        _idle_bytes = 0
        _idle_count = 0


def _key_stats(key):
    st = _stats.get(key)
    if st is None:
        st = _stats[key] = _KeyStats()
        if len(_stats) > 4096:
            _stats.popitem(last=False)
    else:
        _stats.move_to_end(key)
    return st


def _acquire(key):
    """A work set for ``key`` owned by the caller (from the cache or new)."""
    global _idle_bytes, _idle_count
    with _cache_lock:
        lst = _idle.get(key)
        if lst:
            ws = lst.pop()
            _idle_bytes -= ws.nbytes
            _idle_count -= 1
            if not lst:
                del _idle[key]
            _counters["hits"] += 1
            st = _key_stats(key)
            measured = st.measured
            ws_ok = ws.measured or not measured
        else:
            ws = None
            measured = _key_stats(key).measured
    if ws is not None:
        ws.ready()
        if not ws_ok:  # another work set of this key was measured: wisdom makes this instant
            _replan(ws, measured=True)
        return ws
    ws = _WorkSet(key)
    _replan(ws, measured=measured)
    with _cache_lock:
        _counters["worksets_built"] += 1
    return ws


def _replan(ws, measured, timelimit=None):
    flags = ("FFTW_ESTIMATE",)
    try:
        ws.plan(("FFTW_MEASURE", "FFTW_WISDOM_ONLY"))
        flags = None
    except RuntimeError:
        if measured and timelimit is not None:
            flags = ("FFTW_MEASURE",)
    if flags is not None:
        ws.plan(flags, timelimit)
    with _cache_lock:
        _counters["plans_built"] += 3


def _release(ws, seconds):
    """Give a work set back to the cache; re-plan with FFTW_MEASURE when the key is hot."""
    key = ws.key
    block = key[0] == "oa"
    with _cache_lock:
        st = _key_stats(key)
        st.calls += 1
        st.seconds += seconds
        fresh = not ws.measured and not st.measured and not st.measuring
        if block:
            upgrade = (fresh and AUTO_MEASURE_BLOCKS and st.seconds >= BLOCK_MEASURE_AFTER_S
                       and len(key[5]) >= 2 and math.prod(key[5]) <= OA_ND_MAX_POINTS)
            limit = BLOCK_MEASURE_LIMIT_S
        else:
            upgrade = (fresh and AUTO_MEASURE and st.calls >= MEASURE_AFTER
                       and st.seconds >= MEASURE_MIN_SECONDS)
            limit = min(MEASURE_MAX_LIMIT, max(MEASURE_MIN_LIMIT, st.seconds))
        background = upgrade and (BACKGROUND_MEASURE or block)
        if background:
            st.measuring = True  # claimed: one background thread measures
        elif upgrade:
            st.measured = True  # claimed: this thread measures
    if background:
        # Measure a *new* work set in the background: this call returns now and later calls
        # keep using the cached ESTIMATE work set until the measured one is ready (FFTW
        # plans with the GIL released; planning is serialised by _plan_lock).
        _cache_ws(ws)
        t = threading.Thread(target=_measure_new, args=(key, limit), daemon=True,
                             name="fastconv-fftw-measure")
        with _cache_lock:
            _measuring_threads.add(t)
        t.start()
        return
    if upgrade:
        _upgrade(ws, limit)
        return
    _cache_ws(ws)


_measuring_threads = set()


def wait_measurements(timeout=None):
    """Wait until the background FFTW_MEASURE re-plans started so far are done (the
    benchmark calls this before it times a warm call, so that no re-plan runs beside the
    timed calls). Returns True when none is left running."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _cache_lock:
            threads = [t for t in _measuring_threads if t.is_alive()]
            _measuring_threads.intersection_update(threads)
        if not threads:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        threads[0].join(left)


def _wait_measurements_at_exit():  # pragma: no cover - runs at interpreter exit
    """At interpreter exit, wait for the background re-plans still running (each bounded
    by its FFTW planning limit: about a second for a block). An exit under a running FFTW
    planner crashed the process (SIGSEGV in pyFFTW's exit-time cleanup of FFTW's state,
    measured with a 2-D block re-plan); and waiting saves the wisdom, where a short script
    would otherwise start the same measurement in every run and never finish it."""
    wait_measurements(None)


# registered after pyFFTW's own exit handler (imported above) and after
# _save_wisdom_at_exit, so it runs before both (atexit is last-in, first-out)
atexit.register(_wait_measurements_at_exit)


def _before_fork():
    """A fork waits for a plan being made on another thread (a background re-plan holds the
    planning lock for up to a second): FFTW's planner state is then consistent in the
    child, and neither lock is inherited held."""
    _plan_lock.acquire()
    _cache_lock.acquire()


def _after_fork_in_parent():
    _cache_lock.release()
    _plan_lock.release()


def _after_fork_in_child():
    """Fresh locks; the re-plan threads do not exist in the child."""
    global _plan_lock, _cache_lock
    _plan_lock = threading.RLock()
    _cache_lock = threading.Lock()
    _measuring_threads.clear()
    for st in _stats.values():
        st.measuring = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _measure_new(key, limit):
    """Background: build a FFTW_MEASURE work set for ``key`` and cache it when ready."""
    global _wisdom_dirty
    try:
        ws = _WorkSet(key)
        _replan(ws, measured=True, timelimit=limit)
    except Exception:  # noqa: BLE001 - a failed upgrade keeps the ESTIMATE plans
        return   # st.measuring stays set: not tried again in this process
    with _cache_lock:
        st = _key_stats(key)
        st.measured, st.measuring = True, False
        _counters["measured"] += 1
        _counters["worksets_built"] += 1
        # drop the idle ESTIMATE work sets of this key: the measured one replaces them
        for old in _idle.pop(key, []):
            _drop_idle_accounting(old)
    _wisdom_dirty = True
    save_wisdom()
    _cache_ws(ws)


def _drop_idle_accounting(ws):
    global _idle_bytes, _idle_count
    _idle_bytes -= ws.nbytes
    _idle_count -= 1


def _upgrade(ws, limit):
    """Re-plan ``ws`` with FFTW_MEASURE (time-limited), save wisdom, then cache it."""
    global _wisdom_dirty
    try:
        _replan(ws, measured=True, timelimit=limit)
        with _cache_lock:
            _counters["measured"] += 1
        _wisdom_dirty = True
        save_wisdom()
    except Exception:  # noqa: BLE001 - a failed upgrade keeps the ESTIMATE plans
        return
    _cache_ws(ws)


def _cache_ws(ws):
    """Put an idle work set back into the bounded LRU cache."""
    global _idle_bytes, _idle_count
    key = ws.key
    if ws.nbytes > CACHE_BYTES // 2:
        return  # too big to keep around: a later call re-plans (from wisdom)
    with _cache_lock:
        _idle.setdefault(key, []).append(ws)
        _idle.move_to_end(key)
        _idle_bytes += ws.nbytes
        _idle_count += 1
        while (_idle_bytes > CACHE_BYTES or _idle_count > CACHE_ENTRIES) and _idle:
            k0, lst = next(iter(_idle.items()))
            old = lst.pop(0)
            _idle_bytes -= old.nbytes
            _idle_count -= 1
            if not lst:
                del _idle[k0]


# --------------------------------------------------------------------------------------------
# argument normalisation
# --------------------------------------------------------------------------------------------
class _Problem:
    """Canonical views and sizes of one call."""

    def __init__(self, in1, in2, axes, start, shape, nthreads):
        in1 = np.asarray(in1)
        in2 = np.asarray(in2)
        if in1.ndim != in2.ndim:
            raise ValueError(f"in1 and in2 must have the same ndim, got {in1.ndim} and {in2.ndim}")
        if in1.dtype != in2.dtype:
            raise TypeError(f"in1 and in2 must have the same dtype, got {in1.dtype} and {in2.dtype}")
        dt = in1.dtype
        if dt not in _REAL and dt not in _COMPLEX and dt not in _LONG:
            raise TypeError(f"FFT engine supports float32/64, complex64/128 and long double, "
                            f"got {dt}")
        nd = in1.ndim
        axes = tuple(int(a) for a in axes)
        axes = tuple(a + nd if a < 0 else a for a in axes)
        if any(not 0 <= a < nd for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be distinct axes of a {nd}-d array, got {axes}")
        k = len(axes)
        start = tuple(int(s) for s in start)
        shape = tuple(int(s) for s in shape)
        if len(start) != k or len(shape) != k:
            raise ValueError("start and shape need one entry per axis in axes")
        batch_axes = tuple(a for a in range(nd) if a not in axes)
        b1 = tuple(in1.shape[a] for a in batch_axes)
        b2 = tuple(in2.shape[a] for a in batch_axes)
        b = []
        for s1, s2 in zip(b1, b2):
            if s1 != s2 and s1 != 1 and s2 != 1:
                raise ValueError(
                    f"in1 {in1.shape} and in2 {in2.shape} do not broadcast along the non-convolution axes"
                )
            b.append(s2 if s1 == 1 else s1)
        b = tuple(b)
        n1 = tuple(in1.shape[a] for a in axes)
        n2 = tuple(in2.shape[a] for a in axes)
        for s, m, x, y in zip(start, shape, n1, n2):
            full = x + y - 1 if x and y else 0
            if s < 0 or m < 0 or s + m > max(full, 0):
                raise ValueError(f"window start={start} shape={shape} is outside full length {full}")
        if nthreads is None:
            from ._config import get_num_threads

            nthreads = get_num_threads()
        nthreads = int(nthreads)
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        self.perm = batch_axes + axes
        self.in1 = in1.transpose(self.perm)
        self.in2 = in2.transpose(self.perm)
        self.dtype = dt
        self.real = dt in _REAL or (dt in _LONG and dt.kind == "f")
        self.b1, self.b2, self.b = b1, b2, b
        self.n1, self.n2 = n1, n2
        self.start, self.shape = start, shape
        self.nthreads = nthreads
        self.k = k
        # result in the caller's axis order, C-contiguous; outc is its canonical view
        out_shape = [0] * nd
        for i, a in enumerate(batch_axes):
            out_shape[a] = b[i]
        for i, a in enumerate(axes):
            out_shape[a] = shape[i]
        self.out_shape = tuple(out_shape)
        self.trivial = (
            0 in in1.shape or 0 in in2.shape or 0 in self.out_shape or k == 0
        )

    def smaller_second(self):
        """Swap the inputs (convolution commutes) so that in2 is the smaller one."""
        if math.prod(self.n2) > math.prod(self.n1):
            self.in1, self.in2 = self.in2, self.in1
            self.n1, self.n2 = self.n2, self.n1
            self.b1, self.b2 = self.b2, self.b1

    def alloc_out(self):
        out = _mempool.empty(self.out_shape, self.dtype)
        return out, out.transpose(self.perm)

    def finish_trivial(self):
        if self.k == 0:
            return np.multiply(
                np.moveaxis(self.in1, range(self.in1.ndim), self.perm),
                np.moveaxis(self.in2, range(self.in2.ndim), self.perm),
            )
        return np.zeros(self.out_shape, self.dtype)


def _spec_bytes(batch, L, dtype, real, pad=False):
    """(bytes, elements) of a spectrum buffer of ``batch`` transforms of shape ``L``
    (``pad``: allocated with :func:`_spec_pitch`'s padded pitches)."""
    item = (2 * dtype.itemsize) if real else dtype.itemsize
    spec = L[:-1] + (L[-1] // 2 + 1,) if real else L
    n = math.prod(_spec_pitch(spec, item) if pad else spec)
    return math.prod(batch) * n * item, math.prod(batch) * n


def _fill_k(dst_r, src, k, nthreads, scale=None):
    """Copy ``src`` (times ``scale``) into ``dst_r[..., :n]`` (last k axes), zero the margin."""
    pre = (slice(None),) * (dst_r.ndim - k)
    n = src.shape[-k:]
    L = dst_r.shape[-k:]
    for i in range(k):
        if n[i] < L[i]:
            idx = pre + tuple(slice(0, n[j]) for j in range(i)) + (slice(n[i], None),)
            _elementwise(_zero, dst_r[idx], [], nthreads)
    region = dst_r[pre + tuple(slice(0, x) for x in n)]
    _elementwise(_copy if scale is None else _scale_copy_fn(scale), region, [src], nthreads)


# --------------------------------------------------------------------------------------------
# convolve
# --------------------------------------------------------------------------------------------
#: A result window filling at least this fraction of the transform buffer is returned as a view
#: of that buffer (no crop copy); a smaller one is copied out so the buffer can be freed.
DONATE_MIN_FILL = 0.5


def _finish(p, crop, bufsize, contiguous):
    """The result from ``crop`` (canonical view of a transform buffer): a view or a copy."""
    if not contiguous and crop.size >= DONATE_MIN_FILL * bufsize:
        return crop.transpose(np.argsort(p.perm)), True
    out, outc = p.alloc_out()
    _elementwise(_copy, outc, [crop], p.nthreads)
    return out, False


def _dc_finite(w, k):
    """Whether the DC bins (index 0 along the last ``k`` axes) of the spectra ``w`` are all
    finite. A DC bin is the sum of its transformed input, so a NaN or Inf anywhere in that
    input makes it non-finite (NaN and Inf survive every addition and multiplication of a
    transform); so can an overflow of finite values, which :func:`_inputs_finite` rules out.
    The engines check this instead of scanning the inputs before a transform."""
    return bool(np.isfinite(w[(Ellipsis,) + (0,) * k]).all())


def _inputs_finite(p):
    """The exact test: no NaN or Inf in either input (one pass over each)."""
    return bool(np.isfinite(p.in1).all()) and bool(np.isfinite(p.in2).all())


def convolve(in1, in2, axes, start, shape, nthreads=None, *, contiguous=False,
             check_finite=False):
    """Linear convolution along ``axes`` by the convolution theorem, cropped to a window.

    Parameters
    ----------
    in1, in2 : ndarray
        Inputs of the same ndim and dtype (float32, float64, complex64 or complex128).  Any
        strides; never modified.  Along axes not in ``axes`` sizes must be equal or 1.
    axes : tuple of int
        Distinct convolution axes.
    start, shape : tuple of int
        Window of the full convolution returned along each ``axes[i]``:
        ``full[start[i]:start[i] + shape[i]]`` where the full length is ``n1 + n2 - 1``.
    nthreads : int, optional
        Threads (default :func:`fastconv._config.get_num_threads`).
    contiguous : bool, optional
        Always return a C-contiguous array (costs a copy pass when the window is large).
    check_finite : bool, optional
        Return None instead of a result when an input holds NaN or Inf (read from the
        spectra's DC bins, see :func:`_dc_finite`: no pass over the inputs), so that the
        caller can take a direct sum, which keeps a NaN local.

    Returns
    -------
    ndarray or None
        dtype of the inputs; the non-convolution axes have the broadcast shape.  When the
        window fills at least :data:`DONATE_MIN_FILL` of the transform buffer (any 'full' or
        'same' request) and ``contiguous`` is False, the result is a view of that buffer (the
        inverse transform's output, no copy; strided when the window is narrower than the
        buffer, which is at most a few percent larger than the result); otherwise a fresh
        C-contiguous array.  Never a view of the inputs or of cached memory.

    Notes
    -----
    Cost: two forward and one inverse transform of :func:`padded_shape` (see :func:`flops`)
    plus two copies in and the spectrum product (the ``1/N`` of the inverse transform is folded
    into the copy of ``in2``).  Memory: two spectra of the padded shape and, for out-of-place
    plans, one real buffer of it (the spectrum or real buffer that receives the inverse becomes
    the result), below ``scipy.signal.fftconvolve``'s peak.

    See Also
    --------
    scipy.signal.fftconvolve

    Examples
    --------
    >>> import numpy as np
    >>> convolve(np.array([1., 2, 3]), np.array([0., 1, 0.5]), (0,), (0,), (5,)).round(12) + 0.0
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    p = _Problem(in1, in2, axes, start, shape, nthreads)
    if p.trivial:
        return p.finish_trivial()
    L = tuple(_good_len(_window_len(a, b, s, m), i == p.k - 1)
              for i, (a, b, s, m) in enumerate(zip(p.n1, p.n2, p.start, p.shape)))
    use_fftw = USE_PYFFTW and HAVE_PYFFTW and not _scipy_route(p, L)
    if not use_fftw:
        # pocketfft's own fast lengths (5-smooth; the 11s and 13s FFTW takes are slow there:
        # 64x64 by 3x3 at 66^2 took 134 us, at 72^2 99 us)
        import scipy.fft as sfft
        L = tuple(sfft.next_fast_len(n, real=p.real) for n in
                  (_window_len(a, b, s, m) for a, b, s, m in zip(p.n1, p.n2, p.start, p.shape)))
    pad = use_fftw and _pads("conv", p.dtype)   # (the work set's own rule)
    nb1, e1 = _spec_bytes(p.b1, L, p.dtype, p.real, pad)
    nb2, e2 = _spec_bytes(p.b2, L, p.dtype, p.real, pad)
    nbp, ep = _spec_bytes(p.b, L, p.dtype, p.real, pad)
    need = nb1 + nb2 + (nbp if p.b not in (p.b1, p.b2) else 0)
    if not use_fftw:
        need += max(nb1, nb2, nbp)  # scipy.fft works out of place
    else:
        need += _scratch_elems(p.b1, p.b2, p.b, L, *_layout(p.dtype, L, p.nthreads)) \
            * p.dtype.itemsize
    need += math.prod(p.out_shape) * p.dtype.itemsize
    _check_memory(need, f"FFT convolution of {p.in1.shape} by {p.in2.shape} padded to {L}", (e1, e2, ep))
    if not use_fftw:
        if check_finite and not _inputs_finite(p):
            return None
        return _convolve_scipy(p, L, contiguous)
    p.smaller_second()
    k = p.k
    prune2 = None
    if k >= 2 and p.b1 == p.b and any(2 * p.n2[i] <= L[i] for i in range(k - 1)):
        prune2 = p.n2[:-1]
    key = ("conv", p.dtype, p.b1, p.b2, p.b, L, p.nthreads, prune2)
    t0 = time.perf_counter()
    ws = _acquire(key)
    try:
        k, nt = p.k, p.nthreads
        _fill_k(ws.r1, p.in1, k, nt)
        ws.f1.execute()
        ws.forward2(p.in2, nt, 1.0 / math.prod(L))
        if check_finite and not (_dc_finite(ws.w1, k) and _dc_finite(ws.w2, k)) \
                and not _inputs_finite(p):
            return None    # (ws goes back to the cache in the finally clause)
        if ws.wp is ws.w1:
            _elementwise(_mul, ws.w1, [ws.w1, ws.w2], nt)
        elif ws.wp is ws.w2:
            _elementwise(_mul, ws.w2, [ws.w2, ws.w1], nt)
        else:
            _elementwise(_mul, ws.wp, [ws.w1, ws.w2], nt)
        ws.inv.execute()
        pre = (slice(None),) * (ws.rp.ndim - k)
        crop = ws.rp[pre + tuple(slice(s, s + m) for s, m in zip(p.start, p.shape))]
        out, donated = _finish(p, crop, ws.rp.size, contiguous)
        if donated:
            ws.donate_product()
    except BaseException:
        ws = None
        raise
    finally:
        if ws is not None:
            _release(ws, time.perf_counter() - t0)
    return out


def _scale_copy_fn(scale):
    def op(out, src):
        np.multiply(src, scale, out=out)

    return op


def _convolve_scipy(p, L, contiguous):
    import scipy.fft as sfft

    k = p.k
    axes = tuple(range(-k, 0))
    if p.real:
        f, inv = sfft.rfftn, sfft.irfftn
    else:
        f, inv = sfft.fftn, sfft.ifftn
    # threads only where the transforms are large (a small problem's pool wake-ups cost
    # more than its transforms: 0.08 -> 0.25 ms with 2 workers on 4200 points)
    workers = 1 if math.prod(p.b) * math.prod(L) <= SMALL_POINTS else p.nthreads
    s1 = f(p.in1, s=L, axes=axes, workers=workers)
    s2 = f(p.in2, s=L, axes=axes, workers=workers)
    if p.b1 == p.b:     # (the batch shapes say which spectrum the product fits in)
        np.multiply(s1, s2, out=s1)
    elif p.b2 == p.b:
        np.multiply(s1, s2, out=s2)
        s1 = s2
    else:
        s1 = s1 * s2
    del s2
    r = inv(s1, s=L, axes=axes, workers=workers, overwrite_x=True)
    del s1
    pre = (slice(None),) * (r.ndim - k)
    return _finish(p, r[pre + tuple(slice(s, s + m) for s, m in zip(p.start, p.shape))], r.size, contiguous)[0]


# --------------------------------------------------------------------------------------------
# overlap blocks
# --------------------------------------------------------------------------------------------
#: overlap-add hands problems whose whole transform has at most this many points (all
#: batches) to :func:`convolve`
OA_WHOLE_POINTS = 1 << 16


def oaconvolve(in1, in2, axes, start, shape, nthreads=None, *, check_finite=False):
    """Linear convolution along ``axes`` by overlapping blocks, cropped to a window.

    Same contract and results (within FFT rounding) as :func:`convolve`; efficient when one
    input is much longer than the other along the convolution axes. ``check_finite``: as
    for :func:`convolve` (each block's DC bin is checked; the first non-finite one stops
    every worker).

    Parameters
    ----------
    in1, in2 : ndarray
        Inputs of the same ndim and dtype; never modified.
    axes : tuple of int
        Convolution axes.
    start, shape : tuple of int
        Window of the full convolution along each ``axes[i]``.
    nthreads : int, optional
        Threads (default :func:`fastconv._config.get_num_threads`).

    Returns
    -------
    ndarray

    Notes
    -----
    Each output block of ``step`` samples per axis is computed from the input segment of
    ``L = step + n2 - 1`` samples that produces it (overlap-save: input segments overlap, output
    blocks are disjoint; the sum is exactly the overlap-add sum).  ``L`` comes from
    :func:`oa_plan`: cost ``nblocks * (flops(L) + overhead)`` plus one kernel transform.
    Blocks are spread over ``nthreads`` Python threads with single-threaded FFTW plans.
    Memory: one block buffer per thread plus the result.

    See Also
    --------
    scipy.signal.oaconvolve

    Examples
    --------
    >>> import numpy as np
    >>> oaconvolve(np.arange(6.), np.array([1., -1]), (0,), (0,), (7,)).round(12) + 0.0
    array([ 0.,  1.,  1.,  1.,  1.,  1., -5.])
    """
    p = _Problem(in1, in2, axes, start, shape, nthreads)
    if p.trivial:
        return p.finish_trivial()
    if _scipy_route(p, tuple(a + b - 1 for a, b in zip(p.n1, p.n2))):
        # blocks would not pay: the whole transform (same contract and results)
        return convolve(in1, in2, axes, start, shape, nthreads, check_finite=check_finite)
    p.smaller_second()  # convolution commutes: block the larger input
    nb = len(p.b)
    # a whole transform so small that planning blocks (oa_plan: ~0.25 ms for 3-D) and their
    # own overheads cost more than it (16x16x18 by 5^3 complex: 0.51 ms in blocks, 0.22 ms
    # whole), or blocks that cost more than one transform of the whole problem (a kernel
    # about as large as the signal: scipy.signal.oaconvolve hands those to fftconvolve too)
    wshape = padded_shape(p.n1, p.n2, tuple(range(p.k)), p.start, p.shape)
    if math.prod(p.b) * math.prod(wshape) <= OA_WHOLE_POINTS:
        return convolve(in1, in2, axes, start, shape, nthreads, check_finite=check_finite)
    # oa_plan on canonical shapes (batch first): give it the conv part only
    plan = oa_plan(p.n1, p.n2, tuple(range(p.k)), p.start, p.shape, p.real, max(1, math.prod(p.b)))
    whole = flops(wshape, p.real, max(1, math.prod(p.b)), max(1, math.prod(p.b2)))
    if whole <= plan["flops"]:
        return convolve(in1, in2, axes, start, shape, nthreads, check_finite=check_finite)
    L, steps, nblk = plan["block"], plan["step"], plan["nblocks"]
    use_fftw = USE_PYFFTW and HAVE_PYFFTW
    total_blocks = math.prod(nblk)
    workers = max(1, min(p.nthreads, total_blocks))
    ft = max(1, p.nthreads // workers)
    nb1, e1 = _spec_bytes(p.b1, L, p.dtype, p.real)
    nb2, e2 = _spec_bytes(p.b2, L, p.dtype, p.real)
    nbp, ep = _spec_bytes(p.b, L, p.dtype, p.real)
    per = nb1 + nb2 + (nbp if p.b not in (p.b1, p.b2) else 0)
    per += _scratch_elems(p.b1, p.b2, p.b, L, *_layout(p.dtype, L)) * p.dtype.itemsize
    need = workers * per + nb2 + math.prod(p.out_shape) * p.dtype.itemsize
    _check_memory(need, f"overlap-add convolution of {p.in1.shape} by {p.in2.shape} in blocks {L}", (e1, e2, ep))
    out, outc = p.alloc_out()
    k = p.k
    pre = (slice(None),) * nb
    n2m1 = tuple(x - 1 for x in p.n2)
    scale = 1.0 / math.prod(L)
    import itertools

    blocks = list(itertools.product(*[range(x) for x in nblk]))

    def seg(blk):
        """Source slices of in1, destination slices in the block buffer, output slices."""
        src, dst, osl, vsl = [], [], [], []
        for i, j in enumerate(blk):
            t0 = p.start[i] + j * steps[i]
            g = t0 - n2m1[i]
            lo, hi = max(0, -g), min(L[i], p.n1[i] - g)
            hi = max(hi, lo)
            src.append(slice(g + lo, g + hi))
            dst.append((lo, hi))
            m = min(steps[i], p.start[i] + p.shape[i] - t0)
            o0 = j * steps[i]
            osl.append(slice(o0, o0 + m))
            vsl.append(slice(n2m1[i], n2m1[i] + m))
        return src, dst, osl, vsl

    def fill(buf_r, src, dst):
        Ls = buf_r.shape[-k:]
        for i in range(k):
            lo, hi = dst[i]
            if lo > 0:
                buf_r[pre + tuple(slice(None) for _ in range(i)) + (slice(0, lo),)] = 0
            if hi < Ls[i]:
                buf_r[pre + tuple(slice(None) for _ in range(i)) + (slice(hi, None),)] = 0
        region = buf_r[pre + tuple(slice(lo, hi) for lo, hi in dst)]
        if region.size:
            np.copyto(region, p.in1[pre + tuple(src)])

    if not use_fftw:
        if check_finite and not _inputs_finite(p):
            return None
        return _oa_scipy(p, L, blocks, seg, outc, out, ft)
    # check_finite: bad[0] is set by the block (or kernel) whose DC bin is not finite
    bad = [False] if check_finite else None
    if k == 1 and nb == 0 and total_blocks >= 8:
        out = _oa_batched_1d(p, L[0], steps[0], total_blocks, outc, out, bad)
    else:
        _oa_blocks(p, L, k, pre, scale, blocks, seg, fill, workers, ft, outc, bad)
    if bad and bad[0]:
        if not _inputs_finite(p):
            return None
        # finite inputs whose sum overflowed: compute it all without stopping
        return oaconvolve(in1, in2, axes, start, shape, nthreads)
    return out


def _oa_blocks(p, L, k, pre, scale, blocks, seg, fill, workers, ft, outc, bad):
    """The N-d (and short 1-D) overlap-save loop of :func:`oaconvolve` on FFTW work sets:
    the blocks in ``workers`` contiguous chunks, one Python thread and work set each."""
    key = ("oa", p.dtype, p.b1, p.b2, p.b, L, ft, None)

    def prepare(ws0):
        _fill_k(ws0.r2, p.in2, k, 1, scale)   # the inverse transform's 1/prod(L), once
        ws0.f2.execute()
        if bad is not None and not _dc_finite(ws0.w2, k):
            bad[0] = True
        if ws0.wp is ws0.w2:  # product lands where the kernel spectrum lives: keep a copy
            return ws0.w2.copy()
        return ws0.w2

    chunks = [blocks[len(blocks) * i // workers: len(blocks) * (i + 1) // workers]
              for i in range(workers)]

    def body(ws, ci, kspec):
        for blk in chunks[ci]:
            if bad is not None and bad[0]:
                return
            src, dst, osl, vsl = seg(blk)
            fill(ws.r1, src, dst)
            ws.f1.execute()
            if bad is not None and not _dc_finite(ws.w1, k):
                bad[0] = True
                return
            if ws.wp is ws.w1:
                np.multiply(ws.w1, kspec, out=ws.w1)
            else:
                np.multiply(ws.w1, kspec, out=ws.wp)
            ws.inv.execute()
            np.copyto(outc[pre + tuple(osl)], ws.rp[pre + tuple(vsl)])

    _run_worksets(key, workers, prepare, body)


def _run_worksets(key, workers, prepare, body):
    """Run ``body(ws, i, shared)`` for ``i`` in ``range(workers)`` on as many Python threads,
    each with its own work set of ``key`` (FFTW objects never run on two threads); worker 0
    uses the first one, on which ``shared = prepare(ws)`` ran first. Work sets go back to
    the cache with the time they were used, except after an exception (their state is
    then unknown and they are dropped)."""
    t_start = time.perf_counter()
    ws0 = _acquire(key)
    try:
        shared = prepare(ws0)

        def work(i):
            ws = ws0 if i == 0 else _acquire(key)
            t = time.perf_counter()
            try:
                body(ws, i, shared)
            except BaseException:
                ws = None
                raise
            finally:
                if ws is not None and i != 0:
                    _release(ws, time.perf_counter() - t)

        _run_parallel(work, list(range(workers)))
    except BaseException:
        ws0 = None
        raise
    finally:
        if ws0 is not None:
            _release(ws0, time.perf_counter() - t_start)


#: Bytes of block buffer per batched transform of the 1-D overlap-save path (measured on a
#: 2-core AVX2 machine: 64-256 KiB best; at 4 MiB FFTW's batched plans copy through buffers)
OA_BATCH_BYTES = 128 << 10


def _oa_batched_1d(p, L, step, nblk, outc, out, bad=None):
    """1-D overlap-save with the blocks batched: segment ``j`` is the ``L`` input samples
    from ``g0 + j*step``; ``B`` segments at a time are copied into a work set whose FFTW
    plans transform all ``B`` rows in one call, and the products and the valid parts of the
    inverse transforms are whole-array NumPy operations. Replaces a Python loop over blocks
    (measured ~40 us per block) by one over batches of ``OA_BATCH_BYTES``.
    The segments inside the input are rows of a strided view of ``in1`` itself; only the
    few at its ends, which reach past it, are zero-extended one by one (a zero-extended
    copy of the whole input cost a serial pass plus, on a fresh machine, its page faults).
    The 1/L of the inverse transform is folded into the kernel (``_fill_k``'s scale).
    Threads: the batches are shared among ``workers`` Python threads, each with its own
    work set (single-threaded plans), so the copies run in parallel too. ``bad``: see
    :func:`oaconvolve` (``check_finite``)."""
    n1, n2 = p.n1[0], p.n2[0]
    start, length = p.start[0], p.shape[0]
    isz = p.dtype.itemsize
    B = max(1, min(nblk, OA_BATCH_BYTES // (L * isz)))
    nbatch = -(-nblk // B)
    workers = max(1, min(p.nthreads, nbatch))
    _check_memory(workers * 4 * B * (L // 2 + 1) * isz + length * isz,
                  f"overlap-save convolution of {p.in1.shape} by {p.in2.shape} in blocks {L}", ())
    x1 = p.in1
    g0 = start - (n2 - 1)                 # segment j: x1[g0 + j*step : g0 + j*step + L]
    # segments jin0 <= j < jin1 lie inside x1: g0 + j*step >= 0 and g0 + j*step + L <= n1
    jin0 = min(nblk, max(0, -(g0 // step)))              # ceil(-g0 / step), clipped
    jin1 = max(jin0, min(nblk, (n1 - L - g0) // step + 1))
    inner = None
    if jin1 > jin0:
        s1 = x1.strides[0]
        inner = np.lib.stride_tricks.as_strided(x1[g0 + jin0 * step:], (jin1 - jin0, L),
                                                (step * s1, s1), writeable=False)
    key = ("oa", p.dtype, (B,), (), (B,), (L,), 1, None)

    def fill(dst, j0, j1):
        a, b = max(j0, jin0), min(j1, jin1)
        if b > a:
            np.copyto(dst[a - j0:b - j0], inner[a - jin0:b - jin0], casting="unsafe")
        for j in range(j0, j1):
            if a <= j < b:
                continue
            row, s = dst[j - j0], g0 + j * step
            lo, hi = max(s, 0), min(s + L, n1)
            if hi <= lo:
                row[:] = 0
                continue
            row[:lo - s] = 0
            np.copyto(row[lo - s:hi - s], x1[lo:hi], casting="unsafe")
            row[hi - s:] = 0

    def prepare(ws0):
        _fill_k(ws0.r2, p.in2, 1, 1, scale=1.0 / L)   # the inverse transform's 1/L
        ws0.f2.execute()
        if bad is not None and not _dc_finite(ws0.w2, 1):
            bad[0] = True
        return ws0.w2.copy()  # the other work sets only read it

    def body(ws, wi, kspec):
        for bi in range(wi, nbatch, workers):
            if bad is not None and bad[0]:
                return
            j0, j1 = bi * B, min(nblk, (bi + 1) * B)
            m = j1 - j0
            fill(ws.r1[:m], j0, j1)
            if m < B:
                ws.r1[m:] = 0
            ws.f1.execute()
            if bad is not None and not _dc_finite(ws.w1, 1):
                bad[0] = True
                return
            np.multiply(ws.w1, kspec, out=ws.w1)
            ws.inv.execute()
            # rows j0..j1-1 give outputs [j*step, j*step + step) (the last: fewer)
            full = m if j1 < nblk else m - 1
            if full > 0:
                dst = outc[j0 * step:(j0 + full) * step].reshape(full, step)
                np.copyto(dst, ws.rp[:full, n2 - 1:n2 - 1 + step])
            if j1 == nblk:
                o0 = (nblk - 1) * step
                np.copyto(outc[o0:], ws.rp[m - 1, n2 - 1:n2 - 1 + length - o0])

    _run_worksets(key, workers, prepare, body)
    return out


def _oa_scipy(p, L, blocks, seg, outc, out, workers):
    import scipy.fft as sfft

    k = p.k
    axes = tuple(range(-k, 0))
    f, inv = (sfft.rfftn, sfft.irfftn) if p.real else (sfft.fftn, sfft.ifftn)
    kspec = f(p.in2, s=L, axes=axes, workers=workers)
    pre = (slice(None),) * len(p.b)
    buf = np.empty(p.b1 + L, p.dtype)
    for blk in blocks:
        src, dst, osl, vsl = seg(blk)
        buf[...] = 0
        region = buf[pre + tuple(slice(lo, hi) for lo, hi in dst)]
        if region.size:
            np.copyto(region, p.in1[pre + tuple(src)])
        r = inv(f(buf, axes=axes, workers=workers) * kspec, s=L, axes=axes, workers=workers, overwrite_x=True)
        outc[pre + tuple(osl)] = r[pre + tuple(vsl)]
    return out
