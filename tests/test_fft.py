"""Tests of the FFT engine fastconv._fft (oracles: scipy.signal and float64 direct sums)."""
import itertools
import math
import os
import pickle

import warnings

import numpy as np
import pytest
import scipy.signal

import fastconv.signal
from fastconv import _fft
from _helpers import rand, run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(autouse=True)
def planned_engine(monkeypatch):
    """These tests are of the FFTW engine: their small problems would otherwise take the
    one-pass scipy.fft route (``_fft.SMALL_POINTS``; tested on its own below), overlap-add
    its whole transform (``_fft.OA_WHOLE_POINTS``), and fftconvolve/oaconvolve the direct
    sum (``fastconv.signal.FREQ_DIRECT``)."""
    monkeypatch.setattr(_fft, "SMALL_POINTS", 0)
    monkeypatch.setattr(_fft, "OA_WHOLE_POINTS", 0)
    monkeypatch.setattr(fastconv.signal, "FREQ_DIRECT", False)

if _fft.HAVE_PYFFTW:
    import pyfftw
else:  # pragma: no cover - the scipy.fft fallback build; pyfftw-only tests are skipif-marked
    pyfftw = None

# tolerance relative to max|reference|, per dtype
TOL = {
    np.float32: 2e-5,
    np.complex64: 2e-5,
    np.float64: 1e-12,
    np.complex128: 1e-12,
}
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
ENGINES = [_fft.convolve, _fft.oaconvolve]


def _oracle_full(a, b, axes):
    """scipy.signal.fftconvolve in float64/complex128 ('full')."""
    hi = np.complex128 if np.iscomplexobj(a) else np.float64
    return scipy.signal.fftconvolve(a.astype(hi), b.astype(hi), mode="full", axes=axes)


def _crop(full, axes, start, shape):
    idx = [slice(None)] * full.ndim
    for a, s, m in zip(axes, start, shape):
        idx[a] = slice(s, s + m)
    return full[tuple(idx)]


def _check(res, ref, dtype):
    assert res.dtype == np.dtype(dtype)
    assert res.shape == ref.shape
    scale = max(np.abs(ref).max(initial=0.0), 1.0)
    err = np.abs(res.astype(ref.dtype) - ref).max(initial=0.0)
    assert err <= TOL[dtype] * scale, (err, scale)


def _windows(n1, n2):
    """(start, shape) along one axis: full, same, valid-like, and two odd windows."""
    full = n1 + n2 - 1
    w = [(0, full), ((n2 - 1) // 2, n1)]
    if n1 >= n2:
        w.append((n2 - 1, n1 - n2 + 1))
    else:
        w.append((n1 - 1, n2 - n1 + 1))
    w.append((full - 1, 1))
    w.append((min(3, full - 1), max(1, full // 3)))
    return w


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "cache"))
    yield


# ---------------------------------------------------------------------------------------------
def test_next_fast_len_bruteforce():
    def ok(m):
        e = 0
        for p in (11, 13):
            while m % p == 0:
                m //= p
                e += 1
        if e > 1:
            return False
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1

    good = [m for m in range(1, 6000) if ok(m)]
    j = 0
    for n in range(1, 5000):
        while good[j] < n:
            j += 1
        assert _fft.next_fast_len(n) == good[j], n
        assert _fft.next_fast_len(n, real=False) == good[j]
    big = _fft.next_fast_len(10**9 + 7)
    assert big >= 10**9 + 7 and ok(big)
    assert _fft.next_fast_len(2**40 + 1) < 2**41


def test_padded_shape_and_flops():
    for n in list(range(1, 300)) + [1030, 2078, 10**6 + 3000, 12345]:
        (m,) = _fft.padded_shape((n,), (1,), (0,))
        even = _fft.next_fast_len(n)
        while even % 2 and even > 1:
            even = _fft.next_fast_len(even + 1)
        # the last (here the only) axis is even: odd real transforms plan badly threaded
        assert n <= m <= max(even, 1.08 * n) and _fft.next_fast_len(m) == m
        assert m % 2 == 0 or m == 1
    same = _fft.padded_shape((1000, 7), (31, 3), (0, 1), start=(15, 1), shape=(1000, 7))
    assert 1015 <= same[0] <= 1.08 * 1015 and same[1] >= 8
    assert _fft.flops((1024,), real=True) < _fft.flops((1024,), real=False)
    assert _fft.flops((2048,)) > 2 * _fft.flops((1024,))
    assert _fft.flops((64, 64), batch=3) > _fft.flops((64, 64))


@pytest.mark.parametrize(
    "n1,n2,full",
    [((10**7,), (1000,), True), ((2048, 2048), (31, 31), False), ((2048, 2048), (64, 64), False), ((100,), (90,), True)],
)
def test_oa_plan(n1, n2, full):
    axes = tuple(range(len(n1)))
    if full:
        start, shape = None, tuple(a + b - 1 for a, b in zip(n1, n2))
    else:
        start, shape = tuple((b - 1) // 2 for b in n2), n1
    p = _fft.oa_plan(n1, n2, axes, start, shape)
    for L, s, nb, k, m in zip(p["block"], p["step"], p["nblocks"], n2, shape):
        assert s == L - k + 1 and s >= 1
        assert nb * s >= m > (nb - 1) * s
        assert L == _fft.next_fast_len(L) or L == _fft.next_fast_len(m + k - 1)
    assert p["flops"] > 0
    if n1[0] >= 2048:
        assert math_prod(p["nblocks"]) > 1  # blocking pays off for long signals
        assert p["flops"] < _fft.flops(_fft.padded_shape(n1, n2, axes, start, shape))


@pytest.mark.parametrize("n1,n2", [((2048, 2048), (15, 15)), ((2048, 2048), (63, 63)),
                                   ((1000, 3000), (31, 9)), ((96, 100, 90), (9, 9, 9))])
def test_oa_plan_nd_block_lengths(n1, n2):
    """N-d blocks: lengths 2**a, 3*2**a or 5*2**a of at most OA_ND_MAX_POINTS points (the
    FFTW_ESTIMATE-friendly sizes), unless an axis is a single block of the full length."""
    axes = tuple(range(len(n1)))
    p = _fft.oa_plan(n1, n2, axes)
    # a single block along an axis spans the full output plus the kernel's overlap
    singles = [L == _fft.next_fast_len(a + 2 * (b - 1)) for L, a, b in zip(p["block"], n1, n2)]
    for L, single in zip(p["block"], singles):
        assert single or _fft._odd_part(L) in _fft.OA_ND_ODD_PARTS
    if not all(singles):
        assert math_prod(p["block"]) <= _fft.OA_ND_MAX_POINTS


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
def test_oa_rectangular_blocks_match_scipy(rng, dtype):
    """Blocks of different lengths per axis (the N-d rule allows them) against scipy."""
    a, b = rand(rng, (700, 1300), dtype), rand(rng, (37, 11), dtype)
    p = _fft.oa_plan(a.shape, b.shape, (0, 1))
    assert math_prod(p["nblocks"]) > 1
    got = _fft.oaconvolve(a, b, (0, 1), (0, 0), (736, 1310))
    want = scipy.signal.fftconvolve(a, b)
    tol = 2e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def math_prod(x):
    out = 1
    for v in x:
        out *= v
    return out


# ---------------------------------------------------------------------------------------------
CASES = [
    # shape1, shape2, axes
    ((17,), (5,), (0,)),
    ((16,), (16,), (0,)),
    ((6,), (11,), (0,)),  # kernel longer than input
    ((1,), (1,), (0,)),
    ((12, 9), (3, 4), (0, 1)),
    ((12, 9), (12, 4), (1,)),  # conv on one axis: other axis equal
    ((12, 1), (3, 4), (0,)),  # broadcast a non-conv axis of in1
    ((7, 8, 6), (2, 8, 5), (0, 2)),
    ((7, 8, 1), (2, 1, 5), (0,)),  # both broadcast, in different axes
    ((5, 6, 7, 4), (2, 3, 1, 2), (0, 1, 3)),
    ((5, 6, 7, 4), (5, 3, 7, 2), (1, 3)),
    ((4, 3, 5, 6), (2, 2, 3, 3), (0, 1, 2, 3)),
    ((9, 10), (4, 3), (1, 0)),  # axes not in increasing order
]


@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_against_scipy_every_window(engine, dtype, case):
    s1, s2, axes = case
    rng = np.random.default_rng(abs(hash((s1, s2, axes))) % 2**32)
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    full = _oracle_full(a, b, axes)
    per_axis = [_windows(a.shape[x], b.shape[x]) for x in axes]
    combos = list(itertools.product(*per_axis))
    if len(combos) > 25:
        combos = combos[:: len(combos) // 25 + 1] + [tuple(w[0] for w in per_axis)]
    for combo in combos:
        start = tuple(w[0] for w in combo)
        shape = tuple(w[1] for w in combo)
        res = engine(a, b, axes, start, shape, nthreads=2)
        _check(res, _crop(full, axes, start, shape), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_direct_sum_oracle(dtype):
    rng = np.random.default_rng(1)
    a, b = rand(rng, (37,), dtype), rand(rng, (9,), dtype)
    ref = np.zeros(45, dtype=np.complex128 if dtype == np.complex128 else np.float64)
    for t in range(45):
        for j in range(9):
            if 0 <= t - j < 37:
                ref[t] += a[t - j] * b[j]
    for engine in ENGINES:
        _check(engine(a, b, (0,), (0,), (45,)), ref, dtype)
        _check(engine(a, b, (0,), (4,), (37,)), ref[4:41], dtype)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
def test_matches_scipy_modes_and_oaconvolve(engine, mode):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 41)), rng.standard_normal((31, 8))
    ref = scipy.signal.oaconvolve(a, b, mode=mode)
    n1, n2 = a.shape, b.shape
    if mode == "full":
        start, shape = (0, 0), tuple(x + y - 1 for x, y in zip(n1, n2))
    elif mode == "same":
        start, shape = tuple((y - 1) // 2 for y in n2), n1
    else:
        start, shape = tuple(y - 1 for y in n2), tuple(x - y + 1 for x, y in zip(n1, n2))
    _check(engine(a, b, (0, 1), start, shape), ref, np.float64)


def test_long_signal_many_blocks():
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a, b = rng.standard_normal(200_003).astype(dtype), rng.standard_normal(301).astype(dtype)
        ref = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), mode="same")
        for nt in (1, 2, 3):
            res = _fft.oaconvolve(a, b, (0,), (150,), (200_003,), nthreads=nt)
            _check(res, ref, dtype)


# ---------------------------------------------------------------------------------------------
def _odd_layouts(rng, dtype):
    base1 = rand(rng, (14, 22, 3), dtype)
    base2 = rand(rng, (9, 6, 3), dtype)
    yield base1[::-1, ::2], base2[::2, ::-1]  # negative and >1 strides
    yield np.asfortranarray(base1), np.asfortranarray(base2)
    yield base1.transpose(1, 0, 2), base2.transpose(1, 0, 2)
    yield base1[:, :, 1:2], base2[:, :, 0:1]


@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.complex128], ids=str)
def test_layouts_and_inputs_untouched(engine, dtype):
    rng = np.random.default_rng(4)
    for a, b in _odd_layouts(rng, dtype):
        a_copy, b_copy = a.copy(), b.copy()
        a.flags.writeable = False  # view: only this view is read-only
        b.flags.writeable = False
        axes = (0, 1)
        full = _oracle_full(a_copy, b_copy, axes)
        start = tuple((b.shape[x] - 1) // 2 for x in axes)
        shape = tuple(a.shape[x] for x in axes)
        res = engine(a, b, axes, start, shape, nthreads=2)
        _check(res, _crop(full, axes, start, shape), dtype)
        if engine is _fft.convolve:
            res2 = engine(a, b, axes, start, shape, nthreads=2, contiguous=True)
            assert res2.flags.c_contiguous
            np.testing.assert_array_equal(res, res2)
        np.testing.assert_array_equal(a, a_copy)
        np.testing.assert_array_equal(b, b_copy)
        assert not np.shares_memory(res, a) and not np.shares_memory(res, b)


@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
def test_result_not_aliased_to_cache(engine):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(100), rng.standard_normal(7)
    r1 = engine(a, b, (0,), (0,), (106,))
    keep = r1.copy()
    r2 = engine(b, a, (0,), (0,), (106,))  # reuses the cached work set
    keep2 = r2.copy()
    engine(a * 2, b, (0,), (0,), (106,))
    r3 = engine(a * 2, b, (0,), (10,), (5,))  # small window: copied out
    np.testing.assert_array_equal(r1, keep)
    np.testing.assert_array_equal(r2, keep2)
    assert not np.shares_memory(r1, r2)
    assert r3.flags.c_contiguous and r3.base is None


@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_scipy_fallback_same_results(engine, dtype, monkeypatch):
    rng = np.random.default_rng(6)
    a, b = rand(rng, (40, 3, 33), dtype), rand(rng, (7, 1, 8), dtype)
    axes = (2, 0)
    full = _oracle_full(a, b, axes)
    start, shape = (3, 2), (35, 40)
    with_fftw = engine(a, b, axes, start, shape)
    monkeypatch.setattr(_fft, "USE_PYFFTW", False)
    before = _fft.plan_cache_info()["plans_built"]
    res = engine(a, b, axes, start, shape)
    assert _fft.plan_cache_info()["plans_built"] == before  # no FFTW used
    _check(res, _crop(full, axes, start, shape), dtype)
    _check(res, with_fftw.astype(full.dtype), dtype)


def test_trivial_and_empty():
    a = np.ones((0, 5))
    b = np.ones((1, 2))
    r = _fft.convolve(a, b, (1,), (0,), (6,))
    assert r.shape == (0, 6) and r.dtype == np.float64
    r = _fft.convolve(np.ones((3, 4)), np.ones((1, 4)), (0,), (0,), (3,))
    np.testing.assert_allclose(r, np.ones((3, 4)))
    r = _fft.convolve(np.ones(4), np.ones(3), (0,), (2,), (0,))
    assert r.shape == (0,)


def test_errors():
    a, b = np.ones((4, 5)), np.ones((2, 3))
    with pytest.raises(ValueError):
        _fft.convolve(a, b, (1,), (0,), (7,))  # axis 0 sizes 4 vs 2 do not broadcast
    with pytest.raises(ValueError):
        _fft.convolve(a, b, (0, 0), (0, 0), (5, 5))
    with pytest.raises(ValueError):
        _fft.convolve(a, b, (0, 1), (0, 0), (6, 7))  # window past the full length
    with pytest.raises(TypeError):
        _fft.convolve(a, b.astype(np.float32), (0, 1), (0, 0), (5, 7))
    with pytest.raises(TypeError):
        _fft.convolve(a.astype(np.int64), b.astype(np.int64), (0, 1), (0, 0), (5, 7))
    with pytest.raises(ValueError):
        _fft.convolve(a, b[0], (0,), (0,), (5,))


# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_plan_cache_reuse():
    _fft.clear_plan_cache()
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((50, 60)), rng.standard_normal((5, 5))
    _fft.convolve(a, b, (0, 1), (0, 0), (54, 64), nthreads=1)
    info1 = _fft.plan_cache_info()
    assert info1["cached_worksets"] >= 1
    r = _fft.convolve(a[::-1], b, (0, 1), (0, 0), (54, 64), nthreads=1)
    info2 = _fft.plan_cache_info()
    assert info2["worksets_built"] == info1["worksets_built"]
    assert info2["plans_built"] == info1["plans_built"]
    assert info2["hits"] == info1["hits"] + 1
    _check(r, scipy.signal.fftconvolve(a[::-1], b), np.float64)
    _fft.clear_plan_cache()
    assert _fft.plan_cache_info()["cached_worksets"] == 0
    _fft.convolve(a, b, (0, 1), (0, 0), (54, 64), nthreads=1)
    assert _fft.plan_cache_info()["worksets_built"] == info2["worksets_built"] + 1


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_wisdom_round_trip(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(cache))
    monkeypatch.setattr(_fft, "MEASURE_AFTER", 1)
    monkeypatch.setattr(_fft, "MEASURE_MIN_SECONDS", 0.0)
    monkeypatch.setattr(_fft, "MEASURE_MIN_LIMIT", 60.0)  # let FFTW finish measuring
    monkeypatch.setattr(_fft, "BACKGROUND_MEASURE", False)  # measure inside the call
    monkeypatch.setattr(_fft, "AUTO_MEASURE", True)
    _fft.clear_plan_cache()
    pyfftw.forget_wisdom()
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal(90), rng.standard_normal(11)
    _fft.convolve(a, b, (0,), (0,), (100,), nthreads=1)  # measured at release, wisdom saved
    path = cache / "fftw_wisdom.pkl"
    assert path.exists()
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert len(saved[0]) > len(b"(fftw-3.3.10 fftw_wisdom\n)")
    pyfftw.forget_wisdom()
    assert _fft.load_wisdom() is True
    loaded = pyfftw.export_wisdom()
    assert sorted(loaded[0].splitlines()) == sorted(saved[0].splitlines())
    # the measured plan now comes from wisdom: a fresh work set is built without measuring
    _fft.clear_plan_cache()
    before = _fft.plan_cache_info()["measured"]
    _check(_fft.convolve(a, b, (0,), (0,), (100,), nthreads=1), scipy.signal.fftconvolve(a, b), np.float64)
    assert _fft.plan_cache_info()["measured"] == before
    assert _fft.save_wisdom(str(tmp_path / "other" / "w.pkl")) is True


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
@pytest.mark.parametrize(
    "content",
    [b"not a pickle at all", pickle.dumps((b"garbage", b"", b"")), pickle.dumps({"a": 1}), b""],
)
def test_corrupt_wisdom_ignored(tmp_path, monkeypatch, content):
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "fftw_wisdom.pkl").write_bytes(content)
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(cache))
    monkeypatch.setattr(_fft, "_wisdom_loaded", False)
    assert _fft.load_wisdom() is False
    monkeypatch.setattr(_fft, "_wisdom_loaded", False)
    _fft.clear_plan_cache()
    a, b = np.arange(10.0), np.ones(3)
    _check(_fft.convolve(a, b, (0,), (0,), (12,)), np.convolve(a, b), np.float64)


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_malicious_wisdom_not_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "fftw_wisdom.pkl").write_bytes(pickle.dumps(Evil()))
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(cache))
    assert _fft.load_wisdom() is False
    assert not marker.exists()


def test_unwritable_cache_dir(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(f / "sub"))  # parent is a file
    assert _fft.save_wisdom() is False
    assert _fft.load_wisdom() is False


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("use_fftw", [True, False])
def test_memory_error_before_allocation(engine, use_fftw, monkeypatch):
    import tracemalloc

    monkeypatch.setattr(_fft, "USE_PYFFTW", use_fftw and _fft.HAVE_PYFFTW)
    # zero-stride views: huge shapes, no memory; padded product 2**45
    a = np.broadcast_to(np.zeros((1, 1, 1)), (2**15, 2**15, 2**14))
    b = np.broadcast_to(np.zeros((1, 1, 1)), (1, 1, 2**14 + 1))
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match="GiB"):
            engine(a, b, (0, 1, 2), (0, 0, 0), (2**15, 2**15, 2**15))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    # more than numpy can index
    a = np.broadcast_to(np.zeros(1), (2**59,))
    with pytest.raises(MemoryError, match="GiB"):
        engine(a, a[:3], (0,), (0,), (2**59,))


def test_memory_error_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(_fft, "_available_bytes", lambda: 10_000)
    from fastconv import _config
    monkeypatch.setattr(_config, "CHECK_ALLOC_FROM", 0)  # small requests skip the check
    with pytest.raises(MemoryError, match="GiB"):
        _fft.convolve(np.ones(1000), np.ones(1000), (0,), (0,), (1999,))
    monkeypatch.undo()


# ---------------------------------------------------------------------------------------------
def test_concurrency_eight_threads():
    rng = np.random.default_rng(9)
    jobs = []
    shapes = [((3000,), (101,), (0,)), ((64, 48), (9, 7), (0, 1)), ((4, 500), (1, 33), (1,))]
    for i in range(24):
        s1, s2, axes = shapes[i % 3] if i % 4 else shapes[0]  # same and different shapes
        dtype = [np.float64, np.float32, np.complex128][i % 3]
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        full = _oracle_full(a, b, axes)
        start = tuple((b.shape[x] - 1) // 2 for x in axes)
        shape = tuple(a.shape[x] for x in axes)
        jobs.append((a, b, axes, start, shape, _crop(full, axes, start, shape), dtype))

    def run(tid):
        for rep in range(3):
            for j in range(tid, len(jobs), 8):
                a, b, axes, start, shape, ref, dtype = jobs[(j + rep) % len(jobs)]
                engine = ENGINES[(j + rep + tid) % 2]
                res = engine(a, b, axes, start, shape, nthreads=1 + (tid % 2))
                _check(res, ref, dtype)

    run_concurrently(run, 8)


def test_nthreads_default_and_validation():
    from fastconv import _config

    a, b = np.arange(5.0), np.ones(2)
    with _config.threads(1):
        r = _fft.convolve(a, b, (0,), (0,), (6,))
    np.testing.assert_allclose(r, np.convolve(a, b), atol=1e-12)
    with pytest.raises(ValueError):
        _fft.convolve(a, b, (0,), (0,), (6,), nthreads=0)


if os.environ.get("FASTCONV_TEST_BIG"):

    def test_big_oa_1d():
        rng = np.random.default_rng(10)
        a, b = rng.standard_normal(10**7), rng.standard_normal(1000)
        ref = scipy.signal.oaconvolve(a, b)
        _check(_fft.oaconvolve(a, b, (0,), (0,), (a.size + 999,)), ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "s1,s2,axes",
    [((70, 64), (5, 7), (0, 1)), ((30, 20, 26), (3, 4, 5), (0, 1, 2)), ((5, 40, 33), (5, 6, 2), (1, 2)),
     ((4, 36, 30), (1, 5, 3), (1, 2)), ((9, 11), (40, 38), (0, 1))],
)
def test_small_kernel_pruned_transform(s1, s2, axes, dtype):
    """Kernels much smaller than the transform take the pruned forward path."""
    rng = np.random.default_rng(11)
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    full = _oracle_full(a, b, axes)
    for start, shape in [((0,) * len(axes), full.shape[-len(axes):] if False else tuple(full.shape[x] for x in axes)),
                         (tuple((min(a.shape[x], b.shape[x]) - 1) // 2 for x in axes), tuple(max(a.shape[x], b.shape[x]) for x in axes))]:
        for _ in range(2):  # second call from the cached work set
            res = _fft.convolve(a, b, axes, start, shape, nthreads=2)
            _check(res, _crop(full, axes, start, shape), dtype)


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyFFTW")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((40, 30), (5, 4)), ((3, 40, 30), (1, 5, 4)), ((12, 10, 9), (3, 2, 2))])
def test_out_of_place_layout_donation_and_reuse(dtype, shapes):
    """N-d real work sets transform through the shared real scratch buffer; donating it as the
    result and re-using the work set (re-allocated scratch, pruned kernel plans, measured
    re-plan) keeps every result correct and independent."""
    s1, s2 = shapes
    k = 2 if len(s1) == 2 or s1[0] == 3 else 3
    axes = tuple(range(len(s1) - k, len(s1)))
    L = _fft.padded_shape(s1, s2, axes)
    assert _fft._layout(np.dtype(dtype), L) == (True, True)
    rng = np.random.default_rng(11)
    old = (_fft.MEASURE_AFTER, _fft.MEASURE_MIN_SECONDS, _fft.BACKGROUND_MEASURE,
           _fft.AUTO_MEASURE)
    (_fft.MEASURE_AFTER, _fft.MEASURE_MIN_SECONDS, _fft.BACKGROUND_MEASURE,
     _fft.AUTO_MEASURE) = 2, 0.0, False, True
    try:
        _fft.clear_plan_cache()
        results = []
        for i in range(4):
            a = rng.standard_normal(s1).astype(dtype)
            b = rng.standard_normal(s2).astype(dtype)
            full = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), axes=axes)
            shape = tuple(full.shape[ax] for ax in axes)
            r = _fft.convolve(a, b, axes, (0,) * k, shape, nthreads=1 + i % 2)
            results.append((r, r.copy(), full))
        for r, keep, full in results:
            np.testing.assert_array_equal(r, keep)
            tol = 1e-4 if dtype == np.float32 else 1e-10
            assert np.abs(r - full).max() <= tol * np.abs(full).max()
        for i in range(len(results)):
            for j in range(i):
                assert not np.shares_memory(results[i][0], results[j][0])
    finally:
        (_fft.MEASURE_AFTER, _fft.MEASURE_MIN_SECONDS, _fft.BACKGROUND_MEASURE,
         _fft.AUTO_MEASURE) = old
        _fft.clear_plan_cache()


def test_layout_policy():
    f32, f64, c64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.complex64)
    assert _fft._layout(c64, (1000,)) == (False, False)
    assert _fft._layout(c64, (100, 100)) == (False, False)
    assert _fft._layout(f32, (144, 144, 144)) == (True, True)
    assert _fft._layout(f32, (1024000,)) == (False, True)
    assert _fft._layout(f64, (1024000,)) == (False, True)
    assert _fft._layout(f32, (10125000,)) == (False, False)
    assert _fft._layout(f64, (2**21,)) == (False, False)


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_background_measure_keeps_results_right(tmp_path, monkeypatch):
    """A hot shape is re-planned with FFTW_MEASURE in a background thread; calls made
    meanwhile and afterwards stay correct, and the measured work set replaces the old one."""
    import time

    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_fft, "MEASURE_AFTER", 2)
    monkeypatch.setattr(_fft, "MEASURE_MIN_SECONDS", 0.0)
    monkeypatch.setattr(_fft, "BACKGROUND_MEASURE", True)
    monkeypatch.setattr(_fft, "AUTO_MEASURE", True)
    _fft.clear_plan_cache()
    rng = np.random.default_rng(21)
    a, b = rng.standard_normal((60, 50)), rng.standard_normal((7, 5))
    want = scipy.signal.fftconvolve(a, b)
    before = _fft.plan_cache_info()["measured"]
    results = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = _fft.convolve(a, b, (0, 1), (0, 0), want.shape, nthreads=1)
        results.append(np.array(r))
        if _fft.plan_cache_info()["measured"] > before and len(results) > 4:
            break
        time.sleep(0.01)
    assert _fft.plan_cache_info()["measured"] == before + 1
    for r in results:
        _check(r, want, np.float64)
    r = _fft.convolve(a, b, (0, 1), (0, 0), want.shape, nthreads=1)
    _check(r, want, np.float64)


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_block_plans_measured_in_background(tmp_path, monkeypatch):
    """N-d overlap-add block plans are re-planned with FFTW_MEASURE in the background once
    their key is hot, whatever AUTO_MEASURE says; the wisdom is saved, later work sets of
    the key are planned from it, and every result stays right."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_fft, "AUTO_MEASURE", False)
    monkeypatch.setattr(_fft, "AUTO_MEASURE_BLOCKS", True)
    monkeypatch.setattr(_fft, "BLOCK_MEASURE_AFTER_S", 0.0)
    _fft.clear_plan_cache()
    pyfftw.forget_wisdom()
    rng = np.random.default_rng(31)
    a, b = rng.standard_normal((300, 260)), rng.standard_normal((9, 7))
    want = scipy.signal.oaconvolve(a, b, mode="same")
    start = (4, 3)
    plan = _fft.oa_plan(a.shape, b.shape, (0, 1), start, a.shape)
    assert math.prod(plan["nblocks"]) >= 4
    before = _fft.plan_cache_info()["measured"]
    r1 = _fft.oaconvolve(a, b, (0, 1), start, a.shape, nthreads=2)
    assert _fft.wait_measurements(120.0)
    assert _fft.plan_cache_info()["measured"] == before + 1
    assert (tmp_path / "fftw_wisdom.pkl").exists()
    key = ("oa", np.dtype(np.float64), (), (), (), plan["block"], 1, None)
    ws = _fft._acquire(key)
    try:
        assert ws.measured
    finally:
        _fft._release(ws, 0.0)
    r2 = _fft.oaconvolve(a, b, (0, 1), start, a.shape, nthreads=2)
    for r in (r1, r2):
        _check(r, want, np.float64)
    assert _fft.plan_cache_info()["measured"] == before + 1   # once per key


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
@pytest.mark.parametrize("case", ["1d", "off", "cold"])
def test_block_plans_not_measured(case, tmp_path, monkeypatch):
    """1-D blocks (seconds to measure), a disabled policy and a key below the hot threshold
    are never re-planned."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_fft, "AUTO_MEASURE", False)
    monkeypatch.setattr(_fft, "AUTO_MEASURE_BLOCKS", case != "off")
    monkeypatch.setattr(_fft, "BLOCK_MEASURE_AFTER_S", 1e9 if case == "cold" else 0.0)
    _fft.clear_plan_cache()
    rng = np.random.default_rng(32)
    if case == "1d":
        a, b, axes = rng.standard_normal(5000), rng.standard_normal(40), (0,)
    else:
        a, b, axes = rng.standard_normal((300, 260)), rng.standard_normal((9, 7)), (0, 1)
    want = scipy.signal.oaconvolve(a, b)
    before = _fft.plan_cache_info()["measured"]
    for _ in range(3):
        r = _fft.oaconvolve(a, b, axes, (0,) * len(axes), want.shape, nthreads=2)
        _check(r, want, np.float64)
    assert _fft.wait_measurements(120.0)
    assert _fft.plan_cache_info()["measured"] == before


def test_wait_measurements_times_out(monkeypatch):
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, args=(30,), daemon=True)
    t.start()
    monkeypatch.setattr(_fft, "_measuring_threads", {t})
    try:
        assert _fft.wait_measurements(0.05) is False
    finally:
        stop.set()
    assert _fft.wait_measurements(30.0) is True


@pytest.mark.parametrize("env, blocks, hot", [(None, True, False), ("0", False, False),
                                              ("1", True, True), ("", True, False)])
def test_measure_environment(env, blocks, hot):
    """FASTCONV_FFTW_MEASURE: unset or empty measures hot N-d blocks only, 1 every hot
    shape, 0 none."""
    import subprocess
    import sys

    e = dict(os.environ)
    e.pop("FASTCONV_FFTW_MEASURE", None)
    if env is not None:
        e["FASTCONV_FFTW_MEASURE"] = env
    out = subprocess.run([sys.executable, "-c", "from fastconv import _fft; "
                          "print(_fft.AUTO_MEASURE_BLOCKS, _fft.AUTO_MEASURE)"],
                         env=e, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(blocks), str(hot)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_fork_during_planning_leaves_child_usable():
    """A fork taken while another thread holds the planning lock (a background re-plan)
    waits for it; the child plans and convolves normally instead of dead-locking."""
    import threading
    import time
    import warnings

    held = threading.Event()

    def planner():
        with _fft._plan_lock:
            held.set()
            time.sleep(0.3)

    t = threading.Thread(target=planner)
    t.start()
    held.wait(10)
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:   # child: any failure or hang shows as a non-zero status or the timeout
        code = 1
        try:
            ok = _fft._plan_lock.acquire(timeout=5)
            if ok:
                _fft._plan_lock.release()
                a = np.arange(50.0)
                r = _fft.convolve(a, np.ones(3), (0,), (0,), (52,), nthreads=1)
                code = 0 if np.allclose(r, np.convolve(a, np.ones(3))) else 2
        finally:
            os._exit(code)
    waited = time.monotonic() - t0
    t.join()
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert waited >= 0.1    # the fork waited for the plan in progress


@pytest.mark.skipif(not _fft.HAVE_PYFFTW, reason="needs pyfftw")
def test_block_measurement_finishes_before_exit(tmp_path):
    """A script that exits right after its first large 2-D call exits cleanly (an exit
    under a running FFTW planner crashed in pyFFTW's exit cleanup) and leaves the measured
    block plans' wisdom behind (the exit waits for the background re-plan), so the next
    process plans from it."""
    import subprocess
    import sys

    code = (
        "import numpy as np, fastconv\n"
        "from fastconv import _fft\n"
        "_fft.BLOCK_MEASURE_AFTER_S = 0.0\n"
        "x = np.random.default_rng(0).standard_normal((1024, 1024))\n"
        "fastconv.convolve(x, x[:63, :63], mode='same', method='oa')\n"
        "print(_fft.plan_cache_info()['measured'])\n")
    env = dict(os.environ, FASTCONV_CACHE_DIR=str(tmp_path))
    env.pop("FASTCONV_FFTW_MEASURE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.split() == ["0"]          # not finished when the call returned
    assert (tmp_path / "fftw_wisdom.pkl").exists()


def test_parallel_workers_take_the_callers_errstate():
    # numpy's floating-point error state is per thread; the worker threads of the engine's
    # parallel passes take the caller's (a silenced overflow had warned from a worker)
    big = np.full(4, np.finfo(np.float32).max, np.float32)

    def overflow(_):
        return big * np.float32(4)
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            _fft._run_parallel(overflow, [0, 1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore"):
            _fft._run_parallel(overflow, [0, 1, 2, 3])


def test_small_and_long_double_problems_take_scipy_fft(monkeypatch):
    # at most SMALL_POINTS transform points (and long double at any size): one scipy.fft
    # pass, no FFTW plan built; the results are scipy.signal.fftconvolve's
    monkeypatch.setattr(_fft, "SMALL_POINTS", 6144)
    rng = np.random.default_rng(40)
    _fft.clear_plan_cache()
    before = _fft.plan_cache_info()["plans_built"]
    for s1, s2, axes in (((100,), (5,), (0,)), ((40, 30), (5, 4), (0, 1)),
                         ((6, 8, 40), (3, 1, 11), (0, 2))):
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        full = tuple(a.shape[x] + b.shape[x] - 1 for x in axes)
        for engine in (_fft.convolve, _fft.oaconvolve):
            got = engine(a, b, axes, (0,) * len(axes), full)
            np.testing.assert_allclose(got, scipy.signal.fftconvolve(a, b, axes=axes),
                                       rtol=1e-12, atol=1e-12)
    assert _fft.plan_cache_info()["plans_built"] == before
    if _fft._LONG:
        a = rng.standard_normal(5000).astype(np.longdouble)
        got = _fft.convolve(a, a[:999], (0,), (0,), (5998,))
        assert got.dtype == np.longdouble
        want = scipy.signal.fftconvolve(a, a[:999])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-17 * float(abs(want).max()))


@pytest.mark.skipif(not (_fft.HAVE_PYFFTW and _fft.USE_PYFFTW), reason="pyFFTW is absent")
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("s1,s2", [((70, 90), (7, 5)), ((64, 125), (9, 4)),
                                   ((12, 20, 40), (3, 4, 5)), ((3, 64, 64), (1, 5, 5))])
def test_complex_spectra_with_padded_pitch(s1, s2, dtype, monkeypatch):
    """Complex N-d work sets allocate their spectra with padded line pitches (odd numbers
    of cache lines: _spec_pitch); the buffers are strided views, the result is
    scipy.signal.fftconvolve's, and a result handed out as a view of a transform buffer is
    not overwritten by the next call of the same shape."""
    padded = []
    real_buffer = _fft._spec_buffer

    def spy(batch, spec, dt, pad=True):
        w = real_buffer(batch, spec, dt, pad)
        padded.append(not w.flags.c_contiguous)
        return w

    monkeypatch.setattr(_fft, "_spec_buffer", spy)
    _fft.clear_plan_cache()
    rng = np.random.default_rng(sum(s1) + sum(s2))
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    c, d = rand(rng, s1, dtype), rand(rng, s2, dtype)
    got = fastconv.signal.fftconvolve(a, b)
    keep = got.copy()
    for mode in ("full", "same"):
        got2 = fastconv.signal.fftconvolve(c, d, mode)
        want = scipy.signal.fftconvolve(c.astype(np.complex128), d.astype(np.complex128), mode)
        assert got2.dtype == dtype and got2.shape == want.shape
        np.testing.assert_allclose(got2, want, rtol=0, atol=TOL[dtype] * np.abs(want).max())
    np.testing.assert_array_equal(got, keep)
    np.testing.assert_allclose(got, scipy.signal.fftconvolve(a.astype(np.complex128),
                                                             b.astype(np.complex128)),
                               rtol=0, atol=TOL[dtype] * np.abs(keep).max())
    assert padded and any(padded)


def test_spec_pitch():
    # lines to an odd number of 64-byte cache lines, middle axes to odd lengths; short
    # lines and 1-D transforms unchanged
    assert _fft._spec_pitch((1024, 1024), 16) == (1024, 1028)
    assert _fft._spec_pitch((800, 1152), 8) == (800, 1160)
    assert _fft._spec_pitch((120, 96, 128), 16) == (120, 97, 132)
    assert _fft._spec_pitch((64, 15), 16) == (64, 15)
    assert _fft._spec_pitch((4096,), 16) == (4096,)


def test_oaconvolve_hands_large_kernels_to_one_transform(monkeypatch):
    """Blocks predicted to cost more than one transform of the whole problem (kernel about
    as large as the signal): the single-transform convolve, as scipy's oaconvolve falls back
    to fftconvolve; short kernels keep the blocks."""
    whole = []
    real = _fft.convolve
    monkeypatch.setattr(_fft, "convolve", lambda *a, **k: whole.append(1) or real(*a, **k))
    rng = np.random.default_rng(8)
    for s1, s2, dtype in (((1396,), (1370,), np.float64), ((60, 70), (31, 40), np.complex128),
                          ((25527,), (12763,), np.float32)):
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        full = tuple(x + y - 1 for x, y in zip(s1, s2))
        got = _fft.oaconvolve(a, b, tuple(range(len(s1))), (0,) * len(s1), full)
        want = scipy.signal.fftconvolve(a.astype(np.complex128), b.astype(np.complex128))
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * np.abs(want).max())
        assert whole
        whole.clear()
    a, b = rand(rng, 20000, np.float64), rand(rng, 31, np.float64)
    _fft.oaconvolve(a, b, (0,), (0,), (20030,))
    assert not whole
    # ... unless the whole transform is small (OA_WHOLE_POINTS): planning blocks costs more
    monkeypatch.setattr(_fft, "OA_WHOLE_POINTS", 1 << 16)
    got = _fft.oaconvolve(a, b, (0,), (0,), (20030,))
    assert whole
    np.testing.assert_allclose(got, scipy.signal.fftconvolve(a, b), rtol=0, atol=1e-10)
