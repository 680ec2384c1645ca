"""The one dtype policy of fastconv.

``result_dtype`` says what a convolution of two arrays returns (scipy.signal's rule:
``numpy.result_type`` of the inputs; bool stays bool); ``compute_dtype`` says what an
engine computes in. Engines support float32, float64, complex64, complex128 and (direct
only) int64. Everything else is mapped onto those:

==================  =============  ============================================
result dtype        compute dtype  note
==================  =============  ============================================
bool                int64          result is ``sum != 0`` (logical OR of ANDs, as np.convolve)
int8..int64, uint*  int64          two's-complement wrap == scipy's wrap in the result type
float16             float32        cast back to float16
float32 / float64   itself
complex64/128       itself
longdouble          float64        (complex256 -> complex128): computed in double precision
==================  =============  ============================================
"""
import numpy as np

_NUMERIC_KINDS = "biufc"


def check_numeric(a, name):
    """Raise TypeError unless ``a`` (an ndarray) has a numeric dtype."""
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{name} must have a numeric dtype (bool, integer, float or complex), "
            f"got dtype {a.dtype}")


def result_dtype(*arrays):
    """Dtype of the result of convolving ``arrays`` (numpy.result_type, as scipy)."""
    return np.result_type(*arrays)


def compute_dtype(dt):
    """Engine dtype for a result dtype ``dt``."""
    dt = np.dtype(dt)
    k = dt.kind
    if k in "biu":
        return np.dtype(np.int64)
    if k == "f":
        if dt.itemsize <= 4:
            return np.dtype(np.float32)
        return np.dtype(np.float64)
    if k == "c":
        if dt.itemsize <= 8:
            return np.dtype(np.complex64)
        return np.dtype(np.complex128)
    raise TypeError(f"unsupported dtype {dt}")


def freq_dtype(dt1, dt2):
    """The dtype scipy.signal.fftconvolve computes and returns in for inputs of dtypes
    ``dt1`` and ``dt2``: each input as scipy.fft transforms it (integers and bool as
    float64, float16 as float32, other floats and complex as they are), the two combined
    by numpy.result_type -- int8 with float32 is float64, not float32."""
    def as_fft(dt):
        dt = np.dtype(dt)
        if dt.kind in "biu":
            return np.dtype(np.float64)
        if dt.kind == "f" and dt.itemsize < 4:
            return np.dtype(np.float32)
        return dt
    return np.result_type(as_fft(dt1), as_fft(dt2))


def finish(out, dt):
    """Cast an engine result to the result dtype ``dt`` (bool: nonzero)."""
    dt = np.dtype(dt)
    if dt.kind == "b":
        return out != 0
    if out.dtype == dt:
        return out
    return out.astype(dt)


def finish_fft(out, dt):
    """Cast an FFT result to ``dt``: integers are rounded first (as scipy.signal.convolve)."""
    dt = np.dtype(dt)
    if dt.kind in "biu":
        out = np.around(out.real if out.dtype.kind == "c" else out)
        if dt.kind == "b":
            return out != 0
        # float -> narrow int is undefined (and warns) out of range: go through int64, whose
        # cast to ``dt`` wraps modulo 2**bits like scipy's integer sums
        # (uint64 values >= 2**63 are first moved down by 2**64: the same value modulo 2**64)
        with np.errstate(invalid="ignore"):
            out = np.where(out >= 2.0 ** 63, out - 2.0 ** 64, out).astype(np.int64)
    return out.astype(dt, copy=False)
