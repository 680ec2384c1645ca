"""Small helpers shared by the test files."""
import numpy as np


def rand(rng, shape, dtype, imax=9):
    """Random array of ``dtype``: integers in [-imax, imax], or normal (complex: both
    parts) floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "i":
        return rng.integers(-imax, imax + 1, size=shape).astype(dtype)
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)
