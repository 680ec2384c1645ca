"""Small helpers shared by the GPU-backend test files."""
import numpy as np


def rand(rng, shape, dtype):
    """Random array of ``dtype``: small integers, or normal (complex: both parts) floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "i":
        return rng.integers(-9, 10, size=shape).astype(dtype)
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)
