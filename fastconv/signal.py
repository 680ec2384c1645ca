"""scipy.signal-compatible front: same names, signatures, defaults, shapes, dtypes, values.

Every function here only validates and normalises arguments, then describes the work as a
*window of a full linear convolution* (see ``_shapes.window``) and hands it to an engine:

* ``direct``    -> ``_core.correlate`` (compiled, OpenMP, GIL released), kernel flipped
* ``fft``       -> ``_fft.convolve`` (pyFFTW / scipy.fft)
* ``oa``        -> ``_fft.oaconvolve`` (overlap-add)
* ``separable`` -> two ``_core.correlate`` passes with the rank-1 factors of a 2-D kernel

``method='auto'`` asks the calibrated cost model (``_plan``). On CuPy arrays the same
contracts are served by ``_cupy``. Correlation is convolution with the reversed, conjugated
second input, exactly as scipy defines it.
"""
import collections
import hashlib
import math
import operator
import threading
import warnings

import numpy as np

from . import _dtypes, _plan, _pool, _shapes
from ._config import check_alloc, get_num_threads

__all__ = ["convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d",
           "choose_conv_method", "correlation_lags"]

correlation_lags = _shapes.correlation_lags

_METHODS = ("auto", "direct", "fft", "oa", "separable")
#: scipy's boundary names and their aliases ('pad', 'circular', 'symmetric')
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm"}


# ----------------------------------------------------------------------------- helpers
def _array_module(*arrays):
    """numpy, or cupy when any input is a CuPy array (mixing raises TypeError)."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            from . import _cupy
            return _cupy.get_array_module(*arrays)
    return np


class _CPUEngines:
    """The CPU engines behind their contracts (docs/internals.md)."""

    @staticmethod
    def correlate(x, w, out, stride, dilation, pad, groups, nthreads):
        from . import _core
        return _core.correlate(x, w, out, stride, dilation, pad, groups, nthreads)

    @staticmethod
    def fft_convolve(in1, in2, axes, start, shape, nthreads, check_finite=False):
        from . import _fft
        return _fft.convolve(in1, in2, axes, start, shape, nthreads,
                             check_finite=check_finite)

    @staticmethod
    def oaconvolve(in1, in2, axes, start, shape, nthreads, check_finite=False):
        from . import _fft
        return _fft.oaconvolve(in1, in2, axes, start, shape, nthreads,
                               check_finite=check_finite)


#: work (multiply-adds, or FFT points x log2) below which one more thread costs more in
#: wake-up and synchronisation than it saves (tens of microseconds; far more on a loaded
#: machine, where a second OpenMP/FFTW thread may wait for a core)
_MIN_WORK_PER_THREAD = 1 << 16


def _threads_for(work, nthreads):
    """Threads worth using for ``work`` units: 1 for small problems, at most ``nthreads``."""
    return int(max(1, min(nthreads, work // _MIN_WORK_PER_THREAD)))


def _fft_work(*sizes):
    n = float(sum(sizes))
    return 8.0 * n * max(1.0, np.log2(max(n, 2.0)))


def _engines(xp):
    if xp is np:
        return _CPUEngines
    from . import _cupy
    return _cupy


def _asarray(xp, a, name):
    a = xp.asarray(a)
    _dtypes.check_numeric(a, name)
    return a


def _check_method(method):
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in _METHODS)}, got {method!r}")
    return method


def _check_same_ndim(a, b):
    if a.ndim != b.ndim:
        raise ValueError(
            f"in1 and in2 should have the same dimensionality, got in1.ndim={a.ndim} "
            f"and in2.ndim={b.ndim}")


def _reverse_and_conj(xp, a):
    rev = a[(slice(None, None, -1),) * a.ndim]
    return rev.conj() if a.dtype.kind == "c" else rev


def _all_finite(xp, *arrays):
    """Cheap finiteness test: a NaN/Inf anywhere makes the sum non-finite. The sum runs in
    the array's own precision (a float64 sum of float32 data casts every element: ~3x
    slower); when it is not finite, which an overflow of finite values can also cause, an
    exact elementwise test decides."""
    for a in arrays:
        if a.dtype.kind in "fc":
            with np.errstate(all="ignore"):
                s = a.sum()
            if not bool(xp.isfinite(s)) and not bool(xp.isfinite(a).all()):
                return False
    return True


def _empty(xp, shape, dtype):
    """An output buffer: NumPy ones reuse released large buffers (fastconv._pool)."""
    return _pool.empty(shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


_RANK1_MEMO = collections.OrderedDict()
_RANK1_LOCK = threading.Lock()


def _is_rank1(kernel, cdt):
    """Whether :func:`_rank1_factors` finds ``kernel`` separable, remembered by the kernel's
    shape, dtype and a 128-bit digest of its bytes for kernels up to 4096 elements (what
    'auto' asks on every call of a 2-D problem where the separable passes would win if the
    kernel were separable: ~40 % of a 100-us call's overhead)."""
    if kernel.ndim != 2 or kernel.size > 4096 or type(kernel) is not np.ndarray:
        return _rank1_factors(kernel, cdt) is not None
    key = (kernel.shape, kernel.dtype.str, np.dtype(cdt).str,
           hashlib.blake2b(np.ascontiguousarray(kernel).tobytes(), digest_size=16).digest())
    with _RANK1_LOCK:
        hit = _RANK1_MEMO.get(key)
        if hit is not None:
            _RANK1_MEMO.move_to_end(key)
            return hit
    value = _rank1_factors(kernel, cdt) is not None
    with _RANK1_LOCK:
        _RANK1_MEMO[key] = value
        if len(_RANK1_MEMO) > 256:
            _RANK1_MEMO.popitem(last=False)
    return value


def _rank1_factors(kernel, cdt):
    """(col, row) with outer(col, row) == kernel to float tolerance, or None."""
    if kernel.ndim != 2 or min(kernel.shape) < 2 or max(kernel.shape) > 512:
        return None
    k = np.asarray(kernel, dtype=np.complex128 if np.dtype(cdt).kind == "c" else np.float64)
    scale = float(np.abs(k).max()) if k.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return None
    # rank-1 test and factors in O(kernel size), pivoting on the largest entry (no SVD:
    # 'auto' asks this for every 2-D kernel up to 512x512)
    i0, j0 = np.unravel_index(int(np.argmax(np.abs(k))), k.shape)
    col = k[:, j0].copy()
    row = k[i0, :] / k[i0, j0]
    err = float(np.abs(np.outer(col, row) - k).max())
    eps = np.finfo(np.dtype(cdt)).eps
    if err > 4 * eps * scale * max(k.shape):
        return None
    return col, row


# ----------------------------------------------------------------------------- the core
class _Problem:
    """A window of the full linear convolution of ``a`` and ``b`` (same ndim)."""

    def __init__(self, xp, a, b, starts, shape, rdt):
        self.xp, self.a, self.b = xp, a, b
        self.starts, self.shape, self.rdt = tuple(starts), tuple(shape), np.dtype(rdt)

    @classmethod
    def from_mode(cls, xp, a, b, mode):
        wins = [_shapes.window(mode, n1, n2) for n1, n2 in zip(a.shape, b.shape)]
        return cls(xp, a, b, [w[0] for w in wins], [w[1] for w in wins],
                   _dtypes.result_dtype(a, b))

    @property
    def integer(self):
        return self.rdt.kind in "biu"

    def kernel_and_signal(self):
        """(signal, kernel): the kernel is the input with fewer elements."""
        if self.b.size <= self.a.size:
            return self.a, self.b
        return self.b, self.a

    def check_memory(self):
        """MemoryError naming the size, before anything is allocated or scanned: every engine
        materialises the output and (padded or contiguous) copies of both inputs."""
        if getattr(self, "_memory_ok", False):
            return
        cdt = _dtypes.compute_dtype(self.rdt)
        item = max(self.rdt.itemsize, cdt.itemsize)
        n = float(math.prod(self.shape)) + float(self.a.size) + float(self.b.size)
        check_alloc(n * item, f"a convolution output of shape {self.shape} "
                              f"(inputs {self.a.shape} and {self.b.shape})")
        self._memory_ok = True

    # -- method choice
    def choose(self, nthreads, scan=True):
        """(method, predicted times). With ``scan`` an FFT choice becomes 'direct' when an
        input holds NaN or Inf (a pass over the inputs); without it the caller runs the
        choice with ``run(..., check_finite=True)``, which finds out from the transforms."""
        self.check_memory()
        gpu = self.xp is not np
        dev = "gpu" if gpu else "cpu"
        x, k = self.kernel_and_signal()
        if self.integer:
            # the exact integer sum, or a float64 FFT where its rounded result is provably
            # the same integers (scipy takes the FFT on a looser test): whichever the model
            # says is faster
            if self.rdt.kind == "b" or gpu or not self._fft_exact():
                return "direct", {}
            return _plan.choose_signal_method(x.shape, k.shape, self.shape, np.int64, False,
                                              nthreads, device=dev)
        cdt = _dtypes.compute_dtype(self.rdt)
        # the rank-1 test (an SVD of the kernel) only where the model would pick the
        # separable passes if the kernel were separable (both choices are memoised)
        method, times = _plan.choose_signal_method(
            x.shape, k.shape, self.shape, cdt, not gpu and k.ndim == 2, nthreads, device=dev)
        if method == "separable" and _is_rank1(k, cdt):
            pass
        elif not gpu and k.ndim == 2:
            method, times = _plan.choose_signal_method(
                x.shape, k.shape, self.shape, cdt, False, nthreads, device=dev)
        # An FFT would smear one NaN/Inf over the whole output, direct keeps it local. On
        # CuPy arrays the scan is skipped: it would need a device-to-host synchronisation.
        if (scan and method in ("fft", "oa") and not gpu
                and not _all_finite(self.xp, self.a, self.b)):
            method = "direct"
        return method, times

    def _fft_exact(self):
        """Whether a float64 FFT convolution of these integer inputs, rounded, is exactly
        their integer convolution: a bound on its error stays below 1/4. The error of each
        output is at most ~c eps log2(L) ||a||_1 ||b||_2 (transforms of length L; c = 16
        covers the two forward and one inverse transform with a margin), with the norms
        bounded by max|a| * size and max|b| * sqrt(size). ~1e-4 for a uint8 2048^2 image
        by a 31x31 uint8 kernel; kernels of values near 2**20 fail it (direct, exact)."""
        a, b = self.a, self.b
        if a.size == 0 or b.size == 0:
            return False
        amax = max(abs(int(a.max())), abs(int(a.min())))
        bmax = max(abs(int(b.max())), abs(int(b.min())))
        na, nb = float(a.size), float(b.size)
        L = float(math.prod(n1 + n2 - 1 for n1, n2 in zip(a.shape, b.shape)))
        norms = float(amax) * float(bmax) * math.sqrt(na * nb) * math.sqrt(min(na, nb))
        return 16.0 * 2.0 ** -52 * max(1.0, math.log2(L)) * norms < 0.25

    # -- engines
    def run(self, method, nthreads, check_finite=False):
        """The result by ``method``. ``check_finite`` (a choice of 'auto' made without the
        scan): an FFT engine that meets NaN or Inf in an input gives up (None; it reads
        this from its spectra's DC bins) and the direct sum, which keeps a NaN local, runs
        instead. CuPy arrays are not checked (it would need a device synchronisation)."""
        xp = self.xp
        self.check_memory()
        if any(n == 0 for n in self.shape):
            return xp.zeros(self.shape, self.rdt)
        if method == "separable" and self.integer:
            method = "direct"       # rank-1 factors are not integers: the exact sum instead
        nout = float(math.prod(self.shape))
        _, k = self.kernel_and_signal()
        if method == "direct":
            nthreads = _threads_for(nout * k.size, nthreads)
        elif method == "separable":
            nthreads = _threads_for(nout * sum(k.shape), nthreads)
        else:
            nthreads = _threads_for(_fft_work(self.a.size, self.b.size, nout), nthreads)
        if method == "direct":
            return _dtypes.finish(self._direct(nthreads), self.rdt)
        if method == "separable":
            return _dtypes.finish(self._separable(nthreads), self.rdt)
        # the transforms run in scipy.signal.fftconvolve's dtype (int8 with float32: float64)
        fdt = _dtypes.freq_dtype(self.a.dtype, self.b.dtype)
        a = self.a.astype(fdt, copy=False)
        b = self.b.astype(fdt, copy=False)
        axes = tuple(range(a.ndim))
        eng = _engines(xp)
        fn = eng.fft_convolve if method == "fft" else eng.oaconvolve
        if check_finite and xp is np:
            out = fn(a, b, axes, self.starts, self.shape, nthreads, check_finite=True)
            if out is None:
                return self.run("direct", get_num_threads())
        else:
            out = fn(a, b, axes, self.starts, self.shape, nthreads)
        if not check_finite and xp is np and out.size:
            first = out[(0,) * out.ndim]
            if not np.isfinite(first):
                # scipy.signal.convolve's warning (it reads the first output only)
                warnings.warn("Use of fft convolution on input with NAN or inf results in "
                              "NAN or inf output. Consider using method='direct' instead.",
                              RuntimeWarning, stacklevel=3)
        return _dtypes.finish_fft(out, self.rdt)

    def _prepared(self):
        """(x, w, pad): signal, flipped kernel (compute dtype, C order) and zero padding."""
        xp = self.xp
        cdt = _dtypes.compute_dtype(self.rdt)
        x, k = self.kernel_and_signal()
        w = k[(slice(None, None, -1),) * k.ndim]
        crop, pads = _direct_window(self.starts, w.shape)
        x = xp.ascontiguousarray(x[crop], dtype=cdt)
        w = xp.ascontiguousarray(w, dtype=cdt)
        return x, w, pads

    def _direct(self, nthreads):
        xp = self.xp
        x, w, pads = self._prepared()
        out = _empty(xp, self.shape, x.dtype)
        nd = x.ndim
        if x.size == 0:
            out[...] = 0
            return out
        _engines(xp).correlate(x[None, None], w[None, None], out[None, None],
                               (1,) * nd, (1,) * nd, pads, 1, nthreads)
        return out

    def _separable(self, nthreads):
        xp = self.xp
        x, w, pads = self._prepared()
        f = _rank1_factors(w, x.dtype)
        if f is None:
            raise ValueError(
                "method='separable' needs a 2-D kernel (the smaller input) of numerical rank 1 "
                f"(an outer product of a column and a row); got kernel shape {w.shape} "
                "that is not separable")
        col = xp.ascontiguousarray(f[0].reshape(-1, 1), dtype=x.dtype)
        row = xp.ascontiguousarray(f[1].reshape(1, -1), dtype=x.dtype)
        eng = _engines(xp)
        tmp = _empty(xp, (self.shape[0], x.shape[1]), x.dtype)
        eng.correlate(x[None, None], col[None, None], tmp[None, None], (1, 1), (1, 1),
                      (pads[0], 0), 1, nthreads)
        out = _empty(xp, self.shape, x.dtype)
        eng.correlate(tmp[None, None], row[None, None], out[None, None], (1, 1), (1, 1),
                      (0, pads[1]), 1, nthreads)
        return out


#: Direct problems of at most this many multiply-adds (tens of microseconds of kernel at
#: most) skip the planner: no method choice (direct is the fastest engine at that size), no
#: memory check, one thread. Measured on the 2-core development VM: 1-D n=1000 k=3 25 -> 9
#: us per call (scipy.signal.convolve 12 us); 90k-330k multiply-adds (1-D k=8-262, 2-D 7x7
#: on 64^2) 2.1-2.7x faster than through the planner with 2 threads; at 1 M (2-D 4x4 on
#: 256^2) the two were equal.
_SMALL_MACS = 1 << 19
_SMALL_MODES = ("full", "same", "valid")


def _small_windows(in1, in2, mode, method):
    """The per-axis (start, length) windows when :func:`_small_direct` takes the problem:
    two small float32/float64/complex/integer numpy arrays of one dtype, ``in2`` no larger than ``in1``
    along every axis, 'auto' or 'direct'; else None."""
    if (method not in ("auto", "direct") or type(in1) is not np.ndarray
            or type(in2) is not np.ndarray):
        return None
    dt = in1.dtype
    if (not (dt.char in "fdFD" or dt.kind in "iu") or in2.dtype != dt
            or not dt.isnative):
        return None
    nd = in1.ndim
    if nd == 0 or nd > 3 or in2.ndim != nd or mode not in _SMALL_MODES:
        return None
    macs = in2.size
    wins = []
    for n, k in zip(in1.shape, in2.shape):
        if k == 0 or k > n:
            return None
        w = _shapes.window(mode, n, k)
        wins.append(w)
        macs *= w[1]
    return wins if macs <= _SMALL_MACS else None


def _small_direct(in1, in2, mode, method):
    """``convolve(in1, in2, mode)`` by one direct call when :func:`_small_windows` takes the
    problem; None otherwise (it then goes the general way)."""
    wins = _small_windows(in1, in2, mode, method)
    if wins is None:
        return None
    from . import _core
    dt, nd = in1.dtype, in1.ndim
    crop, pads = _direct_window([st for st, _ in wins], in2.shape)
    if dt.kind in "iu":
        # integers: the int64 sum, wrapped into the dtype as scipy's (modular casts)
        x = np.ascontiguousarray(in1[crop], dtype=np.int64)
        w = np.ascontiguousarray(in2[(slice(None, None, -1),) * nd], dtype=np.int64)
        out = np.empty(tuple(n for _, n in wins), np.int64)
        _core._correlate_real(x[None, None], w[None, None], out[None, None], (1,) * nd,
                              (1,) * nd, pads, 1, 1, None, _core._REAL_CODES[out.dtype])
        return out if dt == np.int64 else out.astype(dt)
    x = np.ascontiguousarray(in1[crop])
    w = np.ascontiguousarray(in2[(slice(None, None, -1),) * nd])
    out = np.empty(tuple(n for _, n in wins), dt)
    if dt.kind == "c":
        _core.correlate(x[None, None], w[None, None], out[None, None], (1,) * nd, (1,) * nd,
                        pads, 1, 1)
        return out
    _core._correlate_real(x[None, None], w[None, None], out[None, None], (1,) * nd,
                          (1,) * nd, pads, 1, 1, None, _core._REAL_CODES[dt])
    return out


def _direct_window(starts, kernel_shape):
    """The direct engine's view of a window of the full convolution starting at ``starts``:
    (the crop of the signal, the zero padding before each axis). The engine correlates
    with the flipped kernel, reading x[o + k - pad]; a window that starts inside the signal
    (pad would be negative) crops the signal instead."""
    crop, pads = [], []
    for s, K in zip(starts, kernel_shape):
        p = K - 1 - s
        crop.append(slice(-p, None) if p < 0 else slice(None))
        pads.append(max(p, 0))
    return tuple(crop), tuple(pads)


def _prepare(in1, in2, mode, method):
    """Validate the common arguments of convolve/correlate; return (xp, a, b, mode, method)."""
    xp = _array_module(in1, in2)
    a = _asarray(xp, in1, "in1")
    b = _asarray(xp, in2, "in2")
    _shapes.check_mode(mode)
    _check_method(method)
    return xp, a, b


# ----------------------------------------------------------------------------- public API
def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays (drop-in for :func:`scipy.signal.convolve`).

    Parameters
    ----------
    in1 : array_like
        First input.
    in2 : array_like
        Second input, same number of dimensions as `in1`.
    mode : {'full', 'valid', 'same'}, optional
        'full' (default): the full discrete linear convolution. 'valid': only elements that
        do not rely on zero-padding; one input must be at least as large as the other in
        every dimension. 'same': the size of `in1`, centred on the 'full' output.
    method : {'auto', 'direct', 'fft', 'oa', 'separable'}, optional
        'auto' (default) picks the fastest engine predicted by the cost model calibrated on
        this machine (:func:`fastconv.tune`). 'direct' sums products (compiled, multi-threaded;
        exact for integers). 'fft' uses the convolution theorem (pyFFTW). 'oa' uses
        overlap-add FFT blocks. 'separable' applies a rank-1 2-D kernel as two 1-D passes.

    Returns
    -------
    ndarray
        Same dtype as scipy.signal.convolve returns (``numpy.result_type`` of the inputs).

    See Also
    --------
    scipy.signal.convolve : the reference this function reproduces.
    choose_conv_method : what 'auto' picks and why.

    Notes
    -----
    Cost: direct is ``O(out.size * in2.size)``; fft is ``O(N log N)`` in the padded size;
    overlap-add is ``O(in1.size * log(block))``. Integer and boolean inputs give scipy's
    exact integers (wrapping like scipy in the result dtype): 'auto' takes the integer direct
    sum, or a float64 FFT where a bound on its rounding error proves the rounded result
    exact and the model says it is faster; 'separable' runs the direct sum. Inputs containing NaN or Inf use 'direct' under 'auto', keeping the non-finite
    values local. An output (plus input copies) that cannot fit in memory raises MemoryError
    naming its size before anything is allocated.

    Deviations from scipy: N-D boolean and float16 inputs with 'direct' (where scipy raises
    "Unsupported type") return ``numpy.result_type`` (float16 is summed in float32); empty
    inputs raise ValueError naming the shapes, except 'same' with an empty `in1` (an empty
    result, as scipy).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> fastconv.convolve(np.ones((3, 3)), np.ones((2, 2)), mode='valid')
    array([[4., 4.],
           [4., 4.]])
    """
    out = _small_direct(in1, in2, mode, method)
    if out is not None:
        return out
    xp, a, b = _prepare(in1, in2, mode, method)
    if a.ndim == b.ndim == 0:
        return a * b
    _check_same_ndim(a, b)
    if a.size == 0 or b.size == 0:
        return _empty_result(xp, a, b, mode)
    if _shapes.inputs_swap_needed(mode, a.shape, b.shape):
        a, b = b, a
    prob = _Problem.from_mode(xp, a, b, mode)
    nthreads = get_num_threads()
    if method == "auto":
        method, _ = prob.choose(nthreads, scan=False)
        return prob.run(method, nthreads, check_finite=True)
    return prob.run(method, nthreads)


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays (drop-in for :func:`scipy.signal.correlate`).

    ``z[k] = sum_l in1[l] * conj(in2[l - k + N - 1])`` (N = in2 length per axis), i.e. a
    convolution of `in1` with `in2` reversed and conjugated. Parameters, modes, methods and
    result dtype as in :func:`convolve`.

    See Also
    --------
    scipy.signal.correlate : the reference this function reproduces.
    correlation_lags : the lag of each output element (1-D).

    Examples
    --------
    >>> import fastconv
    >>> fastconv.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> fastconv.correlation_lags(3, 3)
    array([-2, -1,  0,  1,  2])
    """
    if type(in2) is np.ndarray and in2.dtype.kind in "fciu":
        # the convolution with in2 reversed (and conjugated), small ones in one call
        rev = in2[(slice(None, None, -1),) * in2.ndim]
        if in2.dtype.kind == "c" and _small_windows(in1, rev, mode, method) is not None:
            rev = rev.conj()
        out = _small_direct(in1, rev, mode, method)
        if out is not None:
            return out
    xp, a, b = _prepare(in1, in2, mode, method)
    if a.ndim == b.ndim == 0:
        return a * b.conj()
    _check_same_ndim(a, b)
    if a.size == 0 or b.size == 0:
        return _empty_result(xp, a, b, mode)
    if mode == "valid" and _shapes.inputs_swap_needed(mode, a.shape, b.shape):
        # scipy: swap, correlate, then reverse and conjugate the result
        out = correlate(b, a, mode, method)
        return _reverse_and_conj(xp, out)
    if b.dtype.kind == "c":
        # the conjugate below is a copy of in2: the output's memory check first
        _Problem.from_mode(xp, a, b, mode).check_memory()
    return convolve(a, _reverse_and_conj(xp, b), mode, method)


def _empty_result(xp, a, b, mode):
    """scipy returns an empty ``in1``-shaped array for 'same' with empty in1; else refuses."""
    if mode == "same" and a.size == 0:
        return xp.zeros(a.shape, _dtypes.result_dtype(a, b))
    raise ValueError(
        f"in1 and in2 must not be empty for mode {mode!r}; got shapes {a.shape} and {b.shape}")


def _freq_axes(a, b, mode, axes):
    """scipy's ``_init_freq_conv_axes``: normalise axes, check broadcasting, swap for valid.

    As in scipy, axes where either input has length 1 are not transformed: along them the
    convolution is the broadcast product (and 'same'/'valid' crop as on the other axes).
    """
    nd = a.ndim
    if axes is None:
        axes = list(range(nd))
    else:
        if isinstance(axes, (int, np.integer)):
            axes = [axes]
        try:
            axes = [operator.index(ax) for ax in axes]
        except TypeError:
            # scipy's ValueError and wording
            raise ValueError(f"axes must be a scalar or iterable of integers, got {axes!r}") \
                from None
        if not axes:
            raise ValueError("when provided, axes cannot be empty; give None for all axes")
        for ax in axes:
            if not -nd <= ax < nd:
                raise ValueError(f"axes exceeds dimensionality of input: entry {ax} for "
                                 f"arrays of ndim {nd}")
        axes = [ax % nd for ax in axes]
        if len(set(axes)) != len(axes):
            raise ValueError(f"all axes must be unique, got {axes}")
    axes = sorted(ax for ax in axes if a.shape[ax] != 1 and b.shape[ax] != 1)
    for i in range(nd):
        if i not in axes and a.shape[i] != b.shape[i] and a.shape[i] != 1 and b.shape[i] != 1:
            raise ValueError(
                f"incompatible shapes for in1 and in2: {a.shape} and {b.shape} (axis {i} is "
                "not a convolution axis, so its lengths must be equal or 1)")
    swap = _shapes.inputs_swap_needed(mode, a.shape, b.shape, axes)
    if swap:
        a, b = b, a
    return a, b, tuple(axes)


def _freq_conv(xp, in1, in2, mode, axes, engine):
    a = _asarray(xp, in1, "in1")
    b = _asarray(xp, in2, "in2")
    _shapes.check_mode(mode)
    if a.ndim == b.ndim == 0:
        return a * b
    _check_same_ndim(a, b)
    if a.size == 0 or b.size == 0:
        return xp.array([])
    a, b, axes = _freq_axes(a, b, mode, axes)
    rdt = _dtypes.result_dtype(a, b)
    fdt = _dtypes.freq_dtype(a.dtype, b.dtype)     # scipy's: int8 with float32 is float64
    starts, shape = [], []
    out_shape = []
    for i in range(a.ndim):
        if i in axes:
            s, n = _shapes.window(mode, a.shape[i], b.shape[i])
            starts.append(s)
            shape.append(n)
            out_shape.append(n)
        elif mode == "same" and a.shape[i] == 1 and b.shape[i] > 1:
            # scipy crops the broadcast product to in1's length 1 around its centre: only
            # in2's central element along this axis contributes
            c = (b.shape[i] - 1) // 2
            b = b[(slice(None),) * i + (slice(c, c + 1),)]
            out_shape.append(1)
        else:
            out_shape.append(max(a.shape[i], b.shape[i]))
    itemsize = np.dtype(fdt if axes else rdt).itemsize
    nbytes = float(math.prod(out_shape)) * itemsize
    check_alloc(nbytes, f"an FFT convolution output of shape {tuple(out_shape)}")
    if not axes:
        return a * b           # as scipy: a plain (broadcast) product, in the inputs' dtype
    direct = _freq_direct(xp, a, b, mode, axes, out_shape, rdt, fdt)
    if direct is not None:
        return direct
    a = a.astype(fdt, copy=False)
    b = b.astype(fdt, copy=False)
    eng = _engines(xp)
    fn = eng.fft_convolve if engine == "fft" else eng.oaconvolve
    nthreads = _threads_for(_fft_work(a.size, b.size, float(math.prod(out_shape))),
                            get_num_threads())
    return fn(a, b, axes, tuple(starts), tuple(shape), nthreads)


#: fftconvolve/oaconvolve take the direct sum where the cost model predicts it faster
#: (:func:`_freq_direct`); tests of the FFT engines turn this off.
FREQ_DIRECT = True
#: ... for 3-D and higher problems only where its predicted time is at most
#: this fraction of the transforms' (problems of at most FREQ_DIRECT_SMALL_MACS
#: multiply-adds, tens of microseconds, and 1-D/2-D problems: below it)
FREQ_DIRECT_MARGIN = 0.5
FREQ_DIRECT_SMALL_MACS = 1 << 17


def _freq_direct(xp, a, b, mode, axes, out_shape, rdt, fdt):
    """The result of fftconvolve/oaconvolve by the direct sum where the cost model predicts
    it faster than the transforms (small problems, short kernels), else None.

    Only where that is the same function to rounding and the direct sum is at least as
    accurate: NumPy float or complex inputs computed in their own dtype (integer inputs are
    transformed in float64 and keep that result), every axis a convolution axis or one of
    length 1 in in2 (its broadcast product is the convolution), and finite inputs (an FFT
    spreads a NaN over the whole output, as scipy's does; the direct sum would keep it
    local)."""
    if not FREQ_DIRECT or xp is not np or rdt != fdt or fdt.char not in "fdFD":
        return None
    starts, shape = [], []
    for i, (n1, n2, want) in enumerate(zip(a.shape, b.shape, out_shape)):
        if i not in axes and n1 != 1 and n2 != 1:   # a batch axis (axes=...)
            return None
        try:
            s, n = _shapes.window(mode, n1, n2)
        except ValueError:
            return None
        if n != want:
            return None
        starts.append(s)
        shape.append(n)
    p = _Problem(xp, a, b, starts, shape, rdt)
    x, k = p.kernel_and_signal()
    nthreads = get_num_threads()
    _, times = _plan.choose_signal_method(x.shape, k.shape, p.shape, rdt, False, nthreads)
    transforms = min(times.get("fft", np.inf), times.get("oa", np.inf))
    # a margin for 3-D and higher problems beyond the smallest ones (where both
    # predictions are mostly the same fixed cost): scipy's fftconvolve always transforms,
    # so a direct sum the model over-rates would be a loss against it (a (58, 1, 6) kernel
    # along 3-D axes: predicted 1.3 ms, ran 3.2 ms against the transforms' 1.1; on 27
    # 2-D problems both predictions read high alike, measured / predicted 0.67 direct and
    # 0.58 FFT geo-mean; 3-D kernels with a unit axis 0.84 direct, up to 1.97)
    small = float(math.prod(p.shape)) * k.size <= FREQ_DIRECT_SMALL_MACS
    sure = small or k.ndim <= 2
    if (times["direct"] > (1.0 if sure else FREQ_DIRECT_MARGIN) * transforms
            or not _all_finite(xp, a, b)):
        return None
    return p.run("direct", nthreads)


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-D arrays using FFT (drop-in for :func:`scipy.signal.fftconvolve`).

    Real inputs use real-to-complex transforms of lengths FFTW is fast on; plans are cached
    and FFTW wisdom persists across processes. With `axes`, the other axes are broadcast.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> np.round(fastconv.fftconvolve([1., 2., 3.], [1., 1.]), 10)
    array([1., 3., 5., 3.])
    """
    xp = _array_module(in1, in2)
    return _freq_conv(xp, in1, in2, mode, axes, "fft")


def oaconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-D arrays by overlap-add (drop-in for :func:`scipy.signal.oaconvolve`).

    Efficient when one input is much larger than the other: cost ``O(n log b)`` with FFT
    blocks ``b`` a few times the kernel length.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> np.round(fastconv.oaconvolve(np.ones(6), [1., -1.], mode='same'), 10) + 0.0
    array([1., 0., 0., 0., 0., 0.])
    """
    xp = _array_module(in1, in2)
    return _freq_conv(xp, in1, in2, mode, axes, "oa")


def _conv2d(in1, in2, mode, boundary, fillvalue, correlation):
    xp = _array_module(in1, in2)
    a = _asarray(xp, in1, "in1")
    b = _asarray(xp, in2, "in2")
    _shapes.check_mode(mode)
    if not isinstance(boundary, str) or boundary not in _BOUNDARIES:
        raise ValueError(
            "boundary must be one of 'fill' ('pad'), 'wrap' ('circular') or 'symm' "
            f"('symmetric'), got {boundary!r}")
    boundary = _BOUNDARIES[boundary]
    if a.ndim != 2 or b.ndim != 2:
        name = "correlate2d" if correlation else "convolve2d"
        raise ValueError(f"{name} inputs must both be 2-D arrays, got ndim {a.ndim} and {b.ndim}")
    fv = np.asarray(fillvalue)
    if fv.size != 1:
        raise ValueError(
            f"`fillvalue` must be scalar or an array with one element, got shape {fv.shape}")
    if fv.dtype.kind not in "biufc":
        raise TypeError(f"fillvalue must be numeric, got dtype {fv.dtype}")
    if a.size == 0 and mode == "same":
        return xp.zeros(a.shape, _dtypes.result_dtype(a, b))   # as scipy: in1's empty shape
    if a.size == 0 or b.size == 0:
        raise ValueError(
            f"in1 and in2 must not be empty, got shapes {a.shape} and {b.shape}")
    swapped = _shapes.inputs_swap_needed(mode, a.shape, b.shape)
    if swapped:
        a, b = b, a
    rdt = _dtypes.result_dtype(a, b)
    if correlation:
        b = _reverse_and_conj(xp, b)
    fv = fv.reshape(())
    if fv.dtype.kind == "c" and rdt.kind != "c":
        if fv.imag != 0:
            raise ValueError("could not cast `fillvalue` directly to the output type: it is "
                             f"complex ({fv.item()!r}) and the inputs are real")
        fv = fv.real
    if rdt.kind in "iu":
        info = np.iinfo(rdt)
        if not info.min <= fv <= info.max:      # (NaN fails too) scipy refuses these as well
            raise ValueError(
                f"fillvalue {fv.item()!r} cannot be represented in the output dtype {rdt} "
                f"(range {info.min}..{info.max})")
    kh, kw = b.shape
    if (boundary == "fill" and fv == 0 and xp is np
            and not (correlation and mode == "same" and (kh % 2 == 0 or kw % 2 == 0))):
        # zero fill: convolve()'s windows (correlate2d's 'same' too for odd kernels); small
        # problems in one direct call, as convolve's (a tiny float64 call: 22 -> 10 us)
        out = _small_direct(a, b, mode, "auto")
        if out is not None:
            return out[::-1, ::-1] if swapped and correlation else out
    # scipy's correlate2d centres 'same' at kernel index k // 2 of the (unflipped) kernel,
    # i.e. at full-correlation offset k // 2, where correlate() (and convolve2d) use
    # (k - 1) // 2: the two differ by one for even kernel sizes.
    same_start = (kh // 2, kw // 2) if correlation else ((kh - 1) // 2, (kw - 1) // 2)
    if mode == "valid":
        prob = _Problem.from_mode(xp, a, b, mode)
    elif boundary == "fill" and fv == 0:
        prob = _Problem.from_mode(xp, a, b, mode)
        if mode == "same":
            prob.starts = same_start
    else:
        if mode == "full":
            pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
        else:  # same: left pad k - 1 - start
            pads = ((kh - 1 - same_start[0], same_start[0]),
                    (kw - 1 - same_start[1], same_start[1]))
        padded_shape = tuple(n + p + q for n, (p, q) in zip(a.shape, pads))
        check_alloc(2.0 * float(math.prod(padded_shape)) * max(rdt.itemsize, 8),
                    f"a {boundary!r}-padded copy of in1 of shape {padded_shape} and the output")
        if boundary == "fill":
            with np.errstate(over="ignore"):    # 1e40 in float32 is inf, as in scipy
                cval = fv.astype(rdt) if rdt.kind != "b" else bool(fv)
            padded = xp.pad(a.astype(rdt, copy=False), pads, mode="constant",
                            constant_values=cval)
        elif boundary == "wrap":
            padded = xp.pad(a, pads, mode="wrap")
        else:
            padded = xp.pad(a, pads, mode="symmetric")
        prob = _Problem.from_mode(xp, padded, b, "valid")
        prob.rdt = rdt
    nthreads = get_num_threads()
    method, _ = prob.choose(nthreads, scan=False)
    out = prob.run(method, nthreads, check_finite=True)
    if swapped and correlation:
        out = out[::-1, ::-1]
    return out


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays (drop-in for :func:`scipy.signal.convolve2d`).

    Parameters
    ----------
    in1, in2 : array_like
        2-D inputs.
    mode : {'full', 'valid', 'same'}
    boundary : {'fill', 'wrap', 'symm'}
        'fill' (alias 'pad'): pad with `fillvalue`; 'wrap' ('circular'): circular; 'symm'
        ('symmetric'): mirror (edge repeated).
    fillvalue : scalar
        Value for ``boundary='fill'`` (default 0).

    Notes
    -----
    The engine (direct, separable, FFT, overlap-add) is chosen by the cost model; 'wrap' and
    'symm' pad `in1` explicitly (a copy of ``in1.size + border``) and then convolve 'valid'.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve2d(np.eye(3), np.ones((2, 2)), mode='same', boundary='wrap')
    array([[2., 1., 1.],
           [1., 2., 1.],
           [1., 1., 2.]])
    """
    return _conv2d(in1, in2, mode, boundary, fillvalue, correlation=False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays (drop-in for :func:`scipy.signal.correlate2d`).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.correlate2d(np.arange(9.).reshape(3, 3), [[1., 0.], [0., -1.]], mode='valid')
    array([[-4., -4.],
           [-4., -4.]])
    """
    return _conv2d(in1, in2, mode, boundary, fillvalue, correlation=True)


def choose_conv_method(in1, in2, mode="full", measure=False):
    """Pick the fastest method for ``convolve``/``correlate`` (like scipy's, with our engines).

    Parameters
    ----------
    in1, in2 : array_like
    mode : {'full', 'valid', 'same'}
    measure : bool
        If True, run and time every applicable method and return the fastest, with the times.

    Returns
    -------
    method : str
        One of 'direct', 'fft', 'oa', 'separable'.
    times : dict, only if ``measure=True``
        Seconds per method (the best of a few runs).

    Notes
    -----
    Without `measure`, the choice comes from the cost model: predicted seconds of each engine
    from operation counts times constants measured on this machine by :func:`fastconv.tune`
    (built-in defaults until then). Boolean inputs, integer inputs whose FFT could round wrong
    (see :func:`convolve`), and inputs containing NaN or Inf choose 'direct'.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    """
    if not measure and _small_windows(in1, in2, mode, "auto") is not None:
        return "direct"      # what convolve does with it (see _small_direct)
    xp, a, b = _prepare(in1, in2, mode, "auto")
    if a.ndim == b.ndim == 0:
        if not measure:
            return "direct"
        import time
        t0 = time.perf_counter()
        a * b
        t = time.perf_counter() - t0
        return "direct", {"fft": t, "direct": t}     # both the product, as scipy's
    _check_same_ndim(a, b)
    if _shapes.inputs_swap_needed(mode, a.shape, b.shape):
        a, b = b, a
    prob = _Problem.from_mode(xp, a, b, mode)
    nthreads = get_num_threads()
    method, _ = prob.choose(nthreads)
    if not measure:
        return method
    import time
    # scipy's dict always holds 'fft' and 'direct'; integers are timed on the FFT too
    # but keep the exact direct sum (the choice 'auto' makes)
    exact_fft = not prob.integer or (prob.rdt.kind != "b" and prob._fft_exact())
    candidates = ["direct", "fft"]
    if exact_fft:
        candidates += ["oa"]
    if not prob.integer:
        _, k = prob.kernel_and_signal()
        if xp is np and _rank1_factors(k, _dtypes.compute_dtype(prob.rdt)) is not None:
            candidates.append("separable")
    times = {}
    for m in candidates:
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            prob.run(m, nthreads)
            best = min(best, time.perf_counter() - t0)
        times[m] = best
    if not exact_fft:
        return "direct", times
    return min(times, key=times.get), times
