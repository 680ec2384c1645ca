"""GPU engines: the engine contracts of docs/internals.md on CuPy arrays.

The fronts (``fastconv.signal``, ``fastconv.nn``) call :func:`get_array_module` and, for
CuPy inputs, the engines here instead of the CPU ones; arguments and results follow the
same contracts (``_core.correlate``, ``_fft.convolve``, ``_fft.oaconvolve``, GEMM):

* :func:`correlate` -- direct correlation with CUDA C kernels from ``fastconv/cuda/*.cu``
  (``cupy.RawModule``, compiled once per source, dtype and device);
* :func:`fft_convolve`, :func:`oaconvolve` -- cuFFT through ``cupyx.scipy.fft``
  (real-to-complex for real input, fast lengths, CuPy's per-device plan cache);
* :func:`gemm_conv` -- im2col kernel + cuBLAS strided-batched GEMM.

CuPy is optional (the ``[gpu]`` extra): importing this module never imports it.

All orchestration is written against an array module ``xp``, an FFT module and a kernel
launcher (``launch(kernel, dtype, grid, block, args, shared_mem)``).  On the GPU those are
cupy, cupyx.scipy.fft and RawModule functions; the tests substitute numpy, scipy.fft and
a CPU harness that runs the same ``.cu`` sources (``fastconv/cuda/harness``), so
everything except the CuPy calls themselves is exercised without a GPU.
"""
import contextlib
import functools
import math
import operator
import os
import re
import sys
import threading

import numpy as np

__all__ = ["is_cupy_array", "get_array_module", "correlate", "fft_convolve", "oaconvolve",
           "gemm_conv", "gpu_available", "default_constants", "tune_gpu"]

_CUDA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda")

# numpy dtype -> C++ type of the kernel template argument (int64 runs as unsigned so that
# overflow wraps modulo 2**64 with defined behaviour; the bits are the same)
_CTYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.complex64): "fc_complex<float>",
    np.dtype(np.complex128): "fc_complex<double>",
    np.dtype(np.int64): "unsigned long long",
}
_FILE_KERNELS = {
    "direct.cu": ("fc_corr_nd", "fc_corr_tiled", "fc_depthwise"),
    "im2col.cu": ("fc_im2col", "fc_col2im"),
}
_KERNEL_FILE = {k: f for f, ks in _FILE_KERNELS.items() for k in ks}
_COB = 4                 # FC_COB in direct.cu
_RW = 4                  # FC_RW in direct.cu
_MAX_SMEM = 48 * 1024    # dynamic shared memory without opt-in, every GPU since sm_20
_PATCH_TARGET = 16 * 1024
# C_in/groups == 1 with at most this many taps: fc_depthwise (taps through L1); larger
# kernels reuse each input value more often and go to the shared-memory tiles
_DEPTHWISE_MAX_TAPS = 27
_BLOCK = 256             # FC_MAX_THREADS in fc_common.cuh
_MAX_GRID = 2**31 - 1
_GEMM_WORKSPACE = 256 * 2**20  # bytes of im2col columns per batch chunk
# fc_depthwise runs its index arithmetic in 32 bits when the sizes allow (tests switch this
# off to cover the 64-bit path)
_INDEX32 = True


# ------------------------------------------------------------------------------------
# array modules

def _cupy_module(import_=True):
    """The cupy module, or None.  With ``import_=False`` only an already imported one."""
    cp = sys.modules.get("cupy")
    if cp is not None or not import_:
        return cp
    try:
        import cupy as cp
    except Exception:  # noqa: BLE001 - ImportError, or a CUDA library failing to load
        return None
    return cp


_HOST_SCALARS = (int, float, complex, bool, str, bytes, list, tuple, type(None), np.generic)


def _looks_like_gpu_array(a):
    if type(a).__module__.split(".")[0] in ("cupy", "cupyx"):
        return True
    if isinstance(a, (np.ndarray,) + _HOST_SCALARS):
        return False
    try:
        return hasattr(a, "__cuda_array_interface__")
    except Exception:  # noqa: BLE001 - some libraries raise other errors from the property
        return False


def is_cupy_array(a):
    """True when ``a`` is a ``cupy.ndarray`` (never imports CuPy).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._cupy import is_cupy_array
    >>> is_cupy_array(np.ones(3))
    False
    """
    cp = _cupy_module(import_=False)
    return cp is not None and isinstance(a, cp.ndarray)


def get_array_module(*arrays, names=None):
    """Return ``numpy`` or ``cupy``: the module of the array arguments.

    Arguments that are not arrays (scalars, lists, None) are ignored.  CuPy is imported
    only when an argument looks like a GPU array.

    Raises
    ------
    TypeError
        NumPy and CuPy arrays are mixed; the message names which argument is where
        (``names`` gives the argument names, default ``argument 1``, ...).
    ValueError
        CuPy arrays on different GPUs.
    ImportError
        a GPU array (anything with ``__cuda_array_interface__``) was given but CuPy
        cannot be imported.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv._cupy import get_array_module
    >>> get_array_module(np.ones(3), [1, 2], None) is np
    True
    """
    # the common case, decided without a look at each argument's module
    if all(type(a) is np.ndarray or a is None for a in arrays):
        return np

    def name(i):
        return names[i] if names is not None and i < len(names) else f"argument {i + 1}"

    gpu_i, host_i = [], []
    for i, a in enumerate(arrays):
        if _looks_like_gpu_array(a):
            gpu_i.append(i)
        elif isinstance(a, np.ndarray):
            host_i.append(i)
    if not gpu_i:
        return np
    # names are only built for the messages below
    host = [name(i) for i in host_i]
    gpu = [(name(i), arrays[i]) for i in gpu_i]
    cp = _cupy_module()
    if cp is None:
        n, a = gpu[0]
        raise ImportError(
            f"{n} is a GPU array ({type(a).__module__}.{type(a).__name__}) but CuPy cannot "
            "be imported; install the GPU extra: pip install \"fastconv[gpu]\"")
    if host:
        where = [f"{n} is a numpy.ndarray (host memory)" for n in host]
        where += [f"{n} is a {type(a).__module__}.{type(a).__name__} ({_device_of(a)})"
                  for n, a in gpu]
        raise TypeError("cannot mix NumPy and CuPy arrays: " + ", ".join(where) +
                        "; move them to one device first (cupy.asarray(a) or a.get())")
    if len(gpu) > 1 and len({_device_of(a) for _, a in gpu}) > 1:
        raise ValueError("arrays are on different GPUs: " +
                         ", ".join(f"{n} on {_device_of(a)}" for n, a in gpu))
    return cp


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device (imports CuPy)."""
    cp = _cupy_module()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no device
        return False


def _device_of(a):
    dev = getattr(a, "device", None)
    dev_id = getattr(dev, "id", None)
    return f"GPU {dev_id}" if dev_id is not None else "GPU"


# ------------------------------------------------------------------------------------
# backends: (array module, FFT module, kernel launcher)

class _Backend:
    def __init__(self, xp, fft, launcher, key):
        self.xp, self.fft, self.launcher, self.key = xp, fft, launcher, key


_standin = None


_standin_modules = ()


@contextlib.contextmanager
def _use_standin(launcher, modules=(np,)):
    """Tests: run the engines on NumPy arrays with ``launcher`` (the CPU harness) for
    arrays whose module (get_array_module) is one of ``modules``."""
    import scipy.fft

    global _standin, _standin_modules
    old = _standin, _standin_modules
    _standin, _standin_modules = _Backend(np, scipy.fft, launcher, "host"), tuple(modules)
    try:
        yield _standin
    finally:
        _standin, _standin_modules = old


def _backend(xp):
    if any(xp is m for m in _standin_modules):
        return _standin
    if xp is np:
        raise TypeError("fastconv._cupy engines take CuPy arrays; NumPy arrays are "
                        "served by the CPU engines")
    import cupyx.scipy.fft

    dev = xp.cuda.Device().id
    return _Backend(xp, cupyx.scipy.fft, _CupyLauncher(xp, dev), dev)


@functools.lru_cache(maxsize=None)
def _source(filename):
    """Kernel source with local ``#include "x.cuh"`` expanded (CuPy's compile cache keys
    on the source text, so headers must be part of it)."""
    with open(os.path.join(_CUDA_DIR, filename)) as f:
        text = f.read()

    def expand(m):
        return _source(m.group(1))

    return re.sub(r'^#include "([\w.]+\.cuh)"', expand, text, flags=re.M)


_module_lock = threading.RLock()


@functools.lru_cache(maxsize=None)
def _cuda_module(filename, dtype, device_id):
    """RawModule of one .cu file for one dtype on one device (memoised; the dtype is the
    template argument in every kernel's name expression)."""
    cp = _cupy_module()
    names = [f"{k}<{_CTYPES[dtype]}>" for k in _FILE_KERNELS[filename]]
    with cp.cuda.Device(device_id):
        mod = cp.RawModule(code=_source(filename), options=("-std=c++14",),
                           name_expressions=names)
        mod.compile()  # NVRTC now (errors surface here); CuPy caches the binary on disk
    return mod


@functools.lru_cache(maxsize=None)
def _cuda_function(kernel, dtype, device_id):
    """RawKernel ``kernel<T>`` (memoised: RawModule.get_function builds a new object)."""
    with _module_lock:
        mod = _cuda_module(_KERNEL_FILE[kernel], dtype, device_id)
        return mod.get_function(f"{kernel}<{_CTYPES[dtype]}>")


class _CupyLauncher:
    def __init__(self, cp, device_id):
        self.cp, self.device_id = cp, device_id

    def launch(self, kernel, dtype, grid, block, args, shared_mem=0):
        fn = _cuda_function(kernel, np.dtype(dtype), self.device_id)
        cargs = tuple(a if isinstance(a, self.cp.ndarray) else np.int64(a) for a in args)
        fn((int(grid),), (int(block),), cargs, shared_mem=int(shared_mem))


_geom_cache = {}


def _geom(be, values):
    """The int64 geometry array (fc_common.cuh) on the backend's device, cached."""
    key = (be.key, tuple(int(v) for v in values))
    g = _geom_cache.get(key)
    if g is None:
        if len(_geom_cache) > 512:
            _geom_cache.clear()
        g = be.xp.asarray(np.array(key[1], dtype=np.int64))
        _geom_cache[key] = g
    return g


def _grid(total, block=_BLOCK):
    return max(1, min(-(-total // block), _MAX_GRID))


# ------------------------------------------------------------------------------------
# direct engine

def _check_tuple(name, v, nd, lo):
    try:
        v = tuple(operator.index(i) for i in v)
    except TypeError:
        raise TypeError(f"{name} must be {nd} ints >= {lo}, got {v!r}") from None
    if len(v) != nd or any(i < lo for i in v):
        raise ValueError(f"{name} must be {nd} ints >= {lo}, got {v}")
    return v


def correlate(x, w, out, stride, dilation, pad, groups, nthreads=None):
    """Direct multi-channel correlation on the GPU (contract of ``_core.correlate``).

    ``x (N, C_in, *S)``, ``w (C_out, C_in // groups, *K)``, ``out (N, C_out, *O)``:
    C-contiguous CuPy arrays of one dtype (float32, float64, complex64, complex128,
    int64); ``out`` is overwritten and returned.  ``nthreads`` is ignored.

    Kernel choice (<= 3 spatial axes): C_in/groups == 1 with <= 27 taps -> ``fc_depthwise``;
    else ``fc_corr_tiled`` when the input patch of a tile fits in shared memory; else
    ``fc_depthwise`` for C_in/groups == 1; anything else (and 4+ axes) -> ``fc_corr_nd``.
    Cost: N*C_out*prod(O)*C_in/groups*prod(K) multiply-adds.
    """
    xp = get_array_module(x, w, out, names=("x", "w", "out"))
    be = _backend(xp)
    if x.ndim < 3 or w.ndim != x.ndim or out.ndim != x.ndim:
        raise ValueError("x, w and out must all have shape (batch, channels, *spatial) "
                         f"with >= 1 spatial axis, got {x.shape}, {w.shape}, {out.shape}")
    dtype = np.dtype(x.dtype)
    if dtype not in _CTYPES or w.dtype != dtype or out.dtype != dtype:
        raise TypeError(f"x, w, out must share one dtype of {sorted(map(str, _CTYPES))}, "
                        f"got {x.dtype}, {w.dtype}, {out.dtype}")
    for n, a in (("x", x), ("w", w), ("out", out)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{n} must be C-contiguous")
    nd = x.ndim - 2
    stride = _check_tuple("stride", stride, nd, 1)
    dilation = _check_tuple("dilation", dilation, nd, 1)
    pad = _check_tuple("pad", pad, nd, 0)
    key = (be.key, dtype, x.shape, w.shape, out.shape, stride, dilation, pad, int(groups),
           _INDEX32)
    plan = _launch_plans.get(key)
    if plan is None:
        plan = _correlate_plan(be, dtype, x.shape, w.shape, out.shape, stride, dilation, pad,
                               int(groups))
        if len(_launch_plans) >= 1024:
            _launch_plans.clear()
        _launch_plans[key] = plan
    kind = plan[0]
    if kind == "zero":
        out.fill(0)
    elif kind == "launch":
        _, kernel, grid, block, g, count, smem = plan
        be.launcher.launch(kernel, dtype, grid, block, (x, w, out, g, count), smem)
    return out


# launch plans of correlate(), per (device, dtype, shapes, stride, dilation, pad, groups,
# _INDEX32): the validation, kernel choice and geometry of a call depend on nothing else but
# this module's tuning constants (_DEPTHWISE_MAX_TAPS, _MAX_SMEM, ...), read when a plan is
# made -- a test that changes one must clear this dict
_launch_plans = {}


def _correlate_plan(be, dtype, xs, ws, outs, stride, dilation, pad, groups):
    """("empty",), ("zero",) or ("launch", kernel, grid, block, geometry, count, smem) for
    correlate() on arrays of these shapes (stride, dilation, pad: checked tuples); raises
    ValueError for geometry that does not fit."""
    nd = len(xs) - 2
    N, Cin, S = xs[0], xs[1], tuple(xs[2:])
    Cout, K, O = ws[0], tuple(ws[2:]), tuple(outs[2:])
    if groups < 1 or Cin % groups or Cout % groups or ws[1] != Cin // groups:
        raise ValueError(f"groups={groups} does not fit C_in={Cin}, C_out={Cout}, "
                         f"w.shape[1]={ws[1]}")
    if tuple(outs[:2]) != (N, Cout):
        raise ValueError(f"out.shape {outs} must start with (N, C_out) = {(N, Cout)}")
    xsize, wsize, osize = math.prod(xs), math.prod(ws), math.prod(outs)
    if osize == 0:
        return ("empty",)
    if xsize == 0 or wsize == 0:
        return ("zero",)

    cin_g, cout_g = Cin // groups, Cout // groups
    head = [N, Cin, Cout, groups]
    if nd <= 3:
        one = (1,) * (3 - nd)
        S3, K3, O3 = one + S, one + K, one + O
        st3, dl3, pd3 = one + stride, one + dilation, (0,) * (3 - nd) + pad
        arrays3 = [*S3, *K3, *O3, *st3, *dl3, *pd3]
        small_depthwise = cin_g == 1 and math.prod(K) <= _DEPTHWISE_MAX_TAPS
        plan = None if small_depthwise else _tile_plan(dtype.itemsize, O3, K3, st3, dl3,
                                                       cin_g, cout_g)
        if plan is not None:
            extra, nthr, smem = plan
            nblocks = N * groups * extra[11] * extra[8] * extra[9] * extra[10]
            g = _geom(be, [3, *head, *arrays3, *extra])
            return ("launch", "fc_corr_tiled", min(nblocks, _MAX_GRID), nthr, g, nblocks, smem)
        if cin_g == 1:
            # FC_D_INDEX32: 32-bit index arithmetic when every offset fits (with headroom
            # for the signed tap positions o*stride + k*dilation - pad)
            small = max(xsize, wsize, osize) < 2**30 and all(
                s + o * st + k * d + p < 2**30 for s, o, st, k, d, p in
                zip(S3, O3, st3, K3, dl3, pd3))
            g = _geom(be, [3, *head, *arrays3, int(small and _INDEX32)])
            return ("launch", "fc_depthwise", _grid(osize), _BLOCK, g, osize, 0)
    g = _geom(be, [nd, *head, *S, *K, *O, *stride, *dilation, *pad])
    return ("launch", "fc_corr_nd", _grid(osize), _BLOCK, g, osize, 0)


def _next_pow2(n):
    return 1 << max(0, int(n) - 1).bit_length()


def _tile_plan(itemsize, O3, K3, st3, dl3, cin_g, cout_g):
    """Tile, channel chunks and shared memory for fc_corr_tiled, or None if it won't fit.

    Returns (extra geometry [TD, TH, TW, cob, cic, ED, EH, EW, nTD, nTH, nTW, nCOg, rw],
    threads per block, dynamic shared memory bytes)."""
    if O3[0] > 1:
        tile = [4, 8, 8]
    elif O3[1] > 1:
        tile = [1, 16, 16]
    else:
        tile = [1, 1, 256]
    tile = [min(t, _next_pow2(o)) for t, o in zip(tile, O3)]
    while tile[0] * tile[1] * tile[2] < 128 and tile[2] < _next_pow2(O3[2]):
        tile[2] *= 2
    nthr = tile[0] * tile[1] * tile[2]
    rw_max = max(1, min(_RW, -(-O3[2] // tile[2])))
    # largest register block (outputs per thread x output channels) whose per-thread sums
    # take <= 1/2 of shared memory and leave room for one staged channel
    for rw, cob in sorted(((r, c) for r in range(1, rw_max + 1)
                           for c in range(1, min(_COB, cout_g) + 1)),
                          key=lambda rc: (-rc[0] * rc[1], -rc[1])):
        sums = cob * rw * nthr * itemsize
        if sums > _MAX_SMEM // 2:
            continue
        ext = [(t - 1) * s + (k - 1) * d + 1 for t, s, k, d in
               zip(tile[:2] + [tile[2] * rw], st3, K3, dl3)]
        ep = ext[0] * ext[1] * ext[2]
        budget = _MAX_SMEM - sums
        cic = min(cin_g, budget // (ep * itemsize), max(1, _PATCH_TARGET // (ep * itemsize)))
        if cic >= 1:
            break
    else:
        return None
    ntile = [-(-o // t) for o, t in zip(O3, tile[:2] + [tile[2] * rw])]
    ncog = -(-cout_g // cob)
    smem = (cic * ep + cob * rw * nthr) * itemsize
    return [*tile, cob, cic, *ext, *ntile, ncog, rw], nthr, smem


# ------------------------------------------------------------------------------------
# GEMM engine

def _check_layer(name, a, w, stride, dilation):
    """(nd, dtype, stride, dilation) of a layer's activations ``a`` (N, C, *spatial) and
    weight ``w``, checked: same ndim >= 3, one supported dtype, positive stride/dilation."""
    nd = a.ndim - 2
    if nd < 1 or w.ndim != a.ndim:
        raise ValueError(f"{name} {a.shape} and w {w.shape} must be (N, C, *spatial)")
    dtype = np.dtype(a.dtype)
    if dtype not in _CTYPES or w.dtype != dtype:
        raise TypeError(f"{name} and w must share one dtype of {sorted(map(str, _CTYPES))}")
    return (nd, dtype, _check_tuple("stride", stride, nd, 1),
            _check_tuple("dilation", dilation, nd, 1))


def gemm_conv(x, w, stride, dilation, pad, groups, out=None):
    """Convolution layer as im2col + batched matmul (cuBLAS for floating dtypes).

    ``x (N, C_in, *S)``, ``w (C_out, C_in // groups, *K)``, PyTorch semantics: ``pad``
    zeros on *both* sides of each spatial axis, ``O = (S + 2 pad - dil (K-1) - 1) // stride
    + 1``.  If ``out (N, C_out, *O)`` is given it is written instead and its shape sets O
    (then ``pad`` is the zeros before each axis only, as in :func:`correlate`).
    Returns ``out``.  The im2col columns take at most ~256 MiB at a time (the batch is
    processed in chunks); 1x1 kernels with stride 1 and no padding skip im2col.
    Cost: N*C_out*prod(O)*C_in/groups*prod(K) multiply-adds in GEMM, plus the columns.
    """
    xp = get_array_module(x, w, out, names=("x", "w", "out"))
    be = _backend(xp)
    nd, dtype, stride, dilation = _check_layer("x", x, w, stride, dilation)
    pad = _check_tuple("pad", pad, nd, 0)
    N, Cin, S = x.shape[0], x.shape[1], tuple(x.shape[2:])
    Cout, K = w.shape[0], tuple(w.shape[2:])
    groups = int(groups)
    if groups < 1 or Cin % groups or Cout % groups or w.shape[1] != Cin // groups:
        raise ValueError(f"groups={groups} does not fit C_in={Cin}, C_out={Cout}, "
                         f"w.shape[1]={w.shape[1]}")
    if out is None:
        O = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                  for s, p, d, k, st in zip(S, pad, dilation, K, stride))
        if any(o < 0 for o in O):
            raise ValueError(f"kernel {K} (dilation {dilation}) larger than padded input")
        out = xp.empty((N, Cout) + O, dtype=dtype)
    else:
        O = tuple(out.shape[2:])
        if out.shape[:2] != (N, Cout) or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {dtype} of shape (N, C_out, *O)")
    if out.size == 0:
        return out
    if x.size == 0 or w.size == 0:
        out.fill(0)
        return out
    x = xp.ascontiguousarray(x)
    cin_g, cout_g = Cin // groups, Cout // groups
    KP, P = math.prod(K), math.prod(O)
    wm = xp.ascontiguousarray(w).reshape(groups, cout_g, cin_g * KP)
    if KP == 1 and all(s == 1 for s in stride) and not any(pad) and O == S:
        _batched_gemm(be, wm, x.reshape(N, groups, cin_g, P), out.reshape(N, groups, cout_g, P))
        return out
    per_image = Cin * KP * P * dtype.itemsize
    nb = max(1, min(N, _GEMM_WORKSPACE // max(1, per_image)))
    cols = xp.empty((nb, Cin, KP, P), dtype=dtype)
    g = _geom(be, [nd, nb, Cin, Cout, groups, *S, *K, *O, *stride, *dilation, *pad])
    for n0 in range(0, N, nb):
        n1 = min(N, n0 + nb)
        c = cols[: n1 - n0]
        if n1 - n0 != nb:
            g = _geom(be, [nd, n1 - n0, Cin, Cout, groups, *S, *K, *O, *stride,
                           *dilation, *pad])
        be.launcher.launch("fc_im2col", dtype, _grid(c.size), _BLOCK, (x[n0:n1], c, g, c.size))
        _batched_gemm(be, wm, c.reshape(n1 - n0, groups, cin_g * KP, P),
                      out[n0:n1].reshape(n1 - n0, groups, cout_g, P))
    return out


def gemm_conv_adjoint(y, w, x_spatial, stride, dilation, pad, groups):
    """Transposed convolution (the adjoint of :func:`gemm_conv` in ``x``) as one batched
    GEMM and one col2im launch.

    ``y (N, C_out, *O)``, ``w (C_out, C_in // groups, *K)``; returns ``x (N, C_in,
    *x_spatial)`` with ``x[n, c, o*stride + k*dilation - pad] += y[n, co, o] w[co, c, k]``
    (positions outside ``x`` dropped; ``pad`` is the forward padding before each axis, any
    sign). Per chunk of images: ``cols (n, C_in*K, O) = W_g^T @ y_g`` (cuBLAS), then
    ``fc_col2im`` gathers each element of ``x`` from its taps (no atomics, every element
    written once). Columns take at most ~256 MiB at a time.
    """
    xp = get_array_module(y, w, names=("y", "w"))
    be = _backend(xp)
    nd, dtype, stride, dilation = _check_layer("y", y, w, stride, dilation)
    pad = tuple(operator.index(p) for p in pad)
    S = tuple(operator.index(s) for s in x_spatial)
    if len(pad) != nd or len(S) != nd or any(s < 0 for s in S):
        raise ValueError(f"pad {pad} and x_spatial {S} must be {nd} ints (sizes >= 0)")
    N, Cout, O = y.shape[0], y.shape[1], tuple(y.shape[2:])
    Cin_g, K = w.shape[1], tuple(w.shape[2:])
    groups = int(groups)
    if groups < 1 or Cout % groups or w.shape[0] != Cout:
        raise ValueError(f"groups={groups} does not fit C_out={Cout}, w {w.shape}")
    Cin, cout_g = Cin_g * groups, Cout // groups
    x = xp.empty((N, Cin) + S, dtype=dtype)
    if x.size == 0:
        return x
    KP, P = math.prod(K), math.prod(O)
    if P == 0 or KP == 0 or Cout == 0:
        x.fill(0)
        return x
    # W_g^T: (groups, C_in_g*K, C_out_g)
    wt = xp.ascontiguousarray(xp.ascontiguousarray(w).reshape(groups, cout_g, Cin_g * KP)
                              .swapaxes(1, 2))
    y = xp.ascontiguousarray(y)
    per_image = Cin * KP * P * dtype.itemsize
    nb = max(1, min(N, _GEMM_WORKSPACE // max(1, per_image)))
    cols = xp.empty((nb, Cin, KP, P), dtype=dtype)
    for n0 in range(0, N, nb):
        n1 = min(N, n0 + nb)
        c = cols[: n1 - n0]
        _batched_gemm(be, wt, y[n0:n1].reshape(n1 - n0, groups, cout_g, P),
                      c.reshape(n1 - n0, groups, Cin_g * KP, P))
        xs = x[n0:n1]
        g = _geom(be, [nd, n1 - n0, Cin, Cout, groups, *S, *K, *O, *stride, *dilation,
                       *pad])
        be.launcher.launch("fc_col2im", dtype, _grid(xs.size), _BLOCK, (c, xs, g, xs.size))
    return x


# cuBLAS strided-batched GEMM per dtype (cupy.cuda.cublas function, scalar type).  The
# real dtypes only: those are what fastconv.nn runs and what the GPU suite verified on a
# device; complex (and int64) go through cupy.matmul.
_GEMM_STRIDED = {np.dtype(np.float32): ("sgemmStridedBatched", np.float32),
                 np.dtype(np.float64): ("dgemmStridedBatched", np.float64)}
# tests and benchmarks/gpu_micro.py switch this off to compare with cupy.matmul
_USE_CUBLAS = True


def _batched_gemm(be, w3, a4, out4):
    """``out4[n, g] = w3[g] @ a4[n, g]`` for all n, g: w3 (G, M, K), a4 (N, G, K, P), out4
    (N, G, M, P), C-contiguous, one dtype, none empty (gemm_conv returns before).

    On CuPy float32/float64 arrays: one cuBLAS strided-batched GEMM per group (batch N,
    weight stride 0); ``cupy.matmul`` with the broadcast weights cost 1.7-3.5x more per call on
    an H200 (benchmarks/gpu_micro.py).  Elsewhere (complex, int64, NumPy stand-in):
    ``matmul``.
    """
    xp = be.xp
    spec = _GEMM_STRIDED.get(np.dtype(a4.dtype))
    if spec is None or not _USE_CUBLAS or xp is np or not hasattr(xp, "cuda"):
        xp.matmul(w3, a4, out=out4)
        return
    from cupy.cuda import cublas, device

    N, G, K, P = a4.shape
    M = w3.shape[1]
    fn = getattr(cublas, spec[0])
    alpha, beta = np.ones((), spec[1]), np.zeros((), spec[1])
    isz = a4.dtype.itemsize
    handle = device.get_cublas_handle()
    mode = cublas.getPointerMode(handle)
    if mode != cublas.CUBLAS_POINTER_MODE_HOST:   # alpha and beta live on the host
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    # row-major out[n, g] (M x P) = w[g] (M x K) @ a[n, g] (K x P) is, column-major,
    # out^T (P x M) = a^T (P x K) @ w^T (K x M): m = P, n = M, k = K, no transposes
    try:
        for g in range(G):
            fn(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, P, M, K,
               alpha.ctypes.data, a4.data.ptr + g * K * P * isz, P, G * K * P,
               w3.data.ptr + g * M * K * isz, K, 0,
               beta.ctypes.data, out4.data.ptr + g * M * P * isz, P, G * M * P, N)
    finally:
        if mode != cublas.CUBLAS_POINTER_MODE_HOST:
            cublas.setPointerMode(handle, mode)


# ------------------------------------------------------------------------------------
# FFT engines

def _fft_prepare(in1, in2, axes, start, shape):
    xp = get_array_module(in1, in2, names=("in1", "in2"))
    be = _backend(xp)
    in1, in2 = xp.asarray(in1), xp.asarray(in2)
    if in1.ndim != in2.ndim:
        raise ValueError(f"in1 and in2 must have the same ndim, got {in1.ndim}, {in2.ndim}")
    nd = in1.ndim
    axes = tuple(int(a) % nd for a in axes) if nd else ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axes {axes}")
    start, shape = tuple(int(s) for s in start), tuple(int(s) for s in shape)
    if len(start) != len(axes) or len(shape) != len(axes):
        raise ValueError("start and shape must have one value per axis")
    for a in range(nd):
        if a not in axes and in1.shape[a] != in2.shape[a] and 1 not in (in1.shape[a],
                                                                          in2.shape[a]):
            raise ValueError(f"in1 {in1.shape} and in2 {in2.shape} do not broadcast on "
                             f"axis {a}")
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype.kind not in "fc":
        dtype = np.dtype(np.float64)
    elif dtype == np.float16:
        dtype = np.dtype(np.float32)
    in1, in2 = in1.astype(dtype, copy=False), in2.astype(dtype, copy=False)
    return xp, be, in1, in2, axes, start, shape, dtype


def _crop_shape(in1, in2, axes, shape):
    outer = [max(a, b) for a, b in zip(in1.shape, in2.shape)]
    for a, s in zip(axes, shape):
        outer[a] = s
    return tuple(outer)


def _crop(ret, axes, start, shape, xp, dtype):
    sl = [slice(None)] * ret.ndim
    for a, s0, n in zip(axes, start, shape):
        sl[a] = slice(s0, s0 + n)
    return xp.ascontiguousarray(ret[tuple(sl)]).astype(dtype, copy=False)


def _spectral_product(be, in1, in2, fshape, axes, real):
    f = be.fft
    if real:
        return f.irfftn(f.rfftn(in1, fshape, axes=axes) * f.rfftn(in2, fshape, axes=axes),
                        fshape, axes=axes)
    return f.ifftn(f.fftn(in1, fshape, axes=axes) * f.fftn(in2, fshape, axes=axes),
                   fshape, axes=axes)


def fft_convolve(in1, in2, axes, start, shape, nthreads=None):
    """Linear convolution along ``axes`` by cuFFT (contract of ``_fft.convolve``).

    Real input -> rfftn/irfftn (real result of the input precision), complex -> fftn;
    transform lengths are ``cupyx.scipy.fft.next_fast_len``; cuFFT plans come from
    CuPy's per-device plan cache (``cupy.fft.config.get_plan_cache()``), so repeated
    shapes reuse them.  Returns ``full[start:start+shape]`` along ``axes``.
    Cost: three N-D transforms of prod(next_fast_len(n1+n2-1)) points.
    """
    xp, be, in1, in2, axes, start, shape, dtype = _fft_prepare(in1, in2, axes, start, shape)
    if any(in1.shape[a] == 0 or in2.shape[a] == 0 for a in axes) or not axes:
        if not axes:
            return _crop(in1 * in2, axes, start, shape, xp, dtype)
        return xp.zeros(_crop_shape(in1, in2, axes, shape), dtype=dtype)
    real = dtype.kind == "f"
    fshape = [be.fft.next_fast_len(in1.shape[a] + in2.shape[a] - 1, real=real) for a in axes]
    ret = _spectral_product(be, in1, in2, fshape, axes, real)
    return _crop(ret, axes, start, shape, xp, dtype)


def _oa_block(n1, n2, real, next_fast_len):
    """Block length for overlap-add along one axis (scipy's _calc_oa_lens rule), or None
    for a plain FFT along that axis."""
    if n2 <= 1 or n1 <= n2 or n1 < 4 * n2:
        return None
    from scipy.special import lambertw

    overlap = n2 - 1
    opt = -overlap * lambertw(-1 / (2 * math.e * overlap), k=-1).real
    nfft = next_fast_len(int(math.ceil(opt)), real=real)
    block = nfft - overlap
    return block if overlap <= block < n1 else None


def oaconvolve(in1, in2, axes, start, shape, nthreads=None):
    """Linear convolution along ``axes`` by overlap-add with cuFFT (``_fft.oaconvolve``).

    Along each axis where one input is >= 4x the other, the longer one is cut into
    blocks of a fast FFT length minus the overlap; all blocks of all such axes are
    transformed in one batched cuFFT call, multiplied by the short input's spectrum,
    transformed back and overlap-added.  Cost: ~(n1/B) transforms of B + n2 - 1 points
    per blocked axis instead of one of n1 + n2 - 1.
    """
    xp, be, in1, in2, axes, start, shape, dtype = _fft_prepare(in1, in2, axes, start, shape)
    if not axes or any(in1.shape[a] == 0 or in2.shape[a] == 0 for a in axes):
        return fft_convolve(in1, in2, axes, start, shape)
    if math.prod(in1.shape[a] for a in axes) < math.prod(in2.shape[a] for a in axes):
        in1, in2 = in2, in1  # convolution commutes; block the larger input
    real = dtype.kind == "f"
    nfl = be.fft.next_fast_len
    blocks = {a: _oa_block(in1.shape[a], in2.shape[a], real, nfl) for a in axes}
    if all(b is None for b in blocks.values()):
        return fft_convolve(in1, in2, axes, start, shape)
    # split every blocked axis a of in1 into (nb, B): axis a -> two axes
    pads = [(0, 0)] * in1.ndim
    new_shape, axis_map = [], {}  # axis_map: old axis -> (block-count axis or None, axis)
    for a, n in enumerate(in1.shape):
        b = blocks.get(a)
        if b is None:
            axis_map[a] = (None, len(new_shape))
            new_shape.append(n)
        else:
            nb = -(-n // b)
            pads[a] = (0, nb * b - n)
            axis_map[a] = (len(new_shape), len(new_shape) + 1)
            new_shape += [nb, b]
    x1 = xp.pad(in1, pads).reshape(new_shape)
    x2 = in2.reshape([1 if axis_map[a][0] is not None and i == 0 else n
                      for a, n in enumerate(in2.shape)
                      for i in ((0, 1) if axis_map[a][0] is not None else (1,))])
    faxes = [axis_map[a][1] for a in axes]
    fshape = [nfl(x1.shape[fa] + x2.shape[fa] - 1, real=real) for fa in faxes]
    y = _spectral_product(be, x1, x2, fshape, faxes, real)
    # overlap-add each blocked axis, highest first so earlier axis numbers stay valid
    full_len = {a: in1.shape[a] + in2.shape[a] - 1 for a in axes}
    for a in sorted((a for a in axes if blocks.get(a) is not None), reverse=True):
        ca, fa = axis_map[a]
        b, m = blocks[a], in2.shape[a] - 1
        y = xp.moveaxis(y, (ca, fa), (0, 1))
        nb = y.shape[0]
        # block j's first b outputs land at j*b, its m-long tail at (j+1)*b (m <= b)
        acc = xp.zeros((nb + 1, b) + y.shape[2:], dtype=y.dtype)
        acc[:nb] = y[:, :b]
        if m:
            acc[1:, :m] += y[:, b: b + m]
        acc = acc.reshape(((nb + 1) * b,) + y.shape[2:])[: full_len[a]]
        y = xp.moveaxis(acc, 0, ca)
        # the block-count axis disappeared: later axes shift down by one
        axis_map = {k: ((None, ca) if k == a else
                        (None if c is None else (c - 1 if c > ca else c), f - 1 if f > ca else f))
                    for k, (c, f) in axis_map.items()}
    # non-blocked axes still have the FFT length; crop them to the full length
    sl = [slice(None)] * y.ndim
    for a in axes:
        if blocks.get(a) is None:
            sl[axis_map[a][1]] = slice(0, full_len[a])
    y = y[tuple(sl)]
    return _crop(y, axes, start, shape, xp, dtype)


# ------------------------------------------------------------------------------------
# cost model constants

def default_constants():
    """Chooser constants for a typical data-center GPU (A100/H100 class), fp32.

    'direct_s_per_mac'  seconds per multiply-add of :func:`correlate`
    'fft_s_per_flop'    seconds per n*log2(n) unit of one transform of n points
    'gemm_s_per_mac'    seconds per multiply-add of :func:`gemm_conv` (cuBLAS, no TF32)
    'call_overhead_s'   fixed cost of one engine call (Python, launches, allocation)

    These are estimates from published throughput figures, NOT measurements of these
    kernels (no GPU has run them yet); :func:`tune_gpu` measures them on the device.
    """
    return {
        "direct_s_per_mac": 1.0e-12,
        "fft_s_per_flop": 5.0e-13,
        "gemm_s_per_mac": 1.0e-13,
        "call_overhead_s": 3.0e-5,
    }


def _time_gpu(cp, fn, repeat=5):
    fn()
    cp.cuda.Device().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) * 1e-3)
    return best


def tune_gpu(dtype="float32"):
    """Measure :func:`default_constants` on the current GPU (CUDA events, after warm-up).

    Raises RuntimeError when CuPy or a CUDA device is unavailable.  Takes ~1-2 s.
    """
    if not gpu_available():
        raise RuntimeError("tune_gpu needs CuPy and an NVIDIA GPU")
    cp = _cupy_module()
    dt = np.dtype(dtype)
    rs = cp.random.RandomState(0)
    tiny_x = cp.ones((1, 1, 8), dt)
    tiny_w = cp.ones((1, 1, 3), dt)
    tiny_o = cp.empty((1, 1, 6), dt)
    overhead = _time_gpu(cp, lambda: correlate(tiny_x, tiny_w, tiny_o, (1,), (1,), (0,), 1))
    x = rs.standard_normal((1, 1, 1024, 1024)).astype(dt)
    w = rs.standard_normal((1, 1, 15, 15)).astype(dt)
    o = cp.empty((1, 1, 1010, 1010), dt)
    t = _time_gpu(cp, lambda: correlate(x, w, o, (1, 1), (1, 1), (0, 0), 1))
    direct = max(t - overhead, 1e-9) / (1010 * 1010 * 225)
    a = rs.standard_normal((1 << 22,)).astype(dt)
    b = rs.standard_normal((1 << 10,)).astype(dt)
    n = (1 << 22) + (1 << 10) - 1
    t = _time_gpu(cp, lambda: fft_convolve(a, b, (0,), (0,), (n,)))
    m = int(_next_fast(n))
    fft = max(t - overhead, 1e-9) / (3 * m * math.log2(m))
    xg = rs.standard_normal((32, 64, 56, 56)).astype(dt)
    wg = rs.standard_normal((64, 64, 3, 3)).astype(dt)
    t = _time_gpu(cp, lambda: gemm_conv(xg, wg, (1, 1), (1, 1), (1, 1), 1))
    gemm = max(t - overhead, 1e-9) / (32 * 64 * 56 * 56 * 64 * 9)
    return {"direct_s_per_mac": direct, "fft_s_per_flop": fft, "gemm_s_per_mac": gemm,
            "call_overhead_s": overhead}


def _next_fast(n):
    import cupyx.scipy.fft

    return cupyx.scipy.fft.next_fast_len(n, real=True)
