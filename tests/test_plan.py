"""The cost model: what 'auto' picks, tune() round trip through tune.json, bad tune.json.

Choices are checked with the built-in constants (a private, empty FASTCONV_CACHE_DIR) so they
do not depend on a tune.json left by someone else, and again after tune() for the clear-cut
cases.
"""
import json

import numpy as np
import pytest
import scipy.signal as ss

import fastconv
from fastconv import _plan


@pytest.fixture
def gaussian31():
    g = np.exp(-0.5 * (np.arange(31) - 15.0) ** 2 / 5.0 ** 2)
    return np.outer(g, g) / g.sum() ** 2


def test_3x3_on_512x512_is_direct(cache_dir, rng):
    img = rng.standard_normal((512, 512))
    k = rng.standard_normal((3, 3))
    for mode in ("full", "same", "valid"):
        assert fastconv.choose_conv_method(img, k, mode) == "direct"
        assert fastconv.choose_conv_method(img.astype(np.float32), k.astype(np.float32),
                                           mode) == "direct"


def test_long_1d_signal_with_5001_taps_uses_fft_or_oa(cache_dir, rng):
    x = rng.standard_normal(100_000)
    h = rng.standard_normal(5001)
    for mode in ("full", "same", "valid"):
        assert fastconv.choose_conv_method(x, h, mode) in ("fft", "oa")
    for mode in ("full", "valid"):
        assert fastconv.choose_conv_method(h, x, mode) in ("fft", "oa")
    # 'same' with the short input first asks for only 5001 outputs (25e6 multiply-adds):
    # the direct sum is the cheaper engine there
    assert fastconv.choose_conv_method(h, x, "same") == "direct"


def test_gaussian_31x31_on_1024x1024_is_separable(cache_dir, rng, gaussian31):
    img = rng.standard_normal((1024, 1024))
    assert fastconv.choose_conv_method(img, gaussian31, "same") == "separable"
    assert fastconv.choose_conv_method(img.astype(np.float32), gaussian31.astype(np.float32),
                                       "same") == "separable"
    # and the separable result is right (oracle: scipy on a crop, direct)
    crop = img[:96, :80]
    np.testing.assert_allclose(fastconv.convolve(crop, gaussian31, "same", "separable"),
                               ss.convolve(crop, gaussian31, "same", "direct"), atol=1e-12)
    # a random (full-rank) 31x31 kernel is not separable
    assert fastconv.choose_conv_method(img, rng.standard_normal((31, 31)), "same") != "separable"


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint16, np.int32, np.int64])
def test_integers_direct_unless_the_fft_is_provably_exact(cache_dir, rng, dtype):
    x = (rng.integers(0, 2, 100_000) if dtype is np.bool_
         else rng.integers(0, 100, 100_000)).astype(dtype)
    h = x[:5001]
    img = np.ones((1024, 1024), dtype)
    if dtype is np.bool_:
        assert fastconv.choose_conv_method(x, h) == "direct"
        assert fastconv.choose_conv_method(img, np.ones((31, 31), dtype), "same") == "direct"
        return
    # small values: the float64 FFT's rounding error bound is far below 1/2 -> faster and
    # exact (numpy's int64 sum, wrapped to the dtype as scipy does, is the oracle)
    assert fastconv.choose_conv_method(x, h) in ("fft", "oa")
    want = np.convolve(x.astype(np.int64), h.astype(np.int64)).astype(dtype)
    np.testing.assert_array_equal(fastconv.convolve(x, h), want)
    assert fastconv.choose_conv_method(img, np.ones((31, 31), dtype), "same") != "direct"
    # large values: the bound fails -> the exact direct sum
    if np.iinfo(dtype).max >= 2 ** 31 - 1:
        big = rng.integers(-2 ** 30, 2 ** 30, 100_000).astype(dtype)
        assert fastconv.choose_conv_method(big, big[:5001]) == "direct"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_inputs_are_direct(cache_dir, rng, bad):
    x = rng.standard_normal(100_000)
    h = rng.standard_normal(5001)
    assert fastconv.choose_conv_method(x, h) in ("fft", "oa")
    x[123] = bad
    assert fastconv.choose_conv_method(x, h) == "direct"
    assert fastconv.choose_conv_method(h, x) == "direct"
    h2 = h.copy()
    h2[7] = bad
    assert fastconv.choose_conv_method(rng.standard_normal(100_000), h2) == "direct"


def test_predictions_are_positive_seconds(cache_dir):
    t = _plan.predict_signal((512, 512), (3, 3), (512, 512), np.float64,
                             ("direct", "fft", "oa", "separable"), separable=True, nthreads=2)
    assert {"direct", "fft", "separable"} <= set(t)
    assert all(np.isfinite(v) and v > 0 for v in t.values())
    m, times = _plan.choose_signal_method((100_000,), (5001,), (104_999,), np.float64,
                                          nthreads=2)
    assert m == min(times, key=times.get)


def test_constants_default_without_tune_json(cache_dir):
    assert not (cache_dir / "tune.json").exists()
    assert _plan.constants() == _plan.DEFAULTS


def test_tune_round_trip(cache_dir, rng):
    c = fastconv.tune(save=True)
    path = cache_dir / "tune.json"
    assert path.is_file()
    stored = json.loads(path.read_text())
    assert set(stored["constants"]) == set(_plan.DEFAULTS)
    assert all(v > 0 and np.isfinite(v) for v in stored["constants"].values())
    assert stored["threads"] == fastconv.get_num_threads()
    _plan._reset()
    loaded = _plan.constants()
    for k, v in stored["constants"].items():
        assert loaded[k] == pytest.approx(v, rel=1e-12)
        assert c[k] == pytest.approx(v, rel=1e-12)
    # a fit that collapsed onto a clamp (e.g. fft_s_per_flop = 1e-13 after subtracting an
    # over-estimated memory term) is not a measurement: stay within 1000x of the defaults
    for k, v in stored["constants"].items():
        assert _plan.DEFAULTS[k] / 1000 <= v <= _plan.DEFAULTS[k] * 1000, (k, v)
    # the clear-cut choices survive this machine's measured constants
    assert fastconv.choose_conv_method(rng.standard_normal((512, 512)),
                                       rng.standard_normal((3, 3))) == "direct"
    assert fastconv.choose_conv_method(rng.standard_normal(100_000),
                                       rng.standard_normal(5001)) in ("fft", "oa")


def test_tune_json_is_read_by_a_fresh_load(cache_dir, rng):
    """Constants in tune.json steer 'auto' (here: an absurdly slow direct engine)."""
    cache_dir.mkdir(parents=True)
    slow = {k: v for k, v in _plan.DEFAULTS.items()}
    for k in slow:
        if k.startswith("direct_s_per_mac"):
            slow[k] = 1.0
    (cache_dir / "tune.json").write_text(json.dumps({"threads": 2, "constants": slow}))
    _plan._reset()
    assert _plan.constants()["direct_s_per_mac_float64"] == 1.0
    assert fastconv.choose_conv_method(rng.standard_normal((512, 512)),
                                       rng.standard_normal((3, 3))) != "direct"


def test_direct_cost_depends_on_dimensionality(cache_dir, rng):
    """direct_rel_1d / direct_rel_3d scale only their own problems' direct cost."""
    cache_dir.mkdir(parents=True)
    c = dict(_plan.DEFAULTS, direct_rel_1d=1000.0)
    (cache_dir / "tune.json").write_text(json.dumps({"threads": 2, "constants": c}))
    _plan._reset()
    x1, k1 = rng.standard_normal(200_000), rng.standard_normal(31)
    x2, k2 = rng.standard_normal((512, 512)), rng.standard_normal((3, 3))
    x3, k3 = rng.standard_normal((40, 40, 40)), rng.standard_normal((3, 3, 3))
    assert fastconv.choose_conv_method(x1, k1) != "direct"
    assert fastconv.choose_conv_method(x2, k2) == "direct"
    assert fastconv.choose_conv_method(x3, k3) == "direct"
    c = dict(_plan.DEFAULTS, direct_rel_3d=1000.0)
    (cache_dir / "tune.json").write_text(json.dumps({"threads": 2, "constants": c}))
    _plan._reset()
    assert fastconv.choose_conv_method(x1, k1) == "direct"
    assert fastconv.choose_conv_method(x2, k2) == "direct"
    assert fastconv.choose_conv_method(x3, k3) != "direct"


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    "[1, 2, 3]",
    '{"constants": [1, 2]}',
    '{"constants": {"direct_s_per_mac_float64": "fast"}}',
    '{"constants": {"direct_s_per_mac_float64": -1.0, "no_such_constant": 3.0}}',
    '{"constants": {"direct_s_per_mac_float64": null}}',
    "\x00\xff\xfe garbage",
])
def test_corrupt_tune_json_is_ignored(cache_dir, rng, content):
    cache_dir.mkdir(parents=True)
    (cache_dir / "tune.json").write_bytes(content.encode("latin-1"))
    _plan._reset()
    c = _plan.constants()
    assert c == _plan.DEFAULTS
    assert fastconv.choose_conv_method(rng.standard_normal((512, 512)),
                                       rng.standard_normal((3, 3))) == "direct"
    np.testing.assert_allclose(fastconv.convolve([1.0, 2.0], [1.0, 1.0]), [1.0, 3.0, 2.0])


def test_tune_json_in_a_directory_we_cannot_read_is_ignored(cache_dir):
    (cache_dir / "tune.json").mkdir(parents=True)       # a directory where the file should be
    _plan._reset()
    assert _plan.constants() == _plan.DEFAULTS
