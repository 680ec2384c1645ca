"""Small helpers shared by the test files."""
import threading

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


def run_concurrently(fn, n, timeout=120):
    """Call ``fn(i)`` for ``i < n`` in ``n`` Python threads released together by a barrier.

    Re-raises (as AssertionError, chained) the first exception a thread raised, and fails if
    a thread is still running after ``timeout`` seconds (a hang)."""
    barrier = threading.Barrier(n)
    errors = []

    def target(i):
        try:
            barrier.wait(timeout)
            fn(i)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append((i, e))

    ts = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    assert not any(t.is_alive() for t in ts), f"a thread still runs after {timeout} s"
    if errors:
        i, e = errors[0]
        raise AssertionError(f"thread {i} of {n} raised {e!r}") from e
