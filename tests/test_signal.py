"""fastconv.signal against scipy.signal: names, signatures, shapes, dtypes, values, errors.

Oracle: scipy.signal (method='direct', in float64/complex128 for floating inputs so the
reference is more accurate than either implementation; in the native dtype for integers so
wrapping is compared bit for bit). Never fastconv's own output.

Deviations from scipy that these tests pin down (each is where scipy raises or is not sane):

* N-D ``bool`` / ``float16`` with method 'direct'/'auto': scipy raises "Unsupported type";
  fastconv returns ``numpy.result_type`` (bool: logical OR of ANDs, as np.convolve does in 1-D;
  float16: summed in float32, rounded once).
* Empty inputs: scipy's convolve/correlate raise assorted errors (IndexError, "v cannot be
  empty") except for 'same' with empty in1; fastconv raises one ValueError naming the shapes,
  and matches scipy for 'same' with empty in1. convolve2d/correlate2d with an empty input:
  scipy returns arrays of odd shapes or crashes; fastconv raises ValueError.
* Longdouble inputs to fftconvolve/oaconvolve: computed (and returned) in float64/complex128;
  scipy returns float128. convolve/correlate return longdouble (computed in double).
* String and object dtypes raise TypeError (scipy: ValueError or a TypeError from inside).
* method='separable' on integer/bool inputs uses the exact direct sum.
"""
import functools
import inspect
import warnings
import zlib

import numpy as np
import pytest
import scipy.signal as ss

import fastconv
import fastconv.signal as fs
from fastconv import _fft

PUBLIC = ["convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d",
          "choose_conv_method", "correlation_lags"]
MODES = ["full", "same", "valid"]
METHODS = ["auto", "direct", "fft", "oa"]
DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
          np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128]
EXACT_KINDS = "biu"

#: max error / max(1, max |reference|) allowed per result dtype (reference: float64 direct)
TOL = {
    np.dtype(np.float16): 4e-3,
    np.dtype(np.float32): 3e-6,
    np.dtype(np.float64): 1e-13,
    np.dtype(np.complex64): 3e-6,
    np.dtype(np.complex128): 1e-13,
    np.dtype(np.longdouble): 1e-13,
    np.dtype(np.clongdouble): 1e-13,
}
#: FFT methods lose a little more than a direct sum in single precision
TOL_FFT = {**TOL, np.dtype(np.float32): 2e-5, np.dtype(np.complex64): 2e-5,
           np.dtype(np.float64): 1e-12, np.dtype(np.complex128): 1e-12}

#: (in1 shape, in2 shape) per ndim: odd/even sizes, kernel smaller and larger than the input
SHAPES = {
    1: [((9,), (4,)), ((6,), (7,)), ((1,), (3,))],
    2: [((6, 5), (3, 2)), ((3, 4), (5, 4))],
    3: [((5, 4, 3), (2, 3, 1)), ((2, 3, 2), (3, 3, 4))],
    4: [((3, 4, 2, 3), (2, 1, 2, 2)), ((2, 2, 1, 2), (3, 2, 2, 3))],
}
LAYOUTS = ["C", "F", "strided", "negative", "byteswapped", "readonly"]


# ----------------------------------------------------------------------------- helpers
def make(rng, shape, dtype, big=False):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = (info.min, info.max) if big else (max(info.min, -7), min(info.max, 7))
        return rng.integers(lo, hi, shape, dtype=dt, endpoint=True)
    x = rng.standard_normal(shape)
    if dt.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dt)


def layout(a, kind):
    """The same values as ``a`` in another memory layout."""
    nd = a.ndim
    if kind == "C":
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        big[(slice(None, None, 2),) * nd] = a
        v = big[(slice(None, None, 2),) * nd]
        assert not v.flags.c_contiguous or v.size <= 1
        return v
    if kind == "negative":
        rev = (slice(None, None, -1),) * nd
        return np.ascontiguousarray(a[rev])[rev]
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise AssertionError(kind)


def ref_dtype(dt):
    dt = np.dtype(dt)
    if dt.kind in EXACT_KINDS or dt == np.longdouble or dt == np.clongdouble:
        return dt
    return np.dtype(np.complex128 if dt.kind == "c" else np.float64)


def scipy_ref(name, a, b, *args):
    """scipy.signal.<name>(a, b, *args) as an accurate reference (see module docstring)."""
    fn = getattr(ss, name)
    rdt = np.result_type(a, b)
    if rdt.kind in EXACT_KINDS:
        try:
            return fn(a, b, *args, **({"method": "direct"} if name in ("convolve", "correlate")
                                       else {}))
        except ValueError as e:       # N-D bool: scipy refuses; OR of ANDs via int64
            assert "type" in str(e)
            r = fn(a.astype(np.int64), b.astype(np.int64), *args)
            return r != 0
    up = ref_dtype(rdt)
    kw = {"method": "direct"} if name in ("convolve", "correlate") else {}
    return fn(a.astype(up), b.astype(up), *args, **kw)


def scipy_dtype(name, a, b, *args):
    """The dtype scipy returns for inputs of these dtypes (it depends on nothing else)."""
    return _scipy_dtype(name, a.dtype.newbyteorder("="), b.dtype.newbyteorder("="))


@functools.cache
def _scipy_dtype(name, dt1, dt2):
    fn = getattr(ss, name)
    a, b = np.ones(3, dt1), np.ones(2, dt2)
    if name in ("convolve", "correlate"):
        return fn(a, b, method="fft").dtype      # its 'fft' path accepts every dtype
    return fn(a, b).dtype


def assert_matches(got, ref, dtype, fft=False):
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray)
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if dtype.kind in EXACT_KINDS:
        np.testing.assert_array_equal(got, ref.astype(dtype))
        return
    tol = (TOL_FFT if fft else TOL)[dtype]
    ref = ref.astype(np.clongdouble if dtype.kind == "c" else np.longdouble)
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    err = float(np.abs(got.astype(ref.dtype) - ref).max()) if ref.size else 0.0
    assert err <= tol * scale, f"max error {err:.3g} > {tol:.1g} * {scale:.3g}"


def snapshot(*arrays):
    return [(a.copy(), a.dtype, a.strides) for a in arrays]


def assert_unchanged(snap, *arrays):
    for (copy, dt, strides), a in zip(snap, arrays):
        assert a.dtype == dt and a.strides == strides
        np.testing.assert_array_equal(a, copy)


@pytest.fixture(autouse=True, params=["planned", "small"])
def fft_route(request, monkeypatch):
    """Every test twice: small FFT problems through the planned pyFFTW engine and its
    overlap blocks (the shortcuts off: these tests' shapes are small, and the engine must
    stay covered) and
    with the shortcuts on: fftconvolve/oaconvolve's direct sum where it is predicted faster
    (fastconv.signal.FREQ_DIRECT), else the engine's one-pass scipy.fft route
    (fastconv._fft.SMALL_POINTS)."""
    if request.param == "planned":
        monkeypatch.setattr(_fft, "SMALL_POINTS", 0)
        monkeypatch.setattr(_fft, "OA_WHOLE_POINTS", 0)
        monkeypatch.setattr(fs, "FREQ_DIRECT", False)
    else:
        monkeypatch.setattr(_fft, "SMALL_POINTS", 1 << 62)
        monkeypatch.setattr(fs, "FREQ_DIRECT", True)
    return request.param


def pick(*key):
    """A deterministic index from parameters (samples the layout cross-product)."""
    return zlib.crc32(repr(key).encode())


# ----------------------------------------------------------------------------- API surface
@pytest.mark.parametrize("name", PUBLIC)
def test_names_and_signatures_match_scipy(name):
    ours = getattr(fastconv, name)
    assert getattr(fs, name) is ours
    assert name in fastconv.__all__ and name in fs.__all__
    theirs = getattr(ss, name)
    p_ours = inspect.signature(ours).parameters
    p_theirs = inspect.signature(theirs).parameters
    assert list(p_ours) == list(p_theirs)
    for k in p_theirs:
        assert p_ours[k].default == p_theirs[k].default, k
    assert ours.__doc__ and "Examples" in ours.__doc__ or name == "correlation_lags"


# ----------------------------------------------------------------------------- convolve/correlate
#: every integer width goes through the same int64 engine: all of them on the direct routes
#: in 1-D and 2-D, two representatives (int8, uint64) everywhere else
_CORE_DTYPES = [np.bool_, np.int8, np.uint64, np.float16, np.float32, np.float64, np.complex64,
                np.complex128]
_MORE_INTS = [np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
CASES = [(name, mode, method, ndim, dt)
         for name in ("convolve", "correlate") for mode in MODES for method in METHODS
         for ndim in (1, 2, 3, 4)
         for dt in _CORE_DTYPES + (_MORE_INTS if method in ("auto", "direct") and ndim <= 2
                                   else [])]


@pytest.mark.parametrize("name,mode,method,ndim,dtype", CASES,
                         ids=["-".join([*map(str, c[:4]), np.dtype(c[4]).name]) for c in CASES])
def test_convolve_correlate_vs_scipy(name, mode, method, ndim, dtype, rng):
    fn = getattr(fastconv, name)
    k = pick(name, mode, method, ndim, np.dtype(dtype).name)
    for i, (s1, s2) in enumerate(SHAPES[ndim]):
        a0, b0 = make(rng, s1, dtype), make(rng, s2, dtype)
        a = layout(a0, LAYOUTS[(k + i) % len(LAYOUTS)])
        b = layout(b0, LAYOUTS[(k + i + 3) % len(LAYOUTS)])
        snap = snapshot(a, b)
        got = fn(a, b, mode, method)
        assert_unchanged(snap, a, b)
        ref = scipy_ref(name, a0, b0, mode)
        assert_matches(got, ref, scipy_dtype(name, a0, b0, mode), fft=method in ("fft", "oa"))


MIXED = [(np.int8, np.uint8), (np.uint8, np.int64), (np.int16, np.float32), (np.bool_, np.int32),
         (np.bool_, np.float64), (np.int64, np.uint64), (np.float16, np.float32),
         (np.float32, np.float64), (np.float32, np.complex64), (np.float64, np.complex64),
         (np.int32, np.complex128), (np.uint16, np.float16)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dt1,dt2", MIXED, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_mixed_dtypes(name, dt1, dt2, method, rng):
    fn = getattr(fastconv, name)
    for s1, s2 in [((10,), (3,)), ((4, 5), (2, 3))]:
        for a, b in [(make(rng, s1, dt1), make(rng, s2, dt2)),
                     (make(rng, s2, dt2), make(rng, s1, dt1))]:
            for mode in MODES:
                got = fn(a, b, mode, method)
                assert_matches(got, scipy_ref(name, a, b, mode), scipy_dtype(name, a, b, mode),
                               fft=method in ("fft", "oa"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128,
                                   np.int16, np.bool_])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_separable_method(name, mode, dtype, rng):
    fn = getattr(fastconv, name)
    col, row = make(rng, (5, 1), dtype), make(rng, (1, 4), dtype)
    kernel = col * row                                   # rank 1 by construction
    # kernel smaller / larger than the image (the smaller input is the one factorised)
    for img in [make(rng, (12, 9), dtype), make(rng, (4, 1), dtype) * make(rng, (1, 3), dtype)]:
        img = layout(img, "F")
        for a, b in [(img, kernel), (kernel, img)]:
            if mode == "valid" and not (all(x >= y for x, y in zip(a.shape, b.shape)) or
                                        all(x <= y for x, y in zip(a.shape, b.shape))):
                continue
            got = fn(a, b, mode, "separable")
            assert_matches(got, scipy_ref(name, a, b, mode), scipy_dtype(name, a, b, mode),
                           fft=True)


def test_separable_method_refuses_non_separable_kernels(rng):
    img = rng.standard_normal((10, 10))
    with pytest.raises(ValueError, match="separable"):
        fastconv.convolve(img, rng.standard_normal((3, 3)), method="separable")
    with pytest.raises(ValueError, match="separable"):
        fastconv.convolve(rng.standard_normal((3, 4, 5)), np.ones((2, 2, 2)), method="separable")


@pytest.mark.parametrize("method", METHODS)
def test_zero_dimensional_inputs(method):
    for name in ("convolve", "correlate"):
        a, b = np.array(2.0 + 1j), np.array(3.0 - 2j)
        got = getattr(fastconv, name)(a, b, "full", method)
        ref = getattr(ss, name)(a, b, "full", "direct" if method in ("oa",) else method)
        assert got == ref and np.asarray(got).dtype == np.asarray(ref).dtype


def test_python_lists_and_scalars_like_scipy():
    for name in ("convolve", "correlate"):
        for a, b in [([1, 2, 3], [0, 1, 0.5]), ([1, 2, 3], [4, 5]), ([[1, 2], [3, 4]], [[1j]]),
                     ([True, False], [True])]:
            for mode in MODES:
                got = getattr(fastconv, name)(a, b, mode)
                ref = getattr(ss, name)(a, b, mode, method="direct")
                assert got.dtype == ref.dtype
                np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)


def test_convolution_flips_and_correlation_conjugates():
    x = np.array([0, 0, 1, 0, 0], dtype=complex)
    k = np.array([1, 2j, 3])
    for method in ("direct", "fft", "oa", "auto"):
        np.testing.assert_allclose(fastconv.convolve(x, k, "same", method), [0, 1, 2j, 3, 0],
                                   atol=1e-12)
        np.testing.assert_allclose(fastconv.correlate(x, k, "same", method),
                                   [0, 3, -2j, 1, 0], atol=1e-12)


# ----------------------------------------------------------------------------- integer exactness
@pytest.mark.parametrize("method", ["auto", "direct", "separable"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
def test_integer_wraparound_equals_scipy(dtype, method, rng):
    for s1, s2 in [((33,), (7,)), ((6, 7), (3, 3)), ((3, 4, 5), (2, 2, 3))]:
        a, b = make(rng, s1, dtype, big=True), make(rng, s2, dtype, big=True)
        if method == "separable" and a.ndim != 2:
            continue
        for name in ("convolve", "correlate"):
            for mode in MODES:
                got = getattr(fastconv, name)(a, b, mode, method)
                ref = getattr(ss, name)(a, b, mode, method="direct")
                assert got.dtype == ref.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(got, ref)


def test_int8_wraps_like_scipy():
    a = np.full(5, 100, np.int8)
    b = np.full(3, 100, np.int8)
    got = fastconv.convolve(a, b)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, ss.convolve(a, b, method="direct"))
    np.testing.assert_array_equal(got, ((np.convolve(a.astype(int), b.astype(int)) + 128) % 256
                                        - 128).astype(np.int8))


def test_int64_large_values_exact_against_python_integers(rng):
    a = rng.integers(-2**38, 2**38, 50)
    b = rng.integers(-2**20, 2**20, 17)
    exact = [sum(int(a[i]) * int(b[n - i]) for i in range(len(a)) if 0 <= n - i < len(b))
             for n in range(len(a) + len(b) - 1)]
    for method in ("auto", "direct"):
        got = fastconv.convolve(a, b, method=method)
        assert got.dtype == np.int64
        assert [int(v) for v in got] == exact          # |sum| < 2**63: exact, never off by one


def test_uint64_wraps_modulo_2_64(rng):
    a = rng.integers(2**62, 2**64 - 1, 9, dtype=np.uint64, endpoint=True)
    b = rng.integers(2**62, 2**64 - 1, 4, dtype=np.uint64, endpoint=True)
    exact = [sum(int(a[i]) * int(b[n - i]) for i in range(9) if 0 <= n - i < 4) % 2**64
             for n in range(12)]
    assert [int(v) for v in fastconv.convolve(a, b)] == exact


@pytest.mark.parametrize("method", ["fft", "oa"])
def test_integer_fft_method_rounds_like_scipy(method, rng):
    a = rng.integers(-1000, 1000, (20, 7)).astype(np.int32)
    b = rng.integers(-1000, 1000, (5, 3)).astype(np.int32)
    got = fastconv.convolve(a, b, "same", method)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ss.convolve(a, b, "same", method="direct"))
    # wrapping in the result dtype when the (exact in float64) sum overflows it
    a8 = np.full((4, 4), 100, np.uint8)
    with np.errstate(all="raise"):
        got8 = fastconv.convolve(a8, a8[:2, :2], method=method)
    np.testing.assert_array_equal(got8, ss.convolve(a8, a8[:2, :2], method="direct"))


# ----------------------------------------------------------------------------- non-finite input
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_stay_local_under_auto(bad, rng):
    x = rng.standard_normal(20000)
    x[5000] = bad
    k = rng.standard_normal(3001)
    got = fastconv.convolve(x, k, "same")
    ref = np.convolve(x, k, "same")
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-9, atol=1e-9)
    assert fastconv.choose_conv_method(x, k, "same") == "direct"


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.float64])
def test_large_finite_values_are_finite(dtype, rng, monkeypatch):
    """Finite values whose sum overflows the dtype are still finite: on a problem where
    'auto' takes a transform for ordinary values (checked first), it must take one for them
    too (neither the planner's scan nor the engines' DC-bin check may take an overflowing
    sum for a NaN: the direct engine must not run), and a NaN among them still forces the
    direct sum."""
    from fastconv import signal as fsig
    k = rng.standard_normal(3001).astype(dtype)
    x = rng.standard_normal(20000).astype(dtype)
    assert fastconv.choose_conv_method(x, k, "same") in ("fft", "oa")
    big = np.full(x.shape, np.finfo(dtype).max / 2, dtype)   # its sum overflows
    with np.errstate(over="ignore"):
        assert not np.isfinite(big.sum())
    assert fastconv.choose_conv_method(big, k, "same") in ("fft", "oa")
    direct = []
    real = fsig._CPUEngines.correlate
    monkeypatch.setattr(fsig._CPUEngines, "correlate",
                        staticmethod(lambda *a, **kw: direct.append(1) or real(*a, **kw)))
    with np.errstate(all="ignore"):
        got = fastconv.convolve(big, k, "same")     # the DC bins overflow: not a NaN
    assert got.shape == x.shape and direct == []
    # the same through the overlap-add blocks (each block's DC bin overflows)
    k2 = rng.standard_normal((31, 31)).astype(dtype)
    x2 = rng.standard_normal((1024, 512)).astype(dtype)
    assert fastconv.choose_conv_method(x2, k2, "same") == "oa"
    with np.errstate(all="ignore"):
        fastconv.convolve(np.full(x2.shape, np.finfo(dtype).max / 2, dtype), k2, "same")
    assert direct == []
    big[7] = np.nan
    with np.errstate(all="ignore"):
        fastconv.convolve(big, k, "same")
    assert direct == [1]                             # the spy sees the direct sum
    assert fastconv.choose_conv_method(big, k, "same") == "direct"


NONFINITE_CASES = [
    # (signal shape, kernel shape, mode, what 'auto' takes for finite values)
    ((200, 200), (31, 31), "same", "fft"),
    ((24, 30, 28), (9, 9, 9), "full", "fft"),
    ((1024, 512), (31, 31), "same", "oa"),          # N-d blocks
    ((100000,), (3000,), "same", "oa"),             # batched 1-D blocks
]


def _nonfinite_oracle(x, k, mode, where):
    """What a direct sum gives: NaN where the kernel window holds the bad sample (found by
    scipy's FFT of the indicator), elsewhere scipy's sum with that sample left out."""
    x0 = x.copy()
    x0[where] = 0
    ref = ss.oaconvolve(x0, k, mode=mode)
    ind = np.zeros(x.shape)
    ind[where] = 1
    hit = np.abs(ss.fftconvolve(ind, np.ones(k.shape), mode=mode)) > 0.5
    return ref, hit


@pytest.mark.parametrize("case", NONFINITE_CASES, ids=lambda c: f"{c[0]}*{c[1]}-{c[2]}")
@pytest.mark.parametrize("at", ["first", "middle", "last", "kernel"])
def test_nonfinite_found_by_every_transform_path(case, at, rng):
    """'auto' reads NaN/Inf from the transforms' DC bins instead of scanning the inputs: on
    every FFT path (one transform, N-d blocks, batched 1-D blocks) and wherever the bad value
    sits (first block, middle, last block, kernel), the result keeps it local like a direct
    sum."""
    xs, ks, mode, method = case
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks)
    assert fastconv.choose_conv_method(x, k, mode) == method
    if at == "kernel":
        k[tuple(n // 3 for n in ks)] = np.nan
        got = fastconv.convolve(x, k, mode)
        assert np.isnan(got).all()           # every output reads every kernel tap
        return
    where = {"first": tuple(1 for _ in xs), "middle": tuple(n // 2 for n in xs),
             "last": tuple(n - 2 for n in xs)}[at]
    x[where] = np.inf if at == "middle" else np.nan
    got = fastconv.convolve(x, k, mode)
    ref, hit = _nonfinite_oracle(x, k, mode, where)
    np.testing.assert_array_equal(~np.isfinite(got), hit)
    np.testing.assert_allclose(got[~hit], ref[~hit], rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_nonfinite_engine_contract(rng):
    """The engines' check_finite: None for a NaN, the result otherwise, and the work sets
    they used stay right for the next call; without it a NaN spreads as in scipy."""
    from fastconv import _fft

    for engine, xs, ks in ((_fft.convolve, (60, 50), (9, 7)), (_fft.oaconvolve, (300, 260), (9, 7)),
                           (_fft.oaconvolve, (5000,), (40,))):
        x, k = rng.standard_normal(xs), rng.standard_normal(ks)
        axes = tuple(range(len(xs)))
        full = tuple(a + b - 1 for a, b in zip(xs, ks))
        want = ss.fftconvolve(x, k)
        bad = x.copy()
        bad[(3,) * len(xs)] = np.nan
        assert engine(bad, k, axes, (0,) * len(xs), full, 2, check_finite=True) is None
        spread = engine(bad, k, axes, (0,) * len(xs), full, 2)
        assert np.isnan(spread).any()
        got = engine(x, k, axes, (0,) * len(xs), full, 2, check_finite=True)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_nonfinite_without_pyfftw(monkeypatch, rng):
    from fastconv import _fft

    monkeypatch.setattr(_fft, "USE_PYFFTW", False)
    x, k = rng.standard_normal((200, 200)), rng.standard_normal((31, 31))
    x[50, 60] = np.nan
    got = fastconv.convolve(x, k, "same")
    ref, hit = _nonfinite_oracle(x, k, "same", (50, 60))
    np.testing.assert_array_equal(~np.isfinite(got), hit)


def test_nonfinite_convolve2d(rng):
    x, k = rng.standard_normal((200, 200)), rng.standard_normal((31, 31))
    x[100, 7] = np.nan
    got = fastconv.convolve2d(x, k, mode="same")
    ref = ss.convolve2d(x, k, mode="same")
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-9, atol=1e-9 * np.abs(ref[fin]).max())


# ----------------------------------------------------------------------------- fftconvolve/oaconvolve
FREQ_CASES = [
    # (shape1, shape2, axes)
    ((11,), (4,), None),
    ((6, 7), (3, 8), None),
    ((6, 7), (3, 8), [1]),
    ((6, 7), (3, 8), -1),
    ((5, 4, 3), (5, 2, 3), [1]),
    ((5, 4, 3), (1, 2, 3), (1, 2)),
    ((2, 1, 9), (1, 3, 4), [2]),                 # broadcasting the other axes
    ((1, 9), (3, 4), None),                      # length-1 axis: scipy drops it from the FFT
    ((1, 5), (3, 2), None),
    ((4, 1), (4, 6), [0]),
    ((3, 4, 2, 5), (3, 2, 2, 3), [1, 3]),
    ((1, 3), (1, 3), [0]),                       # no FFT axis left: a plain product
]


@pytest.mark.parametrize("dtype", [np.int16, np.bool_, np.float16, np.float32, np.float64,
                                   np.complex64, np.complex128],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
def test_freq_domain_vs_scipy(name, mode, dtype, rng):
    fn = getattr(fastconv, name)
    for i, (s1, s2, axes) in enumerate(FREQ_CASES):
        a0, b0 = make(rng, s1, dtype), make(rng, s2, dtype)
        try:
            ref = getattr(ss, name)(a0.astype(ref_dtype(a0.dtype)),
                                    b0.astype(ref_dtype(b0.dtype)), mode, axes)
        except ValueError:                        # scipy refuses ('valid' sizes)
            with pytest.raises(ValueError):
                fn(a0, b0, mode, axes)
            continue
        a = layout(a0, LAYOUTS[i % len(LAYOUTS)])
        b = layout(b0, LAYOUTS[(i + 2) % len(LAYOUTS)])
        snap = snapshot(a, b)
        got = fn(a, b, mode=mode, axes=axes)
        assert_unchanged(snap, a, b)
        expected_dt = getattr(ss, name)(a0, b0, mode, axes).dtype
        assert_matches(got, ref, expected_dt, fft=True)


def test_freq_domain_large_kernel_oa_blocks(rng):
    a = rng.standard_normal((3, 4000))
    b = rng.standard_normal((3, 301))
    for mode in MODES:
        for name in ("fftconvolve", "oaconvolve"):
            got = getattr(fastconv, name)(a, b, mode, axes=1)
            assert_matches(got, ss.convolve(a[:, None], b[:, None], mode, method="direct")[:, 0]
                           if False else np.stack([np.convolve(a[i], b[i], mode)
                                                   for i in range(3)]), np.float64, fft=True)


def test_freq_domain_empty_and_scalar_like_scipy():
    for name in ("fftconvolve", "oaconvolve"):
        fn = getattr(fastconv, name)
        for a, b in [(np.array([]), np.ones(3)), (np.ones(3), np.array([])),
                     (np.ones((0, 3)), np.ones((2, 3)))]:
            for mode in MODES:
                got = fn(a, b, mode)
                ref = getattr(ss, name)(a, b, mode)
                assert got.shape == ref.shape == (0,) and got.dtype == ref.dtype
        got = fn(np.float64(2), np.float64(3))
        assert got == 6.0


# ----------------------------------------------------------------------------- convolve2d/correlate2d
@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.uint64,
                                   np.float16, np.float32, np.float64, np.complex64,
                                   np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_vs_scipy(name, mode, boundary, dtype, rng):
    fn = getattr(fastconv, name)
    k = pick(name, mode, boundary, np.dtype(dtype).name)
    cases = [((7, 6), (3, 2), 0), ((5, 4), (4, 5), None), ((4, 6), (6, 9), 2),
             ((8, 9), (8, 1), 1)]
    for i, (s1, s2, fill) in enumerate(cases):
        if mode == "valid" and i == 1:
            continue
        a0, b0 = make(rng, s1, dtype), make(rng, s2, dtype)
        fill = 0 if fill is None or np.dtype(dtype).kind == "b" else fill
        a = layout(a0, LAYOUTS[(k + i) % len(LAYOUTS)])
        b = layout(b0, LAYOUTS[(k + i + 1) % len(LAYOUTS)])
        snap = snapshot(a, b)
        got = fn(a, b, mode, boundary, fill)
        assert_unchanged(snap, a, b)
        rdt = np.result_type(a0, b0)
        up = np.int64 if rdt.kind in EXACT_KINDS else ref_dtype(rdt)
        ref = getattr(ss, name)(a0.astype(up), b0.astype(up), mode, boundary, fill)
        if rdt.kind == "b":
            ref = ref != 0
        elif rdt.kind in "iu":
            ref = ref.astype(rdt)              # scipy's own native-dtype sum wraps the same way
            np.testing.assert_array_equal(
                ref, getattr(ss, name)(a0, b0, mode, boundary, fill))
        assert_matches(got, ref, rdt, fft=True)


@pytest.mark.parametrize("alias", ["pad", "circular", "symmetric"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_boundary_aliases(name, mode, alias, rng):
    # scipy's aliases: 'pad' is 'fill', 'circular' is 'wrap', 'symmetric' is 'symm'
    a, b = rng.standard_normal((7, 9)), rng.standard_normal((3, 4))
    ref = getattr(ss, name)(a, b, mode, boundary=alias, fillvalue=1.5)
    got = getattr(fastconv, name)(a, b, mode, boundary=alias, fillvalue=1.5)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert got.shape == ref.shape


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_empty_same(name):
    # scipy: 'same' with an empty in1 gives in1's (empty) shape
    for shape in ((0, 3), (3, 0)):
        ref = getattr(ss, name)(np.ones(shape), np.ones((2, 2)), "same")
        got = getattr(fastconv, name)(np.ones(shape), np.ones((2, 2)), "same")
        assert got.shape == ref.shape and got.dtype == ref.dtype


def test_2d_fillvalue_dtypes(rng):
    a = rng.integers(0, 9, (5, 5)).astype(np.int16)
    b = rng.integers(0, 9, (3, 3)).astype(np.int16)
    # non-integral fill values are truncated into integer outputs, as scipy does
    for fv in (3, 2.7, np.float32(-1.5), 300, -1, True):
        with warnings.catch_warnings():      # scipy goes through complex and warns
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            ref = ss.convolve2d(a, b, fillvalue=fv)
        got = fastconv.convolve2d(a, b, fillvalue=fv)
        assert got.dtype == ref.dtype == np.int16
        np.testing.assert_array_equal(got, ref)
    # one-element arrays are accepted (scipy documents it, but only honours it for float64)
    np.testing.assert_array_equal(fastconv.convolve2d(a, b, fillvalue=np.array([4])),
                                  ss.convolve2d(a.astype(float), b.astype(float),
                                                fillvalue=np.array([4])))
    z = (rng.standard_normal((5, 5)) + 1j).astype(np.complex64)
    np.testing.assert_allclose(fastconv.correlate2d(z, z[:2, :3], fillvalue=1 - 2j),
                               ss.correlate2d(z, z[:2, :3], fillvalue=1 - 2j), rtol=1e-5,
                               atol=1e-5)
    f32 = rng.standard_normal((4, 4)).astype(np.float32)
    with np.errstate(over="raise"):
        got = fastconv.convolve2d(f32, np.ones((2, 2), np.float32), fillvalue=1e40)
    assert got.dtype == np.float32 and np.isposinf(got[0, 0])
    with pytest.raises(ValueError, match="fillvalue"):
        fastconv.convolve2d(a, b, fillvalue=[1, 2])
    with pytest.raises(ValueError, match="fillvalue"):
        fastconv.convolve2d(a.astype(float), b, fillvalue=1 + 1j)
    # a fill value the integer output cannot hold: scipy and fastconv both refuse
    u8 = a.astype(np.uint8)
    for fv in (300, -1, np.nan, 1e40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(ValueError):
                ss.convolve2d(u8, u8, fillvalue=fv)
        with pytest.raises(ValueError, match="fillvalue .* cannot be represented .* uint8"):
            fastconv.convolve2d(u8, u8, fillvalue=fv)


# ----------------------------------------------------------------------------- choose_conv_method
def test_choose_conv_method(rng):
    a, b = rng.standard_normal(500), rng.standard_normal(20)
    m = fastconv.choose_conv_method(a, b)
    assert m in ("direct", "fft", "oa")
    m, times = fastconv.choose_conv_method(a, b, measure=True)
    assert set(times) >= {"direct", "fft", "oa"} and m == min(times, key=times.get)
    assert all(t > 0 for t in times.values())
    ai = rng.integers(0, 5, 50)
    assert fastconv.choose_conv_method(ai, ai) == "direct"
    m, times = fastconv.choose_conv_method(ai, ai, measure=True)
    # scipy's dict always has 'fft' and 'direct' (its callers index both); ints stay direct
    assert m == "direct" and set(times) >= {"direct", "fft"}
    assert set(ss.choose_conv_method(ai, ai, measure=True)[1]) <= set(times)
    m, times = fastconv.choose_conv_method(np.float64(2), np.float64(3), measure=True)
    assert m == "direct" and set(times) == {"direct", "fft"}
    assert fastconv.choose_conv_method(np.ones((3, 3), bool), np.ones((2, 2), bool)) == "direct"
    for mode in MODES:
        assert fastconv.choose_conv_method(a, b, mode) in ("direct", "fft", "oa")
    with pytest.raises(ValueError, match="mode"):
        fastconv.choose_conv_method(a, b, "bad")
    with pytest.raises(ValueError, match="dimensionality"):
        fastconv.choose_conv_method(a, np.ones((2, 2)))


def test_choose_conv_method_separable(rng):
    g = np.exp(-np.linspace(-2, 2, 31) ** 2)
    m, times = fastconv.choose_conv_method(rng.standard_normal((64, 64)), np.outer(g, g),
                                           measure=True)
    assert "separable" in times and m in times


# ----------------------------------------------------------------------------- correlation_lags
def test_correlation_lags_vs_scipy():
    for n1 in range(9):
        for n2 in range(9):
            for mode in MODES:
                try:
                    ref = ss.correlation_lags(n1, n2, mode)
                except Exception as e:                    # noqa: BLE001
                    with pytest.raises(type(e)):
                        fastconv.correlation_lags(n1, n2, mode)
                    continue
                got = fastconv.correlation_lags(n1, n2, mode)
                np.testing.assert_array_equal(got, ref)
                assert got.dtype == ref.dtype
    x, y = np.arange(7.0), np.array([0, 1.0, 0.5])
    assert fastconv.correlation_lags(7, 3).size == fastconv.correlate(x, y).size
    with pytest.raises(ValueError, match="mode"):
        fastconv.correlation_lags(3, 3, "bad")
    with pytest.raises(TypeError, match="in1_len"):
        fastconv.correlation_lags(3.5, 3)
    with pytest.raises(ValueError, match="in2_len"):
        fastconv.correlation_lags(3, -1)


# ----------------------------------------------------------------------------- errors
ALL_METHODS = ["auto", "direct", "fft", "oa", "separable"]


def _raises_same(call, exc, match):
    """Every method raises ``exc`` (the same type) with a message matching ``match``."""
    for method in ALL_METHODS:
        with pytest.raises(exc, match=match):
            call(method)


@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_error_parity_across_methods(name):
    fn = getattr(fastconv, name)
    one, two = np.ones(4), np.ones((3, 3))
    _raises_same(lambda m: fn(one, two, "full", m), ValueError, "dimensionality.*ndim=1.*ndim=2")
    _raises_same(lambda m: fn(one, one, "middle", m), ValueError,
                 "acceptable mode flags are 'valid', 'same', or 'full'; got mode='middle'")
    _raises_same(lambda m: fn(np.ones((3, 5)), np.ones((4, 2)), "valid", m), ValueError,
                 r"at least as large.*\(3, 5\) and \(4, 2\)")
    _raises_same(lambda m: fn(np.array(["a", "b"]), one, "full", m), TypeError,
                 "in1 must have a numeric dtype.*<U1")
    _raises_same(lambda m: fn(one, np.array([object(), 1]), "full", m), TypeError,
                 "in2 must have a numeric dtype.*object")
    _raises_same(lambda m: fn(np.array([]), one, "full", m), ValueError, "empty")
    _raises_same(lambda m: fn(one, np.zeros((0,)), "same", m), ValueError, "empty")
    for bad in ("FFT", "directly", None, 3):
        with pytest.raises(ValueError, match="method must be one of 'auto', 'direct', 'fft'"):
            fn(one, one, "full", bad)
    # every method agrees with scipy where scipy raises for these inputs
    with pytest.raises(ValueError):
        getattr(ss, name)(one, two)
    with pytest.raises(ValueError):
        getattr(ss, name)(np.ones((3, 5)), np.ones((4, 2)), "valid")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_empty_in1_same_mode_like_scipy(method):
    got = fastconv.convolve(np.zeros((0,)), np.ones(3), "same", method)
    ref = ss.convolve(np.zeros((0,)), np.ones(3), "same", "direct")
    assert got.shape == ref.shape and got.dtype == ref.dtype
    got = fastconv.correlate(np.zeros((0, 3)), np.ones((2, 2)), "same", method)
    assert got.shape == (0, 3) and got.dtype == np.float64


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
def test_freq_domain_errors(name):
    fn = getattr(fastconv, name)
    a = np.ones((3, 4))
    # scipy's ValueErrors and wording (its own tests match on them)
    with pytest.raises(ValueError, match="axes exceeds dimensionality of input"):
        fn(a, a, axes=2)
    with pytest.raises(ValueError, match="axes exceeds dimensionality of input"):
        fn(a, a, axes=[-3])
    with pytest.raises(ValueError, match="unique"):
        fn(a, a, axes=[0, 0])
    with pytest.raises(ValueError, match="unique"):
        fn(a, a, axes=[1, -1])
    with pytest.raises(ValueError, match="empty"):
        fn(a, a, axes=[])
    for bad in ([0.5], 1.0, "a", [[0, 1], [1, 0]], np.array(0)):
        with pytest.raises(ValueError, match="axes must be a scalar or iterable of integers"):
            fn(a, a, axes=bad)
    with pytest.raises(ValueError, match="acceptable mode flags are 'valid', 'same', or 'full'"):
        fn(a, a, mode="chips")
    with pytest.raises(ValueError, match=r"incompatible shapes.*\(3, 4\).*\(3, 3\)"):
        fn(a, np.ones((3, 3)), axes=[0])
    with pytest.raises(ValueError, match="dimensionality"):
        fn(a, np.ones(3))
    with pytest.raises(ValueError, match="mode"):
        fn(a, a, "bad")
    with pytest.raises(ValueError, match="at least as large"):
        fn(np.ones((3, 5)), np.ones((4, 2)), "valid")
    with pytest.raises(TypeError, match="numeric"):
        fn(np.array(["x"]), np.ones(1))


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_errors(name):
    fn = getattr(fastconv, name)
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"boundary must be one of 'fill' \('pad'\)"):
        fn(a, a, boundary="circular_")
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(3), a)
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="mode"):
        fn(a, a, "bad")
    with pytest.raises(ValueError, match="at least as large"):
        fn(np.ones((3, 5)), np.ones((4, 2)), "valid")
    with pytest.raises(TypeError, match="numeric"):
        fn(a.astype(object), a)
    with pytest.raises(ValueError, match="empty"):
        fn(np.ones((0, 3)), a)


def test_memory_error_names_the_size_before_allocating():
    huge = np.broadcast_to(np.ones(1), (2 ** 17,) * 3)        # 2**51 elements, 8 bytes of data
    for method in ALL_METHODS:
        with pytest.raises(MemoryError, match=r"GiB"):
            fastconv.convolve(huge, huge, "full", method)
    with pytest.raises(MemoryError, match=r"\(262143, 262143, 262143\)"):
        fastconv.correlate(huge, huge)
    for name in ("fftconvolve", "oaconvolve"):
        with pytest.raises(MemoryError, match="GiB"):
            getattr(fastconv, name)(huge, huge)
    with pytest.raises(MemoryError, match="GiB"):
        fastconv.convolve2d(huge[0], huge[0])
    small = np.ones((2, 2, 2))
    with pytest.raises(MemoryError, match="GiB"):        # the output fits, the input copy not
        fastconv.convolve(huge, small, "valid", "direct")


def test_correlate_refuses_before_the_conjugate_copy(monkeypatch):
    # complex in2: correlate conjugates a copy of it; a too-large output is refused before
    # that copy is made (here a 512 MiB copy, with 1 GiB said to be available)
    import tracemalloc
    from fastconv import _config
    monkeypatch.setattr(_config, "available_memory", lambda: 2 ** 30)
    c = np.broadcast_to(np.ones(1, np.complex64), (512, 1024, 128))
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match="GiB"):
            fastconv.correlate(c, c)
        assert tracemalloc.get_traced_memory()[1] < 2 ** 24
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("method", METHODS)
def test_longdouble_computed_in_double(method, rng):
    """Deviation (documented): the direct sum of long double runs in double precision; the
    FFT functions transform in long double, as scipy."""
    for dt in (np.longdouble, np.clongdouble):
        a, b = make(rng, (9, 4), dt), make(rng, (3, 2), dt)
        got = fastconv.convolve(a, b, "same", method)
        ref = ss.convolve(a, b, "same", method="direct")
        assert got.dtype == ref.dtype == np.dtype(dt)
        assert_matches(got, ref, dt, fft=method in ("fft", "oa"))
        for fn in ("fftconvolve", "oaconvolve"):
            got = getattr(fastconv, fn)(a, b)
            ref = getattr(ss, fn)(a, b)
            assert got.dtype == ref.dtype == np.dtype(dt)
            # long-double transforms: far below double's 1e-16
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-17 * float(abs(ref).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128,
                                   np.int8, np.uint16, np.int64])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", [((1000,), (3,)), ((7,), (7,)), ((9,), (4,)),
                                    ((12, 11), (3, 4)), ((5, 6), (5, 1)),
                                    ((6, 5, 7), (2, 3, 3)), ((40, 40), (1, 1))])
def test_small_direct_fast_path(shapes, mode, dtype):
    """Small problems (<= 2**19 multiply-adds) skip the planner (signal._small_direct):
    the same results as scipy, for C, Fortran, strided and reversed inputs, convolve and
    correlate, and the inputs untouched."""
    from fastconv import signal as fsig
    rng = np.random.default_rng(sum(shapes[0]) + sum(shapes[1]))
    s1, s2 = shapes
    exact = np.dtype(dtype).kind in "iu"

    def draw(shape):      # integers: wide enough values that the sums wrap in the dtype
        if exact:
            return rng.integers(-300, 300, shape).astype(dtype)
        return rng.standard_normal(shape).astype(dtype)
    base1 = draw(tuple(2 * n for n in s1))
    # (complex: imaginary parts added below, with the dtype kept)
    a_views = [base1[tuple(slice(0, n) for n in s1)].copy(),
               np.asfortranarray(base1[tuple(slice(0, n) for n in s1)]),
               base1[tuple(slice(0, 2 * n, 2) for n in s1)],
               base1[tuple(slice(n - 1, None, -1) for n in s1)]]
    b = draw(s2)
    if np.dtype(dtype).kind == "c":
        a_views = [v + (1j * v[::-1]).astype(dtype) for v in a_views]
        b = b + (1j * rng.standard_normal(s2)).astype(dtype)
    for a in a_views:
        a0, b0 = a.copy(), b.copy()
        assert fsig._small_direct(a, b, mode, "auto") is not None
        for ours, ref in ((fastconv.convolve, ss.convolve),
                          (fastconv.correlate, ss.correlate)):
            got = ours(a, b, mode=mode)
            want = ref(a, b, mode=mode, method="direct")
            assert got.dtype == want.dtype and got.shape == want.shape
            if exact:
                np.testing.assert_array_equal(got, want)
                continue
            tol = 1e-5 if dtype in (np.float32, np.complex64) else 1e-12
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(b).sum())
        assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_small_direct_fast_path_declines():
    """What the fast path leaves to the planner: large work, booleans, mixed dtypes, a kernel larger than the signal, 'fft' asked for, non-numpy inputs."""
    from fastconv import signal as fsig
    f = np.ones(1000)
    assert fsig._small_direct(np.ones(10**6), np.ones(3), "same", "auto") is None
    assert fsig._small_direct(np.ones(10, bool), np.ones(3, bool), "same", "auto") is None
    assert fsig._small_direct(f, f[:3].astype(np.float32), "same", "auto") is None
    assert fsig._small_direct(f[:3], f, "full", "auto") is None
    assert fsig._small_direct(f, f[:3], "same", "fft") is None
    assert fsig._small_direct(list(f), f[:3], "same", "auto") is None


# ----------------------------------------------------------------------------- scipy's FFT dtype
SMALL_EXACT = [np.bool_, np.int8, np.uint8, np.int16, np.int64]
NARROW = [np.float16, np.float32, np.complex64]


@pytest.mark.parametrize("fn", ["fftconvolve", "oaconvolve"])
def test_freq_dtype_follows_scipy_fft(fn, rng):
    # scipy.fft takes integers and bool as float64: int8 with float32 is float64 there
    for d1 in SMALL_EXACT:
        for d2 in NARROW:
            a = make(rng, (20,), d1)
            b = make(rng, (5,), d2)
            for x, y in ((a, b), (b, a)):
                ref = getattr(ss, fn)(x, y)
                got = getattr(fastconv, fn)(x, y)
                assert got.dtype == ref.dtype, (d1, d2)
                # (scipy transforms float16 / float32 in single precision, we in double)
                np.testing.assert_allclose(got, ref, rtol=0,
                                           atol=1e-6 * float(abs(ref).max()))


def test_convolve_fft_computes_in_double_for_integer_mixes(rng):
    # scipy's TestConvolve.test_convolve_method: 'fft' within 1e-6 of 'direct' for
    # float32 / complex64 mixed with small integers (the transforms run in float64)
    f = rng.standard_normal(100)
    ints = rng.choice([0, 1], size=100)
    for d1, x1 in ((np.float32, f), (np.complex64, f + 0.5j * f)):
        for d2 in (np.int8, np.uint16, np.uint8, np.int16):
            a, b = x1.astype(d1), ints.astype(d2)
            for x, y in ((a, b), (b, a)):
                for mode in MODES:
                    got = fastconv.convolve(x, y, mode, method="fft")
                    ref = ss.convolve(x, y, mode, method="direct")
                    assert got.dtype == ref.dtype
                    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["fft", "oa"])
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_fft_method_warns_on_nan_like_scipy(name, method):
    a = np.ones(1000)
    a[0] = np.nan
    with pytest.warns(RuntimeWarning, match="NAN or inf"):
        ss_out = getattr(ss, name)(a, np.ones(200), mode="same", method="fft")
    with pytest.warns(RuntimeWarning, match="NAN or inf"):
        out = getattr(fastconv, name)(a, np.ones(200), mode="same", method=method)
    assert np.isnan(out[0]) and np.isnan(ss_out[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # 'auto' keeps the NaN local: no warning
        out = getattr(fastconv, name)(a, np.ones(200), mode="same")
    assert np.isfinite(out[200:]).all()


def test_correlation_lags_index_likes():
    for n in (np.array(5), np.int32(5), 5):
        np.testing.assert_array_equal(fastconv.correlation_lags(n, 3),
                                      ss.correlation_lags(5, 3))
    with pytest.raises(ValueError, match="Mode asdfgh is invalid"):
        fastconv.correlation_lags(5, 3, "asdfgh")


# ----------------------------------------------------------------------------- integers by FFT
def test_integer_auto_takes_a_provably_exact_fft(rng):
    # a long integer convolution: the float64 FFT is faster and its rounding error bound
    # is far below 1/2, so 'auto' may take it -- the integers stay exact (numpy's int64
    # sum is the oracle; scipy takes its FFT here too)
    a = rng.integers(-10, 11, 63759).astype(np.int32)
    b = rng.integers(-10, 11, 2913).astype(np.int32)
    assert fastconv.choose_conv_method(a, b, "valid") in ("fft", "oa")
    for mode in MODES:
        got = fastconv.convolve(a, b, mode)
        want = np.convolve(a.astype(np.int64), b.astype(np.int64), mode).astype(np.int32)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
    img = rng.integers(0, 256, (300, 250)).astype(np.uint8)
    box = np.ones((21, 21), np.uint8)
    assert fastconv.choose_conv_method(img, box, "same") in ("fft", "oa")
    got = fastconv.convolve(img, box, "same")
    want = ss.convolve(img, box, "same", method="direct")
    assert got.dtype == want.dtype == np.uint8          # wraps modulo 256, as scipy
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fastconv.convolve2d(img, box, "same", "symm"),
                                  ss.convolve2d(img, box, "same", "symm"))


def test_integer_auto_keeps_direct_when_fft_could_round_wrong(rng):
    # values near 2**20: max|a| max|b| min(n) is below scipy's 2**52, but the FFT's error
    # bound is not below 1/4 -- the exact direct sum
    a = rng.integers(-2 ** 20, 2 ** 20, 40000, dtype=np.int64)
    b = rng.integers(-2 ** 20, 2 ** 20, 3000, dtype=np.int64)
    assert fastconv.choose_conv_method(a, b) == "direct"
    got = fastconv.convolve(a, b, "valid")
    want = np.convolve(a, b, "valid")      # int64, exact: |sums| < 3000 * 2**40 < 2**63
    np.testing.assert_array_equal(got, want)
    assert fastconv.choose_conv_method(a > 0, b > 0) == "direct"      # booleans: direct


def test_rank1_memo_keys_on_kernel_content():
    # 'auto' remembers the separability test by a digest of the kernel's bytes: a kernel
    # changed in place, or another of the same shape, is tested again
    g = np.exp(-np.linspace(-2, 2, 9) ** 2)
    k = np.outer(g, g)
    assert fs._is_rank1(k, np.float64)
    k[4, 4] += 0.5                                   # the same array, now full rank
    assert not fs._is_rank1(k, np.float64)
    assert fs._is_rank1(np.outer(g, g), np.float64)
    img = np.random.default_rng(5).standard_normal((300, 300))
    for kern in (np.outer(g, g), k):
        np.testing.assert_allclose(fastconv.convolve(img, kern, "same"),
                                   ss.convolve(img, kern, "same"), rtol=1e-9, atol=1e-9)


# ------------------------------------------------- fftconvolve / oaconvolve by the direct sum
@pytest.mark.parametrize("fname", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_freq_functions_take_direct_sum_where_faster(fname, dtype, monkeypatch, fft_route):
    """Small problems and short kernels: fftconvolve/oaconvolve give scipy's result by the
    direct sum, no transform run (FREQ_DIRECT); batched axes, integer inputs and inputs
    holding NaN keep the transforms (NaN spread over the output as scipy's is)."""
    monkeypatch.setattr(fs, "FREQ_DIRECT", True)
    ran = []
    for name in ("convolve", "oaconvolve"):
        real = getattr(_fft, name)
        monkeypatch.setattr(_fft, name, functools.partial(
            lambda real, *a, **k: ran.append(1) or real(*a, **k), real))
    rng = np.random.default_rng(3)
    ours, theirs = getattr(fastconv, fname), getattr(ss, fname)
    for s1, s2 in (((300,), (5,)), ((40, 33), (3, 3)), ((9, 10, 11), (3, 1, 2)),
                   ((34, 18), (3, 1)), ((1, 40), (5, 3))):
        a = rng.standard_normal(s1).astype(dtype)
        b = rng.standard_normal(s2).astype(dtype)
        for mode in ("full", "same", "valid"):
            want = theirs(a, b, mode)
            got = ours(a, b, mode)
            assert got.dtype == want.dtype and got.shape == want.shape
            tol = 1e-5 if np.dtype(dtype).itemsize * (2 if dtype in (np.float32,) else 1) \
                <= 8 else 1e-12
            np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
    assert not ran
    # a batch axis (axes=...): the transforms
    a = rng.standard_normal((5, 40)).astype(dtype)
    b = rng.standard_normal((5, 3)).astype(dtype)
    for mode in ("full", "same", "valid"):
        np.testing.assert_allclose(ours(a, b, mode, axes=1), theirs(a, b, mode, axes=1),
                                   rtol=0, atol=1e-4)
    assert ran
    # NaN: the transforms (fftconvolve: NaN over the whole output, as scipy's; overlap-add
    # spreads it over the blocks that read it, which depend on the block sizes)
    ran.clear()
    a = rng.standard_normal(300).astype(dtype)
    a[7] = np.nan
    got = ours(a, np.ones(5, dtype))
    assert ran
    if fname == "fftconvolve":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = theirs(a, np.ones(5, dtype))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_freq_functions_integer_inputs_stay_float64_transforms(monkeypatch):
    monkeypatch.setattr(fs, "FREQ_DIRECT", True)
    a, b = np.arange(50, dtype=np.int32), np.array([1, -2, 3], dtype=np.int16)
    for fname in ("fftconvolve", "oaconvolve"):
        got = getattr(fastconv, fname)(a, b)
        want = getattr(ss, fname)(a, b)
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
