"""The pool of large result buffers (fastconv._pool): a result's memory is reused only after
every array and view that uses it is gone, and results made from pooled memory are right
(scipy.signal is the oracle)."""
import gc

import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv import _pool
from _helpers import run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)

BIG = (1100, 1024)          # 8.6 MiB of float64: above _pool.MIN_BYTES


@pytest.fixture
def fresh_pool():
    _pool.release()
    yield
    _pool.release()


def test_small_results_are_plain_numpy(fresh_pool):
    before = _pool.info()
    a = _pool.empty((10, 10), np.float64)
    assert type(a) is np.ndarray and a.shape == (10, 10) and a.base is None
    after = _pool.info()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


def test_result_is_plain_contiguous_writable(fresh_pool):
    a = _pool.empty(BIG, np.float32)
    assert type(a) is np.ndarray
    assert a.shape == BIG and a.dtype == np.float32
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    assert a.ctypes.data % 64 == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX)")
def test_result_memory_is_private_to_the_process(fresh_pool):
    # numpy's memory is private: after a fork (multiprocessing's default start on Linux) a
    # child's writes stay in the child. A MAP_SHARED pool buffer would leak them back into
    # the parent's result.
    import os
    a = _pool.empty(BIG, np.float64)
    a[...] = 1.0
    pid = os.fork()
    if pid == 0:  # child: write, then leave without running any Python cleanup
        try:
            a[...] = 2.0
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert np.all(a == 1.0)


def test_buffer_comes_back_only_when_every_view_is_gone(fresh_pool):
    a = _pool.empty(BIG, np.float64)
    a[...] = 3.0
    v = a[::3, 1:]
    del a
    gc.collect()
    assert _pool.info()["idle_buffers"] == 0        # the view still uses it
    b = _pool.empty(BIG, np.float64)               # must not get the same memory
    b[...] = 5.0
    assert (v == 3.0).all()
    del v
    gc.collect()
    assert _pool.info()["idle_buffers"] == 1
    hits = _pool.info()["hits"]
    c = _pool.empty(BIG, np.float64)               # now it is reused
    assert _pool.info()["hits"] == hits + 1
    assert not np.shares_memory(b, c)
    del b, c


def test_pool_is_bounded(fresh_pool, monkeypatch):
    monkeypatch.setattr(_pool, "POOL_BYTES", 3 * 10 * 2**20)
    arrs = [_pool.empty((10 * 2**20 // 8,), np.float64) for _ in range(5)]
    del arrs
    gc.collect()
    assert _pool.info()["idle_bytes"] <= 3 * 10 * 2**20
    monkeypatch.setattr(_pool, "POOL_BYTES", 0)     # off: plain numpy.empty
    a = _pool.empty(BIG, np.float64)
    assert a.base is None


@pytest.mark.parametrize("method", ["direct", "fft", "separable"])
def test_results_from_reused_buffers_are_right(fresh_pool, method):
    rng = np.random.default_rng(5)
    k = np.outer(rng.standard_normal(5), rng.standard_normal(7))
    # a different input every call: a kept result whose memory a later call reused (or an
    # FFT work set still writing into a result it donated) would then hold the wrong values
    xs = [rng.standard_normal(BIG) for _ in range(4)]
    refs = [scipy.signal.convolve(x, k, mode="same", method="direct") for x in xs]
    kept = []
    for i in range(4):                  # results dropped and kept in turn: reuse and no reuse
        y = fastconv.convolve(xs[i], k, mode="same", method=method)
        np.testing.assert_allclose(y, refs[i], rtol=0, atol=1e-12 * np.abs(refs[i]).max())
        if i % 2:
            kept.append((i, y))
        del y
    for i, y in kept:
        np.testing.assert_allclose(y, refs[i], rtol=0, atol=1e-12 * np.abs(refs[i]).max())


def test_many_threads_share_the_pool(fresh_pool):
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((700 + 37 * i, 1500)) for i in range(8)]
    k = rng.standard_normal((3, 4))
    refs = [scipy.signal.convolve(x, k, mode="same", method="direct") for x in xs]

    def work(i):
        for _ in range(3):
            y = fastconv.convolve(xs[i], k, mode="same", method="direct")
            z = fastconv.convolve(xs[(i + 1) % 8], k, mode="same", method="direct")
            assert np.allclose(y, refs[i], rtol=0, atol=1e-12 * np.abs(refs[i]).max())
            assert np.allclose(z, refs[(i + 1) % 8], rtol=0, atol=1e-11)
            del y, z

    run_concurrently(work, 8)
    assert _pool.info()["idle_bytes"] <= _pool.POOL_BYTES


def test_release_during_a_pool_operation_frees_instead_of_deadlocking(fresh_pool):
    """A result collected while its own thread holds the pool lock (a garbage collection
    inside a pool operation) is freed, not pooled, and does not wait for the lock."""
    def body(_):
        a = _pool.empty(BIG, np.float64)
        with _pool._locked():
            del a                       # last reference: _Lease.__del__ runs here
        assert _pool.info()["idle_buffers"] == 0
        b = _pool.empty(BIG, np.float64)
        del b                           # outside: pooled
        assert _pool.info()["idle_buffers"] == 1

    run_concurrently(body, 1, timeout=20)
