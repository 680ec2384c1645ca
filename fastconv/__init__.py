"""fastconv: fast convolution for NumPy and CuPy arrays.

* A scipy.signal drop-in: :func:`convolve`, :func:`correlate`, :func:`fftconvolve`,
  :func:`oaconvolve`, :func:`convolve2d`, :func:`correlate2d`, :func:`choose_conv_method`,
  :func:`correlation_lags` (also as ``fastconv.signal.X``).
* Deep-learning convolutions with PyTorch semantics: :mod:`fastconv.nn`.
* Engines: compiled direct kernels (OpenMP, GIL released), pyFFTW convolution theorem,
  overlap-add, separable and GEMM routes, chosen by a cost model calibrated with
  :func:`tune`. Threads: :func:`get_num_threads`, :func:`set_num_threads`, :func:`threads`.
"""
__version__ = "0.1.0"

from ._config import get_cache_dir, get_num_threads, set_num_threads, show_config, threads
from ._plan import tune
from .signal import (choose_conv_method, convolve, convolve2d, correlate, correlate2d,
                     correlation_lags, fftconvolve, oaconvolve)

__all__ = [
    "convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d",
    "choose_conv_method", "correlation_lags",
    "get_num_threads", "set_num_threads", "threads", "tune", "show_config", "get_cache_dir",
    "nn", "signal",
]


def __getattr__(name):
    if name == "nn":
        import importlib
        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")
