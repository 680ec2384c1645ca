"""The batched 1-D overlap-save path of fastconv._fft.oaconvolve (``_oa_batched_1d``):
many blocks, every mode, real and complex, against scipy.signal (float64 direct sums)."""

import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv import _fft
from _helpers import rand, run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.skipif(not (_fft.HAVE_PYFFTW and _fft.USE_PYFFTW),
                                reason="the batched path runs on pyFFTW, which is absent")


@pytest.fixture(autouse=True)
def fft_engine(monkeypatch):
    """oaconvolve's own blocks: never the direct sum that fastconv.signal takes for problems
    it predicts faster that way (``FREQ_DIRECT``), nor the whole transform it takes for
    small ones (``_fft.OA_WHOLE_POINTS``)."""
    monkeypatch.setattr(fastconv.signal, "FREQ_DIRECT", False)
    monkeypatch.setattr(_fft, "OA_WHOLE_POINTS", 0)


def _ref(x, w, mode):
    wide = np.complex128 if x.dtype.kind == "c" or w.dtype.kind == "c" else np.float64
    return scipy.signal.convolve(x.astype(wide), w.astype(wide), mode, method="direct")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("n1,n2", [(20000, 31), (9999, 301), (4097, 3), (30001, 1000),
                                   (500, 499)])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_many_blocks_match_scipy(n1, n2, mode, dtype, monkeypatch):
    calls = []
    real = _fft._oa_batched_1d
    monkeypatch.setattr(_fft, "_oa_batched_1d", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(_fft, "OA_BATCH_BYTES", 20000)  # several batches, a partial last
    rng = np.random.default_rng(n1 + n2)
    x, w = rand(rng, n1, dtype), rand(rng, n2, dtype)
    got = fastconv.oaconvolve(x, w, mode)
    want = _ref(x, w, mode)
    assert got.dtype == scipy.signal.oaconvolve(x, w, mode).dtype
    assert got.shape == want.shape
    tol = 2e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    scale = np.abs(x).max() * np.abs(w).sum()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)
    plan = _fft.oa_plan((n1,), (n2,), (0,))
    if np.prod(plan["nblocks"]) >= 8 and mode != "valid":
        assert calls, "the batched 1-D path was not used"


def test_kernel_longer_than_signal_and_threads():
    rng = np.random.default_rng(5)
    x, w = rand(rng, 50, np.float64), rand(rng, 40000, np.float64)
    np.testing.assert_allclose(fastconv.oaconvolve(x, w), _ref(x, w, "full"), atol=1e-9)
    xs = [rand(rng, 30000 + 7 * i, np.float32) for i in range(8)]
    k = rand(rng, 257, np.float32)
    got = [None] * 8

    def run(i):
        for _ in range(3):
            got[i] = fastconv.convolve(xs[i], k, "same", method="oa")
    run_concurrently(run, 8)
    for x, g in zip(xs, got):
        np.testing.assert_allclose(g, _ref(x, k, "same"), atol=2e-5 * np.abs(x).max() * 257)


def test_inputs_unmodified():
    rng = np.random.default_rng(6)
    x, w = rand(rng, 10000, np.float32), rand(rng, 99, np.float32)
    x0, w0 = x.copy(), w.copy()
    fastconv.convolve(x, w, method="oa")
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("layout", ["reversed", "strided", "byteswapped", "readonly"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_layouts(layout, dtype, monkeypatch):
    """The segments inside the signal are read through a strided view of the input itself:
    negative and non-unit strides, non-native byte order and read-only inputs."""
    calls = []
    real = _fft._oa_batched_1d
    monkeypatch.setattr(_fft, "_oa_batched_1d", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(8)
    base = rand(rng, 3 * 30011, dtype)
    x = {"reversed": base[:30011][::-1], "strided": base[1::3],
         "byteswapped": base[:30011].astype(np.dtype(dtype).newbyteorder()),
         "readonly": base[:30011].copy()}[layout]
    if layout == "readonly":
        x.flags.writeable = False
    x0 = x.copy()
    w = rand(rng, 300, dtype)
    for mode in ("full", "same", "valid"):
        got = fastconv.oaconvolve(x, w, mode)
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, _ref(x, w, mode), rtol=0,
                                   atol=tol * np.abs(x).max() * np.abs(w).sum())
    assert calls, "the batched 1-D path was not used"
    np.testing.assert_array_equal(x, x0)


def test_windows_inside_the_signal():
    """Windows of the full convolution that start and end anywhere (the first and last
    segments then lie inside the signal, or reach past either end)."""
    rng = np.random.default_rng(9)
    x, w = rand(rng, 20000, np.float64), rand(rng, 333, np.float64)
    full = _ref(x, w, "full")
    for start, length in [(0, 20332), (5, 9), (332, 19668), (1000, 17000), (19990, 342),
                          (20331, 1), (7, 20325), (15000, 4000)]:
        got = _fft.oaconvolve(x, w, (0,), (start,), (length,))
        np.testing.assert_allclose(got, full[start:start + length], rtol=0,
                                   atol=1e-12 * np.abs(x).max() * np.abs(w).sum())
