"""Threads: concurrent callers, the thread-local ``fastconv.threads``, set_num_threads,
OMP_NUM_THREADS, and the OpenMP build fact reported by ``show_config``.

Oracle: scipy.signal computed in the main thread before the workers start.
"""
import io
import threading

import numpy as np
import pytest
import scipy.signal as ss

import fastconv
from fastconv import _config
from _helpers import run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)

N_WORKERS = 8


@pytest.fixture(autouse=True)
def _restore_default_threads():
    old = _config._default_threads
    yield
    _config._default_threads = old


def _problems(rng, method):
    """One problem per worker, all of different shapes, ndims and dtypes."""
    probs = []
    for i in range(N_WORKERS):
        nd = 1 + i % 3
        # large enough that every engine really runs multi-threaded when allowed to
        side = (70 + 6 * i) if nd == 2 else (18 + 2 * i)
        s1 = tuple(int(v) for v in rng.integers(side, side + 10, nd)) if nd > 1 else (
            20000 + 500 * i,)
        s2 = tuple(int(v) for v in rng.integers(3, 6 + i, nd)) if nd > 1 else (30 + 20 * i,)
        dt = [np.float64, np.float32, np.complex128, np.int32][i % 4]
        if method == "fft" and dt == np.int32:
            dt = np.float64
        a = rng.standard_normal(s1).astype(dt)
        b = rng.standard_normal(s2).astype(dt)
        if np.dtype(dt).kind == "c":
            a = a + 1j * rng.standard_normal(s1)
        if np.dtype(dt).kind == "i":
            a = rng.integers(-50, 50, s1).astype(dt)
            b = rng.integers(-50, 50, s2).astype(dt)
        mode = ["full", "same", "valid"][i % 3]
        name = ["convolve", "correlate"][i % 2]
        ref = getattr(ss, name)(a, b, mode, method="direct")
        probs.append((name, a, b, mode, ref))
    return probs


def _close(got, ref):
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if ref.dtype.kind in "iu":
        return bool(np.array_equal(got, ref))
    tol = 1e-4 if ref.dtype in (np.float32, np.complex64) else 1e-10
    return bool(np.abs(got - ref).max() <= tol * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("method", ["direct", "fft", "oa", "auto"])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_concurrent_callers_all_get_the_right_result(method, nthreads, rng):
    probs = _problems(rng, method)
    results = [None] * N_WORKERS

    def work(i):
        name, a, b, mode, _ = probs[i]
        with fastconv.threads(nthreads):
            # repeat: reuse of cached plans/buffers
            results[i] = [getattr(fastconv, name)(a, b, mode, method) for _ in range(3)]

    run_concurrently(work, N_WORKERS)
    for i, (name, a, b, mode, ref) in enumerate(probs):
        for got in results[i]:
            assert _close(got, ref), (i, name, a.shape, b.shape, a.dtype, mode)


def test_concurrent_fftconvolve_same_shape_shares_plans(rng):
    """Eight threads on the *same* transform shape (one cached plan key) at once."""
    a = rng.standard_normal((8, 64, 48))
    b = rng.standard_normal((8, 9, 7))
    refs = [ss.fftconvolve(a[i], b[i]) for i in range(8)]
    out = [None] * 8

    def work(i):
        out[i] = [fastconv.fftconvolve(a[i], b[i]) for _ in range(5)]

    run_concurrently(work, 8)
    for i in range(8):
        for got in out[i]:
            np.testing.assert_allclose(got, refs[i], rtol=1e-10, atol=1e-10)


def test_threads_context_is_thread_local():
    fastconv.set_num_threads(2)
    inside, other = threading.Event(), threading.Event()
    seen = {}

    def worker_with_context():
        with fastconv.threads(1) as n:
            seen["yielded"] = n
            seen["inside"] = fastconv.get_num_threads()
            inside.set()
            other.wait(10)
        seen["after"] = fastconv.get_num_threads()

    def worker_without_context():
        inside.wait(10)
        seen["other"] = fastconv.get_num_threads()
        other.set()

    t1 = threading.Thread(target=worker_with_context)
    t2 = threading.Thread(target=worker_without_context)
    t1.start(), t2.start()
    t1.join(10), t2.join(10)
    assert seen == {"yielded": 1, "inside": 1, "other": 2, "after": 2}
    assert fastconv.get_num_threads() == 2


def test_threads_context_nests_and_restores_on_error():
    fastconv.set_num_threads(3)
    with fastconv.threads(1):
        with fastconv.threads(2):
            assert fastconv.get_num_threads() == 2
        assert fastconv.get_num_threads() == 1
    with pytest.raises(RuntimeError), fastconv.threads(1):
        raise RuntimeError
    assert fastconv.get_num_threads() == 3


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                     ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_set_num_threads_validates(bad, exc):
    before = fastconv.get_num_threads()
    with pytest.raises(exc, match="threads"):
        fastconv.set_num_threads(bad)
    with pytest.raises(exc, match="threads"), fastconv.threads(bad):
        pass
    assert fastconv.get_num_threads() == before


def test_set_num_threads_accepts_numpy_ints():
    fastconv.set_num_threads(np.int64(1))
    assert fastconv.get_num_threads() == 1 and type(fastconv.get_num_threads()) is int


@pytest.mark.parametrize("env,expected", [("1", 1), ("3", 3), ("2,1", 2)])
def test_omp_num_threads_sets_the_default(monkeypatch, env, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    _config._default_threads = None
    assert fastconv.get_num_threads() == expected


def test_results_do_not_depend_on_thread_count(rng):
    a = rng.standard_normal((200, 150)).astype(np.float32)
    b = rng.standard_normal((7, 5)).astype(np.float32)
    ref = ss.convolve(a.astype(np.float64), b.astype(np.float64), "same", method="direct")
    for n in (1, 2, 3, 4):
        with fastconv.threads(n):
            for method in ("direct", "fft"):
                got = fastconv.convolve(a, b, "same", method)
                assert got.dtype == np.float32
                np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_show_config_reports_openmp():
    buf = io.StringIO()
    info = fastconv.show_config(file=buf)
    assert info["openmp"] is True, "this build must have OpenMP (see setup.py)"
    text = buf.getvalue()
    assert "openmp: True" in text and "threads" in text
    assert info["threads"] == fastconv.get_num_threads()
    assert info["fastconv"] == fastconv.__version__
