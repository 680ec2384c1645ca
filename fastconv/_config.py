"""Run-time configuration: thread count, cache directory, build facts.

Threads
-------
``get_num_threads()`` is what every engine uses. The default is the number of CPUs
available to this process (``os.sched_getaffinity``), or ``OMP_NUM_THREADS`` when set.
``set_num_threads(n)`` changes the process default; ``with threads(n):`` overrides it for
the calling Python thread only, so concurrent callers do not disturb each other.
"""
import contextlib
import os
import threading

__all__ = ["get_num_threads", "set_num_threads", "threads", "get_cache_dir", "show_config"]

_local = threading.local()
_default_threads = None


def _cpus_available():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = max(1, int(env))
        except ValueError:
            pass
    return max(1, n)


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be a positive int, got {type(n).__name__}")
    n = int(n)
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    return n


def get_num_threads():
    """Number of threads fastconv engines use in the calling thread."""
    n = getattr(_local, "n", None)
    if n is not None:
        return n
    global _default_threads
    if _default_threads is None:
        _default_threads = _cpus_available()
    return _default_threads


def set_num_threads(n):
    """Set the process-wide default number of threads (int >= 1)."""
    global _default_threads
    _default_threads = _check_n(n)


@contextlib.contextmanager
def threads(n):
    """Context manager: use ``n`` threads in this Python thread inside the block.

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.threads(1):
    ...     fastconv.get_num_threads()
    1
    """
    n = _check_n(n)
    old = getattr(_local, "n", None)
    _local.n = n
    try:
        yield n
    finally:
        _local.n = old


def get_cache_dir():
    """Directory for tuning constants and FFTW wisdom (created on demand).

    ``FASTCONV_CACHE_DIR`` overrides; else ``$XDG_CACHE_HOME/fastconv`` or ``~/.cache/fastconv``.
    """
    d = os.environ.get("FASTCONV_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "fastconv")
    return d


def show_config(file=None):
    """Print (and return as a dict) how this fastconv was built and what it will use."""
    import numpy as np
    import scipy

    from . import _core

    info = {
        "fastconv": __import__("fastconv").__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "openmp": bool(_core.openmp_enabled()),
        "simd_dispatch": _core.simd_info(),
        "threads": get_num_threads(),
        "cache_dir": get_cache_dir(),
    }
    try:   # fastconv.nn's fused float32 engines (fastconv._gemm): AVX2+FMA forms
        from . import _gemm
        avx2 = bool(_gemm.conv_gemm_avx2())
        info["nn_engines"] = ("implicit GEMM + Winograd (AVX2+FMA)" if avx2
                              else "packed GEMM, portable loops (no AVX2+FMA: no Winograd)")
    except ImportError:
        info["nn_engines"] = "BLAS only (fastconv._gemm not built)"
    try:
        import pyfftw
        info["fft"] = "pyfftw " + pyfftw.__version__
    except ImportError:
        info["fft"] = "scipy.fft (pyfftw not importable)"
    try:
        import cupy
        info["cupy"] = cupy.__version__
    except Exception:  # noqa: BLE001
        info["cupy"] = None
    for k, v in info.items():
        print(f"{k:>14}: {v}", file=file)
    return info


def available_memory():
    """Bytes of memory this process can still allocate (MemAvailable, else physical)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


#: Requests below this many bytes are not checked against the available memory (reading
#: /proc/meminfo was a third of a tiny call); check_alloc and the FFT engine's guard share it
CHECK_ALLOC_FROM = 1 << 28      # 256 MiB


def check_alloc(nbytes, what):
    """Raise MemoryError (naming the size) if ``nbytes`` cannot fit, before allocating."""
    nbytes = int(nbytes)
    if nbytes < CHECK_ALLOC_FROM:
        return
    if nbytes > available_memory() or nbytes >= (1 << 62):
        raise MemoryError(
            f"fastconv: {what} needs {nbytes / 2**30:.3g} GiB, more than the "
            f"{available_memory() / 2**30:.3g} GiB of memory available")
