"""Property tests (hypothesis, deterministic 'ci' profile from conftest.py).

Random shapes, modes, methods and dtypes against scipy.signal, plus algebraic identities of
convolution and correlation checked against scipy-computed values.
"""
import numpy as np
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv

MODES = st.sampled_from(["full", "same", "valid"])
METHODS = st.sampled_from(["auto", "direct", "fft", "oa"])
FLOATS = st.sampled_from([np.float32, np.float64, np.complex64, np.complex128])
INTS = st.sampled_from([np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64])


@st.composite
def shape_pair(draw, max_ndim=3, max_side=7, valid=False):
    nd = draw(st.integers(1, max_ndim))
    s1 = tuple(draw(st.lists(st.integers(1, max_side), min_size=nd, max_size=nd)))
    if valid:   # one input at least as large as the other in every axis
        s2 = tuple(draw(st.integers(1, n)) for n in s1)
        if draw(st.booleans()):
            s1, s2 = s2, s1
    else:
        s2 = tuple(draw(st.lists(st.integers(1, max_side), min_size=nd, max_size=nd)))
    return s1, s2


def _array(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    x = rng.uniform(-1, 1, shape)
    if dt.kind == "c":
        x = x + 1j * rng.uniform(-1, 1, shape)
    return x.astype(dt)


def _close(got, ref, dtype):
    single = np.dtype(dtype) in (np.float32, np.complex64)
    tol = 2e-5 if single else 1e-12
    assert got.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert float(np.abs(got - ref).max()) <= tol * scale


@given(data=st.data(), mode=MODES, method=METHODS, dtype=FLOATS,
       name=st.sampled_from(["convolve", "correlate"]), seed=st.integers(0, 2**32 - 1))
def test_float_convolve_correlate_vs_scipy(data, mode, method, dtype, name, seed):
    s1, s2 = data.draw(shape_pair(valid=mode == "valid"))
    a, b = _array(seed, s1, dtype), _array(seed + 1, s2, dtype)
    got = getattr(fastconv, name)(a, b, mode, method)
    up = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    ref = getattr(ss, name)(a.astype(up), b.astype(up), mode, method="direct")
    assert got.dtype == getattr(ss, name)(a, b, mode, method="fft").dtype
    _close(got, ref, dtype)


@given(data=st.data(), mode=MODES, dtype=INTS, name=st.sampled_from(["convolve", "correlate"]),
       method=st.sampled_from(["auto", "direct"]), seed=st.integers(0, 2**32 - 1))
def test_integer_results_bit_exact_vs_scipy(data, mode, dtype, name, method, seed):
    s1, s2 = data.draw(shape_pair(valid=mode == "valid"))
    a, b = _array(seed, s1, dtype), _array(seed + 1, s2, dtype)
    got = getattr(fastconv, name)(a, b, mode, method)
    ref = getattr(ss, name)(a, b, mode, method="direct")       # wraps in the result dtype
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@given(data=st.data(), mode=MODES, dtype=FLOATS, seed=st.integers(0, 2**32 - 1),
       name=st.sampled_from(["fftconvolve", "oaconvolve"]))
def test_fftconvolve_axes_vs_scipy(data, mode, dtype, seed, name):
    nd = data.draw(st.integers(1, 3))
    s1 = list(data.draw(st.lists(st.integers(1, 9), min_size=nd, max_size=nd)))
    axes = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                              unique_by=lambda ax: ax % nd))
    s2 = []
    for i in range(nd):
        if i in [ax % nd for ax in axes]:
            s2.append(data.draw(st.integers(1, 9)))
        else:
            s2.append(data.draw(st.sampled_from([1, s1[i]])))
            if data.draw(st.booleans()):
                s1[i], s2[i] = s2[i], s1[i]
    a, b = _array(seed, tuple(s1), dtype), _array(seed + 1, tuple(s2), dtype)
    up = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    try:
        ref = getattr(ss, name)(a.astype(up), b.astype(up), mode, axes)
    except ValueError:
        try:
            getattr(fastconv, name)(a, b, mode, axes)
        except ValueError:
            return
        raise AssertionError("scipy raised ValueError, fastconv did not")
    got = getattr(fastconv, name)(a, b, mode, axes)
    assert got.dtype == getattr(ss, name)(a, b, mode, axes).dtype
    _close(got, ref, dtype)


@given(data=st.data(), mode=MODES, boundary=st.sampled_from(["fill", "wrap", "symm"]),
       name=st.sampled_from(["convolve2d", "correlate2d"]), seed=st.integers(0, 2**32 - 1),
       fill=st.sampled_from([0, 1.5, -2]))
def test_2d_boundaries_vs_scipy(data, mode, boundary, name, seed, fill):
    s1, s2 = data.draw(shape_pair(max_ndim=2, max_side=8, valid=mode == "valid")
                       .filter(lambda p: len(p[0]) == 2))
    a, b = _array(seed, s1, np.float64), _array(seed + 1, s2, np.float64)
    got = getattr(fastconv, name)(a, b, mode, boundary, fill)
    ref = getattr(ss, name)(a, b, mode, boundary, fill)
    _close(got, ref, np.float64)


@given(n1=st.integers(0, 40), n2=st.integers(0, 40), mode=MODES)
def test_correlation_lags_vs_scipy(n1, n2, mode):
    ref = ss.correlation_lags(n1, n2, mode)
    np.testing.assert_array_equal(fastconv.correlation_lags(n1, n2, mode), ref)
    if n1 and n2 and (mode != "valid" or n1 >= n2):
        assert ref.size == ss.correlate(np.ones(n1), np.ones(n2), mode).size


# ----------------------------------------------------------------------------- identities
@settings(max_examples=25)
@given(data=st.data(), method=METHODS, seed=st.integers(0, 2**32 - 1))
def test_convolution_commutes_and_correlation_is_flipped_conjugate(data, method, seed):
    s1, s2 = data.draw(shape_pair())
    a, b = _array(seed, s1, np.complex128), _array(seed + 1, s2, np.complex128)
    ab = fastconv.convolve(a, b, "full", method)
    ba = fastconv.convolve(b, a, "full", method)
    ref = ss.convolve(a, b, "full", method="direct")
    _close(ab, ref, np.complex128)
    _close(ba, ref, np.complex128)
    rev = (slice(None, None, -1),) * a.ndim
    # correlate(a, b) == convolve(a, conj(b) reversed)
    _close(fastconv.correlate(a, b, "full", method),
           ss.convolve(a, np.conj(b[rev]), "full", method="direct"), np.complex128)
    # correlate(b, a) == conj(correlate(a, b)) reversed
    _close(fastconv.correlate(b, a, "full", method),
           np.conj(ss.correlate(a, b, "full", method="direct"))[rev], np.complex128)


@settings(max_examples=30)
@given(data=st.data(), method=METHODS, seed=st.integers(0, 2**32 - 1), mode=MODES,
       alpha=st.floats(-3, 3), beta=st.floats(-3, 3))
def test_linearity(data, method, seed, mode, alpha, beta):
    s1, s2 = data.draw(shape_pair(valid=mode == "valid"))
    x, y = _array(seed, s1, np.float64), _array(seed + 1, s1, np.float64)
    k = _array(seed + 2, s2, np.float64)
    got = fastconv.convolve(alpha * x + beta * y, k, mode, method)
    ref = (alpha * ss.convolve(x, k, mode, method="direct")
           + beta * ss.convolve(y, k, mode, method="direct"))
    _close(got, ref, np.float64)


@given(data=st.data(), seed=st.integers(0, 2**32 - 1), mode=MODES)
def test_same_and_valid_are_windows_of_full(data, seed, mode):
    """'same' and 'valid' are the scipy-defined windows of scipy's 'full' output."""
    s1, s2 = data.draw(shape_pair(valid=mode == "valid"))
    a, b = _array(seed, s1, np.float64), _array(seed + 1, s2, np.float64)
    full = ss.convolve(a, b, "full", method="direct")
    got = fastconv.convolve(a, b, mode, "direct")
    if mode == "same":
        sl = tuple(slice((f - n) // 2, (f - n) // 2 + n) for f, n in zip(full.shape, s1))
    elif mode == "valid":
        sl = tuple(slice(min(n1, n2) - 1, max(n1, n2)) for n1, n2 in zip(s1, s2))
    else:
        sl = ()
    _close(got, full[sl], np.float64)


@settings(max_examples=15)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_delta_kernel_is_identity_and_shift(data, seed):
    s1, _ = data.draw(shape_pair())
    a = _array(seed, s1, np.float64)
    delta = np.zeros((3,) * a.ndim)
    delta[(1,) * a.ndim] = 1
    for method in ("direct", "fft", "oa", "auto"):
        np.testing.assert_allclose(fastconv.convolve(a, delta, "same", method), a, atol=1e-12)
        np.testing.assert_allclose(fastconv.correlate(a, delta, "same", method), a,
                                   atol=1e-12)
